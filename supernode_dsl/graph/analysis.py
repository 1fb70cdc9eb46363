"""Analyses on a compiled graph: max-flow, bisection bandwidth, path and cut queries, and the
cost of a message between every pair of a set of devices.

Max-flow runs on scipy's compiled implementation (``scipy.sparse.csgraph.maximum_flow``),
which needs 32-bit integer capacities: bandwidths are expressed in a unit chosen so the total
source capacity fits in 2**30, which keeps the relative rounding error below 1e-4 (documented
in docs/graph-contract.md).  Each full-duplex link is two arcs, one per direction, each with
the link bundle's one-way bandwidth.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra, maximum_flow

from supernode_dsl import schema as S
from supernode_dsl.contracts import check_graph, check_instances, check_plane, check_text
from supernode_dsl.diagnostics import CmxError, Diagnostic, Severity
from supernode_dsl.graph.gcpause import gc_paused
from supernode_dsl.graph.instances import traversal_latency, unit_owner

__all__ = [
    "PathResult",
    "PlaneArrays",
    "all_plane_arrays",
    "bisection_bandwidth",
    "busiest_plane",
    "cut_bandwidth",
    "cut_warnings",
    "message_costs",
    "plane_arrays",
    "plane_endpoints",
    "plane_summary",
    "planes_fixed",
    "shortest_path",
]

_HOP_EPSILON = 1e-12  # s added per hop so zero-latency links still count as edges


@dataclass(frozen=True)
class PlaneArrays:
    """One plane as arrays: its nodes in instance order and its links as index pairs."""

    nodes: tuple[str, ...]
    src: np.ndarray
    dst: np.ndarray
    bandwidth: np.ndarray
    latency: np.ndarray
    links: int
    #: per node: the latency (s) a path adds when it passes through it (a switch's
    #: declared ``latency``; 0 for other categories)
    traversal: np.ndarray


_Edge = tuple[str, str, dict[str, Any]]


def all_plane_arrays(g: nx.Graph) -> dict[str, PlaneArrays]:
    """The links of every declared plane as arrays, in one pass over the edges."""
    by_plane: dict[str, list[_Edge]] = {p: [] for p in g.graph.get(S.GRAPH_PLANES, {})}
    with gc_paused():
        for edge in g.edges(data=True):
            by_plane.setdefault(edge[2][S.EDGE_PLANE], []).append(edge)
        return {p: _arrays(g, edges) for p, edges in by_plane.items()}


# id(graph) -> (graph, plane -> arrays), for the graphs inside a ``planes_fixed`` block
_FIXED: dict[int, tuple[nx.Graph, dict[str, PlaneArrays]]] = {}


@contextmanager
def planes_fixed(g: nx.Graph) -> Iterator[None]:
    """Within the block :func:`plane_arrays` extracts each plane of ``g`` once, for callers
    that query one graph many times and do not change it (the planner's routes: about 20
    path queries).  Outside the block every call reads the graph afresh."""
    if id(g) in _FIXED:
        yield
        return
    _FIXED[id(g)] = (g, {})
    try:
        yield
    finally:
        del _FIXED[id(g)]


def plane_arrays(g: nx.Graph, plane: str) -> PlaneArrays:
    """The links of one plane as arrays (nodes sorted by instance order)."""
    fixed = _FIXED.get(id(g))
    if fixed is not None and fixed[0] is g:
        if plane not in fixed[1]:
            fixed[1][plane] = _plane_arrays(g, plane)
        return fixed[1][plane]
    return _plane_arrays(g, plane)


def _plane_arrays(g: nx.Graph, plane: str) -> PlaneArrays:
    with gc_paused():
        return _arrays(g, [e for e in g.edges(data=True) if e[2][S.EDGE_PLANE] == plane])


def _arrays(g: nx.Graph, edges: list[_Edge]) -> PlaneArrays:
    index_of = g.nodes
    ends = {u for u, _, _ in edges} | {v for _, v, _ in edges}
    nodes = sorted(ends, key=lambda n: index_of[n][S.NODE_INDEX])
    pos = {n: i for i, n in enumerate(nodes)}
    return PlaneArrays(
        nodes=tuple(nodes),
        src=np.fromiter((pos[u] for u, _, _ in edges), dtype=np.int64, count=len(edges)),
        dst=np.fromiter((pos[v] for _, v, _ in edges), dtype=np.int64, count=len(edges)),
        bandwidth=np.fromiter((e[S.EDGE_BANDWIDTH] for _, _, e in edges), dtype=np.float64,
                              count=len(edges)),
        latency=np.fromiter((e[S.EDGE_LATENCY] for _, _, e in edges), dtype=np.float64,
                            count=len(edges)),
        links=sum(e[S.EDGE_COUNT] for _, _, e in edges),
        traversal=np.fromiter((traversal_latency(index_of[n]) for n in nodes), dtype=np.float64,
                              count=len(nodes)),
    )



def plane_endpoints(g: nx.Graph, arrays: PlaneArrays) -> list[str]:
    """Nodes of the plane that are traffic endpoints (not switches or NICs), in order."""
    return [n for n in arrays.nodes if g.nodes[n][S.NODE_CATEGORY] not in S.ENDPOINT_EXCLUDED]


def _max_flow(arrays: PlaneArrays, sources: Sequence[int], sinks: Sequence[int]) -> float:
    """Max-flow in B/s from the node set ``sources`` to ``sinks`` (indices into arrays)."""
    if not sources or not sinks or set(sources) & set(sinks):
        return 0.0
    n = len(arrays.nodes)
    s_node, t_node = n, n + 1
    incident = np.bincount(arrays.src, weights=arrays.bandwidth, minlength=n) + np.bincount(
        arrays.dst, weights=arrays.bandwidth, minlength=n)
    src_idx = np.asarray(sources, dtype=np.int64)
    snk_idx = np.asarray(sinks, dtype=np.int64)
    total = float(incident[src_idx].sum())
    if total <= 0:
        return 0.0
    # A power of ten, so bandwidths written in GB/s or Gbps stay exact integers.
    unit = 10.0 ** max(0, math.ceil(math.log10(total / 2**30))) if total > 2**30 else 1.0
    cap = np.minimum(np.floor(arrays.bandwidth / unit), 2**30)
    rows = np.concatenate([arrays.src, arrays.dst, np.full(len(src_idx), s_node), snk_idx])
    cols = np.concatenate([arrays.dst, arrays.src, src_idx, np.full(len(snk_idx), t_node)])
    caps = np.concatenate([cap, cap, np.floor(incident[src_idx] / unit),
                           np.floor(incident[snk_idx] / unit)])
    caps = np.minimum(caps, 2**30).astype(np.int32)
    mat = csr_array((caps, (rows, cols)), shape=(n + 2, n + 2))
    mat.sum_duplicates()
    return float(maximum_flow(mat, s_node, t_node).flow_value) * unit


def bisection_bandwidth(g: nx.Graph, plane: str, arrays: PlaneArrays | None = None) -> float:
    """Max-flow (B/s, one direction) from the first to the second half of the plane's
    endpoints in instance order; with an odd count the middle endpoint joins the second half.
    :class:`~supernode_dsl.diagnostics.ArgumentError` unless ``g`` is a compiled graph and
    ``plane`` one of its planes.
    """
    if arrays is None:
        where = "bisection_bandwidth"
        arrays = plane_arrays(g, check_plane(check_graph(g, where), plane, where))
    pos = {n: i for i, n in enumerate(arrays.nodes)}
    ends = [pos[n] for n in plane_endpoints(g, arrays)]
    half = len(ends) // 2
    return _max_flow(arrays, ends[:half], ends[half:])


def _below(g: nx.Graph, arrays: PlaneArrays, roots: Iterable[str]) -> list[int]:
    """Plane endpoints at or below any of ``roots`` (instances; follows ``parent``)."""
    below = unit_owner(g, roots)
    ends = set(plane_endpoints(g, arrays))
    return [i for i, n in enumerate(arrays.nodes) if n in ends and n in below]


def cut_bandwidth(g: nx.Graph, plane: str, group_a: Iterable[str],
                  group_b: Iterable[str]) -> float:
    """Max-flow (B/s, one direction) on ``plane`` from the endpoints at or below the
    instances of ``group_a`` to those at or below ``group_b``.
    :class:`~supernode_dsl.diagnostics.ArgumentError` for a ``g`` that is not a compiled
    graph, an unknown ``plane`` or a group that is not a list of instance paths of ``g``."""
    where = "cut_bandwidth"
    arrays = plane_arrays(g, check_plane(check_graph(g, where), plane, where))
    a = check_instances(g, group_a, where, "group_a")
    b = check_instances(g, group_b, where, "group_b")
    return _max_flow(arrays, _below(g, arrays, a), _below(g, arrays, b))


def cut_warnings(g: nx.Graph, plane: str, groups: Sequence[tuple[str, Iterable[str]]]
                 ) -> list[Diagnostic]:
    """W003 for each reason the cut of :func:`cut_bandwidth` between the two ``(pattern,
    instances)`` groups is 0 by construction on ``plane``: a group without a traffic
    endpoint there (only switches or NICs, or nothing the plane links), or groups that
    share endpoints."""
    arrays = plane_arrays(g, plane)
    ends = [(pattern, _below(g, arrays, roots)) for pattern, roots in groups]
    out = [Diagnostic("W003", f"plane {plane}: '{pattern}' has no traffic endpoint on this "
                      "plane (switches and NICs are not endpoints), so its cut is 0",
                      severity=Severity.WARNING)
           for pattern, idx in ends if not idx]
    (name_a, a), (name_b, b) = ends
    shared = sorted(set(a) & set(b))
    if shared:
        out.append(Diagnostic(
            "W003", f"plane {plane}: '{name_a}' and '{name_b}' share {len(shared)} "
            f"endpoint(s) (e.g. {arrays.nodes[shared[0]]}), so their cut is 0; give two "
            "disjoint groups", severity=Severity.WARNING))
    return out


def _lowest_latency(arrays: PlaneArrays, sources: int | np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Dijkstra on latency (s) from ``sources`` (indices into ``arrays``): distances and
    predecessors, one row per source (a single source gives 1-d arrays).  A hop costs its
    link's latency plus the traversal latency of the node it enters (so a distance counts
    the target's own traversal too, which the callers subtract) plus
    ``_HOP_EPSILON``, so ties go to the path with the fewest hops."""
    n = len(arrays.nodes)
    weights = _arc_latency(arrays) + _HOP_EPSILON
    rows = np.concatenate([arrays.src, arrays.dst])
    cols = np.concatenate([arrays.dst, arrays.src])
    mat = csr_array((weights, (rows, cols)), shape=(n, n))
    dist, pred = dijkstra(mat, directed=True, indices=sources, return_predecessors=True)
    return dist, pred


