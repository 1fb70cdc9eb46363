"""``cmx sweep``: the grid, the Pareto front, resuming, and the same table on every backend.

The end-to-end sweep plans two points of the shipped DeepSeek-R1 deployment (about a second
each); the Ray test runs only where Ray is installed (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_report import Page

from supernode_dsl.diagnostics import CmxError, SourceText
from supernode_dsl.plan.document.locate import locate
from supernode_dsl.sweep import (
    GridError,
    PointResult,
    SweepSpec,
    parse_axis,
    run_sweep,
)
from supernode_dsl.sweep.grid import grid_points
from supernode_dsl.sweep.table import (
    load_table,
    pareto_front,
    read_table,
    sources_digest,
    table_json,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx"
CM384 = ROOT / "topologies" / "cloudmatrix384.cmx"


def test_axes_lists_and_ranges() -> None:
    assert parse_axis("b=32, 64,96").values == ("32", "64", "96")
    # both ends included, decimal steps without float drift
    assert parse_axis("x=0.1:0.3:0.1").values == ("0.1", "0.2", "0.3")
    assert parse_axis("n=1:7:3").values == ("1", "4", "7")
    for bad in ("b", "=1", "b=", "b=1,,2", "b=1,1", "b=3:1:1", "b=1:2", "b=1:2:0", "b=a:b:c"):
        with pytest.raises(GridError):
            parse_axis(bad)


def test_grid_order() -> None:
    pts = grid_points((parse_axis("a=1,2"), parse_axis("b=x,y,z")))
    assert [(p["a"], p["b"]) for p in pts] == [
        ("1", "x"), ("1", "y"), ("1", "z"), ("2", "x"), ("2", "y"), ("2", "z")]
    with pytest.raises(GridError):
        grid_points((parse_axis("a=1"), parse_axis("a=2")))


def _pt(tps: float | None, tpot: float | None) -> PointResult:
    metrics = None if tps is None else {"decode_tokens_per_s_per_npu": tps, "tpot_ms": tpot}
    return PointResult({}, metrics, None if metrics else "E023: memory")


def test_pareto_front() -> None:
    # 0 (1000, 20) and 2 (2000, 40) trade off; 1 (900, 30) is beaten by 0; 3 equals 2 and
    # so beats nothing and is not beaten (both stay); 4 failed; 5 (2500, 60) is the fastest.
    pts = [_pt(1000, 20), _pt(900, 30), _pt(2000, 40), _pt(2000, 40), _pt(None, None),
           _pt(2500, 60)]
    assert pareto_front(pts) == [0, 2, 3, 5]


_SMALL = st.one_of(st.none(), st.integers(0, 6))  # few values: many ties and equal points


@given(st.lists(st.tuples(_SMALL, st.integers(0, 6)), max_size=30))
def test_pareto_front_is_the_definition(pts: list[tuple[int | None, int]]) -> None:
    # the one-pass front equals "not beaten by any other point", ties and failed points too
    results = [_pt(tps, lat) for tps, lat in pts]
    ok = [(i, t, v) for i, (t, v) in enumerate(pts) if t is not None]
    want = [i for i, t, v in ok
            if not any(t2 >= t and v2 <= v and (t2 > t or v2 < v) for _, t2, v2 in ok)]
    assert pareto_front(results) == want


def _spec(out: Path, backend: str = "local") -> SweepSpec:
    return SweepSpec(file=DEPLOY, axes=(parse_axis("decode_batch_per_npu=32,96"),),
                     output=out, defines=(("tpot_slo_ms", "50"),), workers=2,
                     backend="ray" if backend == "ray" else "local")


@cache
def _files() -> tuple[str, ...]:
    import supernode_dsl as cmx

    return cmx.compile_file(DEPLOY).files


def _cmx_sweep(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", "sweep", str(DEPLOY),
                           "-o", str(out), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The sweep of ``_spec`` run by the command line (2 local processes)."""
    out = tmp_path_factory.mktemp("sweep")
    proc = _cmx_sweep(out, "-p", "decode_batch_per_npu=32,96", "-D", "tpot_slo_ms=50",
                      "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("2 points (2 computed, 0 already done, 0 not plannable)")
    return out, (out / "table.json").read_bytes()


def test_sweep_table(local_sweep: tuple[Path, bytes]) -> None:
    out, table = local_sweep
    doc = json.loads(table)
    rows = doc["points"]
    assert [r["decode_batch_per_npu"] for r in rows] == ["32", "96"]
    assert [r["batch_per_npu"] for r in rows] == [32, 96]
    # a larger batch: more tokens/s per NPU and a longer TPOT, so both are on the front
    assert rows[1]["decode_tokens_per_s_per_npu"] > rows[0]["decode_tokens_per_s_per_npu"]
    assert rows[1]["tpot_ms"] > rows[0]["tpot_ms"]
    assert doc["pareto_front"] == [0, 1]
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("point,decode_batch_per_npu,decode_tokens_per_s_per_npu,tpot_ms")
    assert len(csv) == 3 and all(line.split(",")[-2] == "1" for line in csv[1:])
    svg = ET.parse(out / "pareto.svg").getroot()
    dots = svg.findall("{http://www.w3.org/2000/svg}circle")
    assert len(dots) == 2 and all(d.get("fill") == "#c0392b" for d in dots)  # both on the front
    # the faster point (more tokens/s) is drawn higher (smaller y) and further right
    low, high = sorted(dots, key=lambda d: float(d.get("cx", "0")))
    assert float(high.get("cy", "0")) < float(low.get("cy", "0"))


def test_sweep_resumes(local_sweep: tuple[Path, bytes]) -> None:
    # the same sweep, in-process: nothing left to plan, the same table
    out, table = local_sweep
    again = run_sweep(_spec(out), _files())
    assert again.computed == 0 and (out / "table.json").read_bytes() == table
    # interrupted while writing the second point: that one line is cut short; only that
    # point is planned again, and the table comes out the same
    store = out / "points.jsonl"
    lines = store.read_text().splitlines()
    store.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    resumed = run_sweep(_spec(out), _files())
    assert resumed.computed == 1 and (out / "table.json").read_bytes() == table


def test_sweep_on_ray(local_sweep: tuple[Path, bytes], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    result = run_sweep(_spec(tmp_path, "ray"), _files())
    assert result.computed == 2
    assert (tmp_path / "table.json").read_bytes() == local_sweep[1]


def test_cli_errors(tmp_path: Path) -> None:
    bad_axis = _cmx_sweep(tmp_path / "out", "-p", "decode_batch_per_npu")
    assert bad_axis.returncode == 2 and "name=v1,v2" in bad_axis.stderr
    unknown = _cmx_sweep(tmp_path / "out", "-p", "no_such_param=1,2")
    assert unknown.returncode == 2 and "error[E015]" in unknown.stderr
    assert "Traceback" not in bad_axis.stderr + unknown.stderr
    assert not (tmp_path / "out").exists()


# ---- the table read back (E038), and the sweep in the report (section 7) -----------------

def test_table_read_back(local_sweep: tuple[Path, bytes]) -> None:
    # what the sweep wrote reads back to the same table, and writes the same bytes again
    out, table = local_sweep
    read = load_table(out)
    assert read.axes == ("decode_batch_per_npu",) and read.defines == (("tpot_slo_ms", "50"),)
    assert read.front == (0, 1) and read.pareto_y == "tpot_ms"
    assert read.sources == sources_digest(_files())
    assert table_json(read).encode() == table


@pytest.mark.parametrize(("edit", "where", "message"), [
    (lambda d: d.update(points=None), ("points",), "points: expected a list of points"),
    (lambda d: d["points"][1].update(tpot_ms="fast"), ("points", 1, "tpot_ms"),
     "points[1].tpot_ms: expected a number or null"),
    (lambda d: d["points"][1].pop("decode_batch_per_npu"), ("points", 1),
     "points[1]: no 'decode_batch_per_npu'"),
    (lambda d: d["points"][0].update(point=1), ("points", 0, "point"),
     "points[0].point: expected 0"),
    (lambda d: d.update(pareto_front=[1]), ("pareto_front",),
     "pareto_front: not the Pareto front of the points (edited?)"),
    (lambda d: d.update(pareto_y="latency"), ("pareto_y",), "pareto_y: expected tpot_ms"),
])
def test_table_errors(local_sweep: tuple[Path, bytes], edit: Any, where: tuple[Any, ...],
                      message: str) -> None:
    doc = json.loads(local_sweep[1])
    edit(doc)
    text = json.dumps(doc, indent=1, sort_keys=True)
    with pytest.raises(CmxError) as err:
        read_table(SourceText("t.json", text), "E038")
    d = err.value.diagnostics[0]
    assert d.code == "E038" and d.message.startswith(message), d.message
    assert d.span is not None and (d.span.line, d.span.col) == locate(text, where)[:2]
    with pytest.raises(CmxError) as err:  # not JSON at all: located at the syntax error
        read_table(SourceText("t.json", '{"axes": [}'), "E038")
    assert err.value.diagnostics[0].span is not None


def _svg(text: str) -> str:
    return text[text.index("<svg"):text.index("</svg>") + len("</svg>")]


def test_report_with_sweep(local_sweep: tuple[Path, bytes], tmp_path: Path) -> None:
    out, _ = local_sweep
    html = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit", "report", str(DEPLOY),
                           "-O", f"sweep={out}", "-O", "diagrams=no", "-o", str(html)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "W006" not in proc.stderr  # the sweep of this very file
    page = html.read_text()
    checked = Page()  # every element closed in order, as the report's own tests check
    checked.feed(page)
    checked.close()
    assert not checked.errors and not checked.stack
    section = page[page.index('<section id="sweep">'):]
    assert '<a href="#sweep">7. Design-space sweep</a>' in page
    # the plot is the sweep's pareto.svg, inlined without the namespace URL
    drawn = (out / "pareto.svg").read_text().replace(' xmlns="http://www.w3.org/2000/svg"', "")
    assert _svg(section) == _svg(drawn) and "http" not in section
    # the axes with their values, the fixed define, and the two front points in a table
    assert "<tr><td>decode_batch_per_npu</td><td>32, 96</td></tr>" in section
    assert "<tr><td>tpot_slo_ms (every point)</td><td>50</td></tr>" in section
    front = section[section.index('<table class="sweep-front">'):]
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", front)
    assert rows == [("0", "32"), ("1", "96")]


def test_report_sweep_warnings_and_errors(local_sweep: tuple[Path, bytes],
                                          tmp_path: Path) -> None:
    # W006: the sweep of another file is shown, with a warning
    out, table = local_sweep
    html = tmp_path / "r.html"
    cmd = [sys.executable, "-m", "supernode_dsl", "emit", "report", str(CM384), "-O",
           "diagrams=no", "-o", str(html)]
    proc = subprocess.run([*cmd, "-O", f"sweep={out / 'table.json'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cmx: warning[W006]: the sweep in" in proc.stderr
    assert '<section id="sweep">' in html.read_text()
    # E038 (cmx report --sweep): a broken table is located, nothing is written, no traceback
    bad = tmp_path / "table.json"
    bad.write_text(table.decode().replace('"pareto_front": [\n  0,', '"pareto_front": [\n  7,'))
    html.unlink()
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "report", str(CM384),
                           "--sweep", str(tmp_path), "-o", str(html)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "error[E038]: pareto_front: not the Pareto" in proc.stderr
    assert f"{bad}:" in proc.stderr and "Traceback" not in proc.stderr and not html.exists()


# ---- one front per workload (--pareto-per) ------------------------------------------------

def _wpt(prompt: str, tps: float, tpot: float) -> PointResult:
    return PointResult({"prompt_len": prompt},
                       {"decode_tokens_per_s_per_npu": tps, "tpot_ms": tpot}, None)


def test_pareto_front_per_group() -> None:
    # the short-prompt points beat every long-prompt one; per prompt length each workload
    # keeps its own front, and the long-prompt tradeoff (2, 3) survives
    pts = [_wpt("1024", 2000, 20), _wpt("1024", 1000, 30), _wpt("4096", 1500, 40),
           _wpt("4096", 900, 35)]
    assert pareto_front(pts) == [0]
    assert pareto_front(pts, per=("prompt_len",)) == [0, 2, 3]


@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 6), st.integers(0, 6)),
                max_size=30))
