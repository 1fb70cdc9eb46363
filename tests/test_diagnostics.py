"""Every diagnostic code, triggered by a small fixture under ``tests/errors/``.

Fixture convention (one mistake per file, several files per code for distinct causes):

* ``tests/errors/*.cmx`` are the fixtures; files in sub-folders (``tests/errors/cycle/``) are
  helpers that fixtures import, never compiled on their own.
* ``# expect: CODE at [FILE:]LINE[:COL]`` -- one line per expected diagnostic.  ``FILE`` is
  relative to the fixture's folder and defaults to the fixture itself; ``-D`` stands for the
  buffer of a command-line definition.  The column is optional.
* ``# define: NAME=VALUE`` -- a ``-D`` override passed to the compiler (repeatable).
* ``# env: NAME=VALUE`` -- an environment variable set while the fixture compiles
  (``CMX_MAX_INPUT_BYTES``; repeatable).
* ``# plan`` -- also run the planner (``plan_deployment``) on the compiled file.

The fixture must fail with *exactly* the expected diagnostics (codes and locations, as a
multiset), and every diagnostic must render as ``file:line:col: error[CODE]: message``
followed by the source line and a caret line.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CODES, CmxError, Diagnostic
from supernode_dsl.plan import plan_deployment

ERRORS_DIR = Path(__file__).resolve().parent / "errors"

#: Codes that only the CLI's inputs can produce: queries (test_cli.py), expert-loads and
#: previous-plan files and the --deployment choice (test_plan.py), emit requests (test_emit*.py),
#: writing outputs (test_files.py), ASTRA-sim runs (test_consumer_chakra.py), sweep tables
#: (test_sweep.py).
CLI_ONLY_CODES = {"E020", "E021", "E024", "E025", "E026", "E029", "E032", "E038"}

#: Codes that only calls of the Python API can produce: wrong argument types (test_api.py).
API_ONLY_CODES = {"E028"}

#: Warning codes: reported without stopping compilation (tested below, not by fixtures).
WARNING_CODES = {c for c in CODES if c.startswith("W")}

_EXPECT = re.compile(
    r"^#\s*expect:\s*(?P<code>E\d{3})\s+at\s+(?:(?P<file>-D|[^\s:]+\.cmx):)?(?P<line>\d+)(?::(?P<col>\d+))?\s*$"
)
_DEFINE = re.compile(r"^#\s*define:\s*(?P<name>[^=\s]+)=(?P<value>.*?)\s*$")
_ENV = re.compile(r"^#\s*env:\s*(?P<name>[A-Z_]+)=(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class Expected:
    code: str
    file: str  # a resolved path, or "-D"
    line: int
    col: int | None


@dataclass(frozen=True)
class Fixture:
    path: Path
    expected: tuple[Expected, ...]
    defines: dict[str, str]
    plan: bool = False
    env: tuple[tuple[str, str], ...] = ()


def _load(path: Path) -> Fixture:
    expected: list[Expected] = []
    defines: dict[str, str] = {}
    env: list[tuple[str, str]] = []
    plan = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line == "# plan":
            plan = True
        elif m := _EXPECT.match(line):
            f = m["file"]
            where = "-D" if f == "-D" else str((path.parent / f).resolve()) if f else str(path)
            expected.append(Expected(m["code"], where, int(m["line"]),
                                     int(m["col"]) if m["col"] else None))
        elif m := _DEFINE.match(line):
            defines[m["name"]] = m["value"]
        elif m := _ENV.match(line):
            env.append((m["name"], m["value"]))
        elif line.startswith(("# expect", "# define", "# env")):
            raise AssertionError(f"{path.name}: malformed header line {raw!r}")
    assert expected, f"{path.name} has no '# expect:' line"
    return Fixture(path, tuple(expected), defines, plan, tuple(env))


FIXTURES = sorted(ERRORS_DIR.glob("*.cmx"))


def _span_file(d: Diagnostic) -> str:
    assert d.span is not None, f"diagnostic without a location: {d.render()}"
    name = d.span.file
    if name.startswith("<-D "):
        return "-D"
    return str(Path(name).resolve())


def _compile_errors(fx: Fixture) -> CmxError:
    with pytest.raises(CmxError) as info, mock.patch.dict(os.environ, dict(fx.env)):
        model = cmx.compile_file(fx.path, fx.defines)
        graph = cmx.build_graph(model)
        if fx.plan:
            plan_deployment(model, graph)
    return info.value


def _check_rendering(d: Diagnostic) -> None:
    assert d.span is not None
    text = d.render()
    lines = text.splitlines()
    assert len(lines) >= 3, text
    head = re.compile(rf"^{re.escape(d.span.file)}:{d.span.line}:{d.span.col}: "
                      rf"error\[E\d{{3}}\]: \S")
    assert head.match(lines[0]), text
    assert f"error[{d.code}]: {d.message}" in lines[0]
    gutter = f" {d.span.line} | "
    assert lines[1] == gutter + d.span.source.line(d.span.line), text
    # the caret line: same gutter width, blank number, carets under the span's first column
    caret = re.fullmatch(r" (\s+) \| (\s*)(\^+)", lines[2])
    assert caret is not None, text
    assert len(caret.group(1)) == len(str(d.span.line)), text
    assert len(caret.group(2)) == d.span.col - 1, text
    # every note with a location renders the same way
    rest = lines[3:]
    while rest:
        assert re.match(r"^\S.*:\d+:\d+: note: \S|^  = note: \S", rest[0]), text
        rest = rest[3:] if ": note: " in rest[0] else rest[1:]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_reports_expected_diagnostics(path: Path) -> None:
    fx = _load(path)
    err = _compile_errors(fx)
    got = [(d.code, _span_file(d), d.span.line if d.span else 0) for d in err.diagnostics]
    want = [(e.code, e.file, e.line) for e in fx.expected]
    assert Counter(got) == Counter(want), f"\n{err}"
    # columns, where the fixture gives them
    for e in fx.expected:
        if e.col is None:
            continue
        cols = [d.span.col for d in err.diagnostics if d.span is not None and d.code == e.code
                and d.span.line == e.line and _span_file(d) == e.file]
        assert e.col in cols, f"{e.code} at {e.line}: column {e.col} expected, got {cols}\n{err}"


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_diagnostics_render(path: Path) -> None:
    err = _compile_errors(_load(path))
    assert err.diagnostics
    for d in err.diagnostics:
        assert d.code in CODES
        _check_rendering(d)
    # the exception text is every rendered diagnostic, in order
    assert str(err) == "\n".join(d.render() for d in err.diagnostics)
    assert "Traceback" not in str(err)


def test_every_code_has_a_fixture() -> None:
    covered = {e.code for p in FIXTURES for e in _load(p).expected}
    missing = sorted(set(CODES) - CLI_ONLY_CODES - API_ONLY_CODES - WARNING_CODES - covered)
    assert not missing, f"no fixture under tests/errors/ triggers {missing}"
    assert covered <= set(CODES), sorted(covered - set(CODES))


def test_helper_files_are_not_fixtures() -> None:
    # tests/errors/cycle/*.cmx only make sense when imported by e009_import_cycle.cmx
    assert all(p.parent == ERRORS_DIR for p in FIXTURES)
    assert (ERRORS_DIR / "cycle" / "a.cmx").is_file()


def test_several_errors_are_reported_at_once() -> None:
    err = _compile_errors(_load(ERRORS_DIR / "multi_errors.cmx"))
    assert sorted(err.codes) == ["E002", "E003", "E004", "E008"]
    lines = sorted(d.span.line for d in err.diagnostics if d.span is not None)
    assert lines == [9, 13, 14, 15]
    # reported in source order within the stage is not required, but each only once
    assert len({(d.code, d.span) for d in err.diagnostics}) == len(err.diagnostics)


def test_several_errors_from_string() -> None:
    src = (
        "plane ub \"scale-up\"\n"
        "die D { hbm = 64; hbm_bw = 5 ns }\n"          # E003, E004
        "node N {\n"
        "    die[2]: D\n"
        "    link ub die[0] <-> die[5] { bw = 28 GB/s }\n"  # E013
        "    link ub die[0] <-> die[1] { latency = 1 us }\n"  # E019
        "}\n"
        "instance n: N\n"
    )
    with pytest.raises(CmxError) as info:
        cmx.compile_string(src, name="multi.cmx")
    got = sorted((d.code, d.span.line) for d in info.value.diagnostics if d.span)
    assert got == [("E003", 2), ("E004", 2), ("E013", 5), ("E019", 6)]
    for d in info.value.diagnostics:
        assert d.render().startswith(f"multi.cmx:{d.span.line}:")  # type: ignore[union-attr]


def test_max_instances_limit_is_configurable() -> None:
    # the E010 limit comes from Limits (the CLI's --max-instances)
    src = "die D { hbm = 1 GB }\nnode N { die[100]: D }\ninstance n: N\n"
    with pytest.raises(CmxError) as info:
        cmx.compile_string(src, limits=cmx.Limits(max_instances=50))
    assert info.value.codes == ["E010"]
    assert cmx.compile_string(src).num_instances == 101


def test_missing_main_file_is_e011(tmp_path: Path) -> None:
    with pytest.raises(CmxError) as info:
        cmx.compile_file(tmp_path / "nothing.cmx")
    assert info.value.codes == ["E011"]
    assert "nothing.cmx" in str(info.value)


def test_non_utf8_file_is_e011(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.cmx"
    bad.write_bytes(b"# caf\xe9\nparam n = 1\n")
    with pytest.raises(CmxError) as info:
        cmx.compile_file(bad)
    assert info.value.codes == ["E011"]


def test_parameter_used_as_ring_index_warns_but_compiles() -> None:
    text = """param x = 1
plane p "p"
die D { hbm = 1 GB }
node N {
    d[3]: D
    link p d[x] <-> d[(x + 1) % 3] { bw = 1 GB/s }
}
instance n: N
"""
    model = cmx.compile_string(text, name="ring.cmx")
    (w,) = model.warnings
    assert w.code == "W001" and w.span is not None and (w.span.line, w.span.col) == (6, 14)
    assert w.render().startswith("ring.cmx:6:14: warning[W001]: 'x' is a parameter")
    assert cmx.build_graph(model).number_of_edges() == 1   # the one fixed link, as written
    renamed = cmx.compile_string(text.replace("d[x]", "d[i]").replace("(x + 1)", "(i + 1)"))
    assert renamed.warnings == () and cmx.build_graph(renamed).number_of_edges() == 3
