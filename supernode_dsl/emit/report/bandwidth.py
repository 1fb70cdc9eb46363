"""Section 3, bandwidth: links and bisection bandwidth per plane, and the lowest-latency path
between representative endpoints (two endpoints of one node, the first endpoints of two
nodes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.emit.graphviz import format_bandwidth
from supernode_dsl.graph import ancestor, plane_summary, shortest_path
from supernode_dsl.graph.analysis import all_plane_arrays, plane_endpoints

__all__ = [
    "bandwidth_section",
]


def _node_of(g: nx.Graph, path: str) -> str | None:
    """``path`` if it is a ``node`` instance, else its nearest enclosing one (or None)."""
    return path if g.nodes[path].get(S.NODE_CATEGORY) == "node" else ancestor(g, path, "node")


def _pairs(g: nx.Graph, ends: Sequence[str]) -> list[tuple[str, str, str]]:
    """Representative endpoint pairs: the first two endpoints of one node, the first
    endpoints of the first two nodes (falling back to the first two endpoints)."""
    groups: dict[str, list[str]] = {}
    for e in ends:
        node = _node_of(g, e)
        if node is not None:
            groups.setdefault(node, []).append(e)
    out: list[tuple[str, str, str]] = []
    same = next((v for v in groups.values() if len(v) >= 2), None)
    if same is not None:
        out.append(("within one node", same[0], same[1]))
    firsts = [v[0] for v in groups.values()]
    if len(firsts) >= 2:
        out.append(("between two nodes", firsts[0], firsts[1]))
    if not out and len(ends) >= 2:
        out.append(("first two endpoints", ends[0], ends[1]))
    return out


def bandwidth_section(g: nx.Graph) -> dict[str, Any]:
    """Section 3: per plane its links and bisection bandwidth, and the representative
    paths with their latency, bottleneck and max-flow bandwidth."""
    summary = plane_summary(g)
    descriptions = g.graph.get(S.GRAPH_PLANES, {})
    planes = [{"name": p, "description": str(descriptions.get(p, "")),
               "links": f"{v['links']:,}",
               "bisection": f"{v['bisection_bandwidth'] / 1e9:,.1f}",
               "bisection_text": format_bandwidth(float(v["bisection_bandwidth"]))}
              for p, v in summary.items()]
    paths = []
    for plane, arrays in all_plane_arrays(g).items():
        for what, a, b in _pairs(g, plane_endpoints(g, arrays)):
            res = shortest_path(g, plane, a, b)
            if res is None:
                continue
            paths.append({"plane": plane, "what": what, "source": a, "target": b,
                          "hops": len(res.hops) - 1, "route": " \u2192 ".join(res.hops),
                          "latency_us": f"{res.latency * 1e6:,.3f}",
                          "path_bw": f"{res.bottleneck_bandwidth / 1e9:,.1f}",
                          "flow_bw": f"{res.max_flow_bandwidth / 1e9:,.1f}"})
    return {"planes": planes, "paths": paths}