def test_pareto_front_per_group_is_each_groups_front(
        pts: list[tuple[str, int, int]]) -> None:
    results = [PointResult({"w": w}, {"decode_tokens_per_s_per_npu": t, "tpot_ms": v}, None)
               for w, t, v in pts]
    want = sorted(i for w in "ab" for i in
                  [j for j, (w2, t, v) in enumerate(pts) if w2 == w and not any(
                      w3 == w and t3 >= t and v3 <= v and (t3 > t or v3 < v)
                      for w3, t3, v3 in pts)])
    assert pareto_front(results, per=("w",)) == want


@pytest.fixture(scope="module")
def per_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two prompt lengths x two batches, one front per prompt length (4 points)."""
    out = tmp_path_factory.mktemp("sweep-per")
    proc = _cmx_sweep(out, "-p", "prompt_len=1024,4096", "-p", "decode_batch_per_npu=32,96",
                      "-D", "tpot_slo_ms=50", "--jobs", "2", "--pareto-per", "prompt_len")
    assert proc.returncode == 0, proc.stderr
    assert "Pareto front per prompt_len of 4: 0, 1, 2, 3" in proc.stdout
    return out


def test_sweep_front_per_workload(per_sweep: Path, tmp_path: Path) -> None:
    doc = json.loads((per_sweep / "table.json").read_text())
    assert doc["pareto_per"] == ["prompt_len"] and doc["pareto_front"] == [0, 1, 2, 3]
    # taken over every point, the long prompts' larger batch is beaten by the short ones'
    results = load_table(per_sweep).results
    assert pareto_front(list(results)) != [0, 1, 2, 3]
    # one joined front per prompt length, each in its colour, named in the legend
    svg = ET.parse(per_sweep / "pareto.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert len({p.get("stroke") for p in svg.findall(f"{ns}polyline")}) == 2
    assert [t.text for t in svg.findall(f"{ns}text") if t.text and "=" in t.text] == [
        "prompt_len=1024", "prompt_len=4096"]
    # the report says the fronts are per group
    html = tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "report", str(DEPLOY),
                           "--sweep", str(per_sweep), "-o", str(html)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "in each group of\npoints with the same prompt_len" in html.read_text()


def test_pareto_per_must_name_an_axis(per_sweep: Path, tmp_path: Path) -> None:
    proc = _cmx_sweep(tmp_path / "out", "-p", "decode_batch_per_npu=32,96",
                      "--pareto-per", "prompt_len")
    assert proc.returncode == 2 and "--pareto-per prompt_len: not a swept parameter" in \
        proc.stderr
    assert not (tmp_path / "out").exists()
    # a table whose pareto_per is not one of its axes is E038, located
    doc = json.loads((per_sweep / "table.json").read_text())
    doc["pareto_per"] = ["output_len"]
    text = json.dumps(doc, indent=1, sort_keys=True)
    with pytest.raises(CmxError) as err:
        read_table(SourceText("t.json", text), "E038")
    d = err.value.diagnostics[0]
    assert d.message == "pareto_per[0]: expected one of the axes"
    assert d.span is not None and (d.span.line, d.span.col) == locate(text, ("pareto_per", 0))[:2]
