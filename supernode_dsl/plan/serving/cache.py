"""The caching pool (EMS): a memory pool over the CPU DRAM of the deployment's nodes, one
memory-pool server per node, KV blocks placed on the servers by consistent hashing.

Entry points: :func:`cache_pool` (capacity in blocks and the balance of their placement) and
:func:`remap_fraction` (what moves when a server leaves).  Hashes are deterministic on every
machine and run and do not depend on ``PYTHONHASHSEED`` (blake2b for ring points, splitmix64
for block keys), so the placement report is reproducible byte for byte.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from supernode_dsl.contracts import check_int, check_real, check_text, describe
from supernode_dsl.diagnostics import ArgumentError
from supernode_dsl.plan.document.serving import CachePlacement, CachePool

__all__ = ["PoolServer", "block_keys", "block_owner", "cache_pool", "remap_fraction",
           "ring_positions"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class PoolServer:
    """One memory-pool server: its name (the node's path) and the DRAM it contributes, in
    bytes."""

    name: str
    capacity: float


def _point(text: str) -> int:
    """The 64-bit ring position of ``text``: blake2b with an 8-byte digest, big-endian."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def ring_positions(names: Sequence[str], virtual_nodes: int | Sequence[int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Positions on the 64-bit ring of every (server, virtual node) and the owning server.

    Virtual node ``v`` of server ``name`` sits at ``blake2b(f"{name}#{v}")`` (8 bytes).
    ``virtual_nodes`` is one count for every server or one count per server.  Returns
    ``(positions, owners)``: uint64 positions sorted ascending and the int64 index into
    ``names`` of each position's server.  Raises ValueError for a negative count or a count
    list whose length is not ``len(names)``.
    """
    counts = [virtual_nodes] * len(names) if isinstance(virtual_nodes, int) \
        else list(virtual_nodes)
    if len(counts) != len(names) or any(c < 0 for c in counts):
        raise ArgumentError("virtual node counts must be non-negative, one per server")
    points: list[int] = []
    owners: list[int] = []
    for i, (name, count) in enumerate(zip(names, counts, strict=True)):
        points += [_point(f"{name}#{v}") for v in range(count)]
        owners += [i] * count
    pos = np.asarray(points, dtype=np.uint64)
    order = np.argsort(pos, kind="stable")
    return pos[order], np.asarray(owners, dtype=np.int64)[order]


def block_owner(ring: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """The server index owning each key (read as uint64): the owner of the first ring point
    at or after the key, wrapping past the top of the ring to the first point.  Raises
    ValueError on an empty ring."""
    positions, owners = ring
    if len(positions) == 0:
        raise ArgumentError("the ring has no point")
    idx = np.searchsorted(positions, np.asarray(keys, dtype=np.uint64), side="left")
    return owners[np.where(idx == len(positions), 0, idx)]


def block_keys(count: int) -> np.ndarray:
    """``count`` deterministic, well-mixed uint64 keys: key ``i`` is the ``(i+1)``-th output
    of splitmix64 seeded with 0, computed for all keys at once in uint64 arithmetic.

    Real block keys are hashes of the block's tokens and of its prefix; a good hash makes
    them uniform over the ring, which is what a mixed counter gives too.  Raises ValueError
    for a negative count.
    """
    if count < 0:
        raise ArgumentError(f"cannot make {count} keys")
    with np.errstate(over="ignore"):
        z = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def _weighted_vnodes(servers: Sequence[PoolServer], virtual_nodes: int) -> list[int]:
    """Virtual nodes in proportion to capacity: the largest server gets ``virtual_nodes``,
    every server at least 1."""
    top = max(s.capacity for s in servers)
    return [max(1, round(virtual_nodes * s.capacity / top)) for s in servers]


def _ring(servers: Sequence[PoolServer], virtual_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The capacity-weighted ring of ``servers``."""
    return ring_positions([s.name for s in servers], _weighted_vnodes(servers, virtual_nodes))


def _check_servers(servers: Sequence[PoolServer], virtual_nodes: int, sample_blocks: int) -> None:
    """ArgumentError (a ValueError) unless there are servers, with distinct names and
    finite positive capacities, and the ring and sample sizes are positive."""
    if isinstance(servers, str) or not isinstance(servers, Sequence) \
            or not all(isinstance(s, PoolServer) for s in servers):
        raise ArgumentError(f"servers must be a list of PoolServer, not {describe(servers)}")
    for s in servers:
        check_text(s.name, "PoolServer", "name")
        check_real(s.capacity, "PoolServer", "capacity", positive=True)
    check_int(virtual_nodes, "cache_pool", "virtual_nodes", 1, 1 << 16)
    check_int(sample_blocks, "cache_pool", "sample_blocks", 1, 1 << 24)
    if not servers:
        raise ArgumentError("the pool has no server")
    if len({s.name for s in servers}) != len(servers):
        raise ArgumentError("two pool servers share a name")
    if any(not (math.isfinite(s.capacity) and s.capacity > 0) for s in servers):
        raise ArgumentError("server capacities must be finite and positive")
    if virtual_nodes < 1 or sample_blocks < 1:
        raise ArgumentError("virtual_nodes and sample_blocks must be positive")


def _check_blocks(block_tokens: int, kv_bytes_per_token: float) -> None:
    """ArgumentError (a ValueError) unless a block holds 128-512 tokens of a finite
    positive size."""
    check_int(block_tokens, "cache_pool", "block_tokens", 128, 512)
    check_real(kv_bytes_per_token, "cache_pool", "kv_bytes_per_token", positive=True)
    if not 128 <= block_tokens <= 512:
        raise ArgumentError(f"a block holds 128-512 tokens, not {block_tokens}")
    if not (math.isfinite(kv_bytes_per_token) and kv_bytes_per_token > 0):
        raise ArgumentError("KV bytes per token must be finite and positive")


def _placement(servers: Sequence[PoolServer], capacity: float, virtual_nodes: int,
               sample: int) -> CachePlacement:
    """The ``placement`` block: ``sample`` keys placed on the capacity-weighted ring."""
    owners = block_owner(_ring(servers, virtual_nodes), block_keys(sample))
    counts = np.bincount(owners, minlength=len(servers))
    mean = sample / len(servers)
    shares = np.asarray([s.capacity for s in servers]) / capacity
    return CachePlacement(
        virtual_nodes=virtual_nodes,
        sample_blocks=sample,
        blocks_per_server=tuple(int(c) for c in counts),
        max_over_mean=float(counts.max() / mean),
        min_over_mean=float(counts.min() / mean),
        max_share_over_capacity_share=float((counts / sample / shares).max()),
    )


def cache_pool(servers: Sequence[PoolServer], *, block_tokens: int, kv_bytes_per_token: float,
               virtual_nodes: int = 128, sample_blocks: int = 1 << 18) -> CachePool:
    """Capacity of the pool in KV blocks and the balance of their placement.

    ``block_bytes = block_tokens * kv_bytes_per_token``; ``blocks`` is how many whole blocks
    the summed capacity holds and ``tokens = blocks * block_tokens``.

    Placement: servers that differ in capacity get virtual nodes in proportion to it (the
    largest gets ``virtual_nodes``, each at least 1), so the ring gives each about its share
    of capacity; equal servers all get ``virtual_nodes``.  The balance is measured on
    ``min(sample_blocks, blocks)`` keys (at least one, for a pool smaller than a block):
    hashing every block of a terabyte pool would say nothing more.  ``max_over_mean`` and
    ``min_over_mean`` compare block counts with the mean per server;
    ``max_share_over_capacity_share`` > 1 means the ring overfills some server.

    Raises ValueError for no server, duplicate names, a block size outside 128-512 tokens,
    a non-positive or non-finite size, or non-positive ``virtual_nodes``/``sample_blocks``.
    """
    _check_servers(servers, virtual_nodes, sample_blocks)
    _check_blocks(block_tokens, kv_bytes_per_token)
    capacity = float(sum(s.capacity for s in servers))
    block_bytes = block_tokens * kv_bytes_per_token
    blocks = int(capacity // block_bytes)
    return CachePool(
        servers=len(servers),
        capacity_bytes=capacity,
        block_tokens=block_tokens,
        block_bytes=block_bytes,
        blocks=blocks,
        tokens=blocks * block_tokens,
        placement=_placement(servers, capacity, virtual_nodes,
                             max(1, min(sample_blocks, blocks))),
    )


def remap_fraction(servers: Sequence[PoolServer], removed: str, *, virtual_nodes: int = 128,
                   sample_blocks: int = 1 << 16) -> float:
    """The fraction of ``sample_blocks`` keys that change server when ``removed`` leaves.

    Uses the capacity-weighted ring of :func:`cache_pool`; the remaining servers keep their
    virtual nodes, so only the removed server's blocks move, about its share of capacity
    (1/n for n equal servers).  Raises ValueError if ``removed`` is not a server or is the
    only one, or for the cases :func:`cache_pool` rejects about servers and sizes.
    """
    _check_servers(servers, virtual_nodes, sample_blocks)
    check_text(removed, "remap_fraction", "removed")
    names = [s.name for s in servers]
    if removed not in names:
        raise ArgumentError(f"{removed!r} is not a server of the pool")
    if len(names) == 1:
        raise ArgumentError("cannot remove the pool's only server")
    positions, owners = _ring(servers, virtual_nodes)
    keep = owners != names.index(removed)
    keys = block_keys(sample_blocks)
    before = block_owner((positions, owners), keys)
    after = block_owner((positions[keep], owners[keep]), keys)
    return float(np.mean(before != after))
