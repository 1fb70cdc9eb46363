"""The serving parameters of a deployment: workload, targets and the planner's switches.

Every value comes from the deployment declaration (which usually takes it from a global
``param``, so ``-D name=value`` overrides it); missing values have the defaults documented in
docs/plan-contract.md.  Times are seconds, rates per second.
"""

from __future__ import annotations

from dataclasses import dataclass

from supernode_dsl.diagnostics import DiagnosticSink
from supernode_dsl.elaborate import Spec
from supernode_dsl.units import Quantity

__all__ = ["Workload", "read_workload"]


@dataclass(frozen=True)
class Workload:
    """What the deployment serves and the targets it must meet."""

    prompt_len: int
    output_len: int
    tpot_slo: float          # s; 0: no target
    ttft_slo: float          # s; 0: no target
    arrival_rate: float      # requests/s; 0: no target
    npu_budget: int          # 0: every accelerator of the topology
    decode_batch_per_npu: int  # 0: the largest batch meeting tpot_slo that fits in memory
    prefill_tokens_per_npu: int  # 0: the most meeting ttft_slo that fit; -1: not declared
    prefill_attention_tp: int
    mtp_accept: float        # 0: no multi-token prediction
    perfect_balance: bool
    prefix_reuse: float
    kv_transfer_plane: str
    cache_plane: str
    block_tokens: int
    decode_microbatches: int  # 0: the planner chooses
    prefill_microbatches: int
    host_time: float = 0.0   # s of host work per step not hidden behind the device's
    host_declared: bool = False  # whether the deployment declares host_time
    decode_comm_cores: int = 0   # cores decode's collectives hold beside the computation
    prefill_comm_cores: int = 0

    def comm_cores(self, role: str) -> int:
        """The cores (of the device's first family) that ``role``'s collective kernels hold
        while its microbatches overlap them with computation (``<role>.comm_cores``; 0:
        none, as DeepEP's low-latency kernels)."""
        return self.decode_comm_cores if role == "decode" else self.prefill_comm_cores


def _value(spec: Spec, name: str, default: float) -> float:
    v = spec.get(name)
    return float(v.value) if isinstance(v, Quantity) else default


def _text(spec: Spec, name: str, default: str) -> str:
    v = spec.get(name)
    return v if isinstance(v, str) else default


def read_workload(spec: Spec, sink: DiagnosticSink) -> Workload:
    """The serving parameters of ``spec``; out-of-range values are E022 at their attribute."""
    prompt = int(_value(spec, "workload.prompt_len", 4096))
    perfect = spec.get("balance.perfect")
    w = Workload(
        prompt_len=prompt,
        output_len=int(_value(spec, "workload.output_len", 1024)),
        tpot_slo=_value(spec, "workload.tpot_slo", 0.0),
        ttft_slo=_value(spec, "workload.ttft_slo", 0.0),
        arrival_rate=_value(spec, "workload.arrival_rate", 0.0),
        npu_budget=int(_value(spec, "workload.npu_budget", 0)),
        decode_batch_per_npu=int(_value(spec, "decode.batch_per_npu", -1)),
        prefill_tokens_per_npu=int(_value(spec, "prefill.tokens_per_npu", -1)),
        prefill_attention_tp=int(_value(spec, "prefill.attention_tp", 1)),
        mtp_accept=_value(spec, "mtp.accept", 0.0),
        perfect_balance=perfect if isinstance(perfect, bool) else True,
        prefix_reuse=_value(spec, "cache.prefix_reuse", 0.0),
        kv_transfer_plane=_text(spec, "kv_transfer.plane", ""),
        cache_plane=_text(spec, "cache.plane", ""),
        block_tokens=int(_value(spec, "cache.block_tokens", 128)),
        decode_microbatches=int(_value(spec, "decode.microbatches", 0)),
        prefill_microbatches=int(_value(spec, "prefill.microbatches", 0)),
        host_time=_value(spec, "workload.host_time", 0.0),
        host_declared=spec.get("workload.host_time") is not None,
        decode_comm_cores=int(_value(spec, "decode.comm_cores", 0)),
        prefill_comm_cores=int(_value(spec, "prefill.comm_cores", 0)),
    )
    _check(spec, w, sink)
    return w


def _check(spec: Spec, w: Workload, sink: DiagnosticSink) -> None:
    def bad(attr: str, why: str) -> None:
        sink.error("E022", f"'{attr}' {why}", spec.span_of(attr))

    if not 0 <= w.mtp_accept <= 1:
        bad("mtp.accept", f"is {w.mtp_accept:g}: an acceptance rate lies in 0..1")
    if not 0 <= w.prefix_reuse < 1:
        bad("cache.prefix_reuse", f"is {w.prefix_reuse:g}: a reuse share lies in 0..1 "
            "(1 would leave nothing to prefill)")
    if w.prompt_len < 1:
        bad("workload.prompt_len", "must be at least 1")
    if not 128 <= w.block_tokens <= 512:
        bad("cache.block_tokens", f"is {w.block_tokens}: EMS blocks hold 128-512 tokens")
    if w.prefill_attention_tp < 1:
        bad("prefill.attention_tp", "must be at least 1")
