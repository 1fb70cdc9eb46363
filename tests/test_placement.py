"""Tests for routed-expert placement (supernode_dsl.plan.placement)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode_dsl.diagnostics import ArgumentError, CmxError
from supernode_dsl.plan.placement import (
    Placement,
    SlotLayout,
    die_loads,
    greedy_counts,
    imbalance,
    lower_bound,
    moved_slots,
    node_spread,
    place_experts,
    replan_experts,
)

PREFILL = SlotLayout(32, 9, tuple(d // 8 for d in range(32)))
DECODE = SlotLayout(288, 1, tuple(d // 8 for d in range(288)))
H800_DECODE = SlotLayout(144, 2, tuple(d // 8 for d in range(144)), num_groups=8)
H800_LOCAL = SlotLayout(144, 2, tuple(d // 8 for d in range(144)), num_groups=8,
                        prefer_node_locality=True)


def skewed_loads(kind: str, layers: int, seed: int, experts: int = 256) -> np.ndarray:
    """Per-layer Zipf(1.0-1.5) or lognormal(sigma 1-1.5) loads, randomly permuted."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(layers):
        if kind == "zipf":
            x = 1.0 / np.arange(1, experts + 1) ** rng.uniform(1.0, 1.5)
        else:
            x = rng.lognormal(0.0, rng.uniform(1.0, 1.5), experts)
        rows.append(rng.permutation(x) * 1e4)
    return np.array(rows)


def eplb_imbalance(loads: np.ndarray, layout: SlotLayout) -> np.ndarray:
    """EPLB-style baseline: greedy replication, then sorted 'lightest pack with room'."""
    n, k = layout.num_dies, layout.slots_per_die
    totals = np.full(loads.shape[0], layout.num_slots, np.int64)
    counts = greedy_counts(loads, totals, layout.num_slots)
    out = []
    for w, c in zip(loads, counts, strict=True):
        items = np.repeat(np.arange(w.size), c)
        sizes = w[items] / c[items]
        load, fill = np.zeros(n), np.zeros(n, np.int64)
        for i in np.argsort(-sizes, kind="stable"):
            die = int(np.where(fill < k, load, np.inf).argmin())
            load[die] += sizes[i]
            fill[die] += 1
        out.append(load.max() / load.mean())
    return np.array(out)


def check_invariants(p: Placement, layout: SlotLayout, num_experts: int) -> None:
    """All experts placed, counts match phy2log, no duplicate on a die, all slots used."""
    layers = p.phy2log.shape[0]
    assert p.phy2log.shape == (layers, layout.num_slots)
    assert p.logcnt.shape == (layers, num_experts)
    assert p.phy2log.dtype == np.int64 and p.logcnt.dtype == np.int64
    for row, cnt in zip(p.phy2log, p.logcnt, strict=True):
        assert np.array_equal(np.bincount(row, minlength=num_experts), cnt)
        assert cnt.min() >= 1 and cnt.sum() == layout.num_slots
        dies = np.sort(row.reshape(layout.num_dies, layout.slots_per_die), axis=1)
        assert not np.any(dies[:, 1:] == dies[:, :-1])


@pytest.mark.parametrize("kind", ["zipf", "lognormal"])
def test_prefill_beats_eplb_tenfold_and_near_lower_bound(kind: str) -> None:
    loads = skewed_loads(kind, 12, seed=1)
    p = place_experts(loads, PREFILL)
    check_invariants(p, PREFILL, 256)
    ours = imbalance(loads, p, PREFILL) - 1.0
    base = eplb_imbalance(loads, PREFILL) - 1.0
    assert ours.mean() <= base.mean() / 10
    bounds = np.array([lower_bound(r, PREFILL) for r in loads])
    peak = die_loads(loads, p, PREFILL).max(axis=1)
    assert np.all(peak >= bounds * (1 - 1e-9))
    assert np.median(peak / bounds - 1.0) < 0.003


@pytest.mark.parametrize("kind", ["zipf", "lognormal"])
def test_decode_equals_greedy_optimum(kind: str) -> None:
    loads = skewed_loads(kind, 6, seed=2)
    p = place_experts(loads, DECODE)
    check_invariants(p, DECODE, 256)
    greedy = greedy_counts(loads, np.full(6, 288, np.int64), 288)
    best = (loads / greedy).max(axis=1)
    assert np.allclose(die_loads(loads, p, DECODE).max(axis=1), best)
    assert np.all(imbalance(loads, p, DECODE) <= eplb_imbalance(loads, DECODE) + 1e-12)
    bounds = np.array([lower_bound(r, DECODE) for r in loads])
    assert np.allclose(bounds, best, rtol=1e-6)


