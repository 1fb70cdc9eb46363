"""The performance estimate of a role: the pipeline schedule of one step on every device
kind, the best microbatch count and core split, and the figures an operator asks for
(tokens/s per NPU, TPOT or TTFT, tokens/s per TFLOPS) with a per-layer breakdown.

Decode: every device runs attention for its own requests (data parallel) and the experts it
holds; all devices meet at dispatch and combine, so a layer lasts as long as its busiest
device (the combine of a less loaded device includes the wait).  Prefill: every device runs
the hybrid attention and its experts; microbatches overlap compute, vector and copy work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from supernode_dsl.contracts import present
from supernode_dsl.plan.document.role import (
    CalibrationUse,
    Candidate,
    DeviceSchedule,
    Estimate,
    LayerEstimate,
    LayerKind,
    Pipeline,
    ScheduleEvent,
)
from supernode_dsl.plan.serving.hardware import DeviceFacts, Route
from supernode_dsl.plan.serving.ops import (
    COLLECTIVES,
    CommPaths,
    LayerShape,
    Op,
    collective_kernel,
    layer_ops,
    moe_messages,
    op_seconds,
    step_ops,
)
from supernode_dsl.plan.serving.params import Workload
from supernode_dsl.plan.serving.pipeline import (
    COMM_STREAM,
    COMPUTE_STREAM,
    Schedule,
    comm_overlap_streams,
    is_communication,
    schedule,
    schedule_step,
)
from supernode_dsl.plan.spec import ModelArch, RoleSpec

if TYPE_CHECKING:  # the calibration fits estimates, so it imports this module
    from supernode_dsl.plan.serving.calibrate import Coverage

__all__ = ["RoleContext", "Split", "decode_context", "decode_estimate", "decode_schedules",
           "kv_load_seconds", "prefill_estimate", "prefill_step"]


@dataclass(frozen=True)
class RoleContext:
    """Everything the estimate of one role reads."""

    arch: ModelArch
    role: RoleSpec
    workload: Workload
    facts: DeviceFacts
    paths: CommPaths
    imbalance: np.ndarray          # busiest routed device's load / mean, per MoE layer
    devices_per_npu: int
    calibration: CalibrationUse | None = None   # the fitted values ``facts`` include
    coverage: Coverage | None = None   # where that calibration's measurements were taken
    #: prefill: the route a device reads reused KV from the caching pool over (None: no
    #: pool, or none reachable)
    pool: Route | None = None

    @property
    def pool_bandwidth(self) -> float:
        """Bytes/s a device reads reused KV from the caching pool at (0: no pool)."""
        return self.pool.effective_bandwidth if self.pool is not None else 0.0

    @property
    def overlap(self) -> str:
        """How microbatches share a device (:attr:`DeviceFacts.overlap_mode`)."""
        return self.facts.overlap_mode

    @property
    def comm_overlap(self) -> bool:
        """Whether :attr:`overlap` is ``comm_overlap`` (one compute stream holding every core
        beside one communication stream)."""
        return self.overlap == "comm_overlap"

    @property
    def mtp(self) -> bool:
        """Whether decode verifies one speculative token per request per step."""
        return self.workload.mtp_accept > 0 and self.arch.mtp_layers > 0

    def assumptions(self) -> list[str]:
        """The facts the estimate needed but the part does not declare (each then costs no
        time, or runs at its peak): what a reader must know before trusting the numbers."""
        f, out = self.facts, []
        formats = {"bf16", *(self.arch.precision.get(p, "bf16") for p in
                             ("attention", "experts", "dense", "gate", "embedding"))}
        out += [f"compute.{fmt} not declared: its operations take no time"
                for fmt in sorted(formats) if not f.peak_of(fmt)]
        if not f.hbm_bw:
            out.append("hbm_bw not declared: memory traffic takes no time")
        planes = sorted({r.plane for r, _ in self.paths.routes})
        out += [f"efficiency.{name} not declared: 1 (the peak)"
                for name in ("gemm", "attention", "memory", *planes)
                if name not in f.efficiency and not f.curve(name)]
        out += [f"efficiency.{name} has one point (M {points[0][0]:g}): used at every "
                "shape" for name in ("gemm", "attention")
                if len(points := f.curve(name)) == 1]
        if not f.overlap:
            out.append("overlap not declared: comm_overlap (one microbatch computes at a "
                       "time while another communicates)")
        if "op" not in f.overhead:
            out += [f"overhead.{kind} not declared: {kind} operators cost no fixed time"
                    for kind in ("gemm", "attention", "vector") if kind not in f.overhead]
        if not self.workload.host_declared:
            out.append("workload.host_time not declared: no host time per step (scheduling, "
                       "sampling launch)")
        if self.role.name == "prefill" and self.workload.prefix_reuse and \
                not self.pool_bandwidth:
            out.append(f"cache.prefix_reuse {self.workload.prefix_reuse:g} with no caching "
                       "pool reachable: the reused KV loads in no time")
        if self.role.name == "prefill":
            out.append(f"every prompt {self.workload.prompt_len} tokens (workload.prompt_len): "
                       "causal attention grows with the square of a prompt's length, so "
                       "prompts of spread lengths cost more than prompts of their mean")
        return out + self._collective_assumptions()

    def _collective_assumptions(self) -> list[str]:
        """The collectives whose fixed time the part does not measure, each charged one
        path latency (the value said, so a latency of 0 declared for want of a source is
        seen): the MoE kernels, and prefill's attention collectives over its TP group."""
        prefill = self.role.name == "prefill"
        latency = f"{self.paths.latency * 1e6:.3g} us"
        out = [f"overhead.{name} not declared: one path latency ({latency}) per {name}"
               for name in (collective_kernel(c, prefill) for c in COLLECTIVES)
               if name not in self.facts.overhead]
        tp = self.workload.prefill_attention_tp
        if prefill and tp > 1:
            names = sorted({m.name for m in self.arch.attention.tp_messages(1.0, tp)})
            out += [f"attention {name} over {tp} devices: no measured fixed time, one path "
                    f"latency ({latency}) each" for name in names]
        return out

    @property
    def npu_tflops(self) -> float:
        """Peak of the experts' number format per accelerator, in TFLOPS (the paper's
        normaliser for tokens/s per TFLOPS)."""
        fmt = self.arch.precision.get("experts", "bf16")
        return self.facts.peak_of(fmt) * self.devices_per_npu / 1e12