def _arc_latency(arrays: PlaneArrays) -> np.ndarray:
    """Latency (s) of each arc, both directions (src->dst, then dst->src): the link's
    latency plus the traversal latency of the node the arc enters."""
    lat = np.concatenate([arrays.latency, arrays.latency])
    return np.asarray(lat + arrays.traversal[np.concatenate([arrays.dst, arrays.src])],
                      dtype=np.float64)


@dataclass(frozen=True)
class PathResult:
    """The lowest-latency path between two instances on one plane."""

    plane: str
    hops: tuple[str, ...]
    latency: float
    bottleneck_bandwidth: float
    max_flow_bandwidth: float


def shortest_path(g: nx.Graph, plane: str, a: str, b: str) -> PathResult | None:
    """Lowest-latency path (ties: fewest hops) from ``a`` to ``b`` on ``plane``, with its
    latency (s: its links' latencies plus the declared ``latency`` of every switch it passes
    through, not counting ``a`` and ``b`` themselves), bottleneck bandwidth and the max-flow
    between the two (B/s); None if the plane does not join them.
    :class:`~supernode_dsl.diagnostics.ArgumentError` for a ``g`` that is not a compiled
    graph, an unknown ``plane`` or an ``a``/``b`` that is not a ``str``."""
    where = "shortest_path"
    arrays = plane_arrays(g, check_plane(check_graph(g, where), plane, where))
    check_text(a, where, "a")
    check_text(b, where, "b")
    pos = {n: i for i, n in enumerate(arrays.nodes)}
    if a not in pos or b not in pos:
        return None
    dist, pred = _lowest_latency(arrays, pos[a])
    if not np.isfinite(dist[pos[b]]):
        return None
    hops = [pos[b]]
    while hops[-1] != pos[a]:
        hops.append(int(pred[hops[-1]]))
    hops.reverse()
    names = tuple(arrays.nodes[i] for i in hops)
    edges = [g.edges[u, v] for u, v in itertools.pairwise(names)]
    return PathResult(
        plane=plane,
        hops=names,
        latency=sum(e[S.EDGE_LATENCY] for e in edges)
        + float(arrays.traversal[hops[1:-1]].sum()),
        bottleneck_bandwidth=min((e[S.EDGE_BANDWIDTH] for e in edges), default=0.0),
        max_flow_bandwidth=_max_flow(arrays, [pos[a]], [pos[b]]),
    )


