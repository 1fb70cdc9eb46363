"""``cmx report``: the HTML page is well formed, self-contained, deterministic, holds the
expected sections and numbers, and the CLI writes it atomically with the usual diagnostics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import find_chromium
from markupsafe import Markup

import supernode_dsl as cmx
from supernode_dsl.emit.report import (
    OP_COLOURS,
    ReportInputs,
    best_per_microbatches,
    die_loads,
    headline,
    inline_svg,
    layer_groups,
    nice_ticks,
    op_colour,
    report_html,
    representatives,
    timeline_lanes,
    timeline_svg,
    zoom_layers,
    zoom_window,
)
from supernode_dsl.emit.templates import environment, render
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment
from supernode_dsl.plan.document import role as doc_role
from supernode_dsl.plan.document.serving import CachePool, WorkloadSummary

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
def r1() -> tuple[Any, Any, np.ndarray, PlanDocument]:
    model = cmx.compile_file(R1)
    g = cmx.build_graph(model)
    loads = _skewed()
    return model, g, loads, plan_deployment(model, g, PlanRequest(loads=loads))


@pytest.fixture(scope="module")
def r1_html(r1: tuple[Any, Any, np.ndarray, PlanDocument]) -> str:
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
    # no deployment: sections 5 and 6 say so, no placeholder, no chart
    assert text.count("No deployment: there is no serving plan to show.") == 2
    assert "not built yet" not in text and 'class="placeholder"' not in cm_html
    assert 'class="chart timeline"' not in cm_html
    # representative paths: two dies of one node, first dies of two nodes
    assert "cm384.node[0].npu[0].die[1]" in text and "cm384.node[1].npu[0].die[0]" in text


def test_deployment_report_heatmaps_and_memory(
        r1: tuple[Any, Any, np.ndarray, PlanDocument], r1_html: str) -> None:
    page = _parse(r1_html)
    _self_contained(r1_html, page)
    _model, _g, _loads, plan = r1
    # decode: 288 routed dies (EP320 less 32 shared-expert dies); prefill: 32 dies x 9 slots
    assert page.cells == {"decode": 58 * 288, "prefill": 58 * 32}
    text = " ".join(page.text)
    for role in ("decode", "prefill"):
        assert f"Role {role}" in text
        assert f"{plan.roles[role].balance.max_over_mean:.3f}" in text
        mem = plan.roles[role].memory
        assert f"{mem.kv_cache / 1e9:,.2f}" in text
        assert f"{mem.capacity / 1e9:,.2f}" in text
    assert "KV budget per die" in text
    assert "loads.json" in text and "/some/dir" not in r1_html
    assert r1_html.count("<polyline class=\"max-over-mean\"") == 2


def test_die_loads_match_the_plans_balance(
        r1: tuple[Any, Any, np.ndarray, PlanDocument]) -> None:
    _model, _g, loads, plan = r1
    for role in plan.roles.values():
        _dies, per_die = die_loads(role.expert_placement, loads)
        ratio = (per_die / per_die.mean(axis=1, keepdims=True)).max(axis=1)
        np.testing.assert_allclose(ratio, role.balance.max_over_mean_per_layer, rtol=1e-5)


def test_report_is_deterministic(r1: tuple[Any, Any, np.ndarray, PlanDocument],
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
    # The report emitter gives the same bytes as `cmx report`.
    again = tmp_path / "emitted.html"
    proc = _cli("emit", "report", str(CM384), "--plan", str(plan), "-o", str(again))
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == out.read_bytes()


_EVIL = """plane ici "<script>alert('plane')</script> & co"
param label = "<script>alert(1)</script>"

accelerator Chip {
    hbm = 16 GB
}

node Pair {
    chip[2]: Chip
    link ici chip[i] <-> chip[(i + 1) % 2] { bw = 50 GB/s, latency = 1 us }
}

