"""The deployment-wide serving block: how many prefill and decode instances a budget of
accelerators should run for the workload, the prefill-to-decode KV transfer on its plane,
the prefill/decode rank connection mapping, and the caching pool (EMS) with the effect of
prefix reuse.

Entry point: :func:`serving_block`.  Rates are requests per second; a request occupies a
decode slot for ``output_len x TPOT`` seconds and a prefill instance for
``prompt_len / (tokens/s of the instance)`` seconds.  Queueing is not modelled: the planner
sizes the roles for the mean rate and checks each role's latency at its planned batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.contracts import check_instance, check_int, check_real, present
from supernode_dsl.graph.instances import ancestor
from supernode_dsl.plan.devices import Device, RoleAllocation
from supernode_dsl.plan.document.role import Estimate, RolePlan
from supernode_dsl.plan.document.serving import (
    CachePool,
    KvTransfer,
    PdMapping,
    ReuseEffect,
    RoleSplit,
    Serving,
    WorkloadSummary,
)
from supernode_dsl.plan.serving.cache import PoolServer, cache_pool
from supernode_dsl.plan.serving.estimate import RoleContext, kv_load_seconds, prefill_step
from supernode_dsl.plan.serving.hardware import (
    Route,
    device_facts,
    plane_route,
    route,
)
from supernode_dsl.plan.serving.params import Workload
from supernode_dsl.plan.serving.paths import relays

__all__ = ["RoleRates", "pd_mapping", "pool_cpus", "pool_route", "role_split",
           "serving_block"]


@dataclass(frozen=True)
class RoleRates:
    """Requests per second one instance of each role sustains, and instance sizes."""

    prefill_npus: int
    decode_npus: int
    prefill_rate: float
    decode_rate: float


def _estimate(role: RolePlan) -> Estimate:
    return present(role.estimate, "a role's estimate (the planner estimates every role)")


def rates(workload: Workload, roles: Mapping[str, RolePlan]) -> RoleRates | None:
    """Per-instance request rates from the roles' estimates; None unless both roles exist."""
    if "prefill" not in roles or "decode" not in roles:
        return None
    p, d = roles["prefill"], roles["decode"]
    pe, de = _estimate(p), _estimate(d)
    tpot_ms = present(de.tpot_ms, "the decode TPOT")
    batch_per_npu = present(de.batch_per_npu, "the decode batch")
    prefill_rate = p.npus_per_instance * pe.tokens_per_s_per_npu / workload.prompt_len
    slot_seconds = workload.output_len * tpot_ms / 1e3
    decode_rate = d.npus_per_instance * batch_per_npu / slot_seconds \
        if slot_seconds else 0.0
    return RoleRates(p.npus_per_instance, d.npus_per_instance, prefill_rate, decode_rate)


#: The most NPUs (or ranks) the plain-number planners take: far above any machine, low
#: enough that their loops and tables stay small.
MAX_NPUS = 1_000_000


def _check_rates(r: RoleRates) -> None:
    where = "role_split"
    check_instance(r, RoleRates, where, "r")
    check_int(r.prefill_npus, where, "r.prefill_npus", 1, MAX_NPUS)
    check_int(r.decode_npus, where, "r.decode_npus", 1, MAX_NPUS)
    check_real(r.prefill_rate, where, "r.prefill_rate", positive=True)
    check_real(r.decode_rate, where, "r.decode_rate", positive=True)


def role_split(r: RoleRates, budget: int, arrival: float) -> RoleSplit:
    """Instances of each role: with an arrival rate, the fewest that carry it (and whether the
    budget allows them); without one, the split of ``budget`` that sustains the most.
    :class:`~supernode_dsl.diagnostics.ArgumentError` for a ``r`` that is not a
    :class:`RoleRates` of NPU counts >= 1 and finite rates > 0, a ``budget`` outside
    ``[0, MAX_NPUS]`` or an ``arrival`` that is not a finite number >= 0."""
    _check_rates(r)
    budget = check_int(budget, "role_split", "budget", 0, MAX_NPUS)
    arrival = check_real(arrival, "role_split", "arrival")
    if arrival > 0:
        p = max(1, math.ceil(arrival / r.prefill_rate))
        d = max(1, math.ceil(arrival / r.decode_rate))
    else:
        p, d = _best_split(r, budget)
    used = p * r.prefill_npus + d * r.decode_npus
    sustained = min(p * r.prefill_rate, d * r.decode_rate)
    return RoleSplit(
        npu_budget=budget,
        prefill_instances=p,
        decode_instances=d,
        npus_used=used,
        fits_budget=used <= budget,
        sustainable_requests_per_s=sustained,
        prefill_requests_per_s_per_instance=r.prefill_rate,
        decode_requests_per_s_per_instance=r.decode_rate,
        bottleneck="prefill" if p * r.prefill_rate <= d * r.decode_rate else "decode",
        meets_arrival_rate=arrival <= sustained + 1e-9 and used <= budget,
    )