@dataclass(frozen=True)
class Split:
    """A pipeline configuration: microbatches and the matrix cores of the first stream."""

    microbatches: int
    first_cores: int     # cores of the attention (decode) stream; 0: every stream gets all


@dataclass(frozen=True)
class _Kind:
    """A device kind of a role and the work of one of its microbatches."""

    name: str
    shape: LayerShape


def _imb(ctx: RoleContext, layer: int) -> float:
    if ctx.workload.perfect_balance or not ctx.arch.is_moe(layer):
        return 1.0
    idx = min(ctx.arch.moe_index(layer), len(ctx.imbalance) - 1)
    return float(ctx.imbalance[idx])


def _kinds(ctx: RoleContext, tokens: float, requests: float, context: float,
           imbalance: float, microbatches: int) -> list[_Kind]:
    a, r = ctx.arch, ctx.role
    m = moe_messages(a, r.ep, r.routed_devices, r.routed_slots, r.shared_devices, tokens,
                     imbalance)
    prefill = r.name == "prefill"
    shared_local = tokens * a.shared_experts if r.shared_slots else 0.0
    base = LayerShape(tokens, requests, context, m.pairs, r.routed_slots, shared_local, m.send,
                      m.recv, prefill, ctx.workload.prefill_attention_tp if prefill else 1,
                      microbatches)
    kinds = [_Kind("routed-expert die" if r.shared_devices else "EP device", base)]
    if r.shared_devices:
        kinds.append(_Kind("shared-expert die", replace(
            base, routed_tokens=0.0, routed_experts_held=0, shared_tokens=m.shared_recv,
            recv_tokens=m.shared_recv)))
    return kinds