def test_decode_spreads_replicas_over_nodes() -> None:
    loads = skewed_loads("zipf", 2, seed=3)
    p = place_experts(loads, DECODE)
    node = np.array(DECODE.die_node)
    for row, cnt in zip(p.phy2log, p.logcnt, strict=True):
        for e in np.flatnonzero(cnt > 1):
            assert np.unique(node[row == e]).size == cnt[e]


@pytest.mark.parametrize("layout", [PREFILL, DECODE], ids=["prefill", "decode"])
def test_replan_moves_few_slots(layout: SlotLayout) -> None:
    loads = skewed_loads("lognormal", 8, seed=5)
    prev = place_experts(loads, layout)
    drifted = loads * np.random.default_rng(6).lognormal(0.0, 0.3, loads.shape)
    fresh = place_experts(drifted, layout)
    rep = replan_experts(drifted, layout, prev.phy2log)
    check_invariants(rep, layout, 256)
    assert np.all(imbalance(drifted, rep, layout) <= imbalance(drifted, fresh, layout) + 0.01
                  + 1e-9)
    assert moved_slots(prev.phy2log, rep.phy2log) <= moved_slots(prev.phy2log,
                                                                  fresh.phy2log) / 4


def test_replan_without_drift_moves_nothing() -> None:
    loads = skewed_loads("zipf", 3, seed=7)
    prev = place_experts(loads, PREFILL)
    rep = replan_experts(loads, PREFILL, prev.phy2log)
    assert moved_slots(prev.phy2log, rep.phy2log) == 0


def test_locality_reduces_node_spread_at_same_balance() -> None:
    loads = skewed_loads("lognormal", 6, seed=8)
    free = place_experts(loads, H800_DECODE)
    local = place_experts(loads, H800_LOCAL)
    check_invariants(local, H800_LOCAL, 256)
    assert node_spread(local, H800_LOCAL) < 0.5 * node_spread(free, H800_DECODE)
    assert np.all(imbalance(loads, local, H800_LOCAL)
                  <= imbalance(loads, free, H800_DECODE) + 0.01 + 1e-9)


def test_deterministic_and_equal_loads() -> None:
    loads = skewed_loads("zipf", 3, seed=9)
    a, b = place_experts(loads, PREFILL), place_experts(loads.copy(), PREFILL)
    assert np.array_equal(a.phy2log, b.phy2log) and np.array_equal(a.logcnt, b.logcnt)
    even = place_experts(np.ones((2, 256)), PREFILL)
    check_invariants(even, PREFILL, 256)
    assert np.allclose(imbalance(np.ones((2, 256)), even, PREFILL), 1.0)


def test_rejects_bad_input() -> None:
    """Bad loads are E021 (the check of a loads file), a bad layout E028; both CmxError."""
    with pytest.raises(ArgumentError, match="300 experts"):
        place_experts(np.ones((1, 300)), PREFILL)
    for bad in (-np.ones((1, 256)), np.full((1, 256), 1.7e308),
                np.full((1, 256), np.nan), np.ones(256), np.full((1, 256), "x")):
        with pytest.raises(CmxError) as err:
            place_experts(bad, PREFILL)
        assert err.value.codes == ["E021"]
    with pytest.raises(ArgumentError):
        SlotLayout(2, 1, (0,))
    with pytest.raises(ArgumentError):
        place_experts(np.ones((1, 256)), "prefill")  # type: ignore[arg-type]


@st.composite
def small_case(draw: st.DrawFn) -> tuple[np.ndarray, SlotLayout]:
    dies = draw(st.integers(1, 6))
    per_die = draw(st.integers(1, 4))
    experts = draw(st.integers(1, dies * per_die))
    experts = max(1, min(experts, dies * per_die))
    if experts * dies < dies * per_die:
        experts = per_die
    layers = draw(st.integers(1, 3))
    vals = draw(st.lists(st.floats(0.0, 100.0), min_size=layers * experts,
                         max_size=layers * experts))
    nodes = tuple(draw(st.lists(st.integers(0, 2), min_size=dies, max_size=dies)))
    return np.array(vals).reshape(layers, experts), SlotLayout(dies, per_die, nodes)


@settings(max_examples=60, deadline=None)
@given(small_case())
def test_properties_small_layouts(case: tuple[np.ndarray, SlotLayout]) -> None:
    loads, layout = case
    p = place_experts(loads, layout)
    check_invariants(p, layout, loads.shape[1])
    peak = die_loads(loads, p, layout).max(axis=1)
    bounds = np.array([lower_bound(r, layout) for r in loads])
    assert np.all(peak >= bounds * (1 - 1e-7) - 1e-9)
    assert np.array_equal(place_experts(loads, layout).phy2log, p.phy2log)
    rep = replan_experts(loads * 1.5 + 1.0, layout, p.phy2log)
    check_invariants(rep, layout, loads.shape[1])
