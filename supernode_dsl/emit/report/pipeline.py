"""Section 5, pipeline timeline (plan schema 1.1): per role a Gantt chart of one step, one
lane per (device kind, stream), one rect per scheduled op coloured by op name, the whole
step and a zoom on the first three MoE layers, with the microbatch count, core split,
speed-up over no overlap and the candidates the planner tried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

from supernode_dsl.emit.report.common import (
    NO_DEPLOYMENT,
    fmt,
    ink,
    layers_text,
    legend,
    ms,
    nice_ticks,
    num,
    old_plan_note,
    op_colour,
    tick_text,
)
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import (
    CoreSplit,
    DeviceSchedule,
    LayerEstimate,
    Pipeline,
    ScheduleEvent,
)

__all__ = [
    "ZOOM_EVENTS",
    "ZOOM_LAYERS",
    "TimelineLane",
    "best_per_microbatches",
    "pipeline_section",
    "timeline_lanes",
    "timeline_svg",
    "zoom_layers",
    "zoom_window",
]


@dataclass(frozen=True)
class TimelineLane:
    """One row of a Gantt chart: the events of one stream of one device kind."""

    device_kind: str
    stream: str
    events: tuple[ScheduleEvent, ...]
    step_us: float


def timeline_lanes(schedule: Sequence[DeviceSchedule]) -> list[TimelineLane]:
    """One lane per (device kind, stream): device kinds in plan order, streams in order of
    first appearance; every event of the schedule is in exactly one lane."""
    lanes: list[TimelineLane] = []
    for kind in schedule:
        streams: dict[str, list[ScheduleEvent]] = {}
        for e in kind.events:
            streams.setdefault(e.stream, []).append(e)
        lanes += [TimelineLane(kind.device_kind, s, tuple(evs), float(kind.step_us))
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


def _event_rect(e: ScheduleEvent, y: int, f: _Frame) -> tuple[str, str]:
    """(rect, label) of one event clipped to the frame; the label is empty unless the
    rect is wide enough for its op name (zoomed views only)."""
    start, end = float(e.start_us), float(e.start_us) + float(e.dur_us)
    x0, x1 = f.x(max(start, f.t0)), f.x(min(end, f.t1))
    name = e.name
    fill = op_colour(name)
    stroke = ' stroke="#fff" stroke-width="0.6"' if f.zoom and x1 - x0 > 4 else ""
    tip = (f"{name}, microbatch {e.microbatch}, {_layer_name(e.layer)}: "
           f"{ms(start)}\u2013{ms(end)} ms ({num(float(e.dur_us), 1)} \u00b5s)")
    rect = (f'<rect x="{fmt(x0)}" y="{y + 2}" width="{fmt(max(x1 - x0, 0.4))}" '
            f'height="{f.lane_h - 4}" fill="{fill}"{stroke}><title>{escape(tip)}</title>'
            "</rect>")
    label = ""
    text = f"{name} {e.microbatch}" if f.show_mb else name
    if f.zoom and x1 - x0 >= 6.2 * len(text) + 4:
        label = (f'<text x="{fmt((x0 + x1) / 2)}" y="{y + f.lane_h - 6}" '
                 f'text-anchor="middle" fill="{ink(fill)}">{escape(text)}</text>')
    return rect, label


def _visible(e: ScheduleEvent, f: _Frame) -> bool:
    """Whether event ``e`` overlaps the frame's time window."""
    start = float(e.start_us)
    return start < f.t1 and start + float(e.dur_us) > f.t0


def _axis(f: _Frame, y: int) -> list[str]:
    """Grid lines, tick labels (ms) and the axis title under a plot ending at ``y``."""
    ticks = nice_ticks(f.t0 / 1e3, f.t1 / 1e3)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = ['<g class="axis" font-size="10">']
    for t in ticks:
        x = fmt(f.x(t * 1e3))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{f.top}" y2="{y + 3}" stroke="#ccc" '
                     f'stroke-width="0.5"/><text x="{x}" y="{y + 14}" text-anchor="middle">'
                     f"{tick_text(t, step)}</text>")
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
            x = fmt(f.x(lane.step_us))
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
    return Markup("".join(parts))


#: The zoomed timeline shows at most this many layers, and fewer when they hold more than
#: :data:`ZOOM_EVENTS` events on one device kind (so that single ops stay readable).
ZOOM_LAYERS, ZOOM_EVENTS = 3, 64


def zoom_layers(schedule: Sequence[DeviceSchedule],
                per_layer: Sequence[LayerEstimate]) -> list[int]:
    """The layers of the zoomed view: the first MoE layers (per the estimate; without one,
    the first layers the schedule runs), :data:`ZOOM_LAYERS` of them or fewer, down to one,
    so that no device kind has more than :data:`ZOOM_EVENTS` events in them."""
    order = [r.layer for r in per_layer if r.kind == "moe"] or \
        list(dict.fromkeys(e.layer for k in schedule for e in k.events))
    for count in range(ZOOM_LAYERS, 1, -1):
        wanted = set(order[:count])
        most = max((sum(1 for e in k.events if e.layer in wanted)
                    for k in schedule), default=0)
        if most <= ZOOM_EVENTS:
            return order[:count]
    return order[:1]


