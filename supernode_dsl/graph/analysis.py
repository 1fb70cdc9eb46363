"""Analyses on a compiled graph: max-flow, bisection bandwidth, path and cut queries.

Max-flow runs on scipy's compiled implementation (``scipy.sparse.csgraph.maximum_flow``),
which needs 32-bit integer capacities: bandwidths are expressed in a unit chosen so the total
source capacity fits in 2**30, which keeps the relative rounding error below 1e-4 (documented
in docs/graph-contract.md).  Each full-duplex link is two arcs, one per direction, each with
the link bundle's one-way bandwidth.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra, maximum_flow

from supernode_dsl import schema as S
from supernode_dsl.graph.gcpause import gc_paused

__all__ = [
    "PathResult",
    "PlaneArrays",
    "all_plane_arrays",
    "bisection_bandwidth",
    "cut_bandwidth",
    "plane_arrays",
    "plane_endpoints",
    "plane_summary",
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


_Edge = tuple[str, str, dict[str, Any]]


def all_plane_arrays(g: nx.Graph) -> dict[str, PlaneArrays]:
    """The links of every declared plane as arrays, in one pass over the edges."""
    by_plane: dict[str, list[_Edge]] = {p: [] for p in g.graph.get(S.GRAPH_PLANES, {})}
    with gc_paused():
        for edge in g.edges(data=True):
            by_plane.setdefault(edge[2][S.EDGE_PLANE], []).append(edge)
        return {p: _arrays(g, edges) for p, edges in by_plane.items()}


def plane_arrays(g: nx.Graph, plane: str) -> PlaneArrays:
    """The links of one plane as arrays (nodes sorted by instance order)."""
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
    """
    arrays = arrays or plane_arrays(g, plane)
    pos = {n: i for i, n in enumerate(arrays.nodes)}
    ends = [pos[n] for n in plane_endpoints(g, arrays)]
    half = len(ends) // 2
    return _max_flow(arrays, ends[:half], ends[half:])


def _below(g: nx.Graph, arrays: PlaneArrays, roots: Iterable[str]) -> list[int]:
    """Plane endpoints at or below any of ``roots`` (instance paths)."""
    prefixes = tuple(roots)
    dotted = tuple(p + "." for p in prefixes)
    ends = set(plane_endpoints(g, arrays))
    return [i for i, n in enumerate(arrays.nodes)
            if n in ends and (n in prefixes or n.startswith(dotted))]


def cut_bandwidth(g: nx.Graph, plane: str, group_a: Iterable[str],
                  group_b: Iterable[str]) -> float:
    """Max-flow (B/s, one direction) on ``plane`` from the endpoints at or below the
    instances of ``group_a`` to those at or below ``group_b``."""
    arrays = plane_arrays(g, plane)
    return _max_flow(arrays, _below(g, arrays, group_a), _below(g, arrays, group_b))


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
    latency (s), bottleneck bandwidth and the max-flow between the two (B/s); None if the
    plane does not join them."""
    arrays = plane_arrays(g, plane)
    pos = {n: i for i, n in enumerate(arrays.nodes)}
    if a not in pos or b not in pos:
        return None
    n = len(arrays.nodes)
    weights = np.concatenate([arrays.latency, arrays.latency]) + _HOP_EPSILON
    rows = np.concatenate([arrays.src, arrays.dst])
    cols = np.concatenate([arrays.dst, arrays.src])
    mat = csr_array((weights, (rows, cols)), shape=(n, n))
    dist, pred = dijkstra(mat, directed=True, indices=pos[a], return_predecessors=True)
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
        latency=sum(e[S.EDGE_LATENCY] for e in edges),
        bottleneck_bandwidth=min((e[S.EDGE_BANDWIDTH] for e in edges), default=0.0),
        max_flow_bandwidth=_max_flow(arrays, [pos[a]], [pos[b]]),
    )


def plane_summary(g: nx.Graph) -> dict[str, dict[str, float | int]]:
    """Plane -> ``links`` (parallel links counted) and ``bisection_bandwidth`` (B/s)."""
    out: dict[str, dict[str, float | int]] = {}
    for plane, arrays in all_plane_arrays(g).items():
        out[plane] = {
            "links": arrays.links,
            "bisection_bandwidth": bisection_bandwidth(g, plane, arrays),
        }
    return out