def _shares(ctx: RoleContext, split: Split) -> dict[str, float]:
    """The share of the cores each stream holds (a stream not named: all of them)."""
    _, total = ctx.facts.matrix_cores
    if split.microbatches < 2:
        return {}
    if ctx.comm_overlap:
        comm = ctx.workload.comm_cores(ctx.role.name)
        return {COMPUTE_STREAM: 1 - comm / total} if comm else {}
    if not split.first_cores:
        return {}
    f = split.first_cores / total
    return {"attention": f, "moe": 1 - f}


def _layer_list(ctx: RoleContext, kind_of: dict[int, _Kind]) -> list[tuple[int, list[Op]]]:
    """The ops of every layer, then the step's (MTP module, head), for one device kind;
    ``kind_of[arch.layers]`` is the MTP module's work."""
    a = ctx.arch
    built: dict[tuple[bool, LayerShape], list[Op]] = {}   # equal layers share one list

    def ops_of(i: int) -> list[Op]:
        key = (a.is_moe(i), kind_of[i].shape)
        if key not in built:
            built[key] = layer_ops(a, i, kind_of[i].shape, ctx.paths)
        return built[key]

    layers: list[tuple[int, list[Op]]] = [(i, ops_of(i)) for i in range(a.layers)]
    mtp = kind_of[a.layers].shape
    return layers + step_ops(a, mtp, ctx.mtp and ctx.role.name == "decode", ctx.paths, mtp)


def _with_waits(per_kind: list[list[tuple[int, list[Op]]]], seconds: list[dict[int, float]]
                ) -> list[list[tuple[int, list[Op]]]]:
    """Add to each device kind's combine the time it waits for the slowest kind's experts."""
    out = []
    for k, layers in enumerate(per_kind):
        patched = []
        for layer, ops in layers:
            slowest = max(s.get(layer, 0.0) for s in seconds)
            wait = slowest - seconds[k].get(layer, 0.0)
            patched.append((layer, [replace(o, comm_s=o.comm_s + wait)
                                    if o.name == "combine" and wait > 0 else o for o in ops]))
        out.append(patched)
    return out


#: One step's work per device kind: (kind name, (layer, ops) in order), and op durations.
_Work = tuple[list[tuple[str, list[tuple[int, list[Op]]]]], Callable[[Op], float]]


def _simulate(ctx: RoleContext, split: Split, tokens: float, requests: float,
              context: float) -> list[tuple[str, Schedule]]:
    """The schedule of one step on every device kind for ``split``."""
    kinds, secs = _work(ctx, split, tokens, requests, context)
    return [(name, schedule(layers, split.microbatches, secs, across_layers=ctx.comm_overlap))
            for name, layers in kinds]


def _step(ctx: RoleContext, split: Split, tokens: float, requests: float,
          context: float) -> float:
    """The step of :func:`_simulate` (the slowest device kind's), without its events."""
    kinds, secs = _work(ctx, split, tokens, requests, context)
    return max(schedule_step(layers, split.microbatches, secs, across_layers=ctx.comm_overlap)
               for _, layers in kinds)