def plane_summary(g: nx.Graph) -> dict[str, dict[str, float | int]]:
    """Plane -> ``links`` (parallel links counted) and ``bisection_bandwidth`` (B/s);
    :class:`~supernode_dsl.diagnostics.ArgumentError` unless ``g`` is a compiled graph."""
    out: dict[str, dict[str, float | int]] = {}
    for plane, arrays in all_plane_arrays(check_graph(g, "plane_summary")).items():
        out[plane] = {
            "links": arrays.links,
            "bisection_bandwidth": bisection_bandwidth(g, plane, arrays),
        }
    return out


def _error(message: str) -> CmxError:
    return CmxError([Diagnostic("E026", message)])


def busiest_plane(g: nx.Graph, devices: Sequence[str]) -> str:
    """The plane with the most links (parallel links counted) incident to ``devices``; ties
    go to the plane declared first.  E026 when a device is not in ``g`` or no plane links
    the devices."""
    counts: dict[str, int] = dict.fromkeys(g.graph.get(S.GRAPH_PLANES, {}), 0)
    for d in devices:
        if d not in g:
            raise _error(f"device '{d}' of the plan is not in the compiled graph")
        for _, _, data in g.edges(d, data=True):
            plane = data[S.EDGE_PLANE]
            counts[plane] = counts.get(plane, 0) + data[S.EDGE_COUNT]
    best = max(counts.values(), default=0)
    if best == 0:
        raise _error("no plane links the devices; name one with -O plane=...")
    return next(p for p, c in counts.items() if c == best)


