"""``cmx report``: one self-contained HTML page about a compiled topology and its deployment.

Entry point: :func:`report_html`.  The page (template ``codegen/report/report.html.j2``) has
six sections:

1. summary: root instance, instance counts by category and type, global parameters;
2. topology diagrams: the Graphviz supernode view, the view of the first node and one view
   per plane, inlined as SVG (when the ``dot`` program is missing the section says so and
   everything else still renders);
3. bandwidth: links and bisection bandwidth per plane, and the lowest-latency path between
   representative endpoints (two endpoints of one node, the first endpoints of two nodes);
4. deployment, when a plan is given: per role the expert-load heatmap (MoE layers x routed
   dies, die load / mean), max/mean per MoE layer as a line chart, and the memory budget of a
   die as a stacked bar against its capacity;
5. pipeline timeline (plan schema 1.1): per role a Gantt chart of one step, one lane per
   (device kind, stream), one rect per scheduled op coloured by op name, the whole step and
   a zoom on the first three MoE layers, with the microbatch count, core split, speed-up
   over no overlap and the candidates the planner tried;
6. performance estimate (plan schema 1.1): per role the headline figures (TPOT or TTFT,
   tokens/s per NPU and per TFLOPS, ...), op times of representative layers as stacked bars,
   all layers as a table (identical consecutive layers as one row) and the KV block; then
   the deployment's serving block (workload, role split, KV transfer, P/D mapping, cache
   pool and the effect of prefix reuse).

Without a deployment, or with a plan from before the serving planner (schema 1.0), sections
5 and 6 hold a short note instead.

The page works offline: inline CSS and SVG, no script, no remote reference (the SVG
namespace URLs Graphviz writes are removed; HTML5 does not need them).  Output is
deterministic: the same inputs give the same bytes (no timestamps, no absolute paths: files
are named by their base name only).
"""

from __future__ import annotations

import itertools
import math
import re
import shutil
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import PurePath
from typing import Any

import networkx as nx
import numpy as np

from supernode_dsl import schema as S
from supernode_dsl.diagnostics import CmxError, Diagnostic
from supernode_dsl.elaborate import Model
from supernode_dsl.emit.graphviz import DOT_MISSING, dot_text, format_bandwidth, run_dot
from supernode_dsl.emit.templates import render
from supernode_dsl.graph import plane_summary, shortest_path
from supernode_dsl.graph.analysis import all_plane_arrays, plane_endpoints
from supernode_dsl.plan.document import PlanDocument

__all__ = [
    "MEMORY_TERMS",
    "OP_COLOURS",
    "ReportInputs",
    "TimelineLane",
    "best_per_microbatches",
    "check_loads",
    "declared_deployments",
    "die_loads",
    "headline",
    "inline_svg",
    "layer_bars_svg",
    "layer_groups",
    "nice_ticks",
    "op_colour",
    "report_context",
    "report_html",
    "representatives",
    "timeline_lanes",
    "timeline_svg",
    "zoom_layers",
    "zoom_window",
]

#: The memory terms of the stacked bar: (label, plan keys summed, colour).
MEMORY_TERMS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("expert weights", ("expert_weights",), "#0072B2"),
    ("other weights", ("other_weights",), "#56B4E9"),
    ("KV cache", ("kv_cache",), "#D55E00"),
    ("dispatch + combine buffers", ("dispatch_buffer", "combine_buffer"), "#E69F00"),
    ("reserve", ("reserve",), "#999999"),
)


@dataclass(frozen=True)
class ReportInputs:
    """What a report is made of besides the compiled model and graph.

    ``source`` and ``plan_name``/``loads_name`` are file names shown on the page (reduced to
    their base name); ``plan`` is a plan of this topology (or None: no deployment
    section); ``loads`` the [MoE layers x routed experts] loads the heatmap is drawn with
    (None: equal loads); ``diagrams`` False leaves the Graphviz drawings out.
    """

    source: str
    plan: PlanDocument | None = None
    loads: np.ndarray | None = None
    plan_name: str | None = None
    loads_name: str | None = None
    diagrams: bool = True


def declared_deployments(model: Model) -> list[str]:
    """The names of the deployments ``model`` declares, in declaration order."""
    return [s.name for s in model.specs if s.category == "deployment"]


def _base(name: str | None) -> str | None:
    return None if name is None else PurePath(name).name


# ---- section 1: summary ---------------------------------------------------------------

def _param_text(v: object) -> str:
    value = getattr(v, "value", v)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _summary(model: Model, g: nx.Graph) -> dict[str, Any]:
    return {
        "name": model.root_name,
        "root_type": model.root.type_name,
        "instances": f"{model.num_instances:,}",
        "links": f"{g.number_of_edges():,}",
        "by_category": [(k, f"{v:,}") for k, v in model.count_by_category().items()],
        "by_type": [(k, f"{v:,}") for k, v in model.count_by_type().items()],
        "params": [(k, _param_text(v)) for k, v in model.params],
        "schema_version": S.SCHEMA_VERSION,
    }


# ---- section 2: diagrams --------------------------------------------------------------

