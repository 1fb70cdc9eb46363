"""Property tests: whatever the input, the compiler reports CmxError and nothing else.

* text generated from the grammar, mutated valid files, arbitrary unicode and bytes, and
  arbitrary ``-D`` values must compile or raise :class:`CmxError`;
* every rendered diagnostic starts ``file:line:col: error[Ennn]: `` or ``cmx: error[Ennn]: ``;
* instance and link counts of generated array systems follow from arithmetic;
* output bytes do not depend on PYTHONHASHSEED.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from supernode_dsl.diagnostics import CmxError
from supernode_dsl.elaborate import Limits, elaborate
from supernode_dsl.emit import graphml_text, node_link_text
from supernode_dsl.graph import build_graph
from supernode_dsl.parse import parse_program
from supernode_dsl.parse.grammar import get_parser
from supernode_dsl.units import UNITS

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: Small limits keep every example fast; going over them must itself be a clean E010.
SMALL = Limits(max_instances=20_000, max_links=100_000)

# a CmxError carries the stage's warnings (W...) too, rendered the same way
DIAG_RE = re.compile(r"^\S.*:\d+:\d+: (error\[E|warning\[W)\d{3}\]: |^cmx: error\[E\d{3}\]: ")

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def check_error(err: CmxError) -> None:
    """A CmxError carries diagnostics, each rendering with the documented first line."""
    assert err.diagnostics, "CmxError without diagnostics"
    for d in err.diagnostics:
        text = d.render()
        assert DIAG_RE.match(text), f"badly formed diagnostic: {text!r}"


def compile_only_cmx_errors(*, text: str | None = None, path: Path | None = None,
                            name: str = "fuzz.cmx", defines: Mapping[str, str] | None = None,
                            emit: bool = True) -> bool:
    """Run every stage; True if it compiled, False on CmxError (checked); else it raises."""
    try:
        program = (parse_program(text=text, name=name) if text is not None
                   else parse_program(path))
        model = elaborate(program, dict(defines or {}), SMALL)
        g = build_graph(model)
        list(model.instances())
        model.count_by_category()
        if emit and g.number_of_nodes() <= 3000:
            node_link_text(g)
            graphml_text(g)
    except CmxError as err:
        check_error(err)
        return False
    return True


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the inputs: cm384/ (with lib/), features/ (with lib/), fixtures."""
    root = tmp_path_factory.mktemp("cmx-fuzz")
    shutil.copytree(REPO / "topologies", root / "cm384")
    shutil.copytree(FIXTURES / "features", root / "features")
    for f in ("ring2.cmx", "torus.cmx"):
        shutil.copy(FIXTURES / f, root / f)
    return root


# ---- (a) text generated from the grammar ------------------------------------------------------
def _padded(words: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(words).map(lambda w: f" {w} ")


_NAMES = ["x", "i", "j", "n", "a", "b", "chip", "node", "sw", "ub", "p", "accelerator", "die",
          "switch", "nic", "node", "system", "board", "bw", "latency", "count", "ports",
          "port_bw", "hbm", "x_tag", "min", "max", "ceil", "abs", "Chip", "Sys", "nodes", "T"]

GRAMMAR_TEXT = from_lark(
    get_parser(cache=False),  # hypothesis reads .grammar, which a cached parser lacks
    explicit={
        "NAME": st.one_of(_padded(_NAMES), st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,6}\Z")
                          .map(lambda w: f" {w} ")),
        "NUMBER": _padded(["0", "1", "2", "3", "4", "8", "0.5", "1e400", "1_000", "7e-400",
                           "99999999999999999999", "2.5e3"]),
        "UNIT": _padded(["GB/s", "Gbps", "us", "ns", "GB", "GiB", "TFLOPS", "W", "GHz", "s",
                         "Qz", "GBps", "µs"]),
        "STRING": _padded(['"x"', '""', '"lib/parts.cmx"', '"nope.cmx"', '"a\\"b"', '"\\q"']),
        "TRUE": _padded(["true"]),
        "FALSE": _padded(["false"]),
        "IMPORT": _padded(["import"]),
        "PARAM": _padded(["param"]),
        "PLANE": _padded(["plane"]),
        "INSTANCE": _padded(["instance"]),
        "LINK": _padded(["link"]),
    },
).filter(lambda s: len(s) < 2000)


