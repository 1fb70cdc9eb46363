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
import math
from collections.abc import Mapping, Sequence
from typing import Any

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error

__all__ = ["EMITTERS", "ChromeTraceEmitter", "chrome_trace"]

GENERATOR = "supernode-dsl"
_SEPARATOR = " · "  # between the role and the device kind in a process name
_ROLE_SUMMARY = ("microbatches", "split", "step_us", "speedup")


# ---- reading the plan ------------------------------------------------------------------------

def _pipelines(plan: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(role, pipeline)`` of every role that has a pipeline block, roles sorted by name."""
    roles = plan.get("roles")
    if not isinstance(roles, Mapping):
        raise emit_error("the plan has no 'roles' object: is it a plan from `cmx plan`?")
    found: list[tuple[str, Mapping[str, Any]]] = []
    for name in sorted(roles):
        entry = roles[name]
        pipeline = entry.get("pipeline") if isinstance(entry, Mapping) else None
        if pipeline is None:
            continue
        if not isinstance(pipeline, Mapping):
            raise emit_error(f"role '{name}': 'pipeline' is not an object")
        found.append((str(name), pipeline))
    return found


def _field(obj: Any, key: str, where: str) -> Any:
    """``obj[key]``, or E026 naming ``where`` when ``obj`` is no object or lacks ``key``."""
    if not isinstance(obj, Mapping) or key not in obj:
        raise emit_error(f"{where}: missing '{key}'")
    return obj[key]


def _number(obj: Any, key: str, where: str, minimum: float | None = None) -> float:
    """A finite number field (at least ``minimum`` if given), as a float."""
    value = _field(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = f" of at least {minimum:g}" if minimum is not None else ""
        raise emit_error(f"{where}: '{key}' = {value!r} is not a finite number{bound}")
    return float(value)


def _integer(obj: Any, key: str, where: str) -> int:
    """An integer field (booleans are not integers here)."""
    value = _field(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise emit_error(f"{where}: '{key}' = {value!r} is not an integer")
    return value


def _text(obj: Any, key: str, where: str) -> str:
    """A string field."""
    value = _field(obj, key, where)
    if not isinstance(value, str):
        raise emit_error(f"{where}: '{key}' = {value!r} is not a string")
    return value


def _sequence(obj: Any, key: str, where: str) -> Sequence[Any]:
    """A list field."""
    value = _field(obj, key, where)
    if not isinstance(value, list | tuple):
        raise emit_error(f"{where}: '{key}' is not a list")
    return value


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

    def add(self, event: Any, where: str) -> None:
        """Add one schedule event as a complete (``"X"``) event on its stream's thread."""
        stream = _text(event, "stream", where)
        tid = self.tids.setdefault(stream, len(self.tids) + 1)
        self.events.append({
            "ph": "X", "pid": self.pid, "tid": tid, "cat": self.role,
            "name": _text(event, "name", where),
            "ts": _number(event, "start_us", where),
            "dur": _number(event, "dur_us", where, minimum=0.0),
            "args": {"layer": _integer(event, "layer", where),
                     "microbatch": _integer(event, "microbatch", where)},
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


def _processes(pipelines: list[tuple[str, Mapping[str, Any]]]) -> list[_Process]:
    """One :class:`_Process` per (role, device kind), pids 1, 2, ... in role order and, within
    a role, device kinds in order of first appearance."""
    found: dict[tuple[str, str], _Process] = {}
    for role, pipeline in pipelines:
        where = f"role '{role}' pipeline"
        for i, block in enumerate(_sequence(pipeline, "schedule", where)):
            at = f"{where} schedule[{i}]"
            kind = _text(block, "device_kind", at)
            process = found.setdefault((role, kind), _Process(role, kind, len(found) + 1))
            for j, event in enumerate(_sequence(block, "events", at)):
                process.add(event, f"{at} events[{j}]")
    return list(found.values())


def _other_data(plan: Mapping[str, Any],
                pipelines: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The trace's ``otherData``: generator, the plan's source file and deployment, and per
    role the chosen microbatch count, split, step time and speedup."""
    data: dict[str, Any] = {"generator": GENERATOR}
    source = plan.get("source")
    if isinstance(source, Mapping):
        data.update({k: source[k] for k in ("file", "deployment") if source.get(k) is not None})
    data["roles"] = {role: {k: pipeline[k] for k in _ROLE_SUMMARY if k in pipeline}
                     for role, pipeline in pipelines}
    return data


def _dumps(value: Any) -> str:
    """Compact, key-sorted JSON; NaN and infinities are refused."""
    return json.dumps(value, indent=None, separators=(",", ":"), sort_keys=True,
                      allow_nan=False)


def chrome_trace(plan: Mapping[str, Any]) -> str:
    """The Chrome Trace Event Format (JSON object form) of the pipeline schedules of
    ``plan``'s roles: deterministic text, one trace event per line, ending with a newline.

    Raises an E026 :class:`~supernode_dsl.diagnostics.CmxError` when no role has a
    ``pipeline`` block, or when a schedule event lacks a field or has one of a wrong type.
    """
    pipelines = _pipelines(plan)
    if not pipelines:
        raise emit_error("the plan has no pipeline schedule (no role has a 'pipeline' "
                         "block): plan it again with a newer cmx (`cmx plan FILE -o plan.json`)")
    events = [e for p in _processes(pipelines) for e in p.trace_events()]
    try:
        head = _dumps({"displayTimeUnit": "ms", "otherData": _other_data(plan, pipelines)})
    except (TypeError, ValueError) as err:
        raise emit_error(f"the plan's pipeline summary is not plain JSON: {err}") from None
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
