"""The few lines `cmx plan` prints about the plan it wrote: per role its size, batch,
latency and throughput, the pipeline it chose, and the role split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["plan_summary"]


def _split(pipe: Mapping[str, Any]) -> str:
    parts = [f"{stream} {'+'.join(f'{n} {k}' for k, n in cores.items())}"
             for stream, cores in pipe["split"].items() if cores]
    return f"{pipe['microbatches']} microbatch(es); " + ", ".join(parts)


def _role(name: str, role: Mapping[str, Any]) -> str:
    head = f"{name}: {role['instances']} x {role['npus_per_instance']} NPUs, EP{role['ep']}"
    est, pipe = role.get("estimate"), role.get("pipeline")
    if est is None or pipe is None:
        return head
    if name == "decode":
        latency = "TPOT"
        figures = f"batch {est['batch_per_npu']}/NPU, TPOT {est['tpot_ms']:,.1f} ms"
    else:
        latency = "TTFT"
        figures = f"{est['tokens_per_npu']:,} tokens/NPU, TTFT {est['ttft_ms']:,.1f} ms"
    if est.get(f"meets_{latency.lower()}_slo") is False:
        figures += f" (misses the {latency} target)"
    figures += f", {est['tokens_per_s_per_npu']:,.0f} tokens/s per NPU"
    return f"{head}: {figures} ({_split(pipe)})"


def plan_summary(plan: Mapping[str, Any]) -> list[str]:
    """Human-readable lines about ``plan`` (a plan document, schema 1.0 or 1.1)."""
    src = plan["source"]
    lines = [f"{src['deployment']} on {src['topology']}"]
    lines += [f"  {_role(name, role)}" for name, role in sorted(plan["roles"].items())]
    split = plan.get("serving", {}).get("roles")
    if split:
        lines.append(f"  roles for {split['npu_budget']} NPUs: {split['prefill_instances']} "
                     f"prefill + {split['decode_instances']} decode instances sustain "
                     f"{split['sustainable_requests_per_s']:,.1f} requests/s "
                     f"({split['bottleneck']}-bound)")
    return lines
