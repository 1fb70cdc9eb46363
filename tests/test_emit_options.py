"""Emitter options: declared once per emitter class, checked by the framework before the
emitter runs (a usage error on the command line), handed to the emitter typed, listed by
``cmx emit --list`` from the same declarations."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit import options as opt
from supernode_dsl.emit.options import Option, OptionError, check_options

ROOT = Path(__file__).resolve().parent.parent
RING = ROOT / "tests" / "fixtures" / "ring2.cmx"

LAYERS = opt.choice_option("layers", "rows", ("model", "moe"))
COUNT = opt.int_option("count", "how many", 4, minimum=1)
BASE = opt.ipv4_option("base", "first address", "10.0.0.0")
PLANES = opt.names_option("plane", "planes")
LABEL = opt.text_option("label", "text before the number", "instances")
PREFIX = opt.optional_text_option("prefix", "name prefix")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def _ctx(**options: str) -> EmitContext:
    model = cmx.compile_file(RING)
    return EmitContext(model, cmx.build_graph(model), options=options)


def test_values_are_typed_with_their_defaults() -> None:
    ctx = _ctx(layers="moe", count="7", base="192.168.1.0", plane=" ub, ,rdma ")
    assert ctx.value(LAYERS) == "moe"
    assert ctx.value(COUNT) == 7
    assert ctx.value(BASE) == ipaddress.IPv4Address("192.168.1.0")
    assert ctx.value(PLANES) == ("ub", "rdma")
    assert ctx.value(LABEL) == "instances" and ctx.value(PREFIX) is None
    bare = _ctx()
    assert (bare.value(LAYERS), bare.value(COUNT), bare.value(PLANES)) == ("model", 4, None)


@pytest.mark.parametrize(("option", "text", "reason"), [
    (LAYERS, "all", "option layers='all': choose one of model, moe"),
    (COUNT, "two", "option count='two': not an integer"),
    (COUNT, "0", "option count='0': must be at least 1"),
    (BASE, "10.0.0", "option base='10.0.0': not an IPv4 address"),
])
def test_a_bad_value_names_the_option_and_what_it_accepts(option: Option[Any], text: str,
                                                          reason: str) -> None:
    with pytest.raises(OptionError) as err:
        option.read(text)
    assert err.value.message == reason
    assert err.value.codes == ["E026"]           # a diagnostic for callers of the API


def test_check_options_rejects_unknown_names_and_bad_values() -> None:
    declared = (LAYERS, COUNT)
    check_options("fmt", declared, {"layers": "moe", "count": "2"})
    with pytest.raises(OptionError, match=r"'fmt' has no option 'colour' \(options: "
                                          r"layers, count\)"):
        check_options("fmt", declared, {"colour": "red"})
    with pytest.raises(OptionError, match="no option 'x' \\(options: none\\)"):
        check_options("fmt", (), {"x": "1"})
    with pytest.raises(OptionError, match="count='-1'"):
        check_options("fmt", declared, {"count": "-1", "layers": "moe"})


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_int_option_accepts_exactly_the_integers_from_its_minimum(n: int) -> None:
    if n >= 1:
        assert COUNT.read(str(n)) == n
    else:
        with pytest.raises(OptionError):
            COUNT.read(str(n))


def test_describe_lists_values_and_default() -> None:
    assert LAYERS.describe() == "-O layers=model|moe  rows (default: model)"
    assert COUNT.describe() == "-O count=INT>=1  how many (default: 4)"
    assert PREFIX.describe() == "-O prefix=TEXT  name prefix"


def test_every_builtin_declaration_is_consistent() -> None:
    """Names unique per emitter; the default of a choice is a choice (or None: the emitter
    derives it, as the help says); a shown default reads back as the default."""
    for name, cls in available_emitters().items():
        names = [o.name for o in cls.options]
        assert len(names) == len(set(names)), name
        for o in cls.options:
            if o.choices:
                assert o.default is None or o.default in o.choices, (name, o.name)
            if o.shown_default:
                assert o.read(o.shown_default) == o.default, (name, o.name)


def test_cli_bad_option_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    # The file does not even exist: the options are checked first.
    r = _run("emit", "sglang-expert-location", str(tmp_path / "missing.cmx"),
             "-O", "layers=all", "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert "option layers='all': choose one of model, moe" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    r = _run("emit", "astra-system", str(RING), "-O", "active_chunks", "-o", str(out))
    assert r.returncode == 2 and "write -O key=value" in r.stderr


def test_cli_list_prints_the_declarations() -> None:
    r = _run("emit", "--list")
    assert r.returncode == 0
    assert "-O layers=model|moe  " in r.stdout and "(default: model)" in r.stdout
    assert "-O message_bytes=INT>=0  " in r.stdout and "(default: 7680)" in r.stdout
    assert "-O server_ip_base=IPV4  " in r.stdout and "(default: 10.0.0.0)" in r.stdout
    for cls in available_emitters().values():
        for o in cls.options:
            assert o.describe() in r.stdout
