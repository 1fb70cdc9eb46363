"""The emitters shipped with cmx, registered here and only here: :data:`BUILTIN`.

Entry points (group ``supernode_dsl.emitters``) are for emitters of other packages;
:func:`~supernode_dsl.emit.base.available_emitters` adds them to these."""

from __future__ import annotations

from supernode_dsl.emit import (
    chakra,
    graphviz,
    report,
    runtimes,
    schedulers,
    simai,
    simulators,
    trace,
)
from supernode_dsl.emit.base import EmitContext, Emitter
from supernode_dsl.emit.graphs import graphml_text, node_link_text

__all__ = ["BUILTIN", "GraphMLEmitter", "NodeLinkEmitter"]


class NodeLinkEmitter(Emitter):
    """networkx node-link JSON of the compiled graph."""

    name = "node-link"
    description = "networkx node-link JSON of the compiled graph (networkx.node_link_graph)"
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        return node_link_text(ctx.graph)


class GraphMLEmitter(Emitter):
    """GraphML of the compiled graph."""

    name = "graphml"
    description = "GraphML of the compiled graph (networkx.read_graphml, yEd, Gephi)"
    suffix = ".graphml"

    def emit(self, ctx: EmitContext) -> str:
        return graphml_text(ctx.graph)


#: Every built-in emitter (``cmx emit --list`` sorts them by name).
BUILTIN: tuple[type[Emitter], ...] = (
    NodeLinkEmitter,
    GraphMLEmitter,
    *graphviz.EMITTERS,
    *runtimes.EMITTERS,
    *simulators.EMITTERS,
    *simai.EMITTERS,
    *chakra.EMITTERS,
    *schedulers.EMITTERS,
    *trace.EMITTERS,
    *report.EMITTERS,
)
