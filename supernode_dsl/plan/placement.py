"""Routed-expert placement for expert parallelism: replica counts and slot packing.

Problem (per MoE layer): ``loads[l, e]`` tokens go to logical expert ``e``; the EP group has
``num_dies * slots_per_die`` routed slots (slot ``s`` on die ``s // slots_per_die``). Choose a
replica count ``c_e >= 1`` per expert (summing to the slot count, at most one replica of an
expert per die, so ``c_e <= num_dies``) and a die for every replica; an expert's tokens split
evenly over its replicas. Objective: minimise the largest die load.

Algorithm (``place_experts``), vectorised over layers with numpy:

1. replica counts: greedy "next replica to the largest ``load / replicas``" (optimal for the
   largest replica size, so optimal outright when a die has one slot);
2. packing: LPT (heaviest replica first into the lightest die that has a free slot and no
   replica of that expert; ties prefer a node not yet holding the expert);
3. local search until no improvement: swap a slot of the heaviest die with a slot of any other
   die (all candidates evaluated at once per layer), and, when no swap helps, turn a replica of
   an expert with spare replicas into one more replica of an expert on the heaviest die.

``replan_experts`` starts from a previous placement and applies the cheapest moves (ranked by
load reduction per copied expert weight) until it is within ``tolerance`` of a fresh plan.
With ``prefer_node_locality`` each expert group is first packed into its own contiguous run of
nodes; the result is kept per layer only when its imbalance stays within
``LOCALITY_TOLERANCE`` of the unconstrained plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from supernode_dsl.contracts import check_instance, check_real, describe
from supernode_dsl.diagnostics import ArgumentError
from supernode_dsl.plan.loads import check_loads
from supernode_dsl.plan.lowerbound import die_load_lower_bound

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

LOCALITY_TOLERANCE = 0.01  # max/mean a locality-preferring plan may lose against a free one
_MAX_SEARCH_ROUNDS = 4000  # safety cap on local-search rounds (never reached in practice)
_KICK_WIDTH = 4  # count moves tried (each with swap descent) per kick
_MAX_KICKS = 8  # kicks per layer at most
_GOOD_ENOUGH = 3e-4  # stop kicking a layer once max/mean - 1 is below this
_SWAP_PARTNERS = 12  # lightest dies considered as swap partners of the heaviest one
_SWAP_CANDIDATES = 1024  # slot pairs per layer above which partners are restricted
_REL_EPS = 1e-12  # improvements below this fraction of the mean die load do not count


@dataclass(frozen=True)
class SlotLayout:
    """Routed-expert slots of one EP group: slot s lives on die s // slots_per_die."""

    num_dies: int
    slots_per_die: int
    die_node: tuple[int, ...]  # node index of each die (len num_dies), for spreading / locality
    num_groups: int = 1  # expert groups of the model (DeepSeek: 8), for locality
    prefer_node_locality: bool = False  # keep a group's experts on few nodes if balance allows

    def __post_init__(self) -> None:
        for name in ("num_dies", "slots_per_die", "num_groups"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ArgumentError(f"SlotLayout: {name} must be an integer >= 1, "
                                    f"not {describe(v)}")
        if not isinstance(self.die_node, tuple | list) or len(self.die_node) != self.num_dies:
            raise ArgumentError("SlotLayout: die_node must have one entry per die")

    @property
    def num_slots(self) -> int:
        """Routed slots in the EP group."""
        return self.num_dies * self.slots_per_die

    def node_array(self) -> IntArray:
        """Node index of each die, dense-coded 0..num_nodes-1."""
        _, codes = np.unique(np.asarray(self.die_node), return_inverse=True)
        return codes.astype(np.int64)

    def node_major_dies(self) -> IntArray:
        """Dies ordered node by node (stable), for contiguous per-node runs."""
        return np.argsort(self.node_array(), kind="stable").astype(np.int64)


@dataclass(frozen=True)
class Placement:
    """Result: ``phy2log[l, s]`` logical expert of slot ``s``; ``logcnt[l, e]`` its replicas."""

    phy2log: IntArray  # int64 [layers, num_dies*slots_per_die]
    logcnt: IntArray  # int64 [layers, num_experts]


# ----------------------------------------------------------------------------- helpers


def _check_loads(loads: NDArray[np.floating] | FloatArray, layout: SlotLayout) -> FloatArray:
    """Validated float64 copy of a [layers, experts] load array that fits the layout:
    :func:`~supernode_dsl.plan.loads.check_loads` (E021), then E028 if the layout's slots
    cannot hold every expert once and at most once per die."""
    check_instance(layout, SlotLayout, "placement", "layout")
    w = np.array(check_loads(loads, some_load=False), dtype=np.float64)
    num_experts = w.shape[1]
    if not num_experts <= layout.num_slots <= num_experts * layout.num_dies:
        raise ArgumentError(f"placement: {layout.num_slots} slots for {num_experts} experts "
                            f"on {layout.num_dies} dies; need experts <= slots <= "
                            "experts x dies")
    return w


def greedy_counts(
    loads: FloatArray, totals: IntArray, cap: int, start: IntArray | None = None
) -> IntArray:
    """Replica counts by the greedy rule, per layer (row) up to ``totals[row]`` replicas.

    Starts from ``start`` (default one each) and repeatedly gives one more replica to the
    expert with the largest ``load / count`` among those below ``cap`` (ties: lowest index).
    This minimises the largest replica size ``max_e load_e / count_e``.
    """
    counts = np.ones(loads.shape, np.int64) if start is None else start.astype(np.int64)
    rows = np.arange(loads.shape[0])
    missing = totals - counts.sum(axis=1)
    for step in range(int(missing.max(initial=0))):
        ratio = np.where(counts < cap, loads / counts, -np.inf)
        pick = ratio.argmax(axis=1)
        live = missing > step
        counts[rows[live], pick[live]] += 1
    return counts


def _slot_sizes(ex: IntArray, w: FloatArray, counts: IntArray) -> FloatArray:
    """Replica size of every slot: ``w[l, ex] / counts[l, ex]`` (same shape as ``ex``)."""
    rows = np.arange(ex.shape[0]).reshape((-1,) + (1,) * (ex.ndim - 1))
    return w[rows, ex] / counts[rows, ex]


def _presence(ex: IntArray, num_experts: int) -> BoolArray:
    """``pres[l, d, e]``: die ``d`` of layer ``l`` holds a replica of ``e``."""
    num_layers, num_dies, _ = ex.shape
    pres = np.zeros((num_layers, num_dies, num_experts), np.bool_)
    rows = np.arange(num_layers)[:, None, None]
    pres[rows, np.arange(num_dies)[None, :, None], ex] = True
    return pres


def _sorted_items(w: FloatArray, counts: IntArray) -> tuple[IntArray, FloatArray]:
    """Replicas of each layer as (expert, size), heaviest first (ties: more replicas first)."""
    num_layers, num_experts = w.shape
    experts = np.stack([np.repeat(np.arange(num_experts), c) for c in counts])
    sizes = _slot_sizes(experts, w, counts)
    rows = np.arange(num_layers)[:, None]
    ncnt = counts[rows, experts]
    order = np.lexsort((experts, -ncnt, -sizes), axis=1)
    return experts[rows, order].astype(np.int64), sizes[rows, order]


# ----------------------------------------------------------------------------- packing


def _lpt_pack(
    experts: IntArray, sizes: FloatArray, layout: SlotLayout, region_pen: FloatArray | None
) -> IntArray:
    """LPT packing of sorted items into dies; returns ``ex[l, die, slot]``.

    Each item goes to the die minimising load + penalties: a die without a free slot is
    excluded, a die already holding the expert costs ``4 * scale`` (only used when nothing
    else is left; ``_repair_duplicates`` fixes it), a die outside the item's group region
    (``region_pen[l, item, die]``) costs up to ``scale``, and a node already holding the
    expert costs a tie-breaking epsilon.
    """
    num_layers, num_items = experts.shape
    n_dies, per_die = layout.num_dies, layout.slots_per_die
    node = layout.node_array()
    num_experts = int(experts.max()) + 1
    rows = np.arange(num_layers)
    scale = sizes.sum(axis=1) + 1.0
    tie = np.maximum(_REL_EPS * scale / n_dies, 1e-200)
    load = np.zeros((num_layers, n_dies))
    fill = np.zeros((num_layers, n_dies), np.int64)
    pres = np.zeros((num_layers, n_dies, num_experts), np.bool_)
    npres = np.zeros((num_layers, int(node.max()) + 1, num_experts), np.bool_)
    ex = np.zeros((num_layers, n_dies, per_die), np.int64)
    for k in range(num_items):
        e = experts[:, k]
        key = load + 4.0 * scale[:, None] * pres[rows, :, e]
        key += tie[:, None] * npres[rows[:, None], node[None, :], e[:, None]]
        if region_pen is not None:
            key += region_pen[:, k, :]
        key[fill >= per_die] = np.inf
        die = key.argmin(axis=1)
        ex[rows, die, fill[rows, die]] = e
        fill[rows, die] += 1
        load[rows, die] += sizes[:, k]
        pres[rows, die, e] = True
        npres[rows, node[die], e] = True
    return ex


def _repair_duplicates(ex: IntArray, w: FloatArray, counts: IntArray) -> None:
    """Swap slots in place until no die holds two replicas of one expert.

    Raises RuntimeError when no valid swap exists (cannot happen for realistic layouts).
    """
    srt = np.sort(ex, axis=2)
    bad_layers = np.flatnonzero(np.any(srt[:, :, 1:] == srt[:, :, :-1], axis=(1, 2)))
    for lay in bad_layers:
        for _ in range(ex.shape[1] * ex.shape[2]):
            if not _repair_one(ex[lay], w[lay], counts[lay]):
                break


def _repair_one(ex_l: IntArray, w_l: FloatArray, c_l: IntArray) -> bool:
    """Fix one duplicate of layer ``ex_l`` by a swap; False when none is left."""
    for die in range(ex_l.shape[0]):
        vals, cnt = np.unique(ex_l[die], return_counts=True)
        if not np.any(cnt > 1):
            continue
        dup = int(vals[cnt > 1][0])
        slot = int(np.flatnonzero(ex_l[die] == dup)[-1])
        has_dup = np.any(ex_l == dup, axis=1)
        ok = ~has_dup[:, None] & ~np.isin(ex_l, ex_l[die])
        if not np.any(ok):
            raise RuntimeError("cannot place replicas without duplicates on a die")
        size = w_l / c_l
        cost = np.where(ok, np.abs(size[ex_l] - size[dup]), np.inf)
        other, oslot = np.unravel_index(int(cost.argmin()), cost.shape)
        ex_l[die, slot], ex_l[other, oslot] = ex_l[other, oslot], dup
        return True
    return False


# ----------------------------------------------------------------------------- local search


@dataclass(frozen=True)
class _Swap:
    """Best swap per layer: heaviest die h, its slot a, partner die n, slot b, new pair max."""

    h: IntArray
    a: IntArray
    n: IntArray
    b: IntArray
    cost: FloatArray
    heavy: FloatArray


def _best_swaps(ex: IntArray, sz: FloatArray, load: FloatArray, pres: BoolArray,
                eps: FloatArray) -> _Swap:
    """Per layer, the slot swap (heaviest die <-> a light die) minimising the new pair max.

    Partners are all dies, or the lightest ones when there are more than
    ``max(_SWAP_PARTNERS, _SWAP_CANDIDATES / slots_per_die**2)``. Only swaps that
    move load off the heaviest die and keep both dies duplicate-free are considered;
    ``cost`` is +inf where none exists.
    """
    num_layers, n_dies, per_die = ex.shape
    rows = np.arange(num_layers)
    h = load.argmax(axis=1)
    heavy = load[rows, h]
    part = np.arange(n_dies)[None, :].repeat(num_layers, axis=0)
    limit = max(_SWAP_PARTNERS, _SWAP_CANDIDATES // (per_die * per_die))
    if n_dies > limit:
        part = np.argpartition(load, limit, axis=1)[:, :limit]
    ea = ex[rows, h]
    psz = sz[rows[:, None], part]  # [L, M, S]
    delta = sz[rows, h][:, :, None, None] - psz[:, None, :, :]  # [L, S, M, S]
    cost = np.maximum(heavy[:, None, None, None] - delta,
                      load[rows[:, None], part][:, None, :, None] + delta)
    a_on_n = pres[rows[:, None, None], part[:, None, :], ea[:, :, None]]
    b_on_h = pres[rows[:, None, None], h[:, None, None], ex[rows[:, None], part]]
    bad = (delta <= eps[:, None, None, None]) | a_on_n[..., None] | b_on_h[:, None]
    flat = np.where(bad, np.inf, cost).reshape(num_layers, -1)
    k = flat.argmin(axis=1)
    a, m, b = np.unravel_index(k, (per_die, part.shape[1], per_die))
    return _Swap(h, a.astype(np.int64), part[rows, m].astype(np.int64), b.astype(np.int64),
                 flat[rows, k], heavy)


def _apply_swaps(ex: IntArray, sz: FloatArray, load: FloatArray, pres: BoolArray,
                 sw: _Swap, rows: IntArray) -> None:
    """Apply the swaps of ``sw`` for the (distinct) layers ``rows`` in place."""
    h, a, n, b = sw.h[rows], sw.a[rows], sw.n[rows], sw.b[rows]
    ea, eb = ex[rows, h, a], ex[rows, n, b]
    sa, sb = sz[rows, h, a], sz[rows, n, b]
    ex[rows, h, a], ex[rows, n, b] = eb, ea
    sz[rows, h, a], sz[rows, n, b] = sb, sa
    load[rows, h] += sb - sa
    load[rows, n] += sa - sb
    pres[rows, h, ea], pres[rows, n, eb] = False, False
    pres[rows, h, eb], pres[rows, n, ea] = True, True


@dataclass(frozen=True)
class _CountMove:
    """Turn the replica of ``cold`` on die ``die`` (slot ``slot``) into one of ``hot``."""

    hot: int
    cold: int
    die: int
    slot: int
    new_changed_max: float  # largest new load among dies whose load changes
    new_global_max: float  # largest die load after the move


def _count_move_table(ex_l: IntArray, load_l: FloatArray, w_l: FloatArray, c_l: IntArray,
                      cap: int) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """All "cold replica -> hot replica" moves for the heaviest die of one layer.

    Returns (new max over changed dies, new global max, hot experts, cold experts); the two
    tables are ``[hot, cold, die X]`` with +inf for invalid moves.
    """
    n_dies = ex_l.shape[0]
    pres = np.zeros((n_dies, w_l.size), np.bool_)
    pres[np.arange(n_dies)[:, None], ex_l] = True
    hot = ex_l[int(load_l.argmax())]
    cold = np.flatnonzero(c_l >= 2).astype(np.int64)
    d_hot = w_l[hot] / (c_l[hot] + 1) - w_l[hot] / c_l[hot]
    d_cold = w_l[cold] / np.maximum(c_l[cold] - 1, 1) - w_l[cold] / c_l[cold]
    p_hot, p_cold = pres[:, hot].T, pres[:, cold].T  # [S, N], [C, N]
    base = (load_l[None, None, :] + p_hot[:, None, :] * d_hot[:, None, None]
            + p_cold[None, :, :] * d_cold[None, :, None])
    changed = p_hot[:, None, :] | p_cold[None, :, :]
    chg = np.where(changed, base, -np.inf)
    top = np.argmax(chg, axis=2)
    m1 = np.take_along_axis(chg, top[..., None], axis=2)
    m2 = np.partition(chg, -2, axis=2)[..., -2:-1] if n_dies > 1 else np.full_like(m1, -np.inf)
    others = np.where(np.arange(n_dies)[None, None, :] == top[..., None], m2, m1)
    xval = (load_l[None, None, :] - (w_l[cold] / c_l[cold])[None, :, None]
            + (w_l[hot] / (c_l[hot] + 1))[:, None, None])
    new_chg = np.maximum(others, xval)
    unchanged = np.where(changed, -np.inf, base).max(axis=2, initial=-np.inf)
    new_glob = np.maximum(new_chg, unchanged[..., None])
    valid = (p_cold[None, :, :] & ~p_hot[:, None, :] & (c_l[hot] < cap)[:, None, None]
             & (hot[:, None] != cold[None, :])[..., None])
    return (np.where(valid, new_chg, np.inf), np.where(valid, new_glob, np.inf),
            hot.astype(np.int64), cold)


def _best_count_move(ex_l: IntArray, load_l: FloatArray, w_l: FloatArray, c_l: IntArray,
                     cap: int, target: float | None) -> _CountMove | None:
    """Best count move: min global max (``target`` None) or min ``max(changed max, target)``."""
    new_chg, new_glob, hot, cold = _count_move_table(ex_l, load_l, w_l, c_l, cap)
    if new_chg.size == 0:
        return None
    table = new_glob if target is None else np.maximum(new_chg, target)
    i, j, die = np.unravel_index(int(table.argmin()), table.shape)
    if not np.isfinite(table[i, j, die]):
        return None
    slot = int(np.flatnonzero(ex_l[die] == cold[j])[0])
    return _CountMove(int(hot[i]), int(cold[j]), int(die), slot,
                      float(new_chg[i, j, die]), float(new_glob[i, j, die]))


def _apply_count_move(ex_l: IntArray, c_l: IntArray, mv: _CountMove) -> None:
    """Apply a count move to one layer in place."""
    ex_l[mv.die, mv.slot] = mv.hot
    c_l[mv.hot] += 1
    c_l[mv.cold] -= 1


def _local_search(ex: IntArray, w: FloatArray, counts: IntArray, cap: int) -> None:
    """Improve packings and counts in place: swap descent, then rounds of count-move kicks.

    A kick applies one of the ``_KICK_WIDTH`` most promising count moves to a copy of a
    layer; the copies of all layers still above ``_GOOD_ENOUGH`` run swap descent together,
    and each layer keeps its best copy if that lowers its max die load. At most
    ``_MAX_KICKS`` rounds.
    """
    eps = _REL_EPS * (w.sum(axis=1) + 1e-300)
    _swap_descent(ex, w, counts, eps)
    good_enough = (1.0 + _GOOD_ENOUGH) * w.sum(axis=1) / ex.shape[1]
    active = np.arange(ex.shape[0])
    for _ in range(_MAX_KICKS):
        load = _slot_sizes(ex[active], w[active], counts[active]).sum(axis=2).max(axis=1)
        active = active[load > good_enough[active]]
        if active.size == 0:
            return
        active = active[_kick_round(ex, w, counts, cap, eps, active)]


def _kick_round(ex: IntArray, w: FloatArray, counts: IntArray, cap: int, eps: FloatArray,
                layers: IntArray) -> BoolArray:
    """One kick for each of ``layers`` (in place); returns which layers improved."""
    owner, cand_ex, cand_c = _kick_candidates(ex, w, counts, cap, layers)
    improved = np.zeros(layers.size, np.bool_)
    if owner.size == 0:
        return improved
    cand_w = w[layers[owner]]
    _swap_descent(cand_ex, cand_w, cand_c, eps[layers[owner]])
    final = _slot_sizes(cand_ex, cand_w, cand_c).sum(axis=2).max(axis=1)
    for k, lay in enumerate(layers):
        mine = np.flatnonzero(owner == k)
        if mine.size == 0:
            continue
        best = int(mine[final[mine].argmin()])
        current = float(_slot_sizes(ex[lay][None], w[lay][None], counts[lay][None])
                        .sum(axis=2).max())
        if final[best] < current - eps[lay]:
            ex[lay], counts[lay] = cand_ex[best], cand_c[best]
            improved[k] = True
    return improved


def _kick_candidates(ex: IntArray, w: FloatArray, counts: IntArray, cap: int,
                     layers: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Copies of ``layers`` with one of their best count moves applied.

    Returns (index into ``layers`` of each copy, copies' ex, copies' counts).
    """
    owner: list[int] = []
    cand_ex: list[IntArray] = []
    cand_c: list[IntArray] = []
    for k, lay in enumerate(layers):
        ex_l, c_l, w_l = ex[lay], counts[lay], w[lay]
        load = (w_l[ex_l] / c_l[ex_l]).sum(axis=1)
        _, new_glob, hot, cold = _count_move_table(ex_l, load, w_l, c_l, cap)
        flat = new_glob.ravel()
        order = np.argsort(flat, kind="stable")[:_KICK_WIDTH]
        for i, j, die in zip(*np.unravel_index(order[np.isfinite(flat[order])],
                                               new_glob.shape), strict=True):
            e_new, c_new = ex_l.copy(), c_l.copy()
            slot = int(np.flatnonzero(ex_l[die] == cold[j])[0])
            _apply_count_move(e_new, c_new, _CountMove(int(hot[i]), int(cold[j]), int(die),
                                                       slot, 0.0, 0.0))
            owner.append(k)
            cand_ex.append(e_new)
            cand_c.append(c_new)
    if not owner:
        empty = np.zeros((0,), np.int64)
        return empty, np.zeros((0, *ex.shape[1:]), np.int64), np.zeros((0, w.shape[1]),
                                                                         np.int64)
    return np.array(owner, np.int64), np.stack(cand_ex), np.stack(cand_c)


def _swap_descent(ex: IntArray, w: FloatArray, counts: IntArray, eps: FloatArray) -> None:
    """Apply best heaviest-die swaps in place, all layers at once, until none improves."""
    active = np.arange(ex.shape[0])
    for _ in range(_MAX_SEARCH_ROUNDS):
        if active.size == 0:
            return
        sub = ex[active]
        sz = _slot_sizes(sub, w[active], counts[active])
        load = sz.sum(axis=2)
        pres = _presence(sub, w.shape[1])
        sw = _best_swaps(sub, sz, load, pres, eps[active])
        good = np.flatnonzero(sw.cost < sw.heavy - eps[active])
        _apply_swaps(sub, sz, load, pres, sw, good)
        ex[active] = sub
        active = active[good]


# ----------------------------------------------------------------------------- planning


def _plan(w: FloatArray, layout: SlotLayout, counts: IntArray,
          region_pen: FloatArray | None) -> tuple[IntArray, IntArray]:
    """Pack given counts (LPT, repair, local search); returns (ex [L, N, S], counts)."""
    counts = counts.copy()
    experts, sizes = _sorted_items(w, counts)
    pen = None if region_pen is None else _item_penalty(region_pen, experts, w.shape[1])
    ex = _lpt_pack(experts, sizes, layout, pen)
    _repair_duplicates(ex, w, counts)
    if layout.slots_per_die > 1:
        _local_search(ex, w, counts, layout.num_dies)
    return ex, counts


def _item_penalty(region_pen: FloatArray, experts: IntArray, num_experts: int) -> FloatArray:
    """Expand a per-group die penalty ``[L, G, N]`` to the sorted items ``[L, P, N]``."""
    group = experts * region_pen.shape[1] // num_experts
    out: FloatArray = region_pen[np.arange(experts.shape[0])[:, None], group]
    return out


def _free_plan(w: FloatArray, layout: SlotLayout) -> tuple[IntArray, IntArray]:
    """Unconstrained plan: greedy counts, then packing."""
    totals = np.full(w.shape[0], layout.num_slots, np.int64)
    return _plan(w, layout, greedy_counts(w, totals, layout.num_dies), None)


def _imbalance_of(ex: IntArray, w: FloatArray, counts: IntArray) -> FloatArray:
    """max/mean die load per layer of an ``ex[l, die, slot]`` plan (1.0 for zero loads)."""
    load = _slot_sizes(ex, w, counts).sum(axis=2)
    mean = load.mean(axis=1)
    return np.where(mean > 0, load.max(axis=1) / np.where(mean > 0, mean, 1.0), 1.0)


def _to_placement(ex: IntArray, counts: IntArray) -> Placement:
    """Flatten ``ex[l, die, slot]`` into a Placement."""
    phy2log = ex.reshape(ex.shape[0], -1).astype(np.int64)
    return Placement(phy2log=phy2log, logcnt=counts.astype(np.int64))


def place_experts(loads: NDArray[np.floating] | FloatArray, layout: SlotLayout) -> Placement:
    """Plan replica counts and slots for every layer, minimising the largest die load.

    Guarantees: every expert has >= 1 replica, all slots are used, no die holds two replicas
    of one expert; with one slot per die the max die load equals the greedy-replication
    optimum. Deterministic. ``loads`` is ``[layers, num_experts]`` (pass equal loads when
    unknown).
    """
    w = _check_loads(loads, layout)
    ex, counts = _free_plan(w, layout)
    if layout.prefer_node_locality:
        ex, counts = _prefer_locality(w, layout, ex, counts)
    return _to_placement(ex, counts)


# ----------------------------------------------------------------------------- locality


def _group_regions(counts: IntArray, layout: SlotLayout, total: FloatArray) -> FloatArray:
    """Die penalty ``[L, G, N]``: each group owns a contiguous run of node-major slots.

    A group's run is as long as its experts' replica count (groups in index order); the
    penalty is 0 on the run's dies and ``total + 1`` elsewhere.
    """
    num_layers, num_experts = counts.shape
    groups, per_die = layout.num_groups, layout.slots_per_die
    budget = counts.reshape(num_layers, groups, num_experts // groups).sum(axis=2)
    ends = np.cumsum(budget, axis=1)
    first, last = (ends - budget) // per_die, (ends - 1) // per_die  # positions in die order
    pos = np.arange(layout.num_dies)
    inside = (pos[None, None, :] >= first[..., None]) & (pos[None, None, :] <= last[..., None])
    pen = np.zeros((num_layers, groups, layout.num_dies))
    pen[:, :, layout.node_major_dies()] = np.where(inside, 0.0, 1.0)
    return pen * (total + 1.0)[:, None, None]


def _prefer_locality(w: FloatArray, layout: SlotLayout, ex: IntArray,
                     counts: IntArray) -> tuple[IntArray, IntArray]:
    """Per layer, use the group-region plan when its imbalance is within tolerance.

    The region plan keeps the free plan's replica counts and packs each group's replicas
    into its own run of nodes first (soft: other dies only when the run is full).
    """
    if w.shape[1] % layout.num_groups or layout.num_groups < 2:
        return ex, counts
    pen = _group_regions(counts, layout, w.sum(axis=1))
    loc_ex, loc_counts = _plan(w, layout, counts, pen)
    keep = _imbalance_of(loc_ex, w, loc_counts) <= _imbalance_of(ex, w, counts) + (
        LOCALITY_TOLERANCE)
    return (np.where(keep[:, None, None], loc_ex, ex),
            np.where(keep[:, None], loc_counts, counts))


def node_spread(placement: Placement, layout: SlotLayout) -> float:
    """Mean over layers and expert groups of the number of distinct nodes holding the group."""
    num_layers, num_experts = placement.logcnt.shape
    node = np.repeat(layout.node_array(), layout.slots_per_die)
    group = placement.phy2log * layout.num_groups // num_experts
    num_nodes = int(node.max()) + 1
    hit = np.zeros((num_layers, layout.num_groups, num_nodes), np.bool_)
    hit[np.arange(num_layers)[:, None], group, node[None, :]] = True
    return float(hit.sum(axis=2).mean())


# ----------------------------------------------------------------------------- metrics


def _check_phy2log(phy2log: Any, w: FloatArray, layout: SlotLayout, where: str) -> IntArray:
    """``phy2log`` as int64 [layers, slots] for loads ``w``: E028 unless it has that shape
    and every entry is an expert of ``w``."""
    try:
        arr = np.asarray(phy2log)
    except (TypeError, ValueError):
        arr = np.asarray([])
    shape = (w.shape[0], layout.num_slots)
    if arr.dtype.kind not in "iu" or arr.shape != shape or arr.size == 0 \
            or arr.min() < 0 or arr.max() >= w.shape[1]:
        raise ArgumentError(f"{where}: a placement is an integer array {list(shape)} of "
                            f"experts 0..{w.shape[1] - 1}, not {describe(phy2log)}")
    return arr.astype(np.int64)


def die_loads(loads: NDArray[np.floating] | FloatArray, placement: Placement,
              layout: SlotLayout) -> FloatArray:
    """Per-die load ``[layers, num_dies]``: sum over a die's slots of load / replicas."""
    w = _check_loads(loads, layout)
    check_instance(placement, Placement, "die_loads", "placement")
    _check_phy2log(placement.phy2log, w, layout, "die_loads")
    sz = _slot_sizes(placement.phy2log, w, placement.logcnt)
    out: FloatArray = sz.reshape(w.shape[0], layout.num_dies, layout.slots_per_die).sum(axis=2)
    return out


def imbalance(loads: NDArray[np.floating] | FloatArray, placement: Placement,
              layout: SlotLayout) -> FloatArray:
    """max / mean die load per layer (1.0 for a layer without load)."""
    dl = die_loads(loads, placement, layout)
    mean = dl.mean(axis=1)
    return np.where(mean > 0, dl.max(axis=1) / np.where(mean > 0, mean, 1.0), 1.0)


def moved_slots(previous_phy2log: IntArray, new_phy2log: IntArray) -> int:
    """Slots whose logical expert changed (expert weights that must be copied); E028 unless
    both are integer arrays of one shape."""
    a, b = np.asarray(previous_phy2log), np.asarray(new_phy2log)
    if a.shape != b.shape or a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise ArgumentError(f"moved_slots: two integer placements of one shape, not "
                            f"{list(a.shape)} {a.dtype} and {list(b.shape)} {b.dtype}")
    return int(np.count_nonzero(a != b))


def lower_bound(loads_row: NDArray[np.floating] | FloatArray, layout: SlotLayout) -> float:
    """A proven lower bound on the max die load of one layer (see ``lowerbound``); the row
    passes the checks of :func:`place_experts` (E021, E028)."""
    if not isinstance(loads_row, np.ndarray | list | tuple) or np.ndim(loads_row) != 1:
        raise ArgumentError(f"lower_bound: loads_row is one layer's loads (1-D), not "
                            f"{describe(loads_row)}")
    w = _check_loads(np.asarray(loads_row)[None, :], layout)[0]
    return die_load_lower_bound(w, layout.num_dies, layout.slots_per_die)


# ----------------------------------------------------------------------------- replanning


def replan_experts(loads: NDArray[np.floating] | FloatArray, layout: SlotLayout,
                   previous: IntArray, tolerance: float = 0.01) -> Placement:
    """Migration-aware replan from ``previous`` phy2log (same layout) for new ``loads``.

    Per layer, reaches max/mean <= (max/mean of ``place_experts`` on the new loads) +
    ``tolerance`` by greedy moves ranked by load reduction per copied expert weight: turn a
    spare replica into a replica of an expert on the heaviest die (1 copy) or swap two slots
    between dies (2 copies). If that stalls, the full local search continues from there; if
    that fails too, or costs more copies than a fresh plan aligned to ``previous`` (die
    contents matched by an assignment problem), the aligned fresh plan is used.
    Invariants as for ``place_experts``; deterministic.
    """
    w = _check_loads(loads, layout)
    check_real(tolerance, "replan_experts", "tolerance")
    prev = _check_phy2log(previous, w, layout, "replan_experts").reshape(
        w.shape[0], layout.num_dies, layout.slots_per_die)
    fresh = place_experts(w, layout)
    fresh_ex = fresh.phy2log.reshape(prev.shape)
    target = imbalance(w, fresh, layout) + tolerance
    out = prev.copy()
    for lay in range(w.shape[0]):
        out[lay] = _replan_layer(prev[lay], fresh_ex[lay], w[lay], float(target[lay]),
                                 layout.num_dies)
    counts = np.stack([np.bincount(r.ravel(), minlength=w.shape[1]) for r in out])
    return _to_placement(out, counts.astype(np.int64))


def _replan_layer(prev_l: IntArray, fresh_l: IntArray, w_l: FloatArray, target: float,
                  cap: int) -> IntArray:
    """One layer of ``replan_experts``: greedy moves, else the aligned fresh plan."""
    aligned = _align(prev_l, fresh_l)
    ex_l = prev_l.copy()
    mean = float(w_l.sum()) / ex_l.shape[0]
    limit = target * mean + _REL_EPS * (mean + 1e-300)
    budget = int(np.count_nonzero(aligned != prev_l))
    c_l = np.bincount(ex_l.ravel(), minlength=w_l.size).astype(np.int64)
    while np.count_nonzero(ex_l != prev_l) < budget:
        load = (w_l[ex_l] / c_l[ex_l]).sum(axis=1)
        if float(load.max()) <= limit or not _greedy_move(ex_l, c_l, load, w_l, target * mean,
                                                          cap):
            break
    if _meets(ex_l, w_l, limit) and np.count_nonzero(ex_l != prev_l) <= budget:
        return ex_l
    best, best_moves = aligned, budget
    fresh_counts = np.bincount(fresh_l.ravel(), minlength=w_l.size)
    for start in (ex_l, _recount(prev_l, fresh_counts, w_l)):
        cand = _polish(start, w_l, cap)
        moves = int(np.count_nonzero(cand != prev_l))
        if _meets(cand, w_l, limit) and moves < best_moves:
            best, best_moves = cand, moves
    return best


def _meets(ex_l: IntArray, w_l: FloatArray, limit: float) -> bool:
    """True when the max die load of one layer plan is at most ``limit``."""
    c_l = np.bincount(ex_l.ravel(), minlength=w_l.size)
    return float((w_l[ex_l] / c_l[ex_l]).sum(axis=1).max()) <= limit


def _recount(prev_l: IntArray, counts: IntArray, w_l: FloatArray) -> IntArray:
    """``prev_l`` with surplus replicas rewritten into the missing ones of ``counts``.

    Surplus replicas on the heaviest dies are freed first; each missing replica (heaviest
    first) takes the freed slot on the lightest die that does not hold its expert yet.
    """
    ex_l = prev_l.copy()
    have = np.bincount(ex_l.ravel(), minlength=w_l.size)
    load = (w_l[ex_l] / have[ex_l]).sum(axis=1)
    free: list[tuple[int, int]] = []
    for e in np.flatnonzero(have > counts):
        dies = np.flatnonzero(np.any(ex_l == e, axis=1))
        for die in dies[np.argsort(-load[dies], kind="stable")][: have[e] - counts[e]]:
            free.append((int(die), int(np.flatnonzero(ex_l[die] == e)[0])))
            ex_l[die, free[-1][1]] = -1
    need = np.repeat(np.arange(w_l.size), np.maximum(counts - have, 0))
    for e in need[np.argsort(-(w_l[need] / counts[need]), kind="stable")]:
        ok = [k for k, (die, _) in enumerate(free) if not np.any(ex_l[die] == e)]
        if not ok:
            return prev_l.copy()
        k = min(ok, key=lambda i: (load[free[i][0]], i))
        die, slot = free.pop(k)
        ex_l[die, slot] = e
        load[die] += w_l[e] / counts[e]
    return ex_l


def _polish(ex_l: IntArray, w_l: FloatArray, cap: int) -> IntArray:
    """Copy of one layer improved by the full local search (swaps and count kicks)."""
    ex3 = ex_l[None].copy()
    c2 = np.bincount(ex_l.ravel(), minlength=w_l.size)[None].astype(np.int64)
    if ex_l.shape[1] > 1:
        _local_search(ex3, w_l[None], c2, cap)
    out: IntArray = ex3[0]
    return out


def _greedy_move(ex_l: IntArray, c_l: IntArray, load: FloatArray, w_l: FloatArray,
                 goal: float, cap: int) -> bool:
    """Apply the move with the best (load reduction, capped at ``goal``) per copied weight."""
    heavy = float(load.max())
    eps = _REL_EPS * (float(w_l.sum()) + 1e-300)
    ex3 = ex_l[None]
    sw = _best_swaps(ex3, (w_l[ex_l] / c_l[ex_l])[None], load[None],
                     _presence(ex3, w_l.size), np.array([eps]))
    swap_gain = (heavy - max(float(sw.cost[0]), goal)) / 2.0
    mv = _best_count_move(ex_l, load, w_l, c_l, cap, goal)
    move_gain = -np.inf if mv is None or mv.new_changed_max >= heavy - eps else (
        heavy - max(mv.new_changed_max, goal))
    if max(swap_gain, move_gain) <= eps:
        return False
    if mv is not None and move_gain >= swap_gain:
        _apply_count_move(ex_l, c_l, mv)
        return True
    h, a, n, b = int(sw.h[0]), int(sw.a[0]), int(sw.n[0]), int(sw.b[0])
    ex_l[h, a], ex_l[n, b] = ex_l[n, b], ex_l[h, a]
    return True


def _align(prev_l: IntArray, new_l: IntArray) -> IntArray:
    """Permute the dies (and slots within a die) of ``new_l`` to best match ``prev_l``.

    Die loads are unchanged; the die permutation maximises shared experts (assignment
    problem), then an expert already in a die's previous slot set keeps that slot.
    """
    from scipy.optimize import linear_sum_assignment  # re-planning only: a slow import

    n_dies = prev_l.shape[0]
    num_experts = int(max(prev_l.max(), new_l.max())) + 1
    p_new = np.zeros((n_dies, num_experts), np.int64)
    p_old = np.zeros((n_dies, num_experts), np.int64)
    p_new[np.arange(n_dies)[:, None], new_l] = 1
    p_old[np.arange(n_dies)[:, None], prev_l] = 1
    rows, cols = linear_sum_assignment(-(p_new @ p_old.T))
    out = np.empty_like(prev_l)
    for r, c in zip(rows, cols, strict=True):
        out[c] = _align_slots(prev_l[c], new_l[r])
    return out


def _align_slots(old: IntArray, new: IntArray) -> IntArray:
    """Order ``new`` (one die) so that experts also in ``old`` keep their old slot."""
    out = np.full_like(old, -1)
    keep = np.isin(old, new)
    out[keep] = old[keep]
    rest = new[~np.isin(new, old)]
    out[~keep] = rest
    return out