def zoom_window(schedule: Sequence[DeviceSchedule], layers: Sequence[int]
                ) -> tuple[float, float]:
    """From the first start to the last end (µs) of the events of ``layers`` on any device
    kind; (0, 0) when there are none."""
    wanted = set(layers)
    spans = [(float(e.start_us), float(e.start_us) + float(e.dur_us))
             for k in schedule for e in k.events if e.layer in wanted]
    if not spans:
        return 0.0, 0.0
    return min(s for s, _ in spans), max(e for _, e in spans)


def _split_text(split: CoreSplit) -> str:
    """"attention: 24 aic + 48 aiv; moe: ..." (a stream without cores: "none")."""
    return "; ".join(f"{stream}: " + (" + ".join(f"{n} {fam}" for fam, n in cores.items())
                                      or "none")
                     for stream, cores in split.items())


def _candidates(p: Pipeline) -> list[dict[str, Any]]:
    """Candidate rows (microbatches, split, step ms, step / chosen step); the chosen one
    (same microbatches and split, else the shortest step) is flagged ``best``."""
    cands = p.candidates
    chosen = next((i for i, c in enumerate(cands) if c.microbatches == p.microbatches
                   and c.split == p.split), None)
    if chosen is None and cands:
        chosen = min(range(len(cands)), key=lambda i: float(cands[i].step_us))
    best = float(p.step_us) or 1.0
    return [{"microbatches": c.microbatches, "split": _split_text(c.split),
             "step_us": float(c.step_us), "step_ms": ms(float(c.step_us)),
             "ratio": f"{float(c.step_us) / best:.2f}", "best": i == chosen}
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


def _ops_in_order(schedule: Sequence[DeviceSchedule]) -> list[str]:
    return list(dict.fromkeys(e.name for k in schedule for e in k.events))


def _zoom(name: str, p: Pipeline, lanes: Sequence[TimelineLane],
          per_layer: Sequence[LayerEstimate]) -> tuple[str | None, str]:
    """The zoomed Gantt chart of a role (None when the window is empty) and its caption."""
    schedule = p.schedule
    layers = zoom_layers(schedule, per_layer)
    z0, z1 = zoom_window(schedule, layers)
    moe = {r.layer for r in per_layer if r.kind == "moe"}
    what = "MoE layer" if set(layers) <= moe and layers else "layer"
    first = f"the first {len(layers)} {what}s" if len(layers) > 1 else f"the first {what}"
    caption = f"{first} ({layers_text(layers)}), {ms(z0)}\u2013{ms(z1)} ms"
    svg = timeline_svg(name, lanes, z0, z1, "zoom", p.microbatches) if z1 > z0 else None
    return svg, caption


def _pipeline_role(name: str, p: Pipeline, per_layer: Sequence[LayerEstimate]
                   ) -> dict[str, Any]:
    """Section 5 of one role: the full and zoomed Gantt charts and the pipeline figures of
    its pipeline ``p`` (``per_layer``: its estimate's layers, for the zoom)."""
    schedule = p.schedule
    lanes = timeline_lanes(schedule)
    end = max((float(k.step_us) for k in schedule), default=0.0)
    zoom, caption = _zoom(name, p, lanes, per_layer)
    events = sum(len(k.events) for k in schedule)
    cands = _candidates(p)
    return {
        "name": name, "events": f"{events:,}",
        "device_kinds": [f"{k.device_kind} ({len(k.events):,} events, step "
                         f"{ms(float(k.step_us))} ms)" for k in schedule],
        "legend": legend(_ops_in_order(schedule)),
        "full": timeline_svg(name, lanes, 0.0, end, "full"),
        "zoom": zoom, "zoom_caption": caption,
        "microbatches": p.microbatches, "split": _split_text(p.split),
        "step_ms": ms(float(p.step_us)), "no_overlap_ms": ms(float(p.no_overlap_us)),
        "speedup": f"{float(p.speedup):.2f}", "candidates": cands,
        "best_per_mb": best_per_microbatches(cands),
    }


def pipeline_section(plan: PlanDocument | None) -> dict[str, Any]:
    """Section 5: per role with a non-empty ``pipeline`` schedule its charts, else a
    note."""
    if plan is None:
        return {"note": NO_DEPLOYMENT, "roles": []}
    roles = [_pipeline_role(n, r.pipeline, r.estimate.per_layer if r.estimate else ())
             for n, r in plan.roles.items() if r.pipeline is not None and r.pipeline.schedule]
    note = None if roles else old_plan_note(plan, "pipeline timeline")
    return {"note": note, "roles": roles}