def _work(ctx: RoleContext, split: Split, tokens: float, requests: float,
          context: float) -> _Work:
    """What one step under ``split`` runs on every device kind, and how long each op takes."""
    m = split.microbatches
    shares = _shares(ctx, split)
    # the device kinds of every layer (index arch.layers: the MTP module, loaded as the last)
    kinds = [_kinds(ctx, tokens / m, requests / m, context,
                    _imb(ctx, min(i, ctx.arch.layers - 1)), m)
             for i in range(ctx.arch.layers + 1)]
    names = [k.name for k in kinds[0]]
    per_kind = [_layer_list(ctx, {i: layer[k] for i, layer in enumerate(kinds)})
                for k in range(len(names))]

    known: dict[Op, float] = {}   # layers of one kind repeat the same ops
    overlap = ctx.comm_overlap

    def secs(op: Op) -> float:
        found = known.get(op)
        if found is None:
            if op.once:
                share = 1.0   # a step-level op holds every core
            else:
                stream = COMPUTE_STREAM if overlap and not is_communication(op) else op.stream
                share = shares.get(stream, 1.0)
            found = known[op] = op_seconds(op, ctx.facts, share)
        return found

    expert_s = [{layer: sum(secs(o) for o in ops if o.name == "experts")
                 for layer, ops in layers} for layers in per_kind]
    patched = _with_waits(per_kind, expert_s)
    if overlap:
        patched = [comm_overlap_streams(layers) for layers in patched]
    return list(zip(names, patched, strict=True)), secs


