"""Serving plan of one role: the batch it runs, its memory at that batch, its KV capacity,
its pipeline and its performance estimate.

Entry point: :func:`serve_role`.  The batch is the declared ``decode.batch_per_npu`` or
``prefill.tokens_per_npu``, or, when that is 0, the largest that fits in memory and meets
``workload.tpot_slo`` (decode) or ``workload.ttft_slo`` (prefill).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from supernode_dsl.plan.memory import memory_budget
from supernode_dsl.plan.serving.estimate import RoleContext, decode_estimate, prefill_estimate
from supernode_dsl.plan.spec import RoleSpec

__all__ = ["RoleServing", "effective_role", "serve_role"]


@dataclass(frozen=True)
class RoleServing:
    """The outcome for one role: the role spec at the served batch (what memory is checked
    against), and the plan's ``estimate``, ``pipeline`` and ``kv`` blocks."""

    role: RoleSpec
    estimate: dict[str, Any]
    pipeline: dict[str, Any]
    kv: dict[str, Any]


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


def _largest(ok: Any, lo: int, hi: int) -> int:
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


def kv_block(ctx: RoleContext, role: RoleSpec, capacity: float) -> dict[str, Any]:
    """KV capacity of a device at the served batch: HBM minus weights, buffers and
    reserve, and the largest batch it allows at the role's context length."""
    a = ctx.arch
    budget = memory_budget(a, role, capacity)
    per_seq = role.context_len * a.kv_bytes_per_token_layer * a.layers
    out: dict[str, Any] = {
        "context_len": role.context_len,
        "bytes_per_sequence": per_seq,
        "kv_capacity_bytes": budget["kv_cache"] + budget["free"],
        "max_sequences_per_device": int((budget["kv_cache"] + budget["free"]) // per_seq)
        if per_seq else 0,
    }
    out["max_batch_per_npu" if role.name == "decode" else "max_tokens_per_npu"] = \
        max_batch_per_npu(ctx, capacity)
    return out


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
    slo, key = (w.tpot_slo, "tpot_ms") if decode else (w.ttft_slo, "ttft_ms")
    if not slo:
        return limit, "memory"
    step = _unit(ctx)
    estimate = decode_estimate if decode else prefill_estimate

    def meets(k: int) -> bool:
        est, _ = estimate(ctx, k * step)
        return bool(est[key] <= slo * 1e3 + 1e-9)

    best = _largest(meets, 1, limit // step)
    return max(best, 1) * step, f"{key[:4]}_slo" if best >= 1 else "smallest"


def serve_role(ctx: RoleContext, capacity: float) -> RoleServing:
    """Batch, memory, KV, pipeline and estimate of the role of ``ctx``; ``capacity`` is the
    HBM of its smallest device."""
    batch, why = _batch(ctx, capacity)
    if ctx.role.name == "decode":
        estimate, pipeline = decode_estimate(ctx, batch)
        slo, key = ctx.workload.tpot_slo, "tpot"
    else:
        estimate, pipeline = prefill_estimate(ctx, batch)
        slo, key = ctx.workload.ttft_slo, "ttft"
    met = (not slo) or estimate[f"{key}_ms"] <= slo * 1e3 + 1e-9
    estimate = {**estimate, "batch_chosen_by": why, f"meets_{key}_slo": met}
    role = effective_role(ctx, batch)
    return RoleServing(role, estimate, pipeline, kv_block(ctx, role, capacity))
