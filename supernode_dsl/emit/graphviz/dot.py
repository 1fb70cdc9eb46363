"""The DOT text of one view: :func:`dot_text` picks the view, builds its clusters, boxes
and edges, and renders them with the ``codegen/dot/`` templates."""

from __future__ import annotations

import networkx as nx

from supernode_dsl.emit.base import emit_error
from supernode_dsl.emit.graphviz.common import NOTE, Attrs, Machine, legend, quote
from supernode_dsl.emit.graphviz.grid import grid_view
from supernode_dsl.emit.graphviz.node import node_view
from supernode_dsl.emit.graphviz.supernode import supernode_view
from supernode_dsl.emit.templates import render
from supernode_dsl.schema import GRAPH_NAME, GRAPH_ROOT

__all__ = ["VIEWS", "dot_text"]

#: The views ``-O view=`` accepts.
VIEWS = ("supernode", "node", "plane", "grid")


def dot_text(g: nx.Graph, view: str = "supernode", node: str = "0",
             plane: str | None = None, dims: str = "0,1") -> str:
    """The DOT text of ``view`` (one of :data:`VIEWS`) of the compiled graph ``g``.

    ``node`` selects the node of the node view (an ordinal among the ``node`` instances in
    instance order, or a path); ``plane`` the plane of the plane view (required there) and
    filters the node and grid views; ``dims`` the two dimensions of the grid view.  Raises
    an E026 :class:`~supernode_dsl.diagnostics.CmxError` for an unknown view, plane, node or
    dimension.  Deterministic: same graph and arguments, same text.
    """
    if view not in VIEWS:
        raise emit_error(f"view={view!r}: choose one of {', '.join(VIEWS)}")
    m = Machine(g)
    if plane is not None and plane not in m.planes:
        raise emit_error(f"plane={plane!r}: the topology has the planes "
                         f"{', '.join(m.planes) or '(none)'}")
    if view == "plane" and plane is None:
        raise emit_error("view=plane needs -O plane=NAME (planes: "
                         f"{', '.join(m.planes) or 'none'})")
    name = str(g.graph.get(GRAPH_NAME, "graph"))
    root_type = str(g.graph.get(GRAPH_ROOT, ""))
    note = NOTE
    if view == "node":
        body = node_view(m, node, plane)
        title = f"{name}: {root_type}, node view of {body['node']}"
        graph_attrs: Attrs = [("rankdir", quote("TB")), ("compound", quote("true")),
                              ("nodesep", quote("0.25")), ("ranksep", quote("0.9"))]
    elif view == "grid":
        body = grid_view(m, dims, plane)
        row, col = body["dims"]
        title = (f"{name}: {root_type}, grid of {body['array']}: index {row} down, index "
                 f"{col} across" + (f", {body['held']}" if body["held"] else ""))
        note = "\n".join(line for line in (
            NOTE, f"each element: {body['each']}" if body["each"] else "", body["links"],
            "dashed: wrap-around links" if body["dashed"] else "") if line)
        # neato with every box pinned at its grid position (the ! in pos)
        graph_attrs = [("layout", quote("neato")), ("splines", quote("true")),
                       ("outputorder", quote("edgesfirst"))]
    else:
        body = supernode_view(m, plane if view == "plane" else None)
        title = (f"{name}: {root_type}, plane {plane}" if view == "plane"
                 else f"{name}: {root_type}, supernode view")
        graph_attrs = [("rankdir", quote("TB")), ("nodesep", quote("0.35")),
                       ("ranksep", quote("1.1"))]
    if plane is not None and view in ("node", "grid"):
        title += f", plane {plane}"
    if view in ("supernode", "plane"):
        graph_attrs.append(("ordering", quote("out")))  # fewer crossings; tiers: ports
    graph_attrs += [("newrank", quote("true")), ("fontname", quote("Helvetica")),
                    ("fontsize", quote("12")), ("labelloc", quote("t")),
                    ("labeljust", quote("l")),
                    ("label", legend(m, title, body["planes"], note))]
    return render(f"dot/{view}.dot.j2", graph_id=name, title=title, graph_attrs=graph_attrs,
                  node_attrs=[("fontname", quote("Helvetica")), ("fontsize", quote("11")),
                              ("style", quote("filled")), ("margin", quote("0.12,0.06"))],
                  edge_attrs=[("fontname", quote("Helvetica")), ("fontsize", quote("10"))],
                  clusters=body["clusters"], boxes=body["boxes"], edges=body["edges"],
                  ranks=body.get("ranks", []),
                  q=quote)
