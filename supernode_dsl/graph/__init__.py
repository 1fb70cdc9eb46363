"""Stage 3, graph: :class:`~supernode_dsl.elaborate.Model` -> ``networkx.Graph``, and the
analyses on it.

Entry point: :func:`build_graph`.  Node and edge attributes are defined in
:mod:`supernode_dsl.schema` (SI units).  Each analysis has one home here, with its contract
in its docstring and in ``docs/graph-contract.md``:

* :mod:`~supernode_dsl.graph.analysis`: max-flow, bisection, path and cut queries, the
  cost of a message between every pair of devices (:func:`message_costs`);
* :mod:`~supernode_dsl.graph.dimensions`: the symmetric-dimension collapse (ASTRA-sim);
* :mod:`~supernode_dsl.graph.routing`: ns-3's routing (only switches forward), the NPU pairs
  it cannot route;
* :mod:`~supernode_dsl.graph.summary`: the ``cmx info`` summary;
* :mod:`~supernode_dsl.graph.select`: instances by path pattern (the grammar's references);
* :mod:`~supernode_dsl.graph.instances` and :mod:`~supernode_dsl.graph.unionfind`: instance
  order, ownership and position, and disjoint sets.

The analyses of :mod:`~supernode_dsl.graph.analysis` and :mod:`~supernode_dsl.graph.summary`
run on numpy and scipy; they, the dimension collapse and the routing check are imported on
first use of one of their names, so that ``cmx check`` and ``cmx compile`` (which need none
of them) start without them, numpy and scipy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supernode_dsl.graph.build import build_graph
from supernode_dsl.graph.instances import (
    Segment,
    ancestor,
    graph_planes,
    index_vector,
    ordered_nodes,
    segments,
    unit_owner,
)

# eager: the module shares its name with the function, which must win in this namespace
from supernode_dsl.graph.select import PatternError, select
from supernode_dsl.graph.unionfind import UnionFind
from supernode_dsl.lazy import lazy_exports

if TYPE_CHECKING:
    from supernode_dsl.graph.analysis import (
        PathResult,
        PlaneArrays,
        all_plane_arrays,
        bisection_bandwidth,
        busiest_plane,
        cut_bandwidth,
        cut_warnings,
        message_costs,
        plane_arrays,
        plane_endpoints,
        plane_summary,
        shortest_path,
    )
    from supernode_dsl.graph.dimensions import (
        UNIT_CHOICES,
        Collapse,
        Dimension,
        collapse,
        npu_units,
    )
    from supernode_dsl.graph.routing import unroutable_pairs
    from supernode_dsl.graph.summary import PlaneInfo, Summary, summarize

# name -> the module defining it, for the names imported on first use
_LAZY = {
    **dict.fromkeys(("PathResult", "PlaneArrays", "all_plane_arrays", "bisection_bandwidth",
                     "busiest_plane", "cut_bandwidth", "cut_warnings", "message_costs",
                     "plane_arrays", "plane_endpoints", "plane_summary", "shortest_path"),
                    "analysis"),
    **dict.fromkeys(("PlaneInfo", "Summary", "summarize"), "summary"),
    **dict.fromkeys(("UNIT_CHOICES", "Collapse", "Dimension", "collapse", "npu_units"),
                    "dimensions"),
    "unroutable_pairs": "routing",
}

__all__ = [
    "UNIT_CHOICES",
    "Collapse",
    "Dimension",
    "PathResult",
    "PatternError",
    "PlaneArrays",
    "PlaneInfo",
    "Segment",
    "Summary",
    "UnionFind",
    "all_plane_arrays",
    "ancestor",
    "bisection_bandwidth",
    "build_graph",
    "busiest_plane",
    "collapse",
    "cut_bandwidth",
    "cut_warnings",
    "graph_planes",
    "index_vector",
    "message_costs",
    "npu_units",
    "ordered_nodes",
    "plane_arrays",
    "plane_endpoints",
    "plane_summary",
    "segments",
    "select",
    "shortest_path",
    "summarize",
    "unit_owner",
    "unroutable_pairs",
]


__getattr__ = lazy_exports(__name__, _LAZY)
