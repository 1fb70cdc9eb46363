"""The emitters shipped with cmx; each also has an entry point in pyproject.toml."""

from __future__ import annotations

from supernode_dsl.emit import graphviz, runtimes, schedulers, simulators, trace
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


BUILTIN: tuple[type[Emitter], ...] = (
    NodeLinkEmitter,
    GraphMLEmitter,
    *graphviz.EMITTERS,
    *runtimes.EMITTERS,
    *simulators.EMITTERS,
    *schedulers.EMITTERS,
    *trace.EMITTERS,
)
