"""Small helpers over a compiled graph shared by the emitters."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from supernode_dsl.schema import EDGE_PLANE, GRAPH_PLANES, NODE_INDEX, NODE_PARENT

__all__ = ["UnionFind", "graph_planes", "ordered_nodes", "unit_owner"]


def ordered_nodes(g: nx.Graph) -> list[str]:
    """Every instance in instance order."""
    return sorted(g.nodes, key=lambda n: g.nodes[n].get(NODE_INDEX, 0))


def unit_owner(g: nx.Graph, units: Iterable[str]) -> dict[str, str]:
    """Every node that is a unit or lies inside one -> that unit."""
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
    """The declared planes, then any other plane an edge names."""
    declared = list(g.graph.get(GRAPH_PLANES, {}) or {})
    used = sorted({str(d.get(EDGE_PLANE, "")) for _, _, d in g.edges(data=True)})
    return declared + [p for p in used if p not in declared]


class UnionFind:
    """Disjoint sets over 0..n-1 (groups come out ordered by their smallest member)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return list(out.values())
