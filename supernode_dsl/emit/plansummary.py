"""The few lines `cmx plan` prints about the plan it wrote: per role its size, batch,
latency and throughput, the pipeline it chose, and the role split."""

from __future__ import annotations

from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import Pipeline, RolePlan

__all__ = ["migration_summary", "plan_summary"]


def _split(pipe: Pipeline) -> str:
    parts = [f"{stream} {'+'.join(f'{n} {k}' for k, n in cores.items())}"
             for stream, cores in pipe.split.items() if cores]
    # a part that declares no core counts has an empty split: say so, not "; "
    return f"{pipe.microbatches} microbatch(es); " + (", ".join(parts) or "no core split")


def _role(name: str, role: RolePlan) -> str:
    head = f"{name}: {role.instances} x {role.npus_per_instance} NPUs, EP{role.ep}"
    est, pipe = role.estimate, role.pipeline
    if est is None or pipe is None:
        return head
    if est.tpot_ms is not None:
        latency, met = "TPOT", est.meets_tpot_slo
        figures = f"batch {est.batch_per_npu}/NPU, TPOT {est.tpot_ms:,.1f} ms"
    else:
        latency, met = "TTFT", est.meets_ttft_slo
        figures = f"{est.tokens_per_npu:,} tokens/NPU, TTFT {est.ttft_ms or 0.0:,.1f} ms"
    if met is False:
        figures += f" (misses the {latency} target)"
    figures += f", {est.tokens_per_s_per_npu:,.0f} tokens/s per NPU"
    cal = est.calibration
    if cal is not None:
        figures += f" \u00b1{cal.band:.0%} (calibration {cal.name}: " \
            f"{', '.join(sorted(cal.fitted))} fitted; every other term a declared fact" \
            + (f"; outside its measurements, band unknown: {'; '.join(cal.outside)})"
               if cal.outside else ")")
    else:
        figures += " (uncalibrated: declared facts only)"
    return f"{head}: {figures} ({_split(pipe)})"


def _balance(plan: PlanDocument) -> list[str]:
    """Which balance the estimate assumed, and the placement's balance per role."""
    worst = ", ".join(f"{name} {role.balance.max_over_mean:.2f}"
                      for name, role in sorted(plan.roles.items()))
    loads = plan.source.expert_loads
    given = f"the loads of {loads}" if loads else "equal loads"
    if plan.serving is None:
        return []
    if plan.serving.workload.perfect_balance:
        return [f"  balance: the estimate assumes perfectly balanced devices (placement on "
                f"{given}: busiest/mean device {worst})"]
    return [f"  balance: the estimate uses the placement's balance on {given} "
            f"(busiest/mean device {worst})"]


def migration_summary(plan: PlanDocument, previous: PlanDocument) -> list[str]:
    """What a re-plan moved, per role: experts and bytes, and the balance before and
    after (the largest busiest/mean device load of any MoE layer)."""
    lines = []
    for name, role in sorted(plan.roles.items()):
        moved, before = role.migration, previous.roles.get(name)
        if moved is None or before is None:
            continue
        lines.append(f"  {name}: moved {moved.moved_experts:,} expert replicas "
                     f"({moved.moved_bytes / 1e9:,.2f} GB; planning afresh would move "
                     f"{moved.from_scratch_moved_experts:,}); busiest/mean device "
                     f"{before.balance.max_over_mean:.3f} before, "
                     f"{role.balance.max_over_mean:.3f} after")
    return ["re-plan from the previous plan:", *lines] if lines else []


def plan_summary(plan: PlanDocument) -> list[str]:
    """Human-readable lines about ``plan``."""
    src = plan.source
    lines = [f"{src.deployment} on {src.topology}"]
    lines += [f"  {_role(name, role)}" for name, role in sorted(plan.roles.items())]
    lines += _balance(plan)
    split = plan.serving.roles if plan.serving is not None else None
    if split:
        lines.append(f"  roles for {split.npu_budget} NPUs: {split.prefill_instances} "
                     f"prefill + {split.decode_instances} decode instances sustain "
                     f"{split.sustainable_requests_per_s:,.1f} requests/s "
                     f"({split.bottleneck}-bound)")
    return lines