def _best_split(r: RoleRates, budget: int) -> tuple[int, int]:
    best = (0.0, 1, 1)
    for d in range(1, budget // r.decode_npus + 1):
        p = (budget - d * r.decode_npus) // r.prefill_npus
        if p < 1:
            break
        sustained = min(p * r.prefill_rate, d * r.decode_rate)
        if sustained > best[0] + 1e-12:
            best = (sustained, p, d)
    return best[1], best[2]


def pd_mapping(prefill_tp: int, decode_tp: int, decode_dp: int) -> PdMapping:
    """CloudMatrix-Infer's prefill-to-decode connection mapping: ratio = prefill_tp /
    decode_tp; group_size = decode_dp / ratio; a decode rank (dp, tp) pulls its KV from
    prefill TP rank ``floor(dp / group_size) x decode_tp + tp``.
    :class:`~supernode_dsl.diagnostics.ArgumentError` unless each is an integer >= 1 and
    the decode ranks number at most ``MAX_NPUS``."""
    where = "pd_mapping"
    check_int(prefill_tp, where, "prefill_tp", 1, MAX_NPUS)
    check_int(decode_tp, where, "decode_tp", 1, MAX_NPUS)
    check_int(decode_dp, where, "decode_dp", 1, MAX_NPUS // decode_tp)
    ratio = max(1, prefill_tp // max(decode_tp, 1))
    group = max(1, decode_dp // ratio)
    ranks = [(dp // group) * decode_tp + tp for dp in range(decode_dp)
             for tp in range(decode_tp)]
    return PdMapping(prefill_tp, decode_tp, decode_dp, ratio, group, tuple(ranks))


def _kv_transfer(g: nx.Graph, workload: Workload, decode: Sequence[Device],
                 prefill: Sequence[Device], kv_bytes: float,
                 split: RoleSplit | None) -> KvTransfer:
    plane = workload.kv_transfer_plane
    facts = device_facts(g, decode[0].path)
    via = plane_route(g, prefill[0].path, decode[0].path, plane, facts) if plane else \
        route(g, prefill[0].path, decode[0].path, facts,
              relays(prefill[0], prefill, decode[0], decode))
    per_request = workload.prompt_len * kv_bytes
    if via is None:
        return KvTransfer(plane, per_request, reachable=False)
    device_bw = via.effective_bandwidth
    out = KvTransfer(via.plane, per_request, reachable=True, device_bandwidth=device_bw,
                     transfer_ms=per_request / device_bw * 1e3 + via.latency * 1e3)
    if split is None:
        return out
    rate = split.sustainable_requests_per_s
    ingress = device_bw * len(decode) * split.decode_instances
    return replace(out, required_bandwidth=rate * per_request,
                   decode_ingress_bandwidth=ingress,
                   utilisation=rate * per_request / ingress if ingress else 0.0)


def pool_cpus(g: nx.Graph, allocations: Sequence[RoleAllocation]) -> dict[str, list[str]]:
    """The caching pool's CPUs: those that declare ``dram``, for each node of the
    deployment's devices (in order) that has one."""
    nodes = dict.fromkeys(d.node for a in allocations for inst in a.instances for d in inst)
    cpus: dict[str, list[str]] = {n: [] for n in nodes}
    for path, data in g.nodes(data=True):
        if data[S.NODE_CATEGORY] == "cpu" and data.get("dram"):
            node = ancestor(g, path, "node")
            if node in cpus:
                cpus[node].append(path)
    return {n: paths for n, paths in cpus.items() if paths}


def pool_servers(g: nx.Graph, cpus: Mapping[str, Sequence[str]]) -> list[PoolServer]:
    """One memory-pool server per node, holding the DRAM of the node's CPUs."""
    return [PoolServer(node, sum(float(g.nodes[c]["dram"]) for c in paths))
            for node, paths in cpus.items()]


def pool_route(g: nx.Graph, workload: Workload, allocations: Sequence[RoleAllocation],
               cpus: Mapping[str, Sequence[str]]) -> Route | None:
    """The route the prefill role's devices read reused KV from the caching pool over
    (``cache.plane``, else the best plane): from its first device to a CPU of the pool
    (``cpus``: :func:`pool_cpus`); None without a prefill role, a pool or a route."""
    prefill = next((a for a in allocations if a.role.name == "prefill"), None)
    if prefill is None or not cpus:
        return None
    reader, cpu = prefill.instances[0][0].path, cpus[list(cpus)[-1]][0]
    facts = device_facts(g, reader)
    return plane_route(g, reader, cpu, workload.cache_plane, facts) \
        if workload.cache_plane else route(g, reader, cpu, facts)


def _cache(g: nx.Graph, workload: Workload, cpus: Mapping[str, Sequence[str]],
           kv_bytes: float, prefill: RoleContext | None, tokens_per_npu: int) -> CachePool:
    servers = pool_servers(g, cpus)
    if not servers:
        return CachePool(servers=0, reason="no CPU of the deployment's nodes declares `dram`")
    try:
        pool = cache_pool(servers, block_tokens=workload.block_tokens,
                          kv_bytes_per_token=kv_bytes)
    except ValueError as err:  # sizes the planner could not check earlier (e.g. no KV)
        return CachePool(servers=len(servers), reason=str(err))
    if prefill is None:
        return pool
    if prefill.pool is None:
        return replace(pool, plane=workload.cache_plane, load_bandwidth=0.0,
                       reason="no plane joins the prefill devices and the pool's CPUs: "
                              "the effect of prefix reuse is not estimated")
    return replace(pool, plane=prefill.pool.plane, load_bandwidth=prefill.pool_bandwidth,
                   prefix_reuse_effect=_reuse_effect(prefill, tokens_per_npu))


def _reuse_effect(ctx: RoleContext, tokens_per_npu: int) -> tuple[ReuseEffect, ...]:
    """Prefill throughput and TTFT at several prefix-reuse shares, as the prefill estimate
    makes them: reused tokens are not computed but their KV is loaded from the pool
    (:func:`~supernode_dsl.plan.serving.estimate.kv_load_seconds`)."""
    shares = sorted({0.0, 0.25, 0.5, 0.75, ctx.workload.prefix_reuse})
    out = []
    for share in shares:
        c = replace(ctx, workload=replace(ctx.workload, prefix_reuse=share))
        step_ms, prompts, reused = prefill_step(c, tokens_per_npu)
        out.append(ReuseEffect(share, load_ms=kv_load_seconds(c, prompts, reused) * 1e3,
                               ttft_ms=step_ms, tokens_per_s_per_npu=tokens_per_npu * 1e3 /
                               step_ms if step_ms else 0.0))
    return tuple(out)


def serving_block(g: nx.Graph, workload: Workload, allocations: Sequence[RoleAllocation],
                  roles: Mapping[str, RolePlan],
                  contexts: Mapping[str, RoleContext], kv_bytes_per_token: float,
                  npus_total: int, cpus: Mapping[str, Sequence[str]]) -> Serving:
    """The plan's ``serving`` block; ``cpus``: the caching pool's (:func:`pool_cpus`)."""
    by_role = {a.role.name: a for a in allocations}
    r = rates(workload, roles)
    budget = workload.npu_budget or npus_total
    split = role_split(r, budget, workload.arrival_rate) if r else None
    transfer, mapping = None, None
    if "prefill" in by_role and "decode" in by_role:
        dec, pre = by_role["decode"].instances[0], by_role["prefill"].instances[0]
        transfer = _kv_transfer(g, workload, dec, pre, kv_bytes_per_token, split)
        mapping = pd_mapping(workload.prefill_attention_tp, 1, len(dec))
    prefill = roles.get("prefill")
    tokens = prefill.estimate.tokens_per_npu if prefill and prefill.estimate else None
    pool = _cache(g, workload, cpus, kv_bytes_per_token, contexts.get("prefill"),
                  int(tokens or 0))
    return Serving(workload=_workload(workload), roles=split, kv_transfer=transfer,
                   pd_mapping=mapping, cache_pool=pool)


def _workload(w: Workload) -> WorkloadSummary:
    return WorkloadSummary(
        prompt_len=w.prompt_len, output_len=w.output_len, tpot_slo_ms=w.tpot_slo * 1e3,
        ttft_slo_ms=w.ttft_slo * 1e3, arrival_rate=w.arrival_rate, mtp_accept=w.mtp_accept,
        perfect_balance=w.perfect_balance, prefix_reuse=w.prefix_reuse,
        decode_batch_per_npu=w.decode_batch_per_npu,
        prefill_tokens_per_npu=w.prefill_tokens_per_npu)
