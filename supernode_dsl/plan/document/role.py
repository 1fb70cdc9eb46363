"""The typed blocks of one role of a plan: expert placement, balance, memory, migration,
KV capacity, pipeline and estimate.

Field names are the plan's JSON keys (docs/plan-contract.md); values are the planner's own,
unrounded: :func:`~supernode_dsl.plan.document.codec.dump` rounds the fields declared with
``num``/``key(digits=...)`` when the plan is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from supernode_dsl.plan.document.codec import OMIT, rounded

__all__ = ["Balance", "CalibrationUse", "Candidate", "CoreSplit", "DeviceSchedule", "Estimate",
           "ExpertPlacement", "Kv", "LayerEstimate", "LayerKind", "Memory", "Migration",
           "OtherWeights", "Pipeline", "RolePlan", "ScheduleEvent"]

#: stream -> core family -> cores
CoreSplit = Mapping[str, Mapping[str, int]]
#: What a layer of the estimate is: dense FFN, MoE, the MTP module or the output head.
LayerKind = Literal["dense", "moe", "mtp", "head"]


@dataclass(frozen=True)
class ExpertPlacement:
    """Where every expert of every MoE layer sits: ``phy2log[layer][slot]`` is the logical
    expert of a physical slot, ``slot_device`` the device of each slot (instance 0)."""

    num_logical: int
    num_physical: int
    slots_per_device: int
    moe_layers: tuple[int, ...]
    phy2log: tuple[tuple[int, ...], ...]
    logcnt: tuple[tuple[int, ...], ...]
    slot_device: tuple[str, ...]
    instance_slot_devices: tuple[tuple[str, ...], ...]
    shared_devices: tuple[str, ...]


@dataclass(frozen=True)
class Balance:
    """Largest over mean device load per MoE layer, its worst and mean, and a proven lower
    bound on the worst."""

    max_over_mean_per_layer: tuple[float, ...] = field(metadata=rounded(6))
    max_over_mean: float = field(metadata=rounded(6))
    mean_max_over_mean: float = field(metadata=rounded(6))
    lower_bound_max_over_mean: float = field(metadata=rounded(6))


@dataclass(frozen=True)
class Migration:
    """What re-planning from a previous plan moves, and what planning afresh would."""

    moved_experts: int
    moved_bytes: int
    from_scratch_moved_experts: int
    from_scratch_max_over_mean: float = field(metadata=rounded(6))


@dataclass(frozen=True)
class OtherWeights:
    """The weights every device holds besides the experts, by part (bytes): the attention
    blocks (by the attention kind: MLA's projections, or GQA's Q/K/V and O), the dense FFN
    layers, the MoE routers, the vocabulary matrices and the RMSNorm vectors."""

    attention: float
    dense_ffn: float
    router: float
    embedding: float
    norms: float


@dataclass(frozen=True)
class Memory:
    """Bytes per device of the fullest device kind at the served batch; ``other_weights``
    by part in ``other_weights_by_part`` (plans from schema 1.2; None before)."""

    capacity: float
    expert_weights: float
    other_weights: float
    kv_cache: float
    dispatch_buffer: float
    combine_buffer: float
    reserve: float
    total: float
    free: float
    other_weights_by_part: OtherWeights | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True)
class Kv:
    """KV capacity of a device; decode has ``max_batch_per_npu``, prefill
    ``max_tokens_per_npu``."""

    context_len: int
    bytes_per_sequence: float
    kv_capacity_bytes: float
    max_sequences_per_device: int
    max_batch_per_npu: int | None = field(default=None, metadata=OMIT)
    max_tokens_per_npu: int | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True)
class ScheduleEvent:
    """One op of one microbatch in the step's schedule (microseconds)."""

    name: str
    stream: str
    microbatch: int
    layer: int
    start_us: float = field(metadata=rounded(3))
    dur_us: float = field(metadata=rounded(3))


@dataclass(frozen=True, kw_only=True)
class DeviceSchedule:
    """The schedule of one device kind."""

    device_kind: str
    step_us: float = field(metadata=rounded(3))
    events: tuple[ScheduleEvent, ...]