def message_costs(g: nx.Graph, plane: str, devices: Sequence[str],
                  message_bytes: int) -> np.ndarray:
    """Cost in seconds of one message of ``message_bytes`` B between every pair of
    ``devices`` on ``plane``: a float64 array ``cost[a, b]`` in the order of ``devices``.

    ``cost[a, b] = latency + message_bytes / bandwidth`` of the lowest-latency path (ties:
    fewest hops; the path :func:`shortest_path` takes), where latency is its latency as
    :func:`shortest_path` counts it (links and the switches passed through, in s) and
    bandwidth its bottleneck edge ``bandwidth`` (B/s, one direction).
    Guarantees: symmetric (the cheaper direction of each pair), zero diagonal, every entry
    finite.  One Dijkstra per device over the plane's arrays, then pointer doubling along
    the predecessor trees: O(R * n log n) in numpy.  E026 if the plane is unknown, misses a
    device or does not join two of them.
    """
    arrays = all_plane_arrays(g).get(plane)
    if arrays is None:
        planes = ", ".join(g.graph.get(S.GRAPH_PLANES, {}))
        raise _error(f"no plane '{plane}' (planes: {planes})")
    pos = {name: i for i, name in enumerate(arrays.nodes)}
    missing = [d for d in devices if d not in pos]
    if missing:
        raise _error(f"plane '{plane}' does not reach device '{missing[0]}'")
    idx = np.fromiter((pos[d] for d in devices), dtype=np.int64, count=len(devices))
    dist, pred = _lowest_latency(arrays, idx)
    reach = np.isfinite(dist[:, idx])
    if not reach.all():
        a, b = (int(x) for x in np.argwhere(~reach)[0])
        raise _error(f"plane '{plane}' does not join '{devices[a]}' and '{devices[b]}'")
    path_lat, path_bw = _tree_paths(arrays, pred)
    with np.errstate(divide="ignore"):
        cost = path_lat[:, idx] + np.where(np.isinf(path_bw[:, idx]), 0.0,
                                           message_bytes / path_bw[:, idx])
    if not np.isfinite(cost).all():
        a, b = (int(x) for x in np.argwhere(~np.isfinite(cost))[0])
        raise _error(f"the path from '{devices[a]}' to '{devices[b]}' on plane '{plane}' "
                     "has no bandwidth")
    cost = np.minimum(cost, cost.T)
    np.fill_diagonal(cost, 0.0)
    return np.asarray(cost, dtype=np.float64)


def _tree_paths(arrays: PlaneArrays, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latency (s; links and the switches passed through, not the end nodes) and bottleneck
    bandwidth (B/s; inf for the root itself) from each row's root to every node along the
    predecessor trees ``pred`` (one row per root), by pointer doubling."""
    n = len(arrays.nodes)
    src = np.concatenate([arrays.src, arrays.dst])
    dst = np.concatenate([arrays.dst, arrays.src])
    lat = _arc_latency(arrays)
    bw = np.concatenate([arrays.bandwidth, arrays.bandwidth])
    # Edge (parent -> v) of every tree node, looked up by key parent * n + v.
    keys = src * n + dst
    order = np.argsort(keys)
    keys, lat, bw = keys[order], lat[order], bw[order]
    self_col = np.broadcast_to(np.arange(n), pred.shape)
    has_parent = pred >= 0
    jump = np.where(has_parent, pred, self_col)
    where = np.minimum(np.searchsorted(keys, jump * n + self_col), len(keys) - 1)
    acc_lat = np.where(has_parent, lat[where], 0.0)
    acc_bw = np.where(has_parent, bw[where], np.inf)
    while True:
        nxt = np.take_along_axis(jump, jump, axis=1)
        acc_lat = acc_lat + np.where(jump != nxt, np.take_along_axis(acc_lat, jump, axis=1), 0.0)
        acc_bw = np.minimum(acc_bw, np.take_along_axis(acc_bw, jump, axis=1))
        if np.array_equal(nxt, jump):
            # every arc added the node it enters: the target itself is not passed through
            return acc_lat - np.where(pred >= 0, arrays.traversal, 0.0), acc_bw
        jump = nxt
