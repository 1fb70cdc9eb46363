"""The typed blocks of a plan's deployment-wide ``serving`` block: the workload, the
prefill/decode split, the KV transfer, the PD connection mapping and the caching pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from supernode_dsl.plan.document.codec import OMIT, rounded

__all__ = ["CachePlacement", "CachePool", "KvTransfer", "PdMapping", "ReuseEffect", "RoleSplit",
           "Serving", "WorkloadSummary"]


@dataclass(frozen=True, kw_only=True)
class WorkloadSummary:
    """The serving parameters the plan used."""

    prompt_len: int
    output_len: int
    tpot_slo_ms: float = field(metadata=rounded(6))
    ttft_slo_ms: float = field(metadata=rounded(6))
    arrival_rate: float
    mtp_accept: float
    perfect_balance: bool
    prefix_reuse: float
    decode_batch_per_npu: int
    prefill_tokens_per_npu: int


@dataclass(frozen=True, kw_only=True)
class RoleSplit:
    """How many instances of each role a budget of accelerators should run."""

    npu_budget: int
    prefill_instances: int
    decode_instances: int
    npus_used: int
    fits_budget: bool
    sustainable_requests_per_s: float = field(metadata=rounded(4))
    prefill_requests_per_s_per_instance: float = field(metadata=rounded(4))
    decode_requests_per_s_per_instance: float = field(metadata=rounded(4))
    bottleneck: Literal["prefill", "decode"]
    meets_arrival_rate: bool


@dataclass(frozen=True)
class KvTransfer:
    """The prefill -> decode KV transfer; the bandwidths only when ``reachable``."""

    plane: str
    bytes_per_request: float
    reachable: bool
    device_bandwidth: float | None = field(default=None, metadata=OMIT)
    transfer_ms: float | None = field(default=None, metadata=rounded(4, omit=True))
    required_bandwidth: float | None = field(default=None, metadata=OMIT)
    decode_ingress_bandwidth: float | None = field(default=None, metadata=OMIT)
    utilisation: float | None = field(default=None, metadata=rounded(6, omit=True))


@dataclass(frozen=True)
class PdMapping:
    """CloudMatrix-Infer's prefill/decode connection mapping."""

    prefill_tp: int
    decode_tp: int
    decode_dp: int
    ratio: int
    group_size: int
    prefill_tp_rank_of_decode_rank: tuple[int, ...]


@dataclass(frozen=True)
class CachePlacement:
    """The balance of the pool's hash ring, measured on ``sample_blocks`` keys."""

    virtual_nodes: int
    sample_blocks: int
    blocks_per_server: tuple[int, ...]
    max_over_mean: float = field(metadata=rounded(6))
    min_over_mean: float = field(metadata=rounded(6))
    max_share_over_capacity_share: float = field(metadata=rounded(6))


@dataclass(frozen=True)
class ReuseEffect:
    """Prefill at one prefix-reuse share, the reused KV loaded from the pool."""

    prefix_reuse: float
    load_ms: float = field(metadata=rounded(4))
    ttft_ms: float = field(metadata=rounded(4))
    tokens_per_s_per_npu: float = field(metadata=rounded(2))


@dataclass(frozen=True, kw_only=True)
class CachePool:
    """The caching pool; with ``reason`` and no sizes when it could not be sized, and the
    load route and reuse effect only with a prefill role."""

    servers: int
    capacity_bytes: float | None = field(default=None, metadata=OMIT)
    block_tokens: int | None = field(default=None, metadata=OMIT)
    block_bytes: float | None = field(default=None, metadata=OMIT)
    blocks: int | None = field(default=None, metadata=OMIT)
    tokens: int | None = field(default=None, metadata=OMIT)
    placement: CachePlacement | None = field(default=None, metadata=OMIT)
    plane: str | None = field(default=None, metadata=OMIT)
    load_bandwidth: float | None = field(default=None, metadata=OMIT)
    reason: str | None = field(default=None, metadata=OMIT)
    prefix_reuse_effect: tuple[ReuseEffect, ...] | None = field(default=None, metadata=OMIT)


@dataclass(frozen=True, kw_only=True)
class Serving:
    """The deployment-wide serving plan; ``roles`` is None unless both roles exist."""

    workload: WorkloadSummary
    roles: RoleSplit | None
    kv_transfer: KvTransfer | None = field(default=None, metadata=OMIT)
    pd_mapping: PdMapping | None = field(default=None, metadata=OMIT)
    cache_pool: CachePool
