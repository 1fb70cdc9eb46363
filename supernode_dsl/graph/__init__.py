"""Stage 3, graph: :class:`~supernode_dsl.elaborate.Model` -> ``networkx.Graph``.

Entry point: :func:`build_graph`.  Node and edge attributes are defined in
:mod:`supernode_dsl.schema` (SI units).  Analyses on the graph (max-flow, bisection, path and
cut queries) live in :mod:`supernode_dsl.graph.analysis`.
"""

from supernode_dsl.graph.analysis import (
    PathResult,
    bisection_bandwidth,
    cut_bandwidth,
    plane_summary,
    shortest_path,
)
from supernode_dsl.graph.build import build_graph

__all__ = [
    "PathResult",
    "bisection_bandwidth",
    "build_graph",
    "cut_bandwidth",
    "plane_summary",
    "shortest_path",
]
