"""The ``cmx`` command line, run as a subprocess (``python -m supernode_dsl``) from the repo root.

Each run pays about a second of start-up (imports) and CloudMatrix384 another second to
compile, so every command of this module is registered once in the ``runs`` fixture, started
there all together on the available CPUs, and each test checks the finished runs it needs.
Error cases use the small fixtures under ``tests/errors/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
CM384 = "topologies/cloudmatrix384.cmx"
BROKEN = "tests/errors/e004_wrong_unit.cmx"  # one E004 at 7:38
DIAG_HEAD = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>E\d{3})\]: \S", re.M)


def cmx(*args: str, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m supernode_dsl ARGS`` in the repository root (``stdin``: its input)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, env=full_env, timeout=120,
                          input=stdin if stdin is not None else "")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


class Batch:
    """Independent CLI runs started together on every CPU (each run pays ~1 s of imports).

    ``batch.run(key)`` returns the finished process of the command registered as ``key``.
    """

    def __init__(self, commands: dict[str, tuple[list[str], dict[str, str] | None]]) -> None:
        workers = max(2, os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._futures = {key: self._pool.submit(cmx, *args, env=env, stdin=STDIN.get(key))
                         for key, (args, env) in commands.items()}

    def run(self, key: str) -> subprocess.CompletedProcess[str]:
        return self._futures[key].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def assert_input_error(proc: subprocess.CompletedProcess[str], code: str) -> None:
    """Exit 1, nothing on stdout, the coded diagnostic and an error count on stderr."""
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert f"error[{code}]" in proc.stderr, proc.stderr
    assert re.search(r"^cmx: \d+ errors?$", proc.stderr, re.M), proc.stderr


SMALL_TEXT = """\
plane ub "scale-up"
die D { hbm = 64 GB }
node N {
    die[4]: D
    link ub die[i] <-> die[(i + 1) % 4] { bw = 28 GB/s, latency = 1 us }
}
instance n: N
"""
KEEP = b'{"keep": "these bytes"}\n'
HELP = {"cmx": [], "check": ["check"], "compile": ["compile"], "info": ["info"],
        "query": ["query"], "query-path": ["query", "path"], "query-cut": ["query", "cut"]}
STDIN = {"check-many": SMALL_TEXT, "check-json": SMALL_TEXT}  # the runs that read '-'
BAD_DEFINES = {
    "unknown-param": ("nodse=36", "no parameter 'nodse' is declared; did you mean 'nodes'?"),
    "missing-equals": ("nodes", "write -D name=value"),
    "bad-expression": ("nodes=36 +", "the value is not an expression"),
}
BAD_QUERIES = {
    "path-unknown": ["path", "n.die[0]", "n.nope[1]"],
    "cut-unknown": ["cut", "nope[0:2]", "n.die[2:4]"],
    "unknown-plane": ["cut", "n.die[0:2]", "n.die[2:4]", "--plane", "nosuchplane"],
    "cut-syntax": ["cut", "n.die[0:]", "n.die[2:4]"],
}
DIE0, DIE1 = "cm384.node[0].npu[0].die[0]", "cm384.node[1].npu[0].die[0]"


@dataclass(frozen=True)
class Runs:
    batch: Batch
    tmp: Path

    def __call__(self, key: str) -> subprocess.CompletedProcess[str]:
        return self.batch.run(key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every CLI run of this module, started at once (they are independent)."""
    tmp = tmp_path_factory.mktemp("cli")
    small = tmp / "ring4.cmx"
    small.write_text(SMALL_TEXT, encoding="utf-8")
    (tmp / "keep").mkdir()
    (tmp / "keep" / "graph.json").write_bytes(KEEP)
    (tmp / "gml").mkdir()
    e015 = "tests/errors/e015_unknown_define.cmx"  # small, declares 'nodes'
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
        # CloudMatrix384 (the slow ones first)
        "check": (["check", CM384], None),
        "info-json": (["info", "--json", CM384], None),
        "info-36": (["info", "--json", "-D", "nodes=36", CM384], None),
        "nodelink-seed1": (["compile", CM384, "-o", str(tmp / "seed1.json")],
                           {"PYTHONHASHSEED": "1"}),
        "nodelink-seed2": (["compile", CM384, "-o", str(tmp / "seed2.json")],
                           {"PYTHONHASHSEED": "4242"}),
        "graphml": (["compile", "--format", "graphml", "-D", "nodes=2", CM384,
                     "-o", str(tmp / "gml" / "cm384.graphml")], None),
        "path-inter": (["query", "path", CM384, DIE0, DIE1, "--plane", "ub", "--json"], None),
        "path-intra": (["query", "path", CM384, "node[0].npu[0].die[0]",
                        "node[0].npu[1].die[0]", "--plane", "ub"], None),
        "cut": (["query", "cut", CM384, "cm384.node[0:24]", "cm384.node[24:48]",
                 "--plane", "ub"], None),
        # small inputs
        "stdout": (["compile", str(small), "-o", "-"], None),
        "broken-check": (["check", BROKEN], None),
        "broken-info-json": (["info", "--json", BROKEN], None),
        "broken-compile": (["compile", BROKEN, "-o", str(tmp / "keep" / "graph.json")], None),
        "multi": (["check", "tests/errors/multi_errors.cmx"], None),
        "syntax": (["check", "tests/errors/e001_arrow.cmx"], None),
        "missing-file": (["check", "no/such/topology.cmx"], None),
        "check-many": (["check", e015, BROKEN, "-"], None),
        "check-json": (["check", "--format", "json", BROKEN, "-"], None),
        "compile-by-suffix": (["compile", e015, "-o", str(tmp / "by-suffix.graphml")], None),
        "compile-bad-suffix": (["compile", e015, "-o", str(tmp / "fmt.txt")], None),
        "compile-mismatch": (["compile", e015, "--format", "graphml", "-o",
                              str(tmp / "fmt.json")], None),
        "emit-mismatch": (["emit", "svg", e015, "-o", str(tmp / "fmt.png")], None),
        "emit-unknown-format": (["emit", "no-such", e015, "-o", str(tmp / "fmt.json")], None),
        "no-output": (["compile", BROKEN], None),
        **{f"define-{k}": (["check", "-D", d, e015], None) for k, (d, _) in BAD_DEFINES.items()},
        **{f"query-{k}": (["query", a[0], str(small), *a[1:]], None)
           for k, a in BAD_QUERIES.items()},
        **{f"help-{k}": ([*c, "--help"], None) for k, c in HELP.items()},
    }
    batch = Batch(commands)
    try:
        yield Runs(batch, tmp)
    finally:
        batch.close()


