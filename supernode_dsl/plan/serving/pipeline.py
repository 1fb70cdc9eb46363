"""Microbatch pipelines: a list schedule of a step's ops over a device's streams, and the
stream models of the two ways a platform overlaps microbatches (a part's ``overlap``).

The schedule is deterministic list scheduling.  Every microbatch runs its ops in order
(layer by layer); each stream runs one op at a time, taking work in the order (layer, stage,
microbatch, op).

* ``core_split`` (Ascend): the ops keep the streams the operator list gives them.  Decode
  has an attention and a MoE stream, each holding a share of the matrix cores, so with two
  microbatches the attention of one computes beside the MoE of the other, as in
  CloudMatrix-Infer's decode; in prefill every op is its own stage, so compute (cube),
  vector and copy work of different microbatches overlap.
* ``comm_overlap`` (GPU): :func:`comm_overlap_streams` puts every op that computes or reads
  memory on one compute stream holding every core and every communication op on one
  communication stream; a stage ends wherever a layer switches between the two.  With two
  microbatches the dispatch of one runs while the other computes, and the compute of two
  microbatches never runs at once: DeepSeek's decode on H800, where after the RDMA messages
  are issued "all GPU SMs are freed" for the other microbatch's computation
  (github deepseek-ai/profile-data, README, Decoding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from supernode_dsl.plan.serving.ops import Op

__all__ = ["COMM_STREAM", "COMPUTE_STREAM", "Event", "Schedule", "comm_overlap_streams",
           "is_communication", "schedule", "schedule_step"]

#: The streams of the ``comm_overlap`` model.
COMPUTE_STREAM: Final = "compute"
COMM_STREAM: Final = "comm"


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
    events: list[Event] = []
    step = _list_schedule(layers, microbatches, seconds, events.append)
    return Schedule(tuple(events), step)


def schedule_step(layers: Sequence[tuple[int, Sequence[Op]]], microbatches: int,
                  seconds: Callable[[Op], float]) -> float:
    """The ``step`` of :func:`schedule` (the same float), without making its events: for
    comparing candidate splits, most of which are not kept."""
    return _list_schedule(layers, microbatches, seconds, None)


def _list_schedule(layers: Sequence[tuple[int, Sequence[Op]]], microbatches: int,
                   seconds: Callable[[Op], float],
                   record: Callable[[Event], None] | None) -> float:
    """The list schedule of :func:`schedule`: its step, each event given to ``record``."""
    free: dict[str, float] = {}
    ready = [0.0] * microbatches
    for layer, ops in layers:
        durations = [seconds(o) for o in ops]
        stages = sorted({o.stage for o in ops})
        for stage in stages:
            members = [(o, d) for o, d in zip(ops, durations, strict=True) if o.stage == stage]
            for mb in range(microbatches):
                for op, dur in members:
                    start = max(free.get(op.stream, 0.0), ready[mb])
                    if record is not None:
                        record(Event(op.name, op.stream, mb, layer, start, dur))
                    free[op.stream] = ready[mb] = start + dur
    return max(ready, default=0.0)


def is_communication(op: Op) -> bool:
    """Whether ``op`` only moves data between devices: it has no arithmetic and reads no
    memory, so it holds no core (its time is its transfer and fixed cost)."""
    return not op.ops and not op.hbm_bytes


def comm_overlap_streams(layers: Sequence[tuple[int, Sequence[Op]]]
                         ) -> list[tuple[int, list[Op]]]:
    """``layers`` in the ``comm_overlap`` stream model: computing ops on
    :data:`COMPUTE_STREAM`, communication on :data:`COMM_STREAM`, and in each layer a new
    stage wherever the ops switch between the two (op order kept)."""
    out: list[tuple[int, list[Op]]] = []
    for layer, ops in layers:
        stage = -1
        moved: list[Op] = []
        previous_comm: bool | None = None
        for op in ops:
            comm = is_communication(op)
            if comm is not previous_comm:
                stage, previous_comm = stage + 1, comm
            moved.append(replace(op, stream=COMM_STREAM if comm else COMPUTE_STREAM,
                                 stage=stage))
        out.append((layer, moved))
    return out