def _candidates(ctx: RoleContext) -> list[Split]:
    fixed = ctx.workload.decode_microbatches if ctx.role.name == "decode" \
        else ctx.workload.prefill_microbatches
    if ctx.role.name == "prefill":
        counts = [fixed] if fixed else [1, 2, 4]
        return [Split(m, 0) for m in counts]
    counts = [fixed] if fixed else [1, 2, 3]
    if ctx.comm_overlap:
        return [Split(m, 0) for m in counts]
    _, total = ctx.facts.matrix_cores
    step = max(1, total // 12)
    out = []
    for m in counts:
        if m == 1:
            out.append(Split(1, 0))
        else:
            out.extend(Split(m, c) for c in range(step, total - step + 1, step))
    return out


def best_pipeline(ctx: RoleContext, tokens: float, requests: float, context: float
                  ) -> tuple[Split, list[tuple[str, Schedule]], dict[Split, float]]:
    """The split with the shortest step (ties: fewer microbatches, then fewer first-stream
    cores), its schedules, and the step of every candidate (s)."""
    chosen, steps = _best_split(ctx, tokens, requests, context)
    return chosen, _simulate(ctx, chosen, tokens, requests, context), steps


def _best_split(ctx: RoleContext, tokens: float, requests: float, context: float
                ) -> tuple[Split, dict[Split, float]]:
    """The split of :func:`best_pipeline` and the step of every candidate (s), without
    scheduling any events."""
    steps: dict[Split, float] = {}
    best: tuple[float, Split] | None = None
    for split in _candidates(ctx):
        step = _step(ctx, split, tokens, requests, context)
        steps[split] = step
        if best is None or step < best[0] * (1 - 1e-9):
            best = (step, split)
    return present(best, "the best core split")[1], steps


def _split_cores(ctx: RoleContext, split: Split) -> dict[str, dict[str, int]]:
    cores = dict(ctx.facts.cores)
    _, total = ctx.facts.matrix_cores
    if ctx.comm_overlap:
        family, _ = ctx.facts.matrix_cores
        comm = ctx.workload.comm_cores(ctx.role.name) if split.microbatches > 1 else 0
        if not comm:
            return {COMPUTE_STREAM: cores, COMM_STREAM: {}}
        return {COMPUTE_STREAM: {**cores, family: cores[family] - comm},
                COMM_STREAM: {family: comm}}
    if ctx.role.name == "prefill":
        families = list(cores.items())
        out: dict[str, dict[str, int]] = {"cube": dict(families[:1])}
        out["vector"] = dict(families[1:2])
        out["copy"] = {}
        return out
    if split.microbatches < 2 or not split.first_cores:
        return {"attention": cores, "moe": cores}
    first = {k: v * split.first_cores // total for k, v in cores.items()}
    return {"attention": first, "moe": {k: v - first[k] for k, v in cores.items()}}


def _us(x: float) -> float:
    """Seconds in microseconds (the plan rounds them to 1 ns when written)."""
    return x * 1e6


def pipeline_block(ctx: RoleContext, split: Split, scheds: list[tuple[str, Schedule]],
                   steps: dict[Split, float]) -> Pipeline:
    """The plan's ``pipeline`` block for the chosen split."""
    step = max(s.step for _, s in scheds)
    single = next((v for k, v in steps.items() if k.microbatches == 1), step)
    return Pipeline(
        microbatches=split.microbatches,
        split=_split_cores(ctx, split),
        step_us=_us(step),
        no_overlap_us=_us(single),
        speedup=single / step if step else 1.0,
        candidates=tuple(Candidate(k.microbatches, _split_cores(ctx, k), _us(v))
                         for k, v in steps.items()),
        schedule=tuple(DeviceSchedule(device_kind=name, step_us=_us(s.step), events=tuple(
            ScheduleEvent(e.name, e.stream, e.microbatch, e.layer, _us(e.start),
                          _us(e.duration)) for e in s.events))
            for name, s in scheds),
    )


def per_layer(ctx: RoleContext, scheds: Sequence[tuple[str, Schedule]]
              ) -> tuple[LayerEstimate, ...]:
    """Per layer of the slowest device kind: its span in the step and each op's time
    (summed over microbatches), in microseconds."""
    _, sched = max(scheds, key=lambda kv: kv[1].step)
    ops: dict[int, dict[str, float]] = {}
    for e in sched.events:
        row = ops.setdefault(e.layer, {})
        row[e.name] = row.get(e.name, 0.0) + e.duration
    out = []
    for layer, span in sched.layer_spans().items():
        kind: LayerKind = "head" if layer < 0 else "mtp" if layer >= ctx.arch.layers else \
            "moe" if ctx.arch.is_moe(layer) else "dense"
        out.append(LayerEstimate(layer, kind, _us(span),
                                 {k: _us(v) for k, v in ops[layer].items()}))
    return tuple(out)


def _figures(ctx: RoleContext, step: float, tput: float,
             scheds: Sequence[tuple[str, Schedule]], split: Split,
             batch: int | None = None) -> dict[str, Any]:
    """The estimate's entries every role has (keyword arguments of :class:`Estimate`);
    ``batch``: decode's requests per accelerator (None for prefill)."""
    host = ctx.workload.host_time
    return {
        "step_ms": step * 1e3,
        "host_ms": host * 1e3 if host else None,
        "tokens_per_s_per_npu": tput,
        "tokens_per_s_per_tflops": tput / ctx.npu_tflops if ctx.npu_tflops else 0.0,
        "assumptions": tuple(ctx.assumptions()),
        "per_layer": per_layer(ctx, scheds),
        "calibration": _calibration_use(ctx, split, batch),
    }


def _calibration_use(ctx: RoleContext, split: Split, batch: int | None
                     ) -> CalibrationUse | None:
    """The role's calibration, with the conditions of this estimate that its measurements
    did not cover (:meth:`Coverage.outside`)."""
    use, cov = ctx.calibration, ctx.coverage
    if use is None or cov is None:
        return use
    outside = cov.outside(ctx.role.name, batch, split.microbatches, ctx.mtp)
    return replace(use, outside=outside) if outside else use


def decode_schedules(ctx: RoleContext, batch_per_npu: int, split: Split
                     ) -> list[tuple[str, Schedule]]:
    """The schedules of one decode step at ``batch_per_npu`` requests per accelerator
    under ``split`` (what a layer-level measurement taken with that split is compared
    with)."""
    requests = batch_per_npu / ctx.devices_per_npu
    per_request = 1 + (ctx.arch.mtp_layers if ctx.mtp else 0)
    return _simulate(ctx, split, requests * per_request, requests, decode_context(ctx))


def decode_context(ctx: RoleContext) -> float:
    """The keys a decode token attends to, averaged over a request's life: its prompt
    (``context_len``) and half the tokens it generates (``workload.output_len``)."""
    return ctx.role.context_len + ctx.workload.output_len / 2


def decode_estimate(ctx: RoleContext, batch_per_npu: int) -> tuple[Estimate, Pipeline]:
    """(estimate, pipeline) of decode at ``batch_per_npu`` requests per accelerator."""
    requests = batch_per_npu / ctx.devices_per_npu
    per_request = 1 + (ctx.arch.mtp_layers if ctx.mtp else 0)
    accepted = 1 + (ctx.workload.mtp_accept * ctx.arch.mtp_layers if ctx.mtp else 0)
    split, scheds, steps = best_pipeline(ctx, requests * per_request, requests,
                                         decode_context(ctx))
    step = max(s.step for _, s in scheds) + ctx.workload.host_time
    tpot = step / accepted
    tput = batch_per_npu / tpot if tpot else 0.0
    est = Estimate(
        batch_per_npu=batch_per_npu,
        requests_per_device=requests,
        tokens_per_device_per_step=requests * per_request,
        accepted_tokens_per_step=accepted,
        tpot_ms=tpot * 1e3,
        **_figures(ctx, step, tput, scheds, split, batch_per_npu),
    )
    return est, pipeline_block(ctx, split, scheds, steps)


def prefill_estimate(ctx: RoleContext, per_npu: int) -> tuple[Estimate, Pipeline]:
    """(estimate, pipeline) of one prefill pass of ``per_npu`` prompt tokens per
    accelerator."""
    prompts, reused, new_per_prompt = _prefill_prompts(ctx, per_npu)
    split, scheds, steps = best_pipeline(ctx, prompts * new_per_prompt, prompts, reused)
    load = kv_load_seconds(ctx, prompts, reused)
    step = _pass_seconds(ctx, max(s.step for _, s in scheds), load)
    tput = per_npu / step if step else 0.0
    est = Estimate(
        tokens_per_npu=per_npu,
        prompts_per_device=prompts,
        prefix_reused_tokens=reused,
        kv_load_ms=load * 1e3 if reused else None,
        ttft_ms=step * 1e3,
        **_figures(ctx, step, tput, scheds, split),
    )
    return est, pipeline_block(ctx, split, scheds, steps)


def _prefill_prompts(ctx: RoleContext, per_npu: int) -> tuple[float, int, int]:
    """(prompts per device, reused prefix tokens and newly computed tokens per prompt) of a
    prefill pass of ``per_npu`` prompt tokens per accelerator."""
    w = ctx.workload
    reused = round(w.prompt_len * w.prefix_reuse)
    return per_npu / ctx.devices_per_npu / w.prompt_len, reused, w.prompt_len - reused


def prefill_step(ctx: RoleContext, per_npu: int) -> tuple[float, float, int]:
    """(``step_ms``, ``prompts_per_device``, ``prefix_reused_tokens``) of
    :func:`prefill_estimate` (the same floats), without its schedules and per-layer table:
    for tables that compare many prefill passes by their time alone."""
    prompts, reused, new_per_prompt = _prefill_prompts(ctx, per_npu)
    split, steps = _best_split(ctx, prompts * new_per_prompt, prompts, reused)
    step = _pass_seconds(ctx, steps[split], kv_load_seconds(ctx, prompts, reused))
    return step * 1e3, prompts, reused


def _pass_seconds(ctx: RoleContext, scheduled: float, load: float) -> float:
    """A prefill pass: its schedule's ``scheduled`` seconds, then the host time and the
    ``load`` of the reused KV (:func:`kv_load_seconds`), neither overlapped with it."""
    return scheduled + ctx.workload.host_time + load


def kv_load_seconds(ctx: RoleContext, prompts: float, reused: int) -> float:
    """Seconds a prefill device spends reading the KV of its ``prompts`` x ``reused``
    prefix tokens from the caching pool, before its pass computes the rest (not
    overlapped with it): every layer's KV per token at :attr:`RoleContext.pool_bandwidth`;
    0 without a reachable pool (an assumption the estimate lists)."""
    if not reused or not ctx.pool_bandwidth:
        return 0.0
    per_token = ctx.arch.kv_bytes_per_token_layer * ctx.arch.layers
    return prompts * reused * per_token / ctx.pool_bandwidth