# ---- check / info -----------------------------------------------------------------------

def test_check_ok(runs: Runs) -> None:
    proc = runs("check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{CM384}: ok: 2,282 instances")
    assert proc.stderr == ""


def _info(runs: Runs, key: str = "info-json") -> dict[str, Any]:
    proc = runs(key)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_info_json_counts(runs: Runs) -> None:
    data = _info(runs)
    assert data["name"] == "cm384"
    assert data["root_type"] == "CloudMatrix384"
    assert data["instances"] == 2282
    by_cat = data["counts"]["by_category"]
    assert (by_cat["accelerator"], by_cat["die"], by_cat["cpu"], by_cat["node"]) == \
        (384, 768, 192, 48)
    by_type = data["counts"]["by_type"]
    assert by_type["UBSwitchL1"] == 48 * 7
    assert by_type["UBSwitchL2"] == 7 * 16
    assert data["params"]["nodes"] == 48


def test_info_json_ub_bisection(runs: Runs) -> None:
    data = _info(runs)
    assert set(data["planes"]) == {"ub", "rdma", "vpc", "d2d"}
    assert data["planes"]["ub"]["bisection_bandwidth_Bps"] == pytest.approx(75_264e9, rel=0.01)


def test_define_changes_counts(runs: Runs) -> None:
    data, base = _info(runs, "info-36"), _info(runs)
    assert data["params"]["nodes"] == 36
    assert data["counts"]["by_category"]["node"] == 36
    assert data["counts"]["by_category"]["accelerator"] == 288
    assert data["counts"]["by_type"]["UBSwitchL1"] == 36 * 7
    assert data["instances"] < base["instances"]


