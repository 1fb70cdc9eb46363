"""Instances of a compiled graph: instance order, ownership by a unit, position, planes.

Every function reads only the node attributes of :mod:`supernode_dsl.schema` (``index``,
``parent``, ``array``, ``indices``) and the edge attribute ``plane``; none parses a path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from supernode_dsl.schema import (
    EDGE_PLANE,
    GRAPH_PLANES,
    NODE_ARRAY,
    NODE_CATEGORY,
    NODE_INDEX,
    NODE_INDICES,
    NODE_LATENCY,
    NODE_PARENT,
    TRAVERSAL_LATENCY,
)

__all__ = [
    "Segment",
    "ancestor",
    "graph_planes",
    "index_vector",
    "ordered_nodes",
    "segments",
    "traversal_latency",
    "unit_owner",
]

#: One step of an instance's position: the array (child declaration) name and its indices.
Segment = tuple[str, tuple[int, ...]]


def traversal_latency(node: Mapping[str, Any]) -> float:
    """The latency (s) a path adds by passing through an instance (its node attributes): a
    switch's declared ``latency``; 0 for other categories (docs/language.md, Links)."""
    if node.get(NODE_CATEGORY) not in TRAVERSAL_LATENCY:
        return 0.0
    return float(node.get(NODE_LATENCY, 0.0) or 0.0)


def ordered_nodes(g: nx.Graph) -> list[str]:
    """Every instance in instance order (the ``index`` attribute; parents before children)."""
    return sorted(g.nodes, key=lambda n: g.nodes[n].get(NODE_INDEX, 0))


def ancestor(g: nx.Graph, path: str, category: str) -> str | None:
    """The nearest enclosing instance of ``path`` in ``category`` (``path`` itself not
    included; follows ``parent``); None if there is none."""
    node = g.nodes[path][NODE_PARENT]
    while node:
        data = g.nodes[node]
        if data[NODE_CATEGORY] == category:
            return str(node)
        node = data[NODE_PARENT]
    return None


def unit_owner(g: nx.Graph, units: Iterable[str]) -> dict[str, str]:
    """Every node that is one of ``units`` or lies inside one (follows ``parent``) -> that
    unit; nodes outside every unit are absent.  A unit inside another unit owns itself and
    what lies inside it."""
    unit_set = set(units)
    owner: dict[str, str] = {}
    for n in ordered_nodes(g):  # parents come before children in instance order
        if n in unit_set:
            owner[n] = n
        else:
            parent = g.nodes[n].get(NODE_PARENT, "")
            if parent in owner:
                owner[n] = owner[parent]
    return owner


def graph_planes(g: nx.Graph) -> list[str]:
    """The declared planes in declaration order, then any other plane an edge names
    (sorted)."""
    declared = list(g.graph.get(GRAPH_PLANES, {}) or {})
    used = sorted({str(d.get(EDGE_PLANE, "")) for _, _, d in g.edges(data=True)})
    return declared + [p for p in used if p not in declared]


def segments(g: nx.Graph, node: str,
             memo: dict[str, tuple[Segment, ...]] | None = None) -> tuple[Segment, ...]:
    """The position of ``node``: ``(array, indices)`` of the root, each ancestor and the node
    itself, root first (``cm384.node[3].npu[5]`` -> ``(("cm384", ()), ("node", (3,)),
    ("npu", (5,)))``).  Pass the same ``memo`` dict to share the ancestors' work over many
    calls."""
    cache: dict[str, tuple[Segment, ...]] = {} if memo is None else memo
    chain: list[str] = []
    n = node
    while n and n not in cache:
        chain.append(n)
        n = g.nodes[n].get(NODE_PARENT, "")
    known = cache.get(n, ())
    for m in reversed(chain):
        attrs = g.nodes[m]
        known = (*known, (str(attrs[NODE_ARRAY]), tuple(attrs[NODE_INDICES])))
        cache[m] = known
    return known


def index_vector(g: nx.Graph, node: str,
                 memo: dict[str, tuple[Segment, ...]] | None = None) -> tuple[int, ...]:
    """The full index vector of ``node``: the indices of its ancestors and itself, root first
    (``cm384.node[3].npu[5]`` -> ``(3, 5)``)."""
    return tuple(i for _, idx in segments(g, node, memo) for i in idx)