@FUZZ
@given(GRAMMAR_TEXT)
def test_grammar_generated_text_only_raises_cmx_error(workdir: Path, text: str) -> None:
    with contextlib.chdir(workdir / "features"):
        compile_only_cmx_errors(text=text)


_PRELUDE = ('plane p "x"\nparam n = 2\naccelerator Chip { hbm = 1 GB }\n'
            "switch Sw { ports = 8; port_bw = 1 TB/s }\n")


@FUZZ
@given(GRAMMAR_TEXT)
def test_grammar_text_after_valid_prelude(workdir: Path, text: str) -> None:
    """The same, after valid declarations, so generated bodies reach elaboration more often."""
    with contextlib.chdir(workdir / "features"):
        compile_only_cmx_errors(text=_PRELUDE + text)


# ---- (b) mutations of valid files ----------------------------------------------------------------
_TOKENS = ["{", "}", "[", "]", "(", ")", "[*]", "[0:2]", "<->", "link", "param", "import",
           "instance", "plane", ":", "=", "\n", ";", ",", "**", "//", "%", "-", "+", '"', "#",
           ".", "node", "x", "i", "1e400", "0", "-1", "true", "GB/s", "count = 3",
           "bw = 0 GB/s", "x_a = 1", "[i]", "[(i+1)%3]", " ub ", "\\", "\t", "µ", "\u00e9"]
_NUMBERS = ["0", "-1", "1", "0.5", "1e400", "-1e400", "1e-400", "99999999999999999999",
            "100000", "2**62", "(0)", "1_0", "7"]
_UNITS = ["GB/s", "Gbps", "us", "ns", "ms", "GB", "GiB", "TFLOPS", "W", "GHz", "s", "Qz",
          "GBps", "", "TB/s", "b/s"]
_NUM_RE = re.compile(r"(?<![A-Za-z_\d.])\d[\d_]*(\.\d+)?([eE][+-]?\d+)?")
_UNIT_RE = re.compile("(?<=[0-9] )(" + "|".join(sorted((re.escape(u) for u in UNITS),
                                                        key=len, reverse=True)) + r")(?![\w/])")


@st.composite
def mutated(draw: st.DrawFn, source: str) -> str:
    lines = source.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "chars", "token", "number",
                                   "unit"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and lines:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op in ("chars", "token"):
            insert = (draw(st.text(min_size=1, max_size=4)) if op == "chars"
                      else draw(st.sampled_from(_TOKENS)))
            line = lines[i] if lines else ""
            at = draw(st.integers(0, len(line)))
            new = line[:at] + insert + line[at:]
            if lines:
                lines[i] = new
            else:
                lines.append(new)
        else:
            text = "\n".join(lines)
            matches = list((_NUM_RE if op == "number" else _UNIT_RE).finditer(text))
            if matches:
                m = draw(st.sampled_from(matches))
                repl = draw(st.sampled_from(_NUMBERS if op == "number" else _UNITS))
                text = text[:m.start()] + repl + text[m.end():]
            lines = text.split("\n")
    return "\n".join(lines)


_CM384 = (REPO / "topologies" / "cloudmatrix384.cmx").read_text(encoding="utf-8")
_ASCEND = (REPO / "topologies" / "lib" / "ascend.cmx").read_text(encoding="utf-8")


