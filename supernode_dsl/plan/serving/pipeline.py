"""Microbatch pipelines: a list schedule of a step's ops over a device's streams, and the
search for the microbatch count and core split that make the step shortest.

The schedule is deterministic list scheduling.  Every microbatch runs its ops in order
(layer by layer); each stream runs one op at a time, taking work in the order (layer, stage,
microbatch, op), so with two microbatches the attention of one overlaps the MoE of the other,
as in CloudMatrix-Infer's decode; in prefill every op is its own stage, so compute, vector
and copy work of different microbatches overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from supernode_dsl.plan.serving.ops import Op

__all__ = ["Event", "Schedule", "schedule"]


@dataclass(frozen=True)
class Event:
    """One op of one microbatch placed in time (seconds from the start of the step)."""

    name: str
    stream: str
    microbatch: int
    layer: int
    start: float
    duration: float

    @property
    def end(self) -> float:
        """When the op finishes."""
        return self.start + self.duration


@dataclass(frozen=True)
class Schedule:
    """The events of one step and its length (s)."""

    events: tuple[Event, ...]
    step: float

    def layer_spans(self) -> dict[int, float]:
        """Per layer (in execution order), the time from the end of the previous layer's
        last event to the end of this layer's: the spans add up to the step."""
        ends: dict[int, float] = {}
        for e in self.events:
            ends[e.layer] = max(ends.get(e.layer, 0.0), e.end)
        out: dict[int, float] = {}
        previous = 0.0
        for layer, end in ends.items():
            out[layer] = max(0.0, end - previous)
            previous = max(previous, end)
        return out


def schedule(layers: Sequence[tuple[int, Sequence[Op]]], microbatches: int,
             seconds: Callable[[Op], float]) -> Schedule:
    """List-schedule ``layers`` (layer index, ops of one microbatch) for ``microbatches``
    equal microbatches; ``seconds`` gives an op's duration."""
    free: dict[str, float] = {}
    ready = [0.0] * microbatches
    events: list[Event] = []
    for layer, ops in layers:
        durations = [seconds(o) for o in ops]
        stages = sorted({o.stage for o in ops})
        for stage in stages:
            members = [(o, d) for o, d in zip(ops, durations, strict=True) if o.stage == stage]
            for mb in range(microbatches):
                for op, dur in members:
                    start = max(free.get(op.stream, 0.0), ready[mb])
                    events.append(Event(op.name, op.stream, mb, layer, start, dur))
                    free[op.stream] = ready[mb] = start + dur
    return Schedule(tuple(events), max(ready, default=0.0))
