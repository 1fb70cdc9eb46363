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
  communication stream; a stage ends wherever a layer switches between the two, and the
  schedule runs a layer's last stage and the next layer's first as one
  (``across_layers``).  With two microbatches the dispatch of one runs while the other
  computes, a microbatch goes on into its next layer while the other's combine is in
  flight, and the compute of two microbatches never runs at once: DeepSeek's decode on
  H800, where after the RDMA messages are issued "all GPU SMs are freed" for the other
  microbatch's computation (github deepseek-ai/profile-data, README, Decoding).
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


#: One stage of one layer: (layer index, its ops with their durations).
_Block = tuple[int, list[tuple[Op, float]]]


def schedule(layers: Sequence[tuple[int, Sequence[Op]]], microbatches: int,
             seconds: Callable[[Op], float], across_layers: bool = False) -> Schedule:
    """List-schedule ``layers`` (layer index, ops of one microbatch) for ``microbatches``
    equal microbatches; ``seconds`` gives an op's duration.

    Each stream takes its ops in the order (layer, stage, microbatch, op).  With
    ``across_layers`` the last stage of a layer of several stages and the next layer's
    first run as one stage when both are on one and the same stream (``comm_overlap``: the
    computation after a layer's last collective and before the next layer's first), so one
    microbatch goes on into the next layer while another still waits for its collective,
    and the computation of the microbatches alternates between collectives.  A layer of
    one stage (a dense layer in decode) is not merged with its neighbours.  A step-level op
    (``Op.once``) runs once, after every microbatch and stream (:func:`_run_once`); its
    stage is never merged."""
    events: list[Event] = []
    step = _list_schedule(layers, microbatches, seconds, across_layers, events.append)
    return Schedule(tuple(events), step)


def schedule_step(layers: Sequence[tuple[int, Sequence[Op]]], microbatches: int,
                  seconds: Callable[[Op], float], across_layers: bool = False) -> float:
    """The ``step`` of :func:`schedule` (the same float), without making its events: for
    comparing candidate splits, most of which are not kept."""
    return _list_schedule(layers, microbatches, seconds, across_layers, None)


def _list_schedule(layers: Sequence[tuple[int, Sequence[Op]]], microbatches: int,
                   seconds: Callable[[Op], float], across_layers: bool,
                   record: Callable[[Event], None] | None) -> float:
    """The list schedule of :func:`schedule`: its step, each event given to ``record``."""
    free: dict[str, float] = {}
    ready = [0.0] * microbatches
    for block in _blocks(layers, seconds, across_layers):
        for mb in range(microbatches):
            for layer, members in block:
                for op, dur in members:
                    if op.once:
                        if mb == 0:
                            _run_once(op, dur, layer, free, ready, record)
                        continue
                    start = max(free.get(op.stream, 0.0), ready[mb])
                    if record is not None:
                        record(Event(op.name, op.stream, mb, layer, start, dur))
                    free[op.stream] = ready[mb] = start + dur
    return max(ready, default=0.0)


def _blocks(layers: Sequence[tuple[int, Sequence[Op]]], seconds: Callable[[Op], float],
            across_layers: bool) -> list[list[_Block]]:
    """The stages of ``layers`` in order, each a list of (layer, ops) parts: one part, or
    with ``across_layers`` the last stage of a layer of several stages and the next
    layer's first, on one stream."""
    out: list[list[_Block]] = []
    several = False          # whether the previous layer had more than one stage
    for layer, ops in layers:
        durations = [seconds(o) for o in ops]
        stages = sorted({o.stage for o in ops})
        for i, stage in enumerate(stages):
            members = [(o, d) for o, d in zip(ops, durations, strict=True) if o.stage == stage]
            if across_layers and i == 0 and several and _mergeable(out[-1][-1][1], members):
                out[-1].append((layer, members))
            else:
                out.append([(layer, members)])
        several = len(stages) > 1
    return out


def _mergeable(a: list[tuple[Op, float]], b: list[tuple[Op, float]]) -> bool:
    """Whether stages ``a`` and ``b`` of neighbouring layers may run as one: both on one
    and the same stream, neither holding a step-level op."""
    both = a + b
    return len({o.stream for o, _ in both}) == 1 and not any(o.once for o, _ in both)


def _run_once(op: Op, dur: float, layer: int, free: dict[str, float], ready: list[float],
              record: Callable[[Event], None] | None) -> None:
    """Place a step-level op (``op.once``): it waits for every microbatch and every stream,
    holds the whole device (recorded as microbatch 0 on its own stream), and every
    microbatch and stream continues after it."""
    start = max([*free.values(), *ready, 0.0])
    if record is not None:
        record(Event(op.name, op.stream, 0, layer, start, dur))
    end = start + dur
    for stream in free:
        free[stream] = end
    free[op.stream] = end
    ready[:] = [end] * len(ready)


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
