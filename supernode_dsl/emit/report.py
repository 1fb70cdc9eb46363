"""``cmx report``: one self-contained HTML page about a compiled topology and its deployment.

Entry point: :func:`report_html`.  The page (template ``codegen/report/report.html.j2``) has
five sections:

1. summary: root instance, instance counts by category and type, global parameters;
2. topology diagrams: the Graphviz supernode view, the view of the first node and one view
   per plane, inlined as SVG (when the ``dot`` program is missing the section says so and
   everything else still renders);
3. bandwidth: links and bisection bandwidth per plane, and the lowest-latency path between
   representative endpoints (two endpoints of one node, the first endpoints of two nodes);
4. deployment, when a plan is given: per role the expert-load heatmap (MoE layers x routed
   dies, die load / mean), max/mean per MoE layer as a line chart, and the memory budget of a
   die as a stacked bar against its capacity;
5. placeholders for the pipeline timeline and the performance estimate.

The page works offline: inline CSS and SVG, no script, no remote reference (the SVG
namespace URLs Graphviz writes are removed; HTML5 does not need them).  Output is
deterministic: the same inputs give the same bytes (no timestamps, no absolute paths: files
are named by their base name only).
"""

from __future__ import annotations

import math
import re
import shutil
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

__all__ = [
    "MEMORY_TERMS",
    "ReportInputs",
    "check_loads",
    "declared_deployments",
    "die_loads",
    "inline_svg",
    "report_context",
    "report_html",
]

#: The memory terms of the stacked bar: (label, plan keys summed, colour).
MEMORY_TERMS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("expert weights", ("expert_weights",), "#0072B2"),
    ("other weights", ("other_weights",), "#56B4E9"),
    ("KV cache", ("kv_cache",), "#D55E00"),
    ("dispatch + combine buffers", ("dispatch_buffer", "combine_buffer"), "#E69F00"),
    ("reserve", ("reserve",), "#999999"),
)

_PLACEHOLDERS = {
    "pipeline": "The pipeline timeline (prefill and decode stages, micro-batches and "
                "communication overlap per die) comes from the serving-plan work, which is not "
                "built yet.",
    "performance": "The performance estimate (throughput and latency per role from the plan and "
                   "the topology) comes from the serving-plan work, which is not built yet.",
}


@dataclass(frozen=True)
class ReportInputs:
    """What a report is made of besides the compiled model and graph.

    ``source`` and ``plan_name``/``loads_name`` are file names shown on the page (reduced to
    their base name); ``plan`` is a valid plan document of this topology (or None: no
    deployment section); ``loads`` the [MoE layers x routed experts] loads the heatmap is drawn
    with (None: equal loads); ``diagrams`` False leaves the Graphviz drawings out.
    """

    source: str
    plan: Mapping[str, Any] | None = None
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


def check_loads(plan: Mapping[str, Any], loads: np.ndarray) -> None:
    """E021 unless ``loads`` has the shape of every role's placement [layers x logical]."""
    for name, role in plan["roles"].items():
        p = role["expert_placement"]
        shape = (len(p["phy2log"]), int(p["num_logical"]))
        if loads.shape != shape:
            raise CmxError([Diagnostic(
                "E021", f"expert loads have shape {list(loads.shape)}; the plan's {name} "
                        f"placement needs {list(shape)} (MoE layers x routed experts)")])


# ---- the page -------------------------------------------------------------------------

def report_context(model: Model, g: nx.Graph, inputs: ReportInputs) -> dict[str, Any]:
    """Everything the template renders, as plain data (strings already formatted)."""
    summary = _summary(model, g)
    bandwidth = _bandwidth(g)
    planes = [p["name"] for p in bandwidth["planes"]]
    return {
        "title": f"{model.root_name}: {model.root.type_name}",
        "source": _base(inputs.source) or "",
        "summary": summary,
        "diagrams": _diagrams(g, planes, inputs.diagrams),
        "bandwidth": bandwidth,
        "deployment": _deployment(inputs.plan, inputs),
        "placeholders": _PLACEHOLDERS,
    }


def report_html(model: Model, g: nx.Graph, inputs: ReportInputs) -> str:
    """The whole report page (UTF-8 text).  Deterministic: same model, graph and inputs, same
    text.  Raises E021 :class:`~supernode_dsl.diagnostics.CmxError` when ``inputs.loads`` does
    not match the plan's shape."""
    if inputs.plan is not None and inputs.loads is not None:
        check_loads(inputs.plan, inputs.loads)
    return render("report/report.html.j2", **report_context(model, g, inputs))