@FUZZ
@given(st.data())
def test_mutated_cloudmatrix384_only_raises_cmx_error(workdir: Path, data: st.DataObject) -> None:
    lib_mutant = data.draw(st.booleans())
    lib = data.draw(mutated(_ASCEND)) if lib_mutant else _ASCEND
    main = _CM384 if lib_mutant and data.draw(st.booleans()) else data.draw(mutated(_CM384))
    (workdir / "cm384" / "lib" / "ascend.cmx").write_text(lib, encoding="utf-8")
    nodes = data.draw(st.sampled_from([{"nodes": "2"}, {}, {"nodes": "1"}]))
    with contextlib.chdir(workdir / "cm384"):
        compile_only_cmx_errors(text=main, name="mutant.cmx", defines=nodes, emit=False)


_FIXTURE_TEXTS = {
    name: (FIXTURES / name).read_text(encoding="utf-8")
    for name in ("ring2.cmx", "torus.cmx", "features/main.cmx", "features/lib/parts.cmx")
}


@FUZZ
@given(st.sampled_from(sorted(_FIXTURE_TEXTS)), st.data())
def test_mutated_fixtures_only_raise_cmx_error(workdir: Path, name: str,
                                               data: st.DataObject) -> None:
    text = data.draw(mutated(_FIXTURE_TEXTS[name]))
    target = workdir / name
    try:
        target.write_text(text, encoding="utf-8")
        main = workdir / "features" / "main.cmx" if name.startswith("features/lib") else target
        compile_only_cmx_errors(path=main)
    finally:
        target.write_text(_FIXTURE_TEXTS[name], encoding="utf-8")


# ---- (c) arbitrary text, bytes and -D values ----------------------------------------------------
@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_unicode_only_raises_cmx_error(workdir: Path, text: str) -> None:
    with contextlib.chdir(workdir):
        compile_only_cmx_errors(text=text)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_file_only_raises_cmx_error(workdir: Path, blob: bytes) -> None:
    path = workdir / "blob.cmx"
    path.write_bytes(blob)
    compile_only_cmx_errors(path=path)


@FUZZ
@given(st.one_of(st.text(max_size=30),
                 st.sampled_from(["0", "-1", "1e400", "2.5", "1 GB", "nodes", "true", '"x"',
                                  "3)", "(", "1\n2", "2; param q = 1", "subplanes * 0"])),
       st.sampled_from(["nodes", "subplanes", "rdma_rails", "ub_l1_l2_latency", "missing"]))
def test_arbitrary_defines_only_raise_cmx_error(workdir: Path, value: str, name: str) -> None:
    with contextlib.chdir(workdir / "cm384"):
        compile_only_cmx_errors(path=Path("cloudmatrix384.cmx"), defines={name: value},
                                emit=False)


def test_missing_file_is_a_cmx_error(workdir: Path) -> None:
    assert compile_only_cmx_errors(path=workdir / "does-not-exist.cmx") is False
    assert compile_only_cmx_errors(path=workdir) is False  # a directory


# ---- (d) diagnostics format on known errors (also checked inside every property above) ---------
@pytest.mark.parametrize("text", [
    "instance", "plane p \"x\"\nnode N { a: Q }\ninstance n: N\n", "param a = b\n",
    "import \"nope.cmx\"\n", "system S { x[0]: S2 }\n", "param x = 1 Qz\n",
    "param n = 1e400\naccelerator C { }\nsystem S { c[n]: C }\n",
])
def test_diagnostic_format_examples(workdir: Path, text: str) -> None:
    with contextlib.chdir(workdir):
        with pytest.raises(CmxError) as info:
            parse_and_build(text)
        check_error(info.value)


def parse_and_build(text: str) -> None:
    build_graph(elaborate(parse_program(text=text, name="ex.cmx"), {}, SMALL))


