#!/usr/bin/env python
"""A numpy re-implementation of DeepSeek's expert-parallel load balancer (EPLB).

Written from the public description of the algorithm (see
``/work/shared/reference/cloudmatrix384.md`` section 7); used only as a *baseline* by
``benchmarks/bench_placement.py``.  Its known weaknesses are kept on purpose: it ignores link
tiers and migration cost, and it can put two replicas of one expert on the same GPU.

Algorithm
---------
* **Replication** (``replicate``): every logical expert starts with one replica; each further
  physical slot goes to the expert with the largest ``load / replica_count`` (ties: lowest
  expert index).
* **Balanced packing** (``balanced_packing``): items sorted by weight, heaviest first
  (stable), each put into the lightest pack that still has room; every pack takes exactly
  ``n_items / n_packs`` items (ties: lowest pack index).
* **Hierarchical policy** (``num_groups % num_nodes == 0``): (1) pack the expert groups onto
  the nodes by group load, (2) replicate the experts of each node into
  ``num_replicas / num_nodes`` slots, (3) pack each node's physical experts (weight = load /
  replica count) onto that node's GPUs.
* **Global policy** (otherwise): the same with one group and one node, i.e. replicate over all
  slots, then pack onto all GPUs.
* Physical slot order: GPU ``g`` holds slots ``g*k .. g*k+k-1`` with
  ``k = num_replicas / num_gpus``; within a GPU, in packing order.

Outputs (per layer): ``phy2log[L, num_replicas]``, ``log2phy[L, E, max_replicas]`` (padded
with -1) and ``logcnt[L, E]``.

``python benchmarks/eplb.py`` runs a small self-test.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "balanced_packing",
    "duplicate_replicas",
    "gpu_loads",
    "rebalance_experts",
    "replicate",
]


def balanced_packing(weight: np.ndarray, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack ``n`` weighted items into ``num_packs`` packs of ``n / num_packs`` items each.

    ``weight``: [rows, n].  Returns ``(pack_index, rank_in_pack)``, both [rows, n] int64:
    the pack of each item and its position inside the pack (order of insertion).
    """
    weight = np.asarray(weight, dtype=np.float64)
    rows, n = weight.shape
    if n % num_packs:
        raise ValueError(f"{n} items do not divide into {num_packs} packs")
    per_pack = n // num_packs
    pack_index = np.empty((rows, n), dtype=np.int64)
    rank_in_pack = np.empty((rows, n), dtype=np.int64)
    if per_pack == 1:  # nothing to decide: item i is pack i
        pack_index[:] = np.arange(n)
        rank_in_pack[:] = 0
        return pack_index, rank_in_pack
    for r in range(rows):
        w = weight[r]
        order = np.argsort(-w, kind="stable")
        pack_w = np.zeros(num_packs)
        pack_n = np.zeros(num_packs, dtype=np.int64)
        for item in order:
            # lightest pack that still has room (masking full packs with +inf)
            cand = np.where(pack_n < per_pack, pack_w, np.inf)
            p = int(np.argmin(cand))
            pack_index[r, item] = p
            rank_in_pack[r, item] = pack_n[p]
            pack_w[p] += w[item]
            pack_n[p] += 1
    return pack_index, rank_in_pack


