"""Serving plan of one role: the batch it runs, its memory at that batch, its KV capacity,
its pipeline and its performance estimate.

Entry point: :func:`serve_role`.  The batch is the declared ``decode.batch_per_npu`` or
``prefill.tokens_per_npu``, or, when that is 0, the largest that fits in memory and meets
``workload.tpot_slo`` (decode) or ``workload.ttft_slo`` (prefill).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from supernode_dsl.contracts import present
from supernode_dsl.plan.document.role import Estimate, Kv, Pipeline
from supernode_dsl.plan.memory import memory_budget
from supernode_dsl.plan.serving.estimate import RoleContext, decode_estimate, prefill_estimate
from supernode_dsl.plan.spec import RoleSpec

__all__ = ["RoleServing", "effective_role", "serve_role"]


@dataclass(frozen=True)
class RoleServing:
    """The outcome for one role: the role spec at the served batch (what memory is checked
    against), and the plan's ``estimate``, ``pipeline`` and ``kv`` blocks."""

    role: RoleSpec
    estimate: Estimate
    pipeline: Pipeline
    kv: Kv


def effective_role(ctx: RoleContext, batch_per_npu: int) -> RoleSpec:
    """The role with the sequences and tokens per device that a batch implies: decode at
    ``batch_per_npu`` requests per accelerator, prefill at ``batch_per_npu`` prompt tokens
    per accelerator."""
    r, w = ctx.role, ctx.workload
    if r.name == "decode":
        seqs = math.ceil(batch_per_npu / ctx.devices_per_npu)
        per_request = 1 + (ctx.arch.mtp_layers if ctx.mtp else 0)
        return replace(r, sequences_per_device=seqs, batch_per_device=seqs * per_request)
    tokens = batch_per_npu / ctx.devices_per_npu
    return replace(r, sequences_per_device=math.ceil(tokens / w.prompt_len))


def _fits(ctx: RoleContext, capacity: float, batch_per_npu: int) -> bool:
    return memory_budget(ctx.arch, effective_role(ctx, batch_per_npu), capacity)["free"] >= 0


def _largest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest n in [lo, hi] with ok(n), for a monotone ok (true then false); lo - 1
    if none."""
    if hi < lo or not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _unit(ctx: RoleContext) -> int:
    """The step of a role's batch per accelerator: a request per device (decode) or a
    prompt per device (prefill)."""
    per_device = 1 if ctx.role.name == "decode" else ctx.workload.prompt_len
    return per_device * ctx.devices_per_npu


def max_batch_per_npu(ctx: RoleContext, capacity: float) -> int:
    """The largest batch per accelerator (decode: requests; prefill: prompt tokens) whose
    memory fits, in whole requests or prompts per device."""
    step = _unit(ctx)
    n = _largest(lambda k: _fits(ctx, capacity, k * step), 1, 1 << 16)
    return max(0, n) * step


def kv_block(ctx: RoleContext, role: RoleSpec, capacity: float) -> Kv:
    """KV capacity of a device at the served batch: HBM minus weights, buffers and
    reserve, and the largest batch it allows at the role's context length."""
    a = ctx.arch
    budget = memory_budget(a, role, capacity)
    per_seq = role.context_len * a.kv_bytes_per_token_layer * a.layers
    capacity_bytes = budget["kv_cache"] + budget["free"]
    most = max_batch_per_npu(ctx, capacity)
    decode = role.name == "decode"
    return Kv(context_len=role.context_len, bytes_per_sequence=per_seq,
              kv_capacity_bytes=capacity_bytes,
              max_sequences_per_device=int(capacity_bytes // per_seq) if per_seq else 0,
              max_batch_per_npu=most if decode else None,
              max_tokens_per_npu=None if decode else most)


def _batch(ctx: RoleContext, capacity: float) -> tuple[int, str]:
    """The role's batch per accelerator and why: declared, or (when declared 0) the largest
    that fits in memory and meets the role's latency target (decode: TPOT, prefill: TTFT;
    both grow with the batch, so a bisection finds it)."""
    decode = ctx.role.name == "decode"
    w = ctx.workload
    declared = w.decode_batch_per_npu if decode else w.prefill_tokens_per_npu
    if declared > 0:
        return declared, "declared"
    if declared < 0:
        per_device = ctx.role.sequences_per_device * (1 if decode else w.prompt_len)
        return per_device * ctx.devices_per_npu, "declared"
    limit = max_batch_per_npu(ctx, capacity)
    slo = w.tpot_slo if decode else w.ttft_slo
    if not slo:
        return limit, "memory"
    step = _unit(ctx)

    def meets(k: int) -> bool:
        return _meets(_estimate(ctx, k * step)[0], slo)

    best = _largest(meets, 1, limit // step)
    return max(best, 1) * step, f"{_latency(ctx)}_slo" if best >= 1 else "smallest"


def _latency(ctx: RoleContext) -> str:
    """The latency a role's target bounds: TPOT (decode) or TTFT (prefill)."""
    return "tpot" if ctx.role.name == "decode" else "ttft"


def _estimate(ctx: RoleContext, batch: int) -> tuple[Estimate, Pipeline]:
    return decode_estimate(ctx, batch) if ctx.role.name == "decode" \
        else prefill_estimate(ctx, batch)


def _meets(est: Estimate, slo: float) -> bool:
    """Whether the estimate's TPOT (decode) or TTFT (prefill) is within ``slo`` seconds."""
    latency = present(est.tpot_ms if est.tpot_ms is not None else est.ttft_ms,
                      "the estimate's latency")
    return (not slo) or latency <= slo * 1e3 + 1e-9


def serve_role(ctx: RoleContext, capacity: float) -> RoleServing:
    """Batch, memory, KV, pipeline and estimate of the role of ``ctx``; ``capacity`` is the
    HBM of its smallest device."""
    batch, why = _batch(ctx, capacity)
    estimate, pipeline = _estimate(ctx, batch)
    if ctx.role.name == "decode":
        met = _meets(estimate, ctx.workload.tpot_slo)
        estimate = replace(estimate, batch_chosen_by=why, meets_tpot_slo=met)
    else:
        met = _meets(estimate, ctx.workload.ttft_slo)
        estimate = replace(estimate, batch_chosen_by=why, meets_ttft_slo=met)
    role = effective_role(ctx, batch)
    return RoleServing(role, estimate, pipeline, kv_block(ctx, role, capacity))
