"""Section 4, deployment (when there is a plan): per role the expert-load heatmap (MoE
layers x routed dies, die load / mean), max/mean per MoE layer as a line chart, and the
memory budget of a die as a stacked bar against its capacity."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import numpy as np
from markupsafe import Markup

from supernode_dsl.diagnostics import CmxError, Diagnostic
from supernode_dsl.emit.report.common import ReportInputs, base_name, fmt
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import ExpertPlacement, Memory

__all__ = [
    "MEMORY_TERMS",
    "check_loads",
    "deployment_section",
    "die_loads",
]


#: The memory terms of the stacked bar: (label, bytes of the term, colour).
MEMORY_TERMS: tuple[tuple[str, Callable[[Memory], float], str], ...] = (
    ("expert weights", lambda m: float(m.expert_weights), "#0072B2"),
    ("other weights", lambda m: float(m.other_weights), "#56B4E9"),
    ("KV cache", lambda m: float(m.kv_cache), "#D55E00"),
    ("dispatch + combine buffers",
     lambda m: float(m.dispatch_buffer) + float(m.combine_buffer), "#E69F00"),
    ("reserve", lambda m: float(m.reserve), "#999999"),
)


def die_loads(placement: ExpertPlacement, loads: np.ndarray
              ) -> tuple[list[str], np.ndarray]:
    """The routed dies of one role instance (in EP rank order: first slot first) and their
    load per MoE layer, [layers x dies]: each slot carries its expert's load divided by the
    expert's replica count (``logcnt``)."""
    slot_device = list(placement.slot_device)
    dies = list(dict.fromkeys(slot_device))
    index = {d: i for i, d in enumerate(dies)}
    die_of_slot = np.fromiter((index[d] for d in slot_device), dtype=np.int64,
                              count=len(slot_device))
    phy2log = np.asarray(placement.phy2log, dtype=np.int64)
    logcnt = np.asarray(placement.logcnt, dtype=np.float64)
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
        parts.append(f'<text x="{fmt(j * cw + cw / 2)}" y="{height + 12}" '
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
        parts.append(f'<text x="18" y="{fmt(y)}">{v:g}\u00d7 mean</text>')
    parts.append("</g></svg>")
    return Markup("".join(parts))


def _line_svg(layers: Sequence[int], values: Sequence[float], bound: float) -> str:
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
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{fmt(y(v))}" y2="{fmt(y(v))}" '
                     'stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{fmt(y(v) + 3)}" text-anchor="end">'
                     f'{v:.2f}</text>')
    for i in range(0, n, 5):
        parts.append(f'<text x="{fmt(x(i))}" y="{top + ph + 12}" text-anchor="middle">'
                     f'{layers[i]}</text>')
    parts.append(f'<text x="{left + pw // 2}" y="{h - 4}" text-anchor="middle">MoE layer</text>'
                 "</g>")
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{fmt(y(1.0))}" y2="{fmt(y(1.0))}" '
                 'stroke="#555" stroke-dasharray="2,3"/>')
    if lo <= bound <= hi:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{fmt(y(bound))}" '
                     f'y2="{fmt(y(bound))}" stroke="#009E73" stroke-dasharray="6,3">'
                     f'<title>lower bound {bound:.3f}</title></line>')
    points = " ".join(f"{fmt(x(i))},{fmt(y(v))}" for i, v in enumerate(values))
    parts.append(f'<polyline class="max-over-mean" points="{points}" fill="none" '
                 'stroke="#D55E00" stroke-width="1.5"/></svg>')
    return Markup("".join(parts))


def _gb(b: float) -> str:
    return f"{b / 1e9:,.2f}"


def _memory(memory: Memory) -> dict[str, Any]:
    """The stacked bar (SVG) and table rows of one role's per-die memory budget."""
    cap = float(memory.capacity)
    total = float(memory.total)
    scale_max = max(cap, total)
    w, bar_h, left = 640, 26, 0
    terms = [(label, term(memory), colour) for label, term, colour in MEMORY_TERMS]
    parts = [f'<svg class="chart" role="img" width="{w + 20}" height="{bar_h + 26}">']
    xpos = 0.0
    for label, value, colour in terms:
        seg = w * value / scale_max if scale_max > 0 else 0.0
        parts.append(f'<rect x="{fmt(left + xpos)}" y="0" width="{fmt(seg)}" '
                     f'height="{bar_h}" fill="{colour}"><title>{escape(label)}: {_gb(value)} GB'
                     "</title></rect>")
        xpos += seg
    cap_x = w * cap / scale_max if scale_max > 0 else 0.0
    parts.append(f'<rect x="{left}" y="0" width="{fmt(cap_x)}" height="{bar_h}" fill="none" '
                 'stroke="#222" stroke-width="1.5"/>'
                 f'<text x="{fmt(cap_x)}" y="{bar_h + 14}" font-size="10" text-anchor="end">'
                 f'capacity {_gb(cap)} GB</text></svg>')
    rows = [(label, colour, _gb(value), f"{100 * value / cap:.1f}" if cap else "")
            for label, value, colour in terms]
    return {"svg": Markup("".join(parts)), "rows": rows, "capacity": _gb(cap),
            "total": _gb(total),
            "free": _gb(float(memory.free)),
            "used_pct": f"{100 * total / cap:.1f}" if cap else ""}


def _roles(plan: PlanDocument, loads: np.ndarray | None) -> list[dict[str, Any]]:
    out = []
    for name, role in plan.roles.items():
        placement = role.expert_placement
        layers = list(placement.moe_layers or range(len(placement.phy2log)))
        shape = (len(placement.phy2log), placement.num_logical)
        role_loads = np.ones(shape) if loads is None else loads
        dies, per_die = die_loads(placement, role_loads)
        mean = per_die.mean(axis=1, keepdims=True)
        ratio = per_die / np.where(mean > 0, mean, 1.0)
        mom = [float(v) for v in ratio.max(axis=1)]
        bound = float(role.balance.lower_bound_max_over_mean)
        out.append({
            "name": name,
            "instances": role.instances, "ep": role.ep,
            "npus_per_instance": role.npus_per_instance,
            "num_logical": placement.num_logical, "num_physical": placement.num_physical,
            "slots_per_device": placement.slots_per_device,
            "routed_dies": len(dies), "shared_dies": len(placement.shared_devices),
            "layers": len(layers),
            "max_over_mean": f"{max(mom, default=1.0):.3f}",
            "mean_max_over_mean": f"{float(np.mean(mom)) if mom else 1.0:.3f}",
            "lower_bound": f"{bound:.3f}",
            "heatmap": _heatmap_svg(name, layers, ratio),
            "line": _line_svg(layers, mom, bound),
            "memory": _memory(role.memory),
        })
    return out


def deployment_section(plan: PlanDocument | None, inputs: ReportInputs
                       ) -> dict[str, Any] | None:
    """Section 4: the deployment and model names, the file names shown and per role its
    charts and figures; None without a plan."""
    if plan is None:
        return None
    return {
        "name": plan.source.deployment,
        "model": plan.model.name,
        "routed_experts": plan.model.routed_experts,
        "top_k": plan.model.top_k,
        "plan_name": base_name(inputs.plan_name),
        "loads_name": base_name(inputs.loads_name),
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
