"""A Chrome / Perfetto trace of the planner's microbatch pipeline schedule.

The planner puts into each role of a plan a ``pipeline`` block whose ``schedule`` lists, per
device kind, the timed operator events of one model step (stream, microbatch, layer, start
and duration in microseconds).  :func:`chrome_trace` turns those into the JSON object form of
the Chrome Trace Event Format, which ``chrome://tracing`` and https://ui.perfetto.dev load:

* one process (``pid``) per (role, device kind), named ``"<role> · <device kind>"``;
* one thread (``tid``) per stream of that process;
* one complete event (``"ph": "X"``) per schedule event, ``ts``/``dur`` in microseconds.

pids and tids are small positive integers given in a fixed order (roles by name, device
kinds and streams in order of first appearance), so the same plan gives the same bytes.
Roles without a ``pipeline`` block (plans of older cmx versions) contribute nothing.
"""

from __future__ import annotations

import json
from typing import Any

from supernode_dsl.contracts import check_instance
from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import Pipeline, ScheduleEvent

__all__ = ["EMITTERS", "ChromeTraceEmitter", "chrome_trace"]

GENERATOR = "supernode-dsl"
_SEPARATOR = " · "  # between the role and the device kind in a process name


# ---- reading the plan ------------------------------------------------------------------------

def _pipelines(plan: PlanDocument) -> list[tuple[str, Pipeline]]:
    """``(role, pipeline)`` of every role that has a pipeline block, roles sorted by name."""
    return [(name, role.pipeline) for name, role in sorted(plan.roles.items())
            if role.pipeline is not None]


# ---- building the events ---------------------------------------------------------------------

def _metadata(kind: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    """One ``"M"`` (metadata) event: a process or thread name or sort index."""
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": args}


class _Process:
    """The events of one (role, device kind): its streams get tids 1, 2, ... in order of
    first appearance."""

    def __init__(self, role: str, device_kind: str, pid: int) -> None:
        self.role, self.pid = role, pid
        self.name = f"{role}{_SEPARATOR}{device_kind}"
        self.tids: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []

    def add(self, event: ScheduleEvent) -> None:
        """Add one schedule event as a complete (``"X"``) event on its stream's thread."""
        tid = self.tids.setdefault(event.stream, len(self.tids) + 1)
        self.events.append({
            "ph": "X", "pid": self.pid, "tid": tid, "cat": self.role,
            "name": event.name,
            "ts": float(event.start_us),
            "dur": float(event.dur_us),
            "args": {"layer": event.layer, "microbatch": event.microbatch},
        })

    def trace_events(self) -> list[dict[str, Any]]:
        """Metadata first, then the complete events by start time (ties: thread, input
        order)."""
        out = [_metadata("process_name", self.pid, 0, {"name": self.name}),
               _metadata("process_sort_index", self.pid, 0, {"sort_index": self.pid})]
        for stream, tid in self.tids.items():
            out.append(_metadata("thread_name", self.pid, tid, {"name": stream}))
            out.append(_metadata("thread_sort_index", self.pid, tid, {"sort_index": tid}))
        return out + sorted(self.events, key=lambda e: (e["ts"], e["tid"]))


def _processes(pipelines: list[tuple[str, Pipeline]]) -> list[_Process]:
    """One :class:`_Process` per (role, device kind), pids 1, 2, ... in role order and, within
    a role, device kinds in order of first appearance."""
    found: dict[tuple[str, str], _Process] = {}
    for role, pipeline in pipelines:
        for block in pipeline.schedule:
            kind = block.device_kind
            process = found.setdefault((role, kind), _Process(role, kind, len(found) + 1))
            for event in block.events:
                process.add(event)
    return list(found.values())


def _other_data(plan: PlanDocument, pipelines: list[tuple[str, Pipeline]]) -> dict[str, Any]:
    """The trace's ``otherData``: generator, the plan's source file and deployment, and per
    role the chosen microbatch count, split, step time and speedup."""
    data: dict[str, Any] = {"generator": GENERATOR}
    data.update({"file": plan.source.file, "deployment": plan.source.deployment})
    data["roles"] = {role: {"microbatches": p.microbatches, "split": p.split,
                            "step_us": p.step_us, "speedup": p.speedup}
                     for role, p in pipelines}
    return data


def _dumps(value: Any) -> str:
    """Compact, key-sorted JSON; NaN and infinities are refused."""
    return json.dumps(value, indent=None, separators=(",", ":"), sort_keys=True,
                      allow_nan=False)


def chrome_trace(plan: PlanDocument) -> str:
    """The Chrome Trace Event Format (JSON object form) of the pipeline schedules of
    ``plan``'s roles: deterministic text, one trace event per line, ending with a newline.

    Raises an E026 :class:`~supernode_dsl.diagnostics.CmxError` when no role has a
    ``pipeline`` block (a plan of schema 1.0), and
    :class:`~supernode_dsl.diagnostics.ArgumentError` when ``plan`` is not a
    :class:`~supernode_dsl.plan.document.PlanDocument`.
    """
    pipelines = _pipelines(check_instance(plan, PlanDocument, "chrome_trace", "plan"))
    if not pipelines:
        raise emit_error("the plan has no pipeline schedule (no role has a 'pipeline' "
                         "block): plan it again with a newer cmx (`cmx plan FILE -o plan.json`)")
    events = [e for p in _processes(pipelines) for e in p.trace_events()]
    head = _dumps({"displayTimeUnit": "ms", "otherData": _other_data(plan, pipelines)})
    body = ",\n".join(_dumps(e) for e in events)
    # Keys stay sorted: "displayTimeUnit" < "otherData" < "traceEvents".
    return f'{head[:-1]},"traceEvents":[\n{body}\n]}}\n'


class ChromeTraceEmitter(Emitter):
    """The planned microbatch pipeline as a Chrome / Perfetto trace (needs ``--plan``)."""

    name = "chrome-trace"
    description = ("Chrome/Perfetto trace JSON of the planned microbatch pipeline "
                   "(chrome://tracing, ui.perfetto.dev)")
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        return chrome_trace(ctx.require_plan(self.name))


EMITTERS: tuple[type[Emitter], ...] = (ChromeTraceEmitter,)