instance pair: Pair
"""


def test_user_text_is_escaped_in_the_report(tmp_path: Path) -> None:
    """A plane description and a string parameter with <script> in a .cmx file come out
    escaped (autoescape), and the page still has no script element."""
    path = tmp_path / "evil.cmx"
    path.write_text(_EVIL)
    model = cmx.compile_file(path)
    html = report_html(model, cmx.build_graph(model),
                       ReportInputs(source=str(path), diagrams=False))
    assert "<script" not in html
    assert "<td>&lt;script&gt;alert(&#39;plane&#39;)&lt;/script&gt; &amp; co</td>" in html
    assert '<td class="num">&lt;script&gt;alert(1)&lt;/script&gt;</td>' in html
    assert "&amp;lt;" not in html                 # nothing escaped twice
    _parse(html)


def test_only_html_templates_autoescape() -> None:
    env = environment()
    assert env.autoescape("report/report.html.j2") is True  # type: ignore[operator]
    for name in ("dot/base.dot.j2", "slurm/topology.conf.j2", "ns3/topology.txt.j2"):
        assert env.autoescape(name) is False  # type: ignore[operator]
    conf = render("slurm/topology.conf.j2", header=["a<b & 'c'"], switches=[])
    assert "# a<b & 'c'" in conf


def test_charts_are_markup_so_they_are_not_escaped(
        r1: tuple[Any, Any, np.ndarray, PlanDocument]) -> None:
    _model, _g, _loads, plan = r1
    lanes = timeline_lanes(_pipeline(plan, "decode").schedule)
    svg = timeline_svg("decode", lanes, 0.0, 10.0, "zoom")
    assert isinstance(svg, Markup)
    assert isinstance(inline_svg('<svg width="1pt" height="1pt"></svg>', "x"), Markup)


def test_report_renders_in_headless_chromium(r1_html: str, tmp_path: Path) -> None:
    """The page opens offline in a real browser: a full-page screenshot is produced and is
    not blank (the browser runs with networking off, as the report must need none)."""
    page = tmp_path / "report.html"
    page.write_text(r1_html, encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,4000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=False)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # a blank page compresses to a few KB; the report's diagrams and tables do not
    assert len(data) > 100_000


# ---- sections 5 and 6: pipeline timeline and performance estimate ----------------------

_SVG = re.compile(r'<svg class="chart (timeline|layer-bars)"[^>]*>.*?</svg>', re.S)


def _charts(html: str) -> list[ET.Element]:
    """The timeline and per-layer SVG charts of the page, parsed as XML (so well formed)."""
    return [ET.fromstring(m.group(0)) for m in _SVG.finditer(html)]


def _section(html: str, name: str) -> str:
    return html.split(f'<section id="{name}">')[1].split("</section>")[0]


def _pipeline(plan: PlanDocument, role: str) -> doc_role.Pipeline:
    pipeline = plan.roles[role].pipeline
    assert pipeline is not None
    return pipeline


def _estimate(plan: PlanDocument, role: str) -> doc_role.Estimate:
    estimate = plan.roles[role].estimate
    assert estimate is not None
    return estimate


def test_pipeline_section_draws_every_event(
        r1: tuple[Any, Any, np.ndarray, PlanDocument], r1_html: str) -> None:
    _model, _g, _loads, plan = r1
    section = _section(r1_html, "pipeline")
    assert "not built yet" not in section and "no serving estimate" not in section
    charts = {(c.get("data-role"), c.get("data-view")): c for c in _charts(section)}
    assert set(charts) == {(r, v) for r in ("decode", "prefill") for v in ("full", "zoom")}
    for role in ("decode", "prefill"):
        p = _pipeline(plan, role)
        events = [e for k in p.schedule for e in k.events]
        assert len(events) > 400
        full = charts[(role, "full")]
        groups = [g for g in full.iter("g") if g.get("class") == "events"]
        assert len(groups) == 1
        rects = groups[0].findall("rect")
        assert len(rects) == len(events)
        # one lane per (device kind, stream), labelled
        lanes = {(k.device_kind, e.stream) for k in p.schedule for e in k.events}
        labels = {t.text for g in full.iter("g") if g.get("class") == "lanes"
                  for t in g.iter("text")}
        assert labels == {f"{k} \u00b7 {s}" for k, s in lanes}
        # colours: one fixed colour per op name
        fills = {r.get("fill") for r in rects}
        assert fills == {op_colour(e.name) for e in events}
        # the zoom shows fewer ops, each wide enough to see, some labelled
        zoom = charts[(role, "zoom")]
        zrects = [r for g in zoom.iter("g") if g.get("class") == "events"
                  for r in g.findall("rect")]
        assert 0 < len(zrects) < len(events)
        assert any(t.text for g in zoom.iter("g") if g.get("class") == "labels"
                   for t in g.iter("text"))
        # the figures under the charts
        assert f"{p.step_us / 1e3:,.2f}"[:4] in section
        assert f"{p.speedup:.2f}\u00d7" in section or f"{p.speedup:.2f}&times;" in section
    assert section.count('class="best"') >= 2  # the chosen candidate of each role


def test_performance_section_headline_layers_kv_serving(
        r1: tuple[Any, Any, np.ndarray, PlanDocument], r1_html: str) -> None:
    _model, _g, _loads, plan = r1
    section = _section(r1_html, "performance")
    page = _parse(section)
    text = " ".join(page.text)
    assert "not built yet" not in text and "no serving estimate" not in text
    dec, pre = _estimate(plan, "decode"), _estimate(plan, "prefill")
    assert f"{dec.tpot_ms:,.2f}" in text
    assert f"{dec.tokens_per_s_per_npu:,.0f}" in text
    assert f"{dec.batch_per_npu:,}" in text
    assert f"{pre.tokens_per_npu:,}" in text  # 16,384
    assert f"{pre.tokens_per_s_per_npu:,.0f}" in text
    for role in ("decode", "prefill"):
        kv = plan.roles[role].kv
        assert kv is not None
        assert f"{kv.kv_capacity_bytes / 1e9:,.2f} GB" in text
        assert f"{kv.max_sequences_per_device:,}" in text
    # per-layer: bars for dense, MoE, MTP (decode) and head; one table row per group of
    # identical consecutive layers (dense layers 0-2 are alike)
    bars = [c for c in _charts(section) if c.get("class") == "chart layer-bars"]
    assert [b.get("data-role") for b in bars] == ["decode", "prefill"]
    labels = [label for role in ("decode", "prefill")
              for label, _ in representatives(_estimate(plan, role).per_layer)]
    assert all(label in text for label in labels)
    assert "MTP (layer 61)" in labels and any(x.startswith("dense (layer") for x in labels)
    tables = re.findall(r'<table class="layers">.*?</table>', section, re.S)
    for table, role in zip(tables, ("decode", "prefill"), strict=True):
        groups = layer_groups(_estimate(plan, role).per_layer)
        assert table.count("<tr>") == 1 + len(groups)
        assert all(f"{g['layers'][0]}\u2013{g['layers'][-1]}" in table
                   for g in groups if len(g["layers"]) > 1)
    # serving block: role split, KV transfer and the prefix-reuse table
    assert plan.serving is not None and plan.serving.roles is not None
    assert f"{plan.serving.roles.prefill_instances:,}" in text
    assert "KV transfer, prefill to decode" in text and "Cache pool" in text
    reuse = plan.serving.cache_pool.prefix_reuse_effect or ()
    assert section.count("<tr") >= len(reuse)
    for row in reuse:
        assert f"{row.tokens_per_s_per_npu:,.0f}" in text


def _old(plan: PlanDocument) -> PlanDocument:
    """The plan as schema 1.0 wrote it: no serving block, no estimate, pipeline or kv."""
    old = plan.to_json()
    old.pop("serving", None)
    old.pop("fingerprint", None)
    old["schema_version"] = "1.0"
    for role in old["roles"].values():
        for key in ("estimate", "pipeline", "kv"):
            role.pop(key, None)
    return PlanDocument.from_json(old, "old.json")


def test_old_plan_without_serving_blocks_renders_with_a_note(
        r1: tuple[Any, Any, np.ndarray, PlanDocument]) -> None:
    model, g, _loads, plan = r1
    html = report_html(model, g, ReportInputs(source=str(R1), plan=_old(plan),
                                              diagrams=False))
    page = _parse(html)
    _self_contained(html, page)
    text = " ".join(page.text)
    assert text.count("The plan has no serving estimate (plan schema 1.0") == 2
    assert "Role decode" in text  # section 4 is still drawn
    assert "<svg class=\"chart timeline\"" not in html
    assert "<svg class=\"chart layer-bars\"" not in html


def test_partial_plan_keeps_what_it_has(
        r1: tuple[Any, Any, np.ndarray, PlanDocument]) -> None:
    """A role without a pipeline and a serving block without its optional parts render."""
    model, g, _loads, plan = r1
    assert plan.serving is not None
    roles = {**plan.roles, "prefill": replace(plan.roles["prefill"], pipeline=None)}
    part = replace(plan, roles=roles,
                   serving=replace(plan.serving, roles=None, cache_pool=CachePool(servers=0),
                                   kv_transfer=None, pd_mapping=None))
    html = report_html(model, g, ReportInputs(source=str(R1), plan=part, diagrams=False))
    _parse(html)
    assert html.count('data-view="full"') == 2  # svg + g.events of decode only
    assert "Cache pool" in html and "Role split" not in html


def test_nice_ticks() -> None:
    assert nice_ticks(0, 57.8) == [0, 10, 20, 30, 40, 50]
    assert nice_ticks(0, 57.8, 20) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]
    assert nice_ticks(2.6, 5.3) == pytest.approx([3.0, 3.5, 4.0, 4.5, 5.0])
    assert nice_ticks(2.6, 5.3, 12) == pytest.approx([2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25,
                                                      4.5, 4.75, 5.0, 5.25])
    assert nice_ticks(0, 1151.5, 8) == [0, 200, 400, 600, 800, 1000]
    assert nice_ticks(3, 3) == [3]


def _layer(layer: int, kind: doc_role.LayerKind, span_us: float = 1.0,
           ops_us: dict[str, float] | None = None) -> doc_role.LayerEstimate:
    return doc_role.LayerEstimate(layer, kind, span_us, ops_us or {})


def test_layer_groups_and_representatives() -> None:
    moe = {"attention": 1.0, "experts": 1.0}
    rows = [_layer(0, "dense", 1.0, {"dense_ffn": 1.0}), _layer(1, "moe", 3.0, moe),
            *(_layer(i, "moe", 2.0, moe) for i in (2, 3, 4)),
            _layer(-1, "head", 5.0, {"lm_head": 5.0})]
    groups = layer_groups(rows)
    assert [g["layers"] for g in groups] == [[0], [1], [2, 3, 4], [-1]]
    reps = representatives(rows)
    assert [label for label, _ in reps] == ["dense (layer 0)", "MoE (layer 2)", "head"]


def test_op_colours_fixed_and_distinct() -> None:
    assert len(set(OP_COLOURS.values())) == len(OP_COLOURS)
    assert op_colour("attention") == OP_COLOURS["attention"]
    assert op_colour("some_new_op") == op_colour("some_new_op")
    assert re.fullmatch(r"#[0-9A-F]{6}", op_colour("some_new_op"))


_WORKLOAD = WorkloadSummary(prompt_len=4096, output_len=1024, tpot_slo_ms=50.0,
                            ttft_slo_ms=0.0, arrival_rate=0.0, mtp_accept=0.7,
                            perfect_balance=False, prefix_reuse=0.0, decode_batch_per_npu=0,
                            prefill_tokens_per_npu=16384)


def test_headline_and_best_candidates() -> None:
    est = doc_role.Estimate(batch_per_npu=96, step_ms=57.8324, tpot_ms=34.0191,
                            tokens_per_s_per_npu=2821.95, tokens_per_s_per_tflops=1.8763,
                            accepted_tokens_per_step=1.7, meets_tpot_slo=True,
                            assumptions=(), per_layer=())
    got = dict(headline(est, _WORKLOAD))
    assert got == {"batch per NPU": "96", "accepted tokens per step": "1.7",
                   "step (ms)": "57.83", "TPOT (ms)": "34.02", "tokens/s per NPU": "2,822",
                   "tokens/s per TFLOPS": "1.876", "TPOT SLO met": "yes (\u2264 50 ms)",
                   "calibration": "none: every term is a declared fact"}
    prefill = doc_role.Estimate(tokens_per_npu=16384, ttft_ms=1151.51, step_ms=1151.51,
                                tokens_per_s_per_npu=14228.2, tokens_per_s_per_tflops=9.46,
                                meets_ttft_slo=True, assumptions=(), per_layer=())
    pre = dict(headline(prefill, _WORKLOAD))
    assert pre == {"tokens per NPU": "16,384", "step (ms)": "1,151.5", "TTFT (ms)": "1,151.5",
                   "tokens/s per NPU": "14,228", "tokens/s per TFLOPS": "9.46",
                   "TTFT SLO met": "yes (no SLO set)",
                   "calibration": "none: every term is a declared fact"}
    fit = doc_role.CalibrationUse(name="Fit", band=0.027, fitted={"overhead.gemm": 1.2e-05})
    calibrated = dict(headline(replace(est, calibration=fit), _WORKLOAD))["calibration"]
    assert calibrated.startswith("Fit, band \u00b12.7%") and "overhead.gemm = 1.2e-05" in calibrated
    no_slo = dict(headline(replace(est, meets_tpot_slo=None), None))
    assert no_slo.keys() == got.keys() - {"TPOT SLO met"}
    rows = [{"microbatches": 1, "step_us": 9.0, "best": False},
            {"microbatches": 2, "step_us": 8.0, "best": False},
            {"microbatches": 2, "step_us": 7.0, "best": True},
            {"microbatches": 2, "step_us": 7.5, "best": False}]
    assert [r["step_us"] for r in best_per_microbatches(rows)] == [9.0, 7.0]


def test_zoom_covers_the_first_moe_layers() -> None:
    def ev(layer: int, start: float, mb: int = 0) -> doc_role.ScheduleEvent:
        return doc_role.ScheduleEvent("x", "s", mb, layer, start, 1.0)

    def kind(events: tuple[doc_role.ScheduleEvent, ...]) -> doc_role.DeviceSchedule:
        return doc_role.DeviceSchedule(device_kind="d", step_us=10.0, events=events)

    schedule = [kind(tuple(ev(layer, float(layer)) for layer in range(10)))]
    per_layer = [_layer(i, "dense" if i < 3 else "moe") for i in range(10)]
    assert zoom_layers(schedule, per_layer) == [3, 4, 5]
    assert zoom_window(schedule, [3, 4, 5]) == (3.0, 6.0)
    # too many events in three layers: fewer layers
    crowded = [kind(tuple(ev(layer, float(layer), mb) for layer in range(10)
                          for mb in range(40)))]
    assert zoom_layers(crowded, per_layer) == [3]
    assert zoom_window(schedule, [42]) == (0.0, 0.0)