_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_ID = re.compile(r'\bid="([^"]*)"')
_SIZE = re.compile(r'\A<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def inline_svg(svg: str, prefix: str) -> str:
    """Graphviz SVG made fit for inlining in HTML: no XML prologue, DOCTYPE or comments (they
    name the Graphviz version), no namespace declarations (the only URLs), every ``id``
    prefixed with ``prefix`` so several drawings on one page do not clash."""
    out = _SVG_PROLOGUE.sub("", svg, count=1)
    out = _COMMENT.sub("", out)
    out = _XMLNS.sub("", out)
    out = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', out)
    return _SIZE.sub(lambda m: f'<svg class="diagram" width="{m.group(1)}pt" '
                               f'height="{m.group(2)}pt"', out, count=1).strip()


def _diagrams(g: nx.Graph, planes: Sequence[str], enabled: bool) -> dict[str, Any]:
    if not enabled:
        return {"missing": "Diagrams were not requested.", "items": []}
    if shutil.which("dot") is None:
        return {"missing": f"No diagrams: {DOT_MISSING}.", "items": []}
    views: list[tuple[str, str, str, dict[str, str | None]]] = [
        ("supernode", "Supernode view", "supernode", {}),
        ("node", "Node view (first node)", "node", {"node": "0"}),
    ]
    views += [(f"plane-{p}", f"Plane {p}", "plane", {"plane": p}) for p in planes]
    items = []
    for key, title, view, kw in views:
        try:
            dot = dot_text(g, view, node=kw.get("node") or "0", plane=kw.get("plane"))
            svg, error = inline_svg(run_dot(dot, "svg").decode("utf-8"), f"d-{key}"), None
        except CmxError as err:
            svg, error = None, "; ".join(d.message for d in err.diagnostics)
        items.append({"key": key, "title": title, "svg": svg, "error": error})
    return {"missing": None, "items": items}


# ---- section 3: bandwidth -------------------------------------------------------------

def _node_of(g: nx.Graph, path: str) -> str | None:
    """The nearest enclosing instance of category ``node`` (or None)."""
    p: str | None = path
    while p:
        if g.nodes[p].get(S.NODE_CATEGORY) == "node":
            return p
        parent = str(g.nodes[p].get(S.NODE_PARENT, ""))
        p = parent if parent in g else None
    return None


def _pairs(g: nx.Graph, ends: Sequence[str]) -> list[tuple[str, str, str]]:
    """Representative endpoint pairs: the first two endpoints of one node, the first
    endpoints of the first two nodes (falling back to the first two endpoints)."""
    groups: dict[str, list[str]] = {}
    for e in ends:
        node = _node_of(g, e)
        if node is not None:
            groups.setdefault(node, []).append(e)
    out: list[tuple[str, str, str]] = []
    same = next((v for v in groups.values() if len(v) >= 2), None)
    if same is not None:
        out.append(("within one node", same[0], same[1]))
    firsts = [v[0] for v in groups.values()]
    if len(firsts) >= 2:
        out.append(("between two nodes", firsts[0], firsts[1]))
    if not out and len(ends) >= 2:
        out.append(("first two endpoints", ends[0], ends[1]))
    return out


def _bandwidth(g: nx.Graph) -> dict[str, Any]:
    summary = plane_summary(g)
    descriptions = g.graph.get(S.GRAPH_PLANES, {})
    planes = [{"name": p, "description": str(descriptions.get(p, "")),
               "links": f"{v['links']:,}",
               "bisection": f"{v['bisection_bandwidth'] / 1e9:,.1f}",
               "bisection_text": format_bandwidth(float(v["bisection_bandwidth"]))}
              for p, v in summary.items()]
    paths = []
    for plane, arrays in all_plane_arrays(g).items():
        for what, a, b in _pairs(g, plane_endpoints(g, arrays)):
            res = shortest_path(g, plane, a, b)
            if res is None:
                continue
            paths.append({"plane": plane, "what": what, "source": a, "target": b,
                          "hops": len(res.hops) - 1, "route": " \u2192 ".join(res.hops),
                          "latency_us": f"{res.latency * 1e6:,.3f}",
                          "path_bw": f"{res.bottleneck_bandwidth / 1e9:,.1f}",
                          "flow_bw": f"{res.max_flow_bandwidth / 1e9:,.1f}"})
    return {"planes": planes, "paths": paths}


# ---- section 4: deployment ------------------------------------------------------------

def die_loads(placement: Mapping[str, Any], loads: np.ndarray
              ) -> tuple[list[str], np.ndarray]:
    """The routed dies of one role instance (in EP rank order: first slot first) and their
    load per MoE layer, [layers x dies]: each slot carries its expert's load divided by the
    expert's replica count (``logcnt``)."""
    slot_device: list[str] = list(placement["slot_device"])
    dies = list(dict.fromkeys(slot_device))
    index = {d: i for i, d in enumerate(dies)}
    die_of_slot = np.fromiter((index[d] for d in slot_device), dtype=np.int64,
                              count=len(slot_device))
    phy2log = np.asarray(placement["phy2log"], dtype=np.int64)
    logcnt = np.asarray(placement["logcnt"], dtype=np.float64)
    rows = np.arange(phy2log.shape[0])[:, None]
    per_slot = loads[rows, phy2log] / logcnt[rows, phy2log]
    out = np.zeros((phy2log.shape[0], len(dies)))
    for layer in range(phy2log.shape[0]):
        out[layer] = np.bincount(die_of_slot, weights=per_slot[layer], minlength=len(dies))
    return dies, out


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


_LOW, _MID, _HIGH = (33, 102, 172), (247, 247, 247), (178, 24, 43)


def _colour(v: float, hi: float) -> str:
    """Diverging scale: 0 blue, 1 (the mean) near-white, ``hi`` and above red."""
    if v <= 1.0:
        return _mix(_LOW, _MID, max(v, 0.0))
    return _mix(_MID, _HIGH, min((v - 1.0) / (hi - 1.0), 1.0))


def _fmt(x: float) -> str:
    """A coordinate with at most one decimal, no trailing ``.0``."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _heatmap_svg(role: str, layers: Sequence[int], ratio: np.ndarray) -> str:
    """An SVG grid: one row per MoE layer, one ``rect`` per die inside ``g.cells``."""
    n_layers, n_dies = ratio.shape
    cw = max(3, min(24, 864 // max(n_dies, 1)))
    ch = 8
    left, top = 56, 12
    width, height = cw * n_dies, ch * n_layers
    hi = max(2.0, math.ceil(float(ratio.max()) * 2) / 2) if ratio.size else 2.0
    parts = [f'<svg class="chart" role="img" width="{left + width + 110}" '
             f'height="{top + height + 44}" data-role="{escape(role)}">',
             f'<g class="cells" data-role="{escape(role)}" '
             f'transform="translate({left},{top})">']
    for i in range(n_layers):
        parts.append(f'<g transform="translate(0,{i * ch})"><title>MoE layer {layers[i]}: '
                     f'max/mean {ratio[i].max():.3f}</title>')
        parts.extend(f'<rect x="{j * cw}" width="{cw}" height="{ch}" '
                     f'fill="{_colour(float(ratio[i, j]), hi)}"/>' for j in range(n_dies))
        parts.append("</g>")
    parts.append("</g>")
    # axes: layer labels every 5 rows, die labels at about 8 positions
    parts.append(f'<g class="axis" font-size="10" transform="translate({left},{top})">')
    for i in range(0, n_layers, 5):
        parts.append(f'<text x="-4" y="{i * ch + ch - 1}" text-anchor="end">{layers[i]}</text>')
    step = max(1, n_dies // 8)
    for j in range(0, n_dies, step):
        parts.append(f'<text x="{_fmt(j * cw + cw / 2)}" y="{height + 12}" '
                     f'text-anchor="middle">{j}</text>')
    parts.append(f'<text x="{width // 2}" y="{height + 28}" text-anchor="middle">'
                 f'routed die (EP rank order), {n_dies} dies</text>')
    parts.append(f'<text transform="translate(-40,{height // 2}) rotate(-90)" '
                 'text-anchor="middle">MoE layer</text></g>')
    # colour scale
    x0, steps, sh = left + width + 16, 20, max(height // 20, 4)
    parts.append(f'<g class="legend" font-size="10" transform="translate({x0},{top})">')
    for k in range(steps):
        v = hi * (steps - 1 - k) / (steps - 1)
        parts.append(f'<rect x="0" y="{k * sh}" width="14" height="{sh}" '
                     f'fill="{_colour(v, hi)}"/>')
    for v in (hi, 1.0, 0.0):
        y = (steps - 1 - v / hi * (steps - 1)) * sh + sh / 2 + 3
        parts.append(f'<text x="18" y="{_fmt(y)}">{v:g}\u00d7 mean</text>')
    parts.append("</g></svg>")
    return "".join(parts)


def _line_svg(layers: Sequence[int], values: Sequence[float], bound: float | None) -> str:
    """max/mean per MoE layer as a polyline, with the mean (1) and the lower bound dashed."""
    w, h, left, top, bottom = 640, 200, 48, 10, 34
    pw, ph = w - left - 10, h - top - bottom
    hi = max(1.5, math.ceil(max(values, default=1.0) * 4) / 4)
    lo = min(1.0, math.floor(min(values, default=1.0) * 4) / 4)
    n = len(values)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph * (hi - v) / (hi - lo)

    parts = [f'<svg class="chart" role="img" width="{w}" height="{h}">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             'stroke="#bbb"/>', '<g class="axis" font-size="10">']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{_fmt(y(v))}" y2="{_fmt(y(v))}" '
                     'stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{_fmt(y(v) + 3)}" text-anchor="end">'
                     f'{v:.2f}</text>')
    for i in range(0, n, 5):
        parts.append(f'<text x="{_fmt(x(i))}" y="{top + ph + 12}" text-anchor="middle">'
                     f'{layers[i]}</text>')
    parts.append(f'<text x="{left + pw // 2}" y="{h - 4}" text-anchor="middle">MoE layer</text>'
                 "</g>")
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{_fmt(y(1.0))}" y2="{_fmt(y(1.0))}" '
                 'stroke="#555" stroke-dasharray="2,3"/>')
    if bound is not None and lo <= bound <= hi:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{_fmt(y(bound))}" '
                     f'y2="{_fmt(y(bound))}" stroke="#009E73" stroke-dasharray="6,3">'
                     f'<title>lower bound {bound:.3f}</title></line>')
    points = " ".join(f"{_fmt(x(i))},{_fmt(y(v))}" for i, v in enumerate(values))
    parts.append(f'<polyline class="max-over-mean" points="{points}" fill="none" '
                 'stroke="#D55E00" stroke-width="1.5"/></svg>')
    return "".join(parts)


def _gb(b: float) -> str:
    return f"{b / 1e9:,.2f}"


def _memory(memory: Mapping[str, Any]) -> dict[str, Any]:
    """The stacked bar (SVG) and table rows of one role's per-die memory budget."""
    cap = float(memory["capacity"])
    total = float(memory["total"])
    scale_max = max(cap, total)
    w, bar_h, left = 640, 26, 0
    terms = [(label, sum(float(memory[k]) for k in keys), colour)
             for label, keys, colour in MEMORY_TERMS]
    parts = [f'<svg class="chart" role="img" width="{w + 20}" height="{bar_h + 26}">']
    xpos = 0.0
    for label, value, colour in terms:
        seg = w * value / scale_max if scale_max > 0 else 0.0
        parts.append(f'<rect x="{_fmt(left + xpos)}" y="0" width="{_fmt(seg)}" '
                     f'height="{bar_h}" fill="{colour}"><title>{escape(label)}: {_gb(value)} GB'
                     "</title></rect>")
        xpos += seg
    cap_x = w * cap / scale_max if scale_max > 0 else 0.0
    parts.append(f'<rect x="{left}" y="0" width="{_fmt(cap_x)}" height="{bar_h}" fill="none" '
                 'stroke="#222" stroke-width="1.5"/>'
                 f'<text x="{_fmt(cap_x)}" y="{bar_h + 14}" font-size="10" text-anchor="end">'
                 f'capacity {_gb(cap)} GB</text></svg>')
    rows = [(label, colour, _gb(value), f"{100 * value / cap:.1f}" if cap else "")
            for label, value, colour in terms]
    return {"svg": "".join(parts), "rows": rows, "capacity": _gb(cap), "total": _gb(total),
            "free": _gb(float(memory["free"])),
            "used_pct": f"{100 * total / cap:.1f}" if cap else ""}


def _roles(plan: Mapping[str, Any], loads: np.ndarray | None) -> list[dict[str, Any]]:
    out = []
    for name, role in plan["roles"].items():
        placement = role["expert_placement"]
        layers = list(placement.get("moe_layers") or range(len(placement["phy2log"])))
        shape = (len(placement["phy2log"]), int(placement["num_logical"]))
        role_loads = np.ones(shape) if loads is None else loads
        dies, per_die = die_loads(placement, role_loads)
        mean = per_die.mean(axis=1, keepdims=True)
        ratio = per_die / np.where(mean > 0, mean, 1.0)
        mom = [float(v) for v in ratio.max(axis=1)]
        balance = role.get("balance", {})
        bound = balance.get("lower_bound_max_over_mean")
        out.append({
            "name": name,
            "instances": role["instances"], "ep": role["ep"],
            "npus_per_instance": role["npus_per_instance"],
            "num_logical": placement["num_logical"], "num_physical": placement["num_physical"],
            "slots_per_device": placement["slots_per_device"],
            "routed_dies": len(dies), "shared_dies": len(placement.get("shared_devices", [])),
            "layers": len(layers),
            "max_over_mean": f"{max(mom, default=1.0):.3f}",
            "mean_max_over_mean": f"{float(np.mean(mom)) if mom else 1.0:.3f}",
            "lower_bound": f"{float(bound):.3f}" if bound is not None else None,
            "heatmap": _heatmap_svg(name, layers, ratio),
            "line": _line_svg(layers, mom, float(bound) if bound is not None else None),
            "memory": _memory(role["memory"]),
        })
    return out


def _deployment(plan: Mapping[str, Any] | None, inputs: ReportInputs) -> dict[str, Any] | None:
    if plan is None:
        return None
    model = plan.get("model", {})
    source = plan.get("source", {})
    return {
        "name": str(source.get("deployment", "")),
        "model": str(model.get("name", "")),
        "routed_experts": model.get("routed_experts", ""),
        "top_k": model.get("top_k", ""),
        "plan_name": _base(inputs.plan_name),
        "loads_name": _base(inputs.loads_name),
        "roles": _roles(plan, inputs.loads),
    }


def check_loads(plan: PlanDocument, loads: np.ndarray) -> None:
    """E021 unless ``loads`` has the shape of every role's placement [layers x logical]."""
    for name, role in plan.roles.items():
        p = role.expert_placement
        shape = (len(p.phy2log), p.num_logical)
        if loads.shape != shape:
            raise CmxError([Diagnostic(
                "E021", f"expert loads have shape {list(loads.shape)}; the plan's {name} "
                        f"placement needs {list(shape)} (MoE layers x routed experts)")])


# ---- number formatting (sections 5 and 6) ---------------------------------------------

def _num(x: float, decimals: int = 0) -> str:
    """``x`` with thousands separators and ``decimals`` decimals."""
    return f"{x:,.{decimals}f}"


def _auto(x: float) -> str:
    """A number for people: integers as such, otherwise fewer decimals the larger it is
    (1,235 / 123.5 / 12.35 / 1.235 / 1.7 / 0.0123)."""
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    a = abs(x)
    if a >= 1000:
        return _num(x, 0)
    if a >= 100:
        return _num(x, 1)
    if a >= 10:
        return _num(x, 2)
    if a >= 0.1:
        return _num(x, 3).rstrip("0").rstrip(".")
    return f"{x:.3g}"


def _msv(ms: float) -> str:
    """Milliseconds: one decimal from 1,000 ms, two from 10 ms, three below."""
    return _num(ms, 1) if abs(ms) >= 1000 else _num(ms, 2) if abs(ms) >= 10 else _num(ms, 3)


def _ms(us: float) -> str:
    """Microseconds shown as milliseconds (:func:`_msv`)."""
    return _msv(us / 1e3)


def _yes(v: object) -> str:
    """"yes" or "no"."""
    return "yes" if v else "no"


# ---- section 5: pipeline timeline -----------------------------------------------------

#: Fixed colours of the ops the planner emits (Okabe-Ito and Tol palettes); other op names
#: get a colour of :data:`_FALLBACK` chosen by a CRC of the name, so a name always gets the
#: same colour, on every run and in every chart.
OP_COLOURS: dict[str, str] = {
    "mla_prolog": "#56B4E9", "attention": "#0072B2", "o_proj": "#CC79A7",
    "dense_ffn": "#44AA99", "gate": "#999933", "dispatch": "#E69F00", "experts": "#009E73",
    "combine": "#D55E00", "mtp_proj": "#882255", "lm_head": "#332288",
    "all_gather": "#AA4499", "all_to_all": "#DDCC77",
}
_FALLBACK = ("#88CCEE", "#661100", "#6699CC", "#888888", "#AA4466", "#117733", "#44BB99")


def op_colour(name: str) -> str:
    """The colour of op ``name`` in every chart of the page (deterministic)."""
    return OP_COLOURS.get(name) or _FALLBACK[zlib.crc32(name.encode()) % len(_FALLBACK)]


def _ink(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (``#rrggbb``)."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def _legend(names: Sequence[str]) -> list[tuple[str, str]]:
    """(op, colour) for the legend, in the order given."""
    return [(n, op_colour(n)) for n in names]


def nice_ticks(lo: float, hi: float, target: int = 10) -> list[float]:
    """Round tick positions (1, 2, 2.5 or 5 x 10^k apart) covering [lo, hi], about
    ``target`` of them; [lo] when the range is empty."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [first + i * step for i in range(count)]


def _tick_text(v: float, step: float) -> str:
    """A tick label with as many decimals as the tick step needs."""
    decimals = next((d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * step), 6)
    return _num(v, decimals)


@dataclass(frozen=True)
class TimelineLane:
    """One row of a Gantt chart: the events of one stream of one device kind."""

    device_kind: str
    stream: str
    events: tuple[Mapping[str, Any], ...]
    step_us: float


def timeline_lanes(schedule: Sequence[Mapping[str, Any]]) -> list[TimelineLane]:
    """One lane per (device kind, stream): device kinds in plan order, streams in order of
    first appearance; every event of the schedule is in exactly one lane."""
    lanes: list[TimelineLane] = []
    for kind in schedule:
        streams: dict[str, list[Mapping[str, Any]]] = {}
        for e in kind["events"]:
            streams.setdefault(str(e["stream"]), []).append(e)
        lanes += [TimelineLane(str(kind["device_kind"]), s, tuple(evs), float(kind["step_us"]))
                  for s, evs in streams.items()]
    return lanes


@dataclass(frozen=True)
class _Frame:
    """What a Gantt chart draws: the time window (µs), whether it is a zoomed view (clipped,
    outlined, labelled), whether labels name the microbatch, and the plot geometry (px)."""

    t0: float
    t1: float
    zoom: bool = False
    show_mb: bool = False
    left: int = 210
    width: int = 1060
    lane_h: int = 20
    gap: int = 8
    top: int = 6

    def x(self, t_us: float) -> float:
        """The x coordinate of time ``t_us``."""
        return self.left + self.width * (t_us - self.t0) / (self.t1 - self.t0)


def _lane_rows(lanes: Sequence[TimelineLane], f: _Frame) -> list[int]:
    """The y of every lane: lanes of one device kind touch, kinds are ``f.gap`` apart."""
    ys, y = [], f.top
    for i, lane in enumerate(lanes):
        if i and lane.device_kind != lanes[i - 1].device_kind:
            y += f.gap
        ys.append(y)
        y += f.lane_h
    return ys


def _layer_name(layer: int) -> str:
    """"layer 3", or "head" for the LM head (layer -1)."""
    return "head" if layer < 0 else f"layer {layer}"


def _event_rect(e: Mapping[str, Any], y: int, f: _Frame) -> tuple[str, str]:
    """(rect, label) of one event clipped to the frame; the label is empty unless the
    rect is wide enough for its op name (zoomed views only)."""
    start, end = float(e["start_us"]), float(e["start_us"]) + float(e["dur_us"])
    x0, x1 = f.x(max(start, f.t0)), f.x(min(end, f.t1))
    name = str(e["name"])
    fill = op_colour(name)
    stroke = ' stroke="#fff" stroke-width="0.6"' if f.zoom and x1 - x0 > 4 else ""
    tip = (f"{name}, microbatch {e['microbatch']}, {_layer_name(int(e['layer']))}: "
           f"{_ms(start)}\u2013{_ms(end)} ms ({_num(float(e['dur_us']), 1)} \u00b5s)")
    rect = (f'<rect x="{_fmt(x0)}" y="{y + 2}" width="{_fmt(max(x1 - x0, 0.4))}" '
            f'height="{f.lane_h - 4}" fill="{fill}"{stroke}><title>{escape(tip)}</title>'
            "</rect>")
    label = ""
    text = f"{name} {e['microbatch']}" if f.show_mb else name
    if f.zoom and x1 - x0 >= 6.2 * len(text) + 4:
        label = (f'<text x="{_fmt((x0 + x1) / 2)}" y="{y + f.lane_h - 6}" '
                 f'text-anchor="middle" fill="{_ink(fill)}">{escape(text)}</text>')
    return rect, label


def _visible(e: Mapping[str, Any], f: _Frame) -> bool:
    """Whether event ``e`` overlaps the frame's time window."""
    start = float(e["start_us"])
    return start < f.t1 and start + float(e["dur_us"]) > f.t0


def _axis(f: _Frame, y: int) -> list[str]:
    """Grid lines, tick labels (ms) and the axis title under a plot ending at ``y``."""
    ticks = nice_ticks(f.t0 / 1e3, f.t1 / 1e3)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = ['<g class="axis" font-size="10">']
    for t in ticks:
        x = _fmt(f.x(t * 1e3))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{f.top}" y2="{y + 3}" stroke="#ccc" '
                     f'stroke-width="0.5"/><text x="{x}" y="{y + 14}" text-anchor="middle">'
                     f"{_tick_text(t, step)}</text>")
    parts.append(f'<text x="{f.left + f.width // 2}" y="{y + 30}" text-anchor="middle">'
                 "time from the start of the step (ms)</text></g>")
    return parts


def _lane_frames(lanes: Sequence[TimelineLane], ys: Sequence[int], f: _Frame) -> list[str]:
    """Lane backgrounds, lane labels and (full view) each device kind's step end."""
    parts = ['<g class="lanes" font-size="11">']
    for i, (lane, y) in enumerate(zip(lanes, ys, strict=True)):
        parts.append(f'<rect x="{f.left}" y="{y}" width="{f.width}" height="{f.lane_h}" '
                     f'fill="{"#f4f4f4" if i % 2 else "#fafafa"}"/>'
                     f'<text x="{f.left - 6}" y="{y + f.lane_h - 6}" text-anchor="end">'
                     f"{escape(lane.device_kind)} \u00b7 {escape(lane.stream)}</text>")
        if not f.zoom and f.t0 <= lane.step_us <= f.t1:
            x = _fmt(f.x(lane.step_us))
            parts.append(f'<line x1="{x}" x2="{x}" y1="{y}" y2="{y + f.lane_h}" '
                         'stroke="#222" stroke-width="1.2" stroke-dasharray="3,2"/>')
    parts.append("</g>")
    return parts


def timeline_svg(role: str, lanes: Sequence[TimelineLane], t0: float, t1: float,
                 view: str, microbatches: int = 1) -> str:
    """A Gantt chart of ``lanes`` between ``t0`` and ``t1`` (µs).  ``view`` "full" draws one
    ``rect`` per event inside ``g.events`` (so the rects there are the schedule's events);
    any other view clips to the window, outlines each event and labels the wide ones (with
    the microbatch when there are several)."""
    zoom = view != "full"
    f = _Frame(t0, t1 if t1 > t0 else t0 + 1.0, zoom=zoom, show_mb=microbatches > 1)
    ys = _lane_rows(lanes, f)
    bottom = (ys[-1] + f.lane_h) if ys else f.top
    parts = [f'<svg class="chart timeline" role="img" width="{f.left + f.width + 20}" '
             f'height="{bottom + 40}" data-role="{escape(role)}" data-view="{escape(view)}">']
    parts += _lane_frames(lanes, ys, f)
    parts += _axis(f, bottom)
    rects, labels = [], []
    for lane, y in zip(lanes, ys, strict=True):
        for e in lane.events:
            if not zoom or _visible(e, f):
                rect, label = _event_rect(e, y, f)
                rects.append(rect)
                labels.append(label)
    parts.append(f'<g class="events" data-role="{escape(role)}" data-view="{escape(view)}">')
    parts += rects
    parts.append('</g><g class="labels" font-size="10">')
    parts += [lbl for lbl in labels if lbl]
    parts.append("</g></svg>")
    return "".join(parts)


#: The zoomed timeline shows at most this many layers, and fewer when they hold more than
#: :data:`ZOOM_EVENTS` events on one device kind (so that single ops stay readable).
ZOOM_LAYERS, ZOOM_EVENTS = 3, 64


def zoom_layers(schedule: Sequence[Mapping[str, Any]],
                per_layer: Sequence[Mapping[str, Any]]) -> list[int]:
    """The layers of the zoomed view: the first MoE layers (per the estimate; without one,
    the first layers the schedule runs), :data:`ZOOM_LAYERS` of them or fewer, down to one,
    so that no device kind has more than :data:`ZOOM_EVENTS` events in them."""
    order = [int(r["layer"]) for r in per_layer if r.get("kind") == "moe"] or \
        list(dict.fromkeys(int(e["layer"]) for k in schedule for e in k["events"]))
    for count in range(ZOOM_LAYERS, 1, -1):
        wanted = set(order[:count])
        most = max((sum(1 for e in k["events"] if int(e["layer"]) in wanted)
                    for k in schedule), default=0)
        if most <= ZOOM_EVENTS:
            return order[:count]
    return order[:1]


def zoom_window(schedule: Sequence[Mapping[str, Any]], layers: Sequence[int]
                ) -> tuple[float, float]:
    """From the first start to the last end (µs) of the events of ``layers`` on any device
    kind; (0, 0) when there are none."""
    wanted = set(layers)
    spans = [(float(e["start_us"]), float(e["start_us"]) + float(e["dur_us"]))
             for k in schedule for e in k["events"] if int(e["layer"]) in wanted]
    if not spans:
        return 0.0, 0.0
    return min(s for s, _ in spans), max(e for _, e in spans)


def _split_text(split: Mapping[str, Mapping[str, int]]) -> str:
    """"attention: 24 aic + 48 aiv; moe: ..." (a stream without cores: "none")."""
    return "; ".join(f"{stream}: " + (" + ".join(f"{n} {fam}" for fam, n in cores.items())
                                      or "none")
                     for stream, cores in split.items())


def _candidates(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Candidate rows (microbatches, split, step ms, step / chosen step); the chosen one
    (same microbatches and split, else the shortest step) is flagged ``best``."""
    cands = list(p.get("candidates", []))
    chosen = next((i for i, c in enumerate(cands) if c["microbatches"] == p["microbatches"]
                   and c["split"] == p["split"]), None)
    if chosen is None and cands:
        chosen = min(range(len(cands)), key=lambda i: float(cands[i]["step_us"]))
    best = float(p["step_us"]) or 1.0
    return [{"microbatches": c["microbatches"], "split": _split_text(c["split"]),
             "step_us": float(c["step_us"]), "step_ms": _ms(float(c["step_us"])),
             "ratio": f"{float(c['step_us']) / best:.2f}", "best": i == chosen}
            for i, c in enumerate(cands)]


def best_per_microbatches(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Of candidate rows, the shortest step of each microbatch count (ties: the earliest;
    the chosen row wins over an equal step), in order of first appearance."""
    best: dict[Any, Mapping[str, Any]] = {}
    for r in rows:
        cur = best.get(r["microbatches"])
        if cur is None or r["step_us"] < cur["step_us"] or \
                (r["best"] and r["step_us"] == cur["step_us"]):
            best[r["microbatches"]] = r
    return list(best.values())


def _ops_in_order(schedule: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(e["name"]) for k in schedule for e in k["events"]))


def _layers_text(layers: Sequence[int]) -> str:
    if not layers:
        return ""
    if len(layers) > 1 and all(b == a + 1 for a, b in itertools.pairwise(layers)):
        return f"{layers[0]}\u2013{layers[-1]}"
    return ", ".join(str(x) for x in layers)


def _zoom(name: str, p: Mapping[str, Any], lanes: Sequence[TimelineLane],
          per_layer: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """The zoomed Gantt chart of a role (None when the window is empty) and its caption."""
    schedule = p["schedule"]
    layers = zoom_layers(schedule, per_layer)
    z0, z1 = zoom_window(schedule, layers)
    moe = {int(r["layer"]) for r in per_layer if r.get("kind") == "moe"}
    what = "MoE layer" if set(layers) <= moe and layers else "layer"
    first = f"the first {len(layers)} {what}s" if len(layers) > 1 else f"the first {what}"
    caption = f"{first} ({_layers_text(layers)}), {_ms(z0)}\u2013{_ms(z1)} ms"
    svg = timeline_svg(name, lanes, z0, z1, "zoom", int(p["microbatches"])) if z1 > z0 else None
    return svg, caption


def _pipeline_role(name: str, role: Mapping[str, Any]) -> dict[str, Any]:
    """Section 5 of one role: the full and zoomed Gantt charts and the pipeline figures."""
    p = role["pipeline"]
    schedule = p["schedule"]
    lanes = timeline_lanes(schedule)
    end = max((float(k["step_us"]) for k in schedule), default=0.0)
    zoom, caption = _zoom(name, p, lanes, role.get("estimate", {}).get("per_layer", []))
    events = sum(len(k["events"]) for k in schedule)
    cands = _candidates(p)
    return {
        "name": name, "events": f"{events:,}",
        "device_kinds": [f"{k['device_kind']} ({len(k['events']):,} events, step "
                         f"{_ms(float(k['step_us']))} ms)" for k in schedule],
        "legend": _legend(_ops_in_order(schedule)),
        "full": timeline_svg(name, lanes, 0.0, end, "full"),
        "zoom": zoom, "zoom_caption": caption,
        "microbatches": p["microbatches"], "split": _split_text(p["split"]),
        "step_ms": _ms(float(p["step_us"])), "no_overlap_ms": _ms(float(p["no_overlap_us"])),
        "speedup": f"{float(p['speedup']):.2f}", "candidates": cands,
        "best_per_mb": best_per_microbatches(cands),
    }


_NO_DEPLOYMENT = "No deployment: there is no serving plan to show."
_NO_SERVING = ("The plan has no serving estimate (plan schema {version}, made before the "
               "serving planner): run cmx plan again for the {what}.")


def _old_plan_note(plan: Mapping[str, Any], what: str) -> str:
    return _NO_SERVING.format(version=plan.get("schema_version", "1.0"), what=what)


def _pipeline(plan: Mapping[str, Any] | None) -> dict[str, Any]:
    """Section 5: per role with a ``pipeline`` block its charts, else a note."""
    if plan is None:
        return {"note": _NO_DEPLOYMENT, "roles": []}
    roles = [_pipeline_role(n, r) for n, r in plan["roles"].items()
             if r.get("pipeline", {}).get("schedule")]
    note = None if roles else _old_plan_note(plan, "pipeline timeline")
    return {"note": note, "roles": roles}


# ---- section 6: performance estimate --------------------------------------------------

def _bytes(b: float) -> str:
    """Bytes in decimal TB, GB or MB (two decimals), or plain bytes."""
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if abs(b) >= scale:
            return f"{_num(b / scale, 2)} {unit}"
    return f"{_num(b)} B"


_LABELS = {
    "npu_budget": "NPU budget", "npus_used": "NPUs used", "fits_budget": "fits the budget",
    "sustainable_requests_per_s": "sustainable requests/s",
    "prefill_requests_per_s_per_instance": "prefill requests/s per instance",
    "decode_requests_per_s_per_instance": "decode requests/s per instance",
    "meets_arrival_rate": "meets the arrival rate", "tpot_slo_ms": "TPOT SLO (ms)",
    "ttft_slo_ms": "TTFT SLO (ms)", "mtp_accept": "MTP acceptance",
    "decode_batch_per_npu": "decode batch per NPU",
    "prefill_tokens_per_npu": "prefill tokens per NPU", "max_over_mean": "max/mean",
    "prefill_tp": "prefill TP", "decode_tp": "decode TP", "decode_dp": "decode DP",
    "kv_capacity_bytes": "KV capacity per device", "bytes_per_sequence": "KV per sequence",
    "max_sequences_per_device": "max sequences per device",
    "max_batch_per_npu": "max batch per NPU", "context_len": "context length (tokens)",
    "capacity_bytes": "capacity", "prompt_len": "prompt length (tokens)",
    "output_len": "output length (tokens)", "arrival_rate": "arrival rate (requests/s)",
    "load_bandwidth": "load bandwidth per device", "device_bandwidth": "bandwidth per device",
}

#: Zero in these means "not set".
_UNSET_IF_ZERO = ("tpot_slo_ms", "ttft_slo_ms", "arrival_rate")


def _label(key: str) -> str:
    """A plan key for people: "transfer_ms" -> "transfer (ms)", some names spelled out."""
    if key in _LABELS:
        return _LABELS[key]
    if key.endswith("_ms"):
        return f"{key[:-3].replace('_', ' ')} (ms)"
    return key.replace("_", " ")


def _value(key: str, v: object) -> str | None:
    """A plan value formatted by what its key says it is (bytes, bandwidth, ms without the
    unit, which :func:`_label` adds, a share in percent); None for lists and objects."""
    if isinstance(v, bool):
        return _yes(v)
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v or "\u2014"
    if not isinstance(v, int | float):
        return None
    x = float(v)
    if key in _UNSET_IF_ZERO and x == 0:
        return "none"
    if "bandwidth" in key:
        return f"{_num(x / 1e9, 1)} GB/s"
    if "bytes" in key:
        return _bytes(x)
    if key.endswith("_ms"):
        return _msv(x)
    if key in ("utilisation", "prefix_reuse", "mtp_accept"):
        return f"{_auto(100 * x)} %"
    return _auto(v)


def _rows(block: Mapping[str, Any], skip: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(label, value) of the scalar entries of ``block``, and of the scalar entries of its
    objects one level down ("placement: max/mean"); lists are left out."""
    out: list[tuple[str, str]] = []
    for key, v in block.items():
        if key in skip:
            continue
        if isinstance(v, Mapping):
            out += [(f"{_label(key)}: {_label(k)}", t) for k, sub in v.items()
                    if (t := _value(k, sub)) is not None]
        elif (text := _value(key, v)) is not None:
            out.append((_label(key), text))
    return out


_DECODE_HEAD = (
    ("batch per NPU", "batch_per_npu"), ("requests per device", "requests_per_device"),
    ("tokens per device per step", "tokens_per_device_per_step"),
    ("accepted tokens per step", "accepted_tokens_per_step"), ("step (ms)", "step_ms"),
    ("TPOT (ms)", "tpot_ms"), ("tokens/s per NPU", "tokens_per_s_per_npu"),
    ("tokens/s per TFLOPS", "tokens_per_s_per_tflops"), ("batch chosen by", "batch_chosen_by"),
)
_PREFILL_HEAD = (
    ("tokens per NPU", "tokens_per_npu"), ("prompts per device", "prompts_per_device"),
    ("prefix-reused tokens", "prefix_reused_tokens"), ("step (ms)", "step_ms"),
    ("TTFT (ms)", "ttft_ms"), ("tokens/s per NPU", "tokens_per_s_per_npu"),
    ("tokens/s per TFLOPS", "tokens_per_s_per_tflops"),
)


def _slo(est: Mapping[str, Any], workload: Mapping[str, Any], what: str
         ) -> tuple[str, str] | None:
    """("TPOT SLO met", "yes (≤ 50 ms)") from ``meets_<what>_slo``; None if absent."""
    met = est.get(f"meets_{what}_slo")
    if met is None:
        return None
    slo = float(workload.get(f"{what}_slo_ms") or 0.0)
    bound = f" (\u2264 {_auto(slo)} ms)" if slo > 0 else " (no SLO set)"
    return f"{what.upper()} SLO met", _yes(met) + bound


def headline(est: Mapping[str, Any], workload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The headline (label, value) pairs of a role's estimate: decode figures when it has a
    TPOT, prefill figures otherwise."""
    decode = "tpot_ms" in est
    fields = _DECODE_HEAD if decode else _PREFILL_HEAD
    out = [(label, text) for label, key in fields if key in est
           if (text := _value(key, est[key])) is not None]
    slo = _slo(est, workload, "tpot" if decode else "ttft")
    return out + ([slo] if slo else [])


def _signature(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return row.get("kind"), row.get("span_us"), tuple(row.get("ops_us", {}).items())


def layer_groups(per_layer: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive identical rows (kind, span and op times) merged: one dict per group with
    its ``layers`` and the shared ``kind``, ``span_us`` and ``ops_us``."""
    groups: list[dict[str, Any]] = []
    for row in per_layer:
        if groups and _signature(groups[-1]) == _signature(row):
            groups[-1]["layers"].append(int(row["layer"]))
        else:
            groups.append({"layers": [int(row["layer"])], "kind": row.get("kind", ""),
                           "span_us": row.get("span_us", 0.0),
                           "ops_us": dict(row.get("ops_us", {}))})
    return groups


_KIND_NAMES = (("dense", "dense"), ("moe", "MoE"), ("mtp", "MTP"), ("head", "head"))


def representatives(per_layer: Sequence[Mapping[str, Any]]
                    ) -> list[tuple[str, Mapping[str, Any]]]:
    """One row per layer kind (dense, MoE, MTP, head, those present): the most common row
    of that kind (ties: the earliest), labelled with its layer."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for kind, title in _KIND_NAMES:
        rows = [r for r in per_layer if r.get("kind") == kind]
        if not rows:
            continue
        counts: dict[tuple[Any, ...], int] = {}
        for r in rows:
            counts[_signature(r)] = counts.get(_signature(r), 0) + 1
        top = max(counts.values())
        row = next(r for r in rows if counts[_signature(r)] == top)
        layer = int(row["layer"])
        out.append((title if layer < 0 else f"{title} (layer {layer})", row))
    return out


@dataclass(frozen=True)
class _Bars:
    """Geometry of the per-layer bar chart: plot from ``left`` (px) for ``width`` px showing
    0..``end`` µs, bars ``bar_h`` high and ``gap`` apart."""

    end: float
    left: int = 170
    width: int = 820
    bar_h: int = 24
    gap: int = 14
    top: int = 10

    def x(self, us: float) -> float:
        """The x coordinate of ``us`` microseconds."""
        return self.left + self.width * us / self.end


def _bar(label: str, row: Mapping[str, Any], y: int, b: _Bars) -> list[str]:
    """One stacked bar (op times of a layer) with its span marked and written on the right."""
    ops = {str(k): float(v) for k, v in row.get("ops_us", {}).items()}
    span, total = float(row.get("span_us", 0.0)), sum(ops.values())
    text_y = y + b.bar_h - 8
    parts = [f'<text x="{b.left - 6}" y="{text_y}" text-anchor="end">{escape(label)}</text>']
    pos = 0.0
    for op, us in ops.items():
        x0, x1 = b.x(pos), b.x(pos + us)
        fill = op_colour(op)
        parts.append(f'<rect x="{_fmt(x0)}" y="{y}" width="{_fmt(max(x1 - x0, 0.4))}" '
                     f'height="{b.bar_h}" fill="{fill}" stroke="#fff" stroke-width="0.6">'
                     f"<title>{escape(op)}: {_num(us, 1)} \u00b5s</title></rect>")
        if x1 - x0 >= 6.2 * len(op) + 4:
            parts.append(f'<text x="{_fmt((x0 + x1) / 2)}" y="{text_y}" text-anchor="middle" '
                         f'fill="{_ink(fill)}">{escape(op)}</text>')
        pos += us
    xs = _fmt(b.x(span))
    parts.append(f'<line x1="{xs}" x2="{xs}" y1="{y - 3}" y2="{y + b.bar_h + 3}" '
                 f'stroke="#222" stroke-width="2"><title>span in the step: {_num(span, 1)} '
                 "\u00b5s</title></line>")
    parts.append(f'<text x="{b.left + b.width + 10}" y="{text_y}">span {_num(span, 1)} '
                 f"\u00b5s \u00b7 ops {_num(total, 1)} \u00b5s</text>")
    return parts


def layer_bars_svg(role: str, reps: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Stacked horizontal bars of op times (µs, summed over microbatches) for the
    representative layers; a black mark shows each layer's span in the step."""
    hi = max((max(sum(float(v) for v in r.get("ops_us", {}).values()),
                  float(r.get("span_us", 0.0))) for _, r in reps), default=1.0) or 1.0
    ticks = nice_ticks(0.0, hi, 8)
    b = _Bars(end=max(hi, ticks[-1]))
    bottom = b.top + len(reps) * (b.bar_h + b.gap)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = [f'<svg class="chart layer-bars" role="img" width="{b.left + b.width + 260}" '
             f'height="{bottom + 30}" data-role="{escape(role)}">',
             '<g class="axis" font-size="10">']
    for t in ticks:
        xt = _fmt(b.x(t))
        parts.append(f'<line x1="{xt}" x2="{xt}" y1="{b.top - 4}" y2="{bottom - b.gap + 4}" '
                     f'stroke="#ddd"/><text x="{xt}" y="{bottom + 6}" text-anchor="middle">'
                     f"{_tick_text(t, step)}</text>")
    parts.append(f'<text x="{b.left + b.width // 2}" y="{bottom + 22}" text-anchor="middle">'
                 "op time in the step (\u00b5s, summed over microbatches)</text></g>"
                 '<g class="bars" font-size="11">')
    for i, (label, row) in enumerate(reps):
        parts += _bar(label, row, b.top + i * (b.bar_h + b.gap), b)
    parts.append("</g></svg>")
    return "".join(parts)


def _layer_table(per_layer: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The per-layer table: op columns (in order of first appearance) and one row per group
    of identical consecutive layers, times in µs; the total of the spans is the step."""
    ops = list(dict.fromkeys(str(k) for r in per_layer for k in r.get("ops_us", {})))
    rows = []
    for grp in layer_groups(per_layer):
        layers = grp["layers"]
        name = "head" if layers == [-1] else _layers_text(layers)
        rows.append({"layers": name, "count": len(layers), "kind": grp["kind"],
                     "span": _num(float(grp["span_us"]), 1),
                     "ops": [_num(float(grp["ops_us"][o]), 1) if o in grp["ops_us"] else ""
                             for o in ops]})
    total = sum(float(r.get("span_us", 0.0)) for r in per_layer)
    return {"ops": ops, "rows": rows, "total_ms": _ms(total)}


def _kv_rows(kv: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The KV block: context length, bytes per sequence, KV capacity, max sequences per
    device and (decode) max batch per NPU."""
    order = ("context_len", "bytes_per_sequence", "kv_capacity_bytes",
             "max_sequences_per_device", "max_batch_per_npu")
    first = {k: kv[k] for k in order if k in kv}
    return _rows({**first, **{k: v for k, v in kv.items() if k not in first}})


def _performance_role(name: str, role: Mapping[str, Any], workload: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """Section 6 of one role: headline, per-layer chart and table, KV block."""
    est = role["estimate"]
    per_layer = est.get("per_layer", [])
    reps = representatives(per_layer)
    ops = list(dict.fromkeys(str(k) for _, r in reps for k in r.get("ops_us", {})))
    return {"name": name, "headline": headline(est, workload),
            "bars": layer_bars_svg(name, reps) if reps else None, "legend": _legend(ops),
            "layers": _layer_table(per_layer),
            "kv": _kv_rows(role["kv"]) if role.get("kv") else []}


def _runs(ranks: Sequence[int], limit: int = 8) -> str:
    """"0-79 -> 0; 80-159 -> 1; ..." (with en dashes and arrows) for a rank mapping: runs of
    consecutive ranks mapped alike, at most ``limit`` of them, then an ellipsis."""
    runs: list[tuple[int, int, int]] = []
    for i, r in enumerate(ranks):
        if runs and runs[-1][2] == r and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i, r)
        else:
            runs.append((i, i, r))
    text = "; ".join(f"{a}\u2013{b} \u2192 {r}" if b > a else f"{a} \u2192 {r}"
                     for a, b, r in runs[:limit])
    return text + ("; \u2026" if len(runs) > limit else "")


def _reuse_rows(pool: Mapping[str, Any], chosen: float) -> list[dict[str, Any]]:
    """The prefix-reuse table; the workload's own share is flagged ``best``."""
    return [{"share": f"{_auto(100 * float(r['prefix_reuse']))} %",
             "load_ms": _msv(float(r.get("load_ms", 0.0))),
             "ttft_ms": _msv(float(r.get("ttft_ms", 0.0))),
             "tput": _auto(float(r.get("tokens_per_s_per_npu", 0.0))),
             "best": abs(float(r["prefix_reuse"]) - chosen) < 1e-9}
            for r in pool.get("prefix_reuse_effect", [])]


def _serving(serving: Mapping[str, Any]) -> dict[str, Any]:
    """The deployment-wide serving block: workload, role split, KV transfer, P/D mapping and
    the cache pool with the prefix-reuse effect (each None or empty when absent)."""
    workload = serving.get("workload") or {}
    pd = serving.get("pd_mapping") or {}
    pool = serving.get("cache_pool") or {}
    mapping = pd.get("prefill_tp_rank_of_decode_rank")
    return {
        "workload": _rows(workload),
        "roles": _rows(serving["roles"]) if serving.get("roles") else [],
        "kv_transfer": _rows(serving.get("kv_transfer") or {}),
        "pd_mapping": _rows(pd) + ([("prefill TP rank of decode ranks", _runs(mapping))]
                                   if mapping else []),
        "cache_pool": _rows(pool),
        "reuse": _reuse_rows(pool, float(workload.get("prefix_reuse", 0.0) or 0.0)),
    }


def _performance(plan: Mapping[str, Any] | None) -> dict[str, Any]:
    """Section 6: per role with an ``estimate`` its figures, and the ``serving`` block;
    a note instead when the plan has neither."""
    if plan is None:
        return {"note": _NO_DEPLOYMENT, "roles": [], "serving": None}
    serving = plan.get("serving")
    workload = (serving or {}).get("workload") or {}
    roles = [_performance_role(n, r, workload) for n, r in plan["roles"].items()
             if r.get("estimate")]
    note = None if roles or serving else _old_plan_note(plan, "performance estimate")
    return {"note": note, "roles": roles, "serving": _serving(serving) if serving else None}


# ---- the page -------------------------------------------------------------------------

def report_context(model: Model, g: nx.Graph, inputs: ReportInputs) -> dict[str, Any]:
    """Everything the template renders, as plain data (strings already formatted)."""
    summary = _summary(model, g)
    bandwidth = _bandwidth(g)
    planes = [p["name"] for p in bandwidth["planes"]]
    # The sections read the plan's JSON form (the numbers as the plan file holds them).
    plan = inputs.plan.to_json() if inputs.plan is not None else None
    return {
        "title": f"{model.root_name}: {model.root.type_name}",
        "source": _base(inputs.source) or "",
        "summary": summary,
        "diagrams": _diagrams(g, planes, inputs.diagrams),
        "bandwidth": bandwidth,
        "deployment": _deployment(plan, inputs),
        "pipeline": _pipeline(plan),
        "performance": _performance(plan),
    }


def report_html(model: Model, g: nx.Graph, inputs: ReportInputs) -> str:
    """The whole report page (UTF-8 text).  Deterministic: same model, graph and inputs, same
    text.  Raises E021 :class:`~supernode_dsl.diagnostics.CmxError` when ``inputs.loads`` does
    not match the plan's shape."""
    if inputs.plan is not None and inputs.loads is not None:
        check_loads(inputs.plan, inputs.loads)
    return render("report/report.html.j2", **report_context(model, g, inputs))
