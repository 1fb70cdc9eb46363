"""The EMS caching pool: capacity in blocks, consistent-hash placement and its balance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode_dsl.plan.serving.cache import (
    PoolServer,
    block_keys,
    block_owner,
    cache_pool,
    remap_fraction,
    ring_positions,
)

KV = 70_272  # DeepSeek-R1: 61 layers x 1,152 B per token


def _servers(n: int, capacity: float = 2e12) -> list[PoolServer]:
    return [PoolServer(f"cm384.node[{i}]", capacity) for i in range(n)]


def test_capacity_in_blocks() -> None:
    pool = cache_pool(_servers(32), block_tokens=128, kv_bytes_per_token=KV)
    assert pool["capacity_bytes"] == 64e12
    assert pool["block_bytes"] == 128 * KV
    assert pool["blocks"] == int(64e12 // (128 * KV))
    assert pool["tokens"] == pool["blocks"] * 128


def test_placement_is_deterministic_and_complete() -> None:
    a = cache_pool(_servers(32), block_tokens=256, kv_bytes_per_token=KV)
    b = cache_pool(_servers(32), block_tokens=256, kv_bytes_per_token=KV)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    placed = a["placement"]
    assert sum(placed["blocks_per_server"]) == placed["sample_blocks"]


def test_balance_improves_with_virtual_nodes() -> None:
    ratios = [cache_pool(_servers(32), block_tokens=128, kv_bytes_per_token=KV,
                         virtual_nodes=v)["placement"]["max_over_mean"] for v in (4, 128, 1024)]
    assert ratios[0] > ratios[1] > ratios[2] >= 1
    assert ratios[1] < 1.3


def test_a_server_with_twice_the_capacity_gets_about_twice_the_blocks() -> None:
    servers = [*_servers(8), PoolServer("big", 4e12)]
    pool = cache_pool(servers, block_tokens=128, kv_bytes_per_token=KV, virtual_nodes=512)
    counts = pool["placement"]["blocks_per_server"]
    assert counts[-1] / np.mean(counts[:-1]) == pytest.approx(2.0, rel=0.2)


def test_removing_a_server_moves_only_its_blocks() -> None:
    servers = _servers(32)
    names = [s.name for s in servers]
    keys = block_keys(1 << 14)
    before = block_owner(ring_positions(names, 128), keys)
    rest = names[:5] + names[6:]
    after = block_owner(ring_positions(rest, 128), keys)
    moved = np.asarray(names)[before] != np.asarray(rest)[after]
    assert set(np.asarray(names)[before][moved]) == {names[5]}
    assert remap_fraction(servers, names[5]) == pytest.approx(1 / 32, rel=0.5)


@pytest.mark.parametrize(("servers", "tokens", "kv"), [([], 128, KV), (_servers(2), 64, KV),
                                                      (_servers(2), 1024, KV),
                                                      (_servers(2), 128, 0.0)])
def test_bad_pools_raise(servers: list[PoolServer], tokens: int, kv: float) -> None:
    with pytest.raises(ValueError):
        cache_pool(servers, block_tokens=tokens, kv_bytes_per_token=kv)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), vnodes=st.integers(1, 64), count=st.integers(1, 3000))
def test_every_key_has_exactly_one_owner(n: int, vnodes: int, count: int) -> None:
    ring = ring_positions([f"s{i}" for i in range(n)], vnodes)
    owners = block_owner(ring, block_keys(count))
    assert owners.shape == (count,) and owners.min() >= 0 and owners.max() < n
    assert np.all(np.diff(ring[0].astype(np.float64)) >= 0)
