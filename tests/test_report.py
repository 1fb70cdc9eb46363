"""``cmx report``: the HTML page is well formed, self-contained, deterministic, holds the
expected sections and numbers, and the CLI writes it atomically with the usual diagnostics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import supernode_dsl as cmx
from supernode_dsl.emit.report import ReportInputs, die_loads, inline_svg, report_html
from supernode_dsl.plan import PlanRequest, plan_deployment

ROOT = Path(__file__).resolve().parent.parent
R1 = ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx"
CM384 = ROOT / "topologies" / "cloudmatrix384.cmx"

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Page(HTMLParser):
    """Checks that every element is closed in order; collects ids, references, heatmap rects
    (per ``g.cells`` role) and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.refs: list[str] = []
        self.cells: dict[str, int] = {}
        self.cell_role: list[str | None] = []
        self.text: list[str] = []

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if d.get("id"):
            self.ids.append(str(d["id"]))
        for key in ("src", "href", "xlink:href", "action"):
            if d.get(key):
                self.refs.append(str(d[key]))
        if tag == "rect" and self.cell_role and self.cell_role[-1] is not None:
            role = self.cell_role[-1]
            self.cells[role] = self.cells.get(role, 0) + 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag in VOID:
            return
        self.stack.append(tag)
        d = dict(attrs)
        if tag == "g" and d.get("class") == "cells":
            self.cell_role.append(d.get("data-role"))
        elif tag == "g":
            self.cell_role.append(self.cell_role[-1] if self.cell_role else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "g":
            self.cell_role.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert page.errors == []
    assert page.stack == []
    return page


def _skewed() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.asarray(rng.lognormal(0.0, 1.2, size=(58, 256)) * 1000)


@pytest.fixture(scope="module")
def r1() -> tuple[Any, Any, np.ndarray, dict[str, Any]]:
    model = cmx.compile_file(R1)
    g = cmx.build_graph(model)
    loads = _skewed()
    return model, g, loads, plan_deployment(model, g, PlanRequest(loads=loads))


@pytest.fixture(scope="module")
def r1_html(r1: tuple[Any, Any, np.ndarray, dict[str, Any]]) -> str:
    model, g, loads, plan = r1
    return report_html(model, g, ReportInputs(source=str(R1), plan=plan, loads=loads,
                                              loads_name="/some/dir/loads.json"))


@pytest.fixture(scope="module")
def cm_html() -> str:
    model = cmx.compile_file(CM384)
    return report_html(model, cmx.build_graph(model), ReportInputs(source=str(CM384)))


def _self_contained(html: str, page: Page) -> None:
    assert not [r for r in page.refs if not r.startswith("#")]
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert str(ROOT) not in html, "absolute path leaked"


def test_cloudmatrix384_report_sections_and_numbers(cm_html: str) -> None:
    page = _parse(cm_html)
    _self_contained(cm_html, page)
    text = " ".join(page.text)
    for section in ("summary", "diagrams", "bandwidth", "deployment", "pipeline",
                    "performance"):
        assert f'<section id="{section}">' in cm_html
    assert "75,264" in text  # UB bisection, GB/s
    assert "9,600" in text  # RDMA bisection
    assert "12,384" in text  # UB links
    assert "UBSwitchL1" in text and "Ascend910CDie" in text
    # diagrams: supernode, node and one per plane (d2d, ub, rdma, vpc); without Graphviz's
    # dot program the section says so (test_missing_dot_still_renders checks the wording)
    if shutil.which("dot"):
        assert cm_html.count('<svg class="diagram"') == 6
        for key in ("supernode", "node", "plane-ub", "plane-rdma", "plane-vpc", "plane-d2d"):
            assert f'id="diagram-{key}"' in cm_html
    else:
        assert '<svg class="diagram"' not in cm_html
    assert "declares no deployment" in text
    assert 'class="cells"' not in cm_html
    assert "serving-plan work" in text
    # representative paths: two dies of one node, first dies of two nodes
    assert "cm384.node[0].npu[0].die[1]" in text and "cm384.node[1].npu[0].die[0]" in text


def test_deployment_report_heatmaps_and_memory(
        r1: tuple[Any, Any, np.ndarray, dict[str, Any]], r1_html: str) -> None:
    page = _parse(r1_html)
    _self_contained(r1_html, page)
    _model, _g, _loads, plan = r1
    # decode: 288 routed dies (EP320 less 32 shared-expert dies); prefill: 32 dies x 9 slots
    assert page.cells == {"decode": 58 * 288, "prefill": 58 * 32}
    text = " ".join(page.text)
    for role in ("decode", "prefill"):
        assert f"Role {role}" in text
        mom = plan["roles"][role]["balance"]["max_over_mean"]
        assert f"{mom:.3f}" in text
        mem = plan["roles"][role]["memory"]
        assert f"{mem['kv_cache'] / 1e9:,.2f}" in text
        assert f"{mem['capacity'] / 1e9:,.2f}" in text
    assert "KV budget per die" in text
    assert "loads.json" in text and "/some/dir" not in r1_html
    assert r1_html.count("<polyline class=\"max-over-mean\"") == 2


def test_die_loads_match_the_plans_balance(
        r1: tuple[Any, Any, np.ndarray, dict[str, Any]]) -> None:
    _model, _g, loads, plan = r1
    for role in plan["roles"].values():
        _dies, per_die = die_loads(role["expert_placement"], loads)
        ratio = (per_die / per_die.mean(axis=1, keepdims=True)).max(axis=1)
        np.testing.assert_allclose(ratio, role["balance"]["max_over_mean_per_layer"],
                                   rtol=1e-5)


def test_report_is_deterministic(r1: tuple[Any, Any, np.ndarray, dict[str, Any]],
                                 r1_html: str) -> None:
    model, g, loads, plan = r1
    again = report_html(model, g, ReportInputs(source=str(R1), plan=plan, loads=loads,
                                                loads_name="/some/dir/loads.json"))
    assert again == r1_html


def test_missing_dot_still_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    model = cmx.compile_file(CM384)
    g = cmx.build_graph(model)
    monkeypatch.setenv("PATH", "")
    html = report_html(model, g, ReportInputs(source="cloudmatrix384.cmx"))
    page = _parse(html)
    assert "Graphviz 'dot' program is not installed" in " ".join(page.text)
    assert "<svg class=\"diagram\"" not in html
    assert "75,264" in html


def test_inline_svg_strips_prologue_and_prefixes_ids() -> None:
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "x" "http://w3/x.dtd">\n'
           '<!-- Generated by graphviz version 9 -->\n<svg width="10pt" height="5pt" '
           'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<g id="graph0"></g></svg>\n')
    out = inline_svg(svg, "d-x")
    assert out == '<svg class="diagram" width="10pt" height="5pt"><g id="d-x-graph0"></g></svg>'


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_writes_report_atomically(tmp_path: Path) -> None:
    loads = tmp_path / "loads.json"
    loads.write_text(json.dumps({"logical_count": _skewed().round(3).tolist()}))
    out = tmp_path / "report.html"
    proc = _cli("report", str(R1), "--expert-loads", str(loads), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loads.json", "report.html"]
    html = out.read_text(encoding="utf-8")
    page = _parse(html)
    _self_contained(html, page)
    assert page.cells == {"decode": 58 * 288, "prefill": 58 * 32}
    assert str(tmp_path) not in html


def test_cli_bad_loads_is_e021(tmp_path: Path) -> None:
    loads = tmp_path / "loads.json"
    loads.write_text(json.dumps({"logical_count": [[1.0, 2.0], [3.0, 4.0]]}))
    out = tmp_path / "report.html"
    proc = _cli("report", str(R1), "--expert-loads", str(loads), "-o", str(out))
    assert proc.returncode == 1
    assert "E021" in proc.stderr
    assert not out.exists()


def test_cli_report_from_a_plan_file(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert _cli("plan", str(R1), "-o", str(plan)).returncode == 0
    out = tmp_path / "r.html"
    proc = _cli("report", str(CM384), "--plan", str(plan), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text(encoding="utf-8")
    assert "plan.json" in html and re.search(r"Role decode", html)
    assert "equal loads" in html


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium (Debian: apt-get install chromium)")


def test_report_renders_in_headless_chromium(r1_html: str, tmp_path: Path) -> None:
    """The page opens offline in a real browser: a full-page screenshot is produced and is
    not blank (the browser runs with networking off, as the report must need none)."""
    page = tmp_path / "report.html"
    page.write_text(r1_html, encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,4000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=False)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # a blank page compresses to a few KB; the report's diagrams and tables do not
    assert len(data) > 100_000