@dataclass(frozen=True)
class Candidate:
    """One split the pipeline search tried."""

    microbatches: int
    split: CoreSplit
    step_us: float = field(metadata=rounded(3))


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """The microbatch pipeline of one step."""

    microbatches: int
    split: CoreSplit
    step_us: float = field(metadata=rounded(3))
    no_overlap_us: float = field(metadata=rounded(3))
    speedup: float = field(metadata=rounded(4))
    candidates: tuple[Candidate, ...]
    schedule: tuple[DeviceSchedule, ...]


@dataclass(frozen=True)
class LayerEstimate:
    """One layer's span in the step and its ops' times (microseconds)."""

    layer: int
    kind: LayerKind
    span_us: float = field(metadata=rounded(3))
    ops_us: Mapping[str, float] = field(metadata=rounded(3))


@dataclass(frozen=True, kw_only=True)
class CalibrationUse:
    """The calibration an estimate used: its name, the relative band its residuals leave
    (the largest |estimate / measurement - 1|), the part attributes it fitted (every
    other term is a declared fact, not calibrated), and ``outside``: how this estimate's
    conditions differ from those the fit's layer-level measurements were taken at (another
    role, batch, microbatch count, MTP setting or deployment; None when inside them), where
    the band is not known to hold."""

    name: str
    band: float = field(metadata=rounded(6))
    fitted: dict[str, float]
    outside: tuple[str, ...] | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """The role's performance estimate.  Decode fills ``batch_per_npu`` ...
    ``tpot_ms`` and ``meets_tpot_slo``, prefill ``tokens_per_npu`` ... ``ttft_ms`` and
    ``meets_ttft_slo``; the others are None.  ``batch_chosen_by`` and the ``meets_*`` flag
    are None while the planner is still choosing the batch.  (Fields in the order the
    planner has always written them.)"""

    batch_per_npu: int | None = field(default=None, metadata=OMIT)
    requests_per_device: float | None = field(default=None, metadata=OMIT)
    tokens_per_device_per_step: float | None = field(default=None, metadata=OMIT)
    accepted_tokens_per_step: float | None = field(default=None, metadata=OMIT)
    tpot_ms: float | None = field(default=None, metadata=rounded(4, omit=True))
    tokens_per_npu: int | None = field(default=None, metadata=OMIT)
    prompts_per_device: float | None = field(default=None, metadata=OMIT)
    prefix_reused_tokens: int | None = field(default=None, metadata=OMIT)
    #: prefill with reuse: ms reading the reused KV from the caching pool (in ``ttft_ms``)
    kv_load_ms: float | None = field(default=None, metadata=rounded(4, omit=True))
    ttft_ms: float | None = field(default=None, metadata=rounded(4, omit=True))
    step_ms: float = field(metadata=rounded(4))
    #: the deployment's host time per step (``workload.host_time``), in ``step_ms`` after
    #: the schedule's layers; None when none is declared or it is 0
    host_ms: float | None = field(default=None, metadata=rounded(4, omit=True))
    tokens_per_s_per_npu: float = field(metadata=rounded(2))
    tokens_per_s_per_tflops: float = field(metadata=rounded(4))
    assumptions: tuple[str, ...]
    per_layer: tuple[LayerEstimate, ...]
    batch_chosen_by: str | None = field(default=None, metadata=OMIT)
    meets_tpot_slo: bool | None = field(default=None, metadata=OMIT)
    meets_ttft_slo: bool | None = field(default=None, metadata=OMIT)
    calibration: CalibrationUse | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True, kw_only=True)
class RolePlan:
    """One role: its instances and devices, placement, balance, memory, and (1.1 and later)
    its KV capacity, pipeline and estimate."""

    instances: int
    npus_per_instance: int
    ep: int
    instance_devices: tuple[tuple[str, ...], ...]
    expert_placement: ExpertPlacement
    balance: Balance
    migration: Migration | None
    memory: Memory
    kv: Kv | None = field(default=None, metadata=OMIT)
    pipeline: Pipeline | None = field(default=None, metadata=OMIT)
    estimate: Estimate | None = field(default=None, metadata=OMIT)
