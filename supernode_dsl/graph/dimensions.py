"""The symmetric-dimension collapse: a compiled graph as ASTRA-sim's stacked dimensions.

ASTRA-sim's analytical network describes a machine as dimensions ``npus_count[0] x
npus_count[1] x ...``, each a Ring, FullyConnected or Switch with one bandwidth and one
latency.  :func:`collapse` finds such dimensions in any graph, at a chosen unit level
(:func:`npu_units`), and says exactly what the approximation loses.  The rule is documented
in ``docs/emitters-simulators.md`` and the contract in ``docs/graph-contract.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx

from supernode_dsl.diagnostics import CmxError, Diagnostic
from supernode_dsl.graph import instances
from supernode_dsl.graph.instances import Segment
from supernode_dsl.graph.unionfind import UnionFind
from supernode_dsl.schema import (
    EDGE_BANDWIDTH,
    EDGE_LATENCY,
    EDGE_PLANE,
    ENDPOINT_EXCLUDED,
    NODE_CATEGORY,
    NODE_PARENT,
)

__all__ = ["UNIT_CHOICES", "Collapse", "Dimension", "collapse", "npu_units"]

#: The unit levels :func:`npu_units` accepts.
UNIT_CHOICES = ("accelerator", "die")
_GB = 1e9

_Edge = tuple[str, str, float, float]  # unit or forwarding ends, bandwidth B/s, latency s


def _error(message: str) -> CmxError:
    return CmxError([Diagnostic("E026", message)])


# ---- NPU units -------------------------------------------------------------------------------

def npu_units(g: nx.Graph, unit: str) -> list[str]:
    """The NPUs of ``g`` in instance order: accelerators (``unit='accelerator'``, falling back
    to dies when there is no accelerator) or dies plus the accelerators without a die
    (``unit='die'``).  E026 for an unknown ``unit`` or a graph with neither."""
    if unit not in UNIT_CHOICES:
        raise _error(f"unknown unit '{unit}' (choices: {', '.join(UNIT_CHOICES)})")
    nodes = instances.ordered_nodes(g)
    accs = [n for n in nodes if g.nodes[n].get(NODE_CATEGORY) == "accelerator"]
    dies = [n for n in nodes if g.nodes[n].get(NODE_CATEGORY) == "die"]
    if not accs and not dies:
        raise _error("the graph has no accelerator or die instance to simulate")
    if unit == "accelerator":
        return accs or dies
    with_dies: set[str] = set()
    for d in dies:
        p = g.nodes[d].get(NODE_PARENT, "")
        while p and p in g:
            with_dies.add(p)
            p = g.nodes[p].get(NODE_PARENT, "")
    return [n for n in nodes if n in set(dies) or (n in set(accs) and n not in with_dies)]


# ---- result types ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """One ASTRA-sim dimension: ``topology`` (Ring, FullyConnected or Switch), ``npus``,
    ``bandwidth`` (GB/s: per NPU for Switch, per neighbour link for Ring and FullyConnected),
    ``latency`` (ns per link) and ``source`` (the plane, or plane and index direction)."""

    topology: str
    npus: int
    bandwidth: float
    latency: float
    source: str


@dataclass(frozen=True)
class Collapse:
    """The result of :func:`collapse`: the units (NPU id = position), the dimensions
    innermost first, notes (how each plane was used) and ``lost`` (what the approximation
    loses; empty = exact)."""

    units: tuple[str, ...]
    dimensions: tuple[Dimension, ...]
    notes: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


@dataclass
class _Candidate:
    """A plane (or one index direction of a direct-link plane) being ranked and joined."""

    label: str
    order: int
    switched: bool
    edges: list[_Edge]
    groups: list[list[int]] = field(default_factory=list)
    per_npu: dict[int, float] = field(default_factory=dict)


# ---- candidates ------------------------------------------------------------------------------

def _direction_key(g: nx.Graph, a: str, b: str, memo: dict[str, tuple[Segment, ...]]
                   ) -> frozenset[int]:
    """Positions of the full index vector in which ``a`` and ``b`` differ; ``{-1}`` when
    they are elements of different arrays (or of the same one at the same indices)."""
    sa, sb = instances.segments(g, a, memo), instances.segments(g, b, memo)
    if [(n, len(i)) for n, i in sa] != [(n, len(i)) for n, i in sb]:
        return frozenset({-1})
    ia, ib = instances.index_vector(g, a, memo), instances.index_vector(g, b, memo)
    return frozenset(i for i, (x, y) in enumerate(zip(ia, ib, strict=True))
                     if x != y) or frozenset({-1})


def _direction_classes(g: nx.Graph, edges: list[_Edge]) -> list[tuple[str, list[_Edge]]]:
    """Split direct unit-to-unit edges into directions: an edge's key is the set of index
    positions in which its two ends differ (:func:`_direction_key`); keys sharing a position
    are merged (x-links inside a tray and x-links between trays form one direction)."""
    memo: dict[str, tuple[Segment, ...]] = {}
    keys = [_direction_key(g, a, b, memo) for a, b, _, _ in edges]
    positions = sorted({p for k in keys for p in k})
    uf = UnionFind(len(positions))
    pos_id = {p: i for i, p in enumerate(positions)}
    for k in keys:
        first, *rest = sorted(k)
        for p in rest:
            uf.union(pos_id[first], pos_id[p])
    classes: dict[int, list[_Edge]] = {}
    names: dict[int, list[int]] = {}
    for k, e in zip(keys, edges, strict=True):
        root = uf.find(pos_id[min(k)])
        classes.setdefault(root, []).append(e)
        names.setdefault(root, sorted({positions[i] for i in range(len(positions))
                                       if uf.find(i) == root}))
    return [(",".join(str(p) for p in names[r]), classes[r]) for r in classes]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _plane_edges(g: nx.Graph, plane: str, owner: dict[str, str], uid: dict[str, int]
                 ) -> tuple[list[_Edge], bool]:
    """The plane's edges with ends mapped to their units (forwarding ends kept, edges inside
    one unit and edges to other endpoints dropped), and whether any edge touches a unit."""
    kept: list[_Edge] = []
    touches_unit = False
    for a, b, d in g.edges(data=True):
        if d.get(EDGE_PLANE) != plane:
            continue
        ends: list[str] = []
        for x in (a, b):
            if x in owner:
                ends.append(owner[x])
            elif g.nodes[x].get(NODE_CATEGORY) in ENDPOINT_EXCLUDED:
                ends.append(x)
        if len(ends) < 2:
            touches_unit = touches_unit or bool(ends and ends[0] in uid)
            continue
        if ends[0] == ends[1]:
            continue  # inside one unit
        touches_unit = touches_unit or ends[0] in uid or ends[1] in uid
        # half of a switch's traversal latency on each of its edges: a path through it
        # enters and leaves, so it pays the whole (as shortest_path counts it)
        through = sum(instances.traversal_latency(g.nodes[x]) for x in (a, b) if x in ends)
        kept.append((ends[0], ends[1], float(d.get(EDGE_BANDWIDTH, 0.0)),
                     float(d.get(EDGE_LATENCY, 0.0) or 0.0) + through / 2))
    return kept, touches_unit


def _candidates(g: nx.Graph, units: list[str], uid: dict[str, int], notes: list[str]
                ) -> list[_Candidate]:
    owner = instances.unit_owner(g, units)
    cands: list[_Candidate] = []
    for plane in instances.graph_planes(g):
        kept, touches_unit = _plane_edges(g, plane, owner, uid)
        if not any(a in uid or b in uid for a, b, _, _ in kept):
            if touches_unit:
                notes.append(f"plane {plane}: links NPUs to hosts only, not used")
            continue
        if any(a not in uid or b not in uid for a, b, _, _ in kept):
            cands.append(_Candidate(plane, len(cands), True, kept))
            continue
        split = _direction_classes(g, kept)
        for label, edges in split:
            name = plane if len(split) == 1 else f"{plane}/index {label}"
            cands.append(_Candidate(name, len(cands), False, edges))
    for c in cands:
        h = nx.Graph()
        h.add_nodes_from(units)
        for a, b, bw, _ in c.edges:
            h.add_edge(a, b)
            for x in (a, b):
                if x in uid:
                    c.per_npu[uid[x]] = c.per_npu.get(uid[x], 0.0) + bw
        c.groups = [sorted(uid[x] for x in comp if x in uid) for comp in nx.connected_components(h)]
        c.groups = sorted((gr for gr in c.groups if gr), key=lambda gr: gr[0])
    return cands


def _mean_bandwidth(c: _Candidate) -> float:
    return sum(c.per_npu.values()) / max(1, len(c.per_npu))


def _rank(c: _Candidate) -> tuple[float, int, int]:
    """Innermost first: bandwidth per NPU (highest first), group size, declaration order."""
    return (-round(_mean_bandwidth(c), 3), _mode(len(gr) for gr in c.groups), c.order)


# ---- the collapse ----------------------------------------------------------------------------

def collapse(g: nx.Graph, unit: str = "accelerator") -> Collapse:
    """Collapse ``g`` into symmetric ASTRA-sim dimensions at the level ``unit``.

    Inputs: a compiled graph and a unit level of :data:`UNIT_CHOICES` (the NPUs are
    :func:`npu_units`; everything inside an NPU is folded into it).  Every plane (a
    direct-link plane split into index directions, read from the nodes' ``array`` and
    ``indices``) that joins NPUs is a candidate; candidates go innermost-first by bandwidth
    per NPU (highest first), then group size, then declaration order; each one that joins
    groups of the previous dimensions adds a dimension of ``npus`` = new group size / old.
    Units: :class:`Dimension` bandwidth in GB/s, latency in ns.

    Guarantees: deterministic; ``lost`` is empty exactly when the product of ``npus`` is the
    number of NPUs and every dimension is uniform; never raises for irregular graphs
    (``lost`` says what was approximated); E026 when no plane joins two NPUs or ``unit`` is
    unknown.
    """
    units = npu_units(g, unit)
    uid = {u: i for i, u in enumerate(units)}
    notes: list[str] = []
    lost: list[str] = []
    dims: list[Dimension] = []
    uf = UnionFind(len(units))
    span = 1
    for c in sorted(_candidates(g, units, uid, notes), key=_rank):
        before = len(uf.groups())
        for gr in c.groups:
            for i in gr[1:]:
                uf.union(gr[0], i)
        groups = uf.groups()
        if len(groups) == before:
            if any(len(gr) > 1 for gr in c.groups):
                lost.append(
                    f"plane {c.label} ({_fmt(_mean_bandwidth(c) / _GB)} GB/s per NPU) runs "
                    "parallel to the dimensions above and is not represented")
            continue
        sizes = Counter(len(gr) for gr in groups)
        size = _mode(len(gr) for gr in groups)
        count = max(2, round(size / span))
        dim_no = len(dims) + 1
        if len(sizes) > 1 or size % span:
            lost.append(
                f"dimension {dim_no} ({c.label}): groups of "
                f"{', '.join(f'{s} NPUs x{k}' for s, k in sorted(sizes.items()))}; "
                f"npus_count {count} assumes {span * count}")
        topo, bw, lat = _shape(c, units, uid, dim_no, lost)
        dims.append(Dimension(topo, count, bw, lat, c.label))
        notes.append(f"dimension {dim_no}: {topo} of {count} from plane {c.label}")
        span *= count
    if not dims:
        raise _error("no plane joins two NPUs: nothing for a network simulator")
    final = uf.groups()
    if len(final) > 1:
        lost.append(f"the NPUs form {len(final)} disconnected groups; the dimensions "
                    f"describe one group of {span} of the {len(units)} NPUs")
    elif span != len(units):
        lost.append(f"npus_count multiplies out to {span}, not to the {len(units)} NPUs")
    return Collapse(tuple(units), tuple(dims), tuple(notes), tuple(lost))


def _mode(values: Iterable[int]) -> int:
    """The most common value (ties: the largest); 1 for no values."""
    counts = Counter(values)
    if not counts:
        return 1
    top = max(counts.values())
    return max(v for v, k in counts.items() if k == top)


def _spread(values: Sequence[float], what: str, label: str, lost: list[str]) -> float:
    """The mean of ``values``, noting in ``lost`` when they are not all equal."""
    lo, hi = min(values), max(values)
    mean = sum(values) / len(values)
    if hi - lo > 1e-9 * max(1.0, abs(hi)):
        lost.append(f"{label}: {what} varies from {_fmt(lo)} to {_fmt(hi)}; "
                    f"the mean {_fmt(mean)} is used")
    return mean


def _shape(c: _Candidate, units: list[str], uid: dict[str, int], dim_no: int,
           lost: list[str]) -> tuple[str, float, float]:
    """Topology, bandwidth (GB/s) and latency (ns) of the dimension ``c`` adds."""
    label = f"dimension {dim_no} ({c.label})"
    if c.switched:
        return _switch_shape(c, units, label, lost)
    pair_bw: dict[tuple[int, int], float] = {}
    for a, b, bw_e, _ in c.edges:
        k = (min(uid[a], uid[b]), max(uid[a], uid[b]))
        pair_bw[k] = pair_bw.get(k, 0.0) + bw_e
    degree = Counter(i for pair in pair_bw for i in pair)
    bw = _spread([v / _GB for v in pair_bw.values()], "bandwidth per link (GB/s)", label, lost)
    latency = sum(lat for *_, lat in c.edges) / len(c.edges) * 1e9
    multi = [gr for gr in c.groups if len(gr) > 1]
    if all(degree[u] == len(gr) - 1 for gr in multi for u in gr):
        return "FullyConnected", round(bw, 6), round(latency, 3)
    if not all(degree[u] == 2 for gr in multi for u in gr):
        lost.append(f"{label}: NPUs with {sorted(set(degree.values()))} neighbours, neither a "
                    "ring nor fully connected; written as a Ring")
    return "Ring", round(bw, 6), round(latency, 3)


def _switch_shape(c: _Candidate, units: list[str], label: str, lost: list[str]
                  ) -> tuple[str, float, float]:
    """A switched dimension: bandwidth per NPU, latency half the mean NPU-to-NPU path."""
    members = [u for gr in c.groups if len(gr) > 1 for u in gr]
    bw = _spread([c.per_npu.get(u, 0.0) / _GB for u in members],
                 "bandwidth per NPU (GB/s)", label, lost)
    h = nx.Graph()
    for a, b, _, lat in c.edges:
        if not h.has_edge(a, b) or h[a][b]["latency"] > lat:
            h.add_edge(a, b, latency=lat)
    first = next(gr for gr in c.groups if len(gr) > 1)
    dist = nx.single_source_dijkstra_path_length(h, units[first[0]], weight="latency")
    peers = [dist[units[u]] for u in first[1:] if units[u] in dist]
    latency = sum(peers) / len(peers) / 2 * 1e9 if peers else 0.0
    return "Switch", round(bw, 6), round(latency, 3)