# ---- compile ------------------------------------------------------------------------------

def test_compile_node_link_reads_back(runs: Runs) -> None:
    proc = runs("nodelink-seed1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    with (runs.tmp / "seed1.json").open(encoding="utf-8") as f:
        g = nx.node_link_graph(json.load(f))
    assert g.number_of_nodes() == 2282
    assert g.has_node(DIE0)
    e = g.edges[DIE0, "cm384.node[0].l1[0]"]
    assert e["plane"] == "ub"
    assert e["bandwidth"] == pytest.approx(28e9)
    assert not list(runs.tmp.glob(".*.tmp"))


def test_compile_graphml_reads_back(runs: Runs) -> None:
    proc = runs("graphml")
    assert proc.returncode == 0, proc.stderr
    out = runs.tmp / "gml" / "cm384.graphml"
    g = nx.read_graphml(out)
    assert g.has_node("cm384.node[1].npu[7].die[1]")
    assert sum(1 for _, d in g.nodes(data=True) if d.get("category") == "node") == 2
    assert json.loads(g.graph["planes"])["ub"].startswith("Unified Bus")
    assert [p.name for p in out.parent.iterdir()] == ["cm384.graphml"]


def test_compile_is_deterministic_across_hash_seeds(runs: Runs) -> None:
    for key in ("nodelink-seed1", "nodelink-seed2"):
        assert runs(key).returncode == 0, runs(key).stderr
    one, two = (runs.tmp / "seed1.json").read_bytes(), (runs.tmp / "seed2.json").read_bytes()
    assert one == two
    assert len(one) > 100_000


def test_compile_to_stdout(runs: Runs) -> None:
    proc = runs("stdout")
    assert proc.returncode == 0, proc.stderr
    g = nx.node_link_graph(json.loads(proc.stdout))
    assert (g.number_of_nodes(), g.number_of_edges()) == (5, 4)


def test_compile_broken_file_keeps_existing_output(runs: Runs) -> None:
    assert_input_error(runs("broken-compile"), "E004")
    folder = runs.tmp / "keep"
    assert (folder / "graph.json").read_bytes() == KEEP
    assert sorted(p.name for p in folder.iterdir()) == ["graph.json"]


def test_compile_without_output_is_usage_error(runs: Runs) -> None:
    proc = runs("no-output")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--output" in proc.stderr


# ---- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["broken-check", "broken-info-json"])
def test_broken_file_exit_1_diagnostics_on_stderr(runs: Runs, key: str) -> None:
    proc = runs(key)
    assert_input_error(proc, "E004")
    heads = list(DIAG_HEAD.finditer(proc.stderr))
    assert [(m["file"], m["line"], m["col"], m["code"]) for m in heads] == \
        [(BROKEN, "7", "38", "E004")]
    lines = proc.stderr.splitlines()
    assert lines[1] == " 7 |     link ub die[0] <-> die[1] { bw = 5 ns }"
    assert lines[2] == "   |                                      ^^^^"
    assert lines[-1] == "cmx: 1 error"


def test_several_errors_all_on_stderr(runs: Runs) -> None:
    proc = runs("multi")
    assert_input_error(proc, "E002")
    codes = sorted(m["code"] for m in DIAG_HEAD.finditer(proc.stderr))
    assert codes == ["E002", "E003", "E004", "E008"]
    assert proc.stderr.rstrip().endswith("cmx: 4 errors")


def test_syntax_error_cli(runs: Runs) -> None:
    proc = runs("syntax")
    assert_input_error(proc, "E001")
    assert "tests/errors/e001_arrow.cmx:7:20: error[E001]: links are written with '<->'" \
        in proc.stderr


def test_missing_input_file(runs: Runs) -> None:
    proc = runs("missing-file")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "error[E011]" in proc.stderr
    assert "no/such/topology.cmx" in proc.stderr


@pytest.mark.parametrize("key", list(BAD_DEFINES))
def test_bad_define_is_usage_error(runs: Runs, key: str) -> None:
    """A mistake in -D is a usage error: exit 2, with the located E015 diagnostic."""
    proc = runs(f"define-{key}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "error[E015]" in proc.stderr
    assert BAD_DEFINES[key][1] in proc.stderr


def test_check_many_files_stdin_and_json(runs: Runs) -> None:
    """Several files and '-' in one run: a summary per good file, every diagnostic of the
    bad one, exit 1; --format json gives one object per file with located diagnostics."""
    proc = runs("check-many")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "tests/errors/e015_unknown_define.cmx: ok: 1 instances, 0 link bundles on 0 planes",
        "-: ok: 5 instances, 4 link bundles on 1 plane"]
    assert f"{BROKEN}:7:38: error[E004]" in proc.stderr
    assert proc.stderr.rstrip().endswith("cmx: 1 error")
    data = json.loads(runs("check-json").stdout)
    assert [d["file"] for d in data] == [BROKEN, "-"] and [d["ok"] for d in data] == [False, True]
    (diag,) = data[0]["diagnostics"]
    assert diag == {"code": "E004", "severity": "error", "notes": [],
                    "message": "'bw' needs a bandwidth (GB/s, Gbps, TB/s, ...), "
                               "not a time (s, ms, us, ns)",
                    "span": {"file": BROKEN, "line": 7, "col": 38, "end_line": 7,
                             "end_col": 42}}
    assert runs("check-json").returncode == 1


@pytest.mark.parametrize("key", ["compile-bad-suffix", "compile-mismatch", "emit-mismatch",
                                 "emit-unknown-format"])
def test_output_format_usage_errors(runs: Runs, key: str) -> None:
    """A format that contradicts -o's extension, an extension that names no graph format
    and an unknown format name are usage errors: exit 2, nothing written."""
    proc = runs(key)
    assert proc.returncode == 2, proc.stderr
    assert not list(runs.tmp.glob("fmt.*"))


def test_compile_format_follows_extension(runs: Runs) -> None:
    proc = runs("compile-by-suffix")
    assert proc.returncode == 0, proc.stderr
    g = nx.read_graphml(runs.tmp / "by-suffix.graphml")
    assert g.number_of_nodes() == 1


# ---- help -------------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(HELP))
def test_help(runs: Runs, key: str) -> None:
    proc = runs(f"help-{key}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: cmx")
    assert "--help" in proc.stdout


# ---- queries ------------------------------------------------------------------------------

def test_query_path_inter_node(runs: Runs) -> None:
    proc = runs("path-inter")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["source"], data["target"]) == (DIE0, DIE1)
    (row,) = data["paths"]
    assert row["plane"] == "ub"
    assert row["latency_s"] == pytest.approx(1.9e-6, rel=1e-6)
    assert len(row["hops"]) == 5  # die, L1, L2, L1, die
    assert row["path_bandwidth_Bps"] == pytest.approx(28e9)


def test_query_path_intra_node(runs: Runs) -> None:
    proc = runs("path-intra")
    assert proc.returncode == 0, proc.stderr
    assert "plane ub: 2 hops, latency 1.200 us" in proc.stdout


def test_query_cut_half_nodes(runs: Runs) -> None:
    proc = runs("cut")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "plane ub: 75,264.00 GB/s"


@pytest.mark.parametrize("key", list(BAD_QUERIES))
def test_bad_query_is_e020(runs: Runs, key: str) -> None:
    proc = runs(f"query-{key}")
    assert_input_error(proc, "E020")
    if key == "unknown-plane":
        assert "unknown plane 'nosuchplane'" in proc.stderr
    if key == "cut-syntax":  # the grammar's own message, located in the selector
        assert proc.stderr.startswith("<selector>:1:9: error[E020]: unexpected ']'")
        assert " 1 | n.die[0:]" in proc.stderr
