"""The caching pool (EMS): a memory pool over the CPU DRAM of the deployment's nodes, one
memory-pool server per node, KV blocks placed on the servers by consistent hashing.

Entry point: :func:`cache_pool`.  Hashes are deterministic on every machine and run
(blake2b for ring points, splitmix64 for block keys), so the placement report is reproducible
byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PoolServer", "block_keys", "block_owner", "cache_pool", "remap_fraction",
           "ring_positions"]

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class PoolServer:
    """One memory-pool server: its name (the node's path) and the DRAM it contributes."""

    name: str
    capacity: float


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def ring_positions(names: Sequence[str], virtual_nodes: int | Sequence[int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Ring positions (uint64, sorted) of every virtual node and the index of its server.
    ``virtual_nodes`` is one count for every server or one count per server."""
    counts = [virtual_nodes] * len(names) if isinstance(virtual_nodes, int) \
        else list(virtual_nodes)
    points, owners = [], []
    for i, (name, count) in enumerate(zip(names, counts, strict=True)):
        points += [_point(f"{name}#{v}") for v in range(count)]
        owners += [i] * count
    pos = np.asarray(points, dtype=np.uint64)
    order = np.argsort(pos, kind="stable")
    return pos[order], np.asarray(owners, dtype=np.int64)[order]


def block_owner(ring: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """The server owning each key: the first ring point at or after it, wrapping around."""
    positions, owners = ring
    idx = np.searchsorted(positions, keys, side="left")
    return owners[np.where(idx == len(positions), 0, idx)]


def block_keys(count: int) -> np.ndarray:
    """``count`` well-mixed 64-bit keys (splitmix64 of 0..count-1).

    Real block keys are hashes of the block's tokens and of its prefix; a good hash makes
    them uniform over the ring, which is what a mixed counter gives too.
    """
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = z & _MASK
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _weighted_vnodes(servers: Sequence[PoolServer], virtual_nodes: int) -> list[int]:
    """Virtual nodes in proportion to capacity: the largest server gets ``virtual_nodes``."""
    top = max(s.capacity for s in servers)
    return [max(1, round(virtual_nodes * s.capacity / top)) for s in servers]


def _check(servers: Sequence[PoolServer], block_tokens: int, kv_bytes_per_token: float) -> None:
    if not servers:
        raise ValueError("the pool has no server")
    if not 128 <= block_tokens <= 512:
        raise ValueError(f"a block holds 128-512 tokens, not {block_tokens}")
    if kv_bytes_per_token <= 0 or any(s.capacity <= 0 for s in servers):
        raise ValueError("KV bytes per token and server capacities must be positive")


def cache_pool(servers: Sequence[PoolServer], *, block_tokens: int, kv_bytes_per_token: float,
               virtual_nodes: int = 128, sample_blocks: int = 1 << 18) -> dict[str, Any]:
    """Capacity of the pool in KV blocks and the balance of their placement.

    The placement is measured on ``min(sample_blocks, blocks)`` blocks: hashing every block
    of a terabyte pool would say nothing more about the balance.  ``max_share_over_capacity_
    share`` > 1 means the ring gives some server more than its share of capacity.
    Raises ValueError for an empty pool, a block size outside 128-512 tokens or a
    non-positive size.
    """
    _check(servers, block_tokens, kv_bytes_per_token)
    capacity = float(sum(s.capacity for s in servers))
    block_bytes = block_tokens * kv_bytes_per_token
    blocks = int(capacity // block_bytes)
    vnodes = _weighted_vnodes(servers, virtual_nodes)
    ring = ring_positions([s.name for s in servers], vnodes)
    sample = max(1, min(sample_blocks, blocks))
    counts = np.bincount(block_owner(ring, block_keys(sample)), minlength=len(servers))
    mean = sample / len(servers)
    share = counts / sample / (np.asarray([s.capacity for s in servers]) / capacity)
    return {
        "servers": len(servers),
        "capacity_bytes": capacity,
        "block_tokens": block_tokens,
        "block_bytes": block_bytes,
        "blocks": blocks,
        "tokens": blocks * block_tokens,
        "placement": {
            "virtual_nodes": virtual_nodes,
            "sample_blocks": sample,
            "blocks_per_server": [int(c) for c in counts],
            "max_over_mean": round(float(counts.max() / mean), 6),
            "min_over_mean": round(float(counts.min() / mean), 6),
            "max_share_over_capacity_share": round(float(share.max()), 6),
        },
    }


def remap_fraction(servers: Sequence[PoolServer], removed: str, *, virtual_nodes: int = 128,
                   sample_blocks: int = 1 << 16) -> float:
    """Share of sampled blocks that change server when ``removed`` leaves the ring: about
    1/n with consistent hashing, and only blocks of the removed server move."""
    names = [s.name for s in servers]
    keys = block_keys(sample_blocks)
    before = np.asarray(names)[block_owner(ring_positions(names, virtual_nodes), keys)]
    rest = [n for n in names if n != removed]
    after = np.asarray(rest)[block_owner(ring_positions(rest, virtual_nodes), keys)]
    return float(np.mean(before != after))