def replicate(weight: np.ndarray, num_phy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replicate ``n`` logical experts into ``num_phy >= n`` physical experts.

    ``weight``: [rows, n].  Returns ``(phy2log, rank, logcnt)``: for each physical expert its
    logical expert and replica rank ([rows, num_phy]), and the replica count of each logical
    expert ([rows, n]).  Physical experts ``0..n-1`` are the first replicas in logical order;
    the redundant ones follow in the order they were granted.
    """
    weight = np.asarray(weight, dtype=np.float64)
    rows, n = weight.shape
    if num_phy < n:
        raise ValueError(f"{num_phy} physical slots cannot hold {n} logical experts")
    phy2log = np.empty((rows, num_phy), dtype=np.int64)
    rank = np.zeros((rows, num_phy), dtype=np.int64)
    logcnt = np.ones((rows, n), dtype=np.int64)
    phy2log[:, :n] = np.arange(n)
    idx = np.arange(rows)
    for i in range(n, num_phy):
        hottest = np.argmax(weight / logcnt, axis=1)
        phy2log[:, i] = hottest
        rank[:, i] = logcnt[idx, hottest]
        logcnt[idx, hottest] += 1
    return phy2log, rank, logcnt


def _inverse(perm: np.ndarray) -> np.ndarray:
    """Row-wise inverse of a permutation array [rows, n]."""
    inv = np.empty_like(perm)
    rows = np.arange(perm.shape[0])[:, None]
    inv[rows, perm] = np.arange(perm.shape[1])
    return inv


def _hierarchical(
    weight: np.ndarray, num_phy: int, num_groups: int, num_nodes: int, num_gpus: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    layers, num_log = weight.shape
    if num_log % num_groups:
        raise ValueError("experts do not divide into groups")
    if num_groups % num_nodes:
        raise ValueError("groups do not divide into nodes")
    if num_gpus % num_nodes:
        raise ValueError("GPUs do not divide into nodes")
    if num_phy % num_gpus:
        raise ValueError("physical slots do not divide into GPUs")
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    log_per_node = num_log // num_nodes
    phy_per_node = num_phy // num_nodes
    gpus_per_node = num_gpus // num_nodes
    phy_per_gpu = num_phy // num_gpus
    rows = np.arange(layers)[:, None]

    # 1. expert groups -> nodes.  "mlog" (node-major logical) index: node n owns mlog
    #    experts n*log_per_node .. (n+1)*log_per_node-1.
    group_load = weight.reshape(layers, num_groups, group_size).sum(-1)
    g_pack, g_rank = balanced_packing(group_load, num_nodes)
    group_slot = g_pack * groups_per_node + g_rank  # [L, groups]: position of group in mlog
    log2mlog = (group_slot[:, :, None] * group_size + np.arange(group_size)).reshape(layers, -1)
    mlog2log = _inverse(log2mlog)

    # 2. replicate within each node.
    mlog_load = weight[rows, mlog2log].reshape(layers * num_nodes, log_per_node)
    phy2mlog, phyrank, mlogcnt = replicate(mlog_load, phy_per_node)

    # 3. pack each node's physical experts onto its GPUs.
    phy_load = (mlog_load / mlogcnt)[np.arange(layers * num_nodes)[:, None], phy2mlog]
    p_pack, p_rank = balanced_packing(phy_load, gpus_per_node)
    phy2pphy = p_pack * phy_per_gpu + p_rank  # node-local physical -> node-local slot
    pphy2phy = _inverse(phy2pphy)
    r2 = np.arange(layers * num_nodes)[:, None]
    pphy2mlog = phy2mlog[r2, pphy2phy].reshape(layers, num_nodes, phy_per_node)
    pphy2mlog = (pphy2mlog + (np.arange(num_nodes) * log_per_node)[None, :, None]).reshape(
        layers, num_phy
    )
    phy2log = mlog2log[rows, pphy2mlog]
    pphyrank = phyrank[r2, pphy2phy].reshape(layers, num_phy)
    logcnt = mlogcnt.reshape(layers, num_log)[rows, log2mlog]
    return phy2log, pphyrank, logcnt


def rebalance_experts(
    weight: np.ndarray, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EPLB entry point.

    ``weight``: [layers, experts] load statistics.  Returns ``(phy2log, log2phy, logcnt)``:
    ``phy2log`` [layers, num_replicas], ``log2phy`` [layers, experts, max_replicas] padded
    with -1, ``logcnt`` [layers, experts].  Hierarchical when ``num_groups % num_nodes == 0``,
    global (one group, one node) otherwise.
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim == 1:
        weight = weight[None, :]
    layers, num_log = weight.shape
    if num_groups % num_nodes == 0:
        phy2log, phyrank, logcnt = _hierarchical(
            weight, num_replicas, num_groups, num_nodes, num_gpus
        )
    else:
        phy2log, phyrank, logcnt = _hierarchical(weight, num_replicas, 1, 1, num_gpus)
    maxcnt = int(logcnt.max())
    log2phy = np.full((layers, num_log * maxcnt), -1, dtype=np.int64)
    rows = np.arange(layers)[:, None]
    log2phy[rows, phy2log * maxcnt + phyrank] = np.arange(num_replicas)
    return phy2log, log2phy.reshape(layers, num_log, maxcnt), logcnt


def gpu_loads(weight: np.ndarray, phy2log: np.ndarray, num_gpus: int) -> np.ndarray:
    """Load per GPU [layers, num_gpus], each replica taking load / replica_count."""
    weight = np.asarray(weight, dtype=np.float64)
    layers, num_phy = phy2log.shape
    rows = np.arange(layers)[:, None]
    cnt = np.zeros_like(weight)
    np.add.at(cnt, (np.broadcast_to(rows, phy2log.shape), phy2log), 1)
    slot_load = weight[rows, phy2log] / cnt[rows, phy2log]
    return slot_load.reshape(layers, num_gpus, num_phy // num_gpus).sum(-1)


def duplicate_replicas(phy2log: np.ndarray, num_gpus: int) -> int:
    """Number of (layer, GPU, expert) triples where one GPU holds >= 2 replicas of an expert
    (counted once per extra replica)."""
    layers, num_phy = phy2log.shape
    per_gpu = np.sort(phy2log.reshape(layers, num_gpus, num_phy // num_gpus), axis=-1)
    return int((per_gpu[..., 1:] == per_gpu[..., :-1]).sum())


def _selftest() -> None:
    # Toy case: 2 layers, 12 experts in 4 groups, 16 slots on 2 nodes x 4 GPUs (2 slots each).
    weight = np.array(
        [
            [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
            [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
        ],
        dtype=np.float64,
    )
    L, E, S, G, N, P = 2, 12, 16, 4, 2, 8

    # replication: greedy by load / count
    p2l, _, cnt = replicate(weight, S)
    assert cnt.sum(1).tolist() == [S, S]
    assert p2l[0, :E].tolist() == list(range(E))
    assert p2l[0, E] == 10  # 183 is the hottest of layer 0
    # after greedy replication no expert could do better by taking a replica from another:
    for r in range(L):
        per = weight[r] / cnt[r]
        donors = cnt[r] > 1
        assert per.max() <= (weight[r][donors] / (cnt[r][donors] - 1)).min() + 1e-9

    # packing: fixed items per pack, heaviest first into the lightest pack
    pi, rp = balanced_packing(np.array([[5.0, 4, 3, 3, 2, 1]]), 2)
    assert np.bincount(pi[0], minlength=2).tolist() == [3, 3]
    assert pi[0].tolist() == [0, 1, 1, 0, 1, 0]  # 5 | 4 ; 3 -> pack 1 ; 3 -> pack 0 ...
    assert sorted(rp[0][pi[0] == 0].tolist()) == [0, 1, 2]

    for groups, nodes in ((G, N), (3, N)):  # hierarchical, then global (3 % 2 != 0)
        if E % groups:
            continue
        p2l, l2p, cnt = rebalance_experts(weight, S, groups, nodes, P)
        assert p2l.shape == (L, S) and cnt.shape == (L, E)
        assert l2p.shape == (L, E, int(cnt.max()))
        for r in range(L):
            # every expert present, counts consistent, log2phy the inverse of phy2log
            assert np.bincount(p2l[r], minlength=E).tolist() == cnt[r].tolist()
            for e in range(E):
                slots = [s for s in l2p[r, e] if s >= 0]
                assert len(slots) == cnt[r, e]
                assert all(p2l[r, s] == e for s in slots)
                assert all(s == -1 for s in l2p[r, e, cnt[r, e] :])
        loads = gpu_loads(weight, p2l, P)
        assert np.allclose(loads.sum(1), weight.sum(1))

    # hierarchical: each node holds whole groups (every replica of a group's experts)
    p2l, _, cnt = rebalance_experts(weight, S, G, N, P)
    group_of = np.arange(E) // (E // G)
    for r in range(L):
        node_groups = [set(group_of[p2l[r, n * S // N : (n + 1) * S // N]]) for n in range(N)]
        assert not (node_groups[0] & node_groups[1])
        assert all(len(g) == G // N for g in node_groups)

    # one slot per GPU: packing does nothing, redundant replicas land on the last GPUs
    p2l, _, cnt = rebalance_experts(weight, S, 1, 1, S)
    assert p2l[0, :E].tolist() == list(range(E))

    # duplicates on one GPU can happen (kept: baseline behaviour)
    w = np.array([[1000.0, 1, 1, 1]])
    p2l, _, cnt = rebalance_experts(w, 8, 1, 1, 2)
    assert cnt[0, 0] == 5
    assert duplicate_replicas(p2l, 2) >= 1
    print("eplb self-test: ok")


if __name__ == "__main__":
    _selftest()