# ---- (e) counts follow from array sizes ---------------------------------------------------
def _array_system(a: int, b: int, c: int, d: int, ring: bool, all2all: bool,
                  outer_ring: bool) -> str:
    lines = ['plane p "fabric"', "accelerator Chip { hbm = 1 GB }", "nic Port { }",
             "node N {", f"    chip[{b}][{c}]: Chip", f"    port[{d}]: Port"]
    if ring:
        lines.append(f"    link p chip[i][j] <-> chip[(i + 1) % {b}][j] {{ bw = 1 GB/s }}")
    if all2all:
        lines.append("    link p chip[*][*] <-> port[*] { bw = 2 GB/s, count = 2 }")
    lines += ["}", "system S {", f"    node[{a}]: N"]
    if outer_ring:
        lines.append(f"    link p node[k].port[0] <-> node[(k + 1) % {a}].port[0] "
                     "{ bw = 3 GB/s }")
    lines += ["}", "instance s: S", ""]
    return "\n".join(lines)


@settings(max_examples=120, deadline=None)
@given(a=st.integers(1, 4), b=st.integers(1, 5), c=st.integers(1, 4), d=st.integers(1, 3),
       ring=st.booleans(), all2all=st.booleans(), outer_ring=st.booleans())
def test_counts_follow_array_sizes(a: int, b: int, c: int, d: int, ring: bool, all2all: bool,
                                   outer_ring: bool) -> None:
    text = _array_system(a, b, c, d, ring, all2all, outer_ring)
    program = parse_program(text=text, name="gen.cmx")
    if (ring and b == 1) or (outer_ring and a == 1):
        # a ring of one joins an instance to itself: a located E012
        with pytest.raises(CmxError) as info:
            build_graph(elaborate(program, {}, SMALL))
        check_error(info.value)
        assert "E012" in [d.code for d in info.value.diagnostics]
        return
    model = elaborate(program, {}, SMALL)
    per_node = 1 + b * c + d
    assert model.num_instances == 1 + a * per_node
    assert model.count_by_type() == {"Chip": a * b * c, "N": a, "Port": a * d, "S": 1}
    assert model.count_by_category() == {"accelerator": a * b * c, "nic": a * d, "node": a,
                                         "system": 1}
    assert len(list(model.instances())) == model.num_instances
    g = build_graph(model)
    assert g.number_of_nodes() == model.num_instances

    edges = links = 0
    if ring:  # a ring of 2 is one edge carrying 2 parallel links
        edges += a * c * (1 if b == 2 else b)
        links += a * b * c
    if all2all:
        edges += a * b * c * d
        links += a * b * c * d * 2
    if outer_ring:
        edges += 1 if a == 2 else a
        links += a
    assert g.number_of_edges() == edges
    assert sum(e["count"] for _, _, e in g.edges(data=True)) == links
    expected_bw = (a * b * c * 1e9 if ring else 0) + (a * b * c * d * 2 * 2e9 if all2all else 0) \
        + (a * 3e9 if outer_ring else 0)
    assert math.isclose(sum(e["bandwidth"] for _, _, e in g.edges(data=True)), expected_bw)


# ---- determinism across processes ---------------------------------------------------------
_SCRIPT = """
import hashlib, sys
from supernode_dsl.parse import parse_program
from supernode_dsl.elaborate import elaborate
from supernode_dsl.graph import build_graph
from supernode_dsl.emit import node_link_text, graphml_text
for path, defines in [("topologies/cloudmatrix384.cmx", {"nodes": "2"}),
                      ("tests/fixtures/features/main.cmx", {}),
                      ("tests/fixtures/torus.cmx", {})]:
    g = build_graph(elaborate(parse_program(path), defines))
    sys.stdout.write(node_link_text(g))
    sys.stdout.write(hashlib.sha256(graphml_text(g).encode()).hexdigest() + "\\n")
"""


def test_output_independent_of_hash_seed() -> None:
    outs = []
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env,
                             capture_output=True, timeout=120, check=False)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        outs.append(res.stdout)
    assert outs[0] and outs[0] == outs[1] == outs[2]
