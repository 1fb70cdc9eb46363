"""The Graphviz emitters ``dot``, ``svg`` and ``png`` and their options."""

from __future__ import annotations

from typing import Any, ClassVar

from supernode_dsl.emit.base import EmitContext, Emitter
from supernode_dsl.emit.graphviz.dot import VIEWS, dot_text
from supernode_dsl.emit.graphviz.run import run_dot
from supernode_dsl.emit.options import Option, optional_text_option

__all__ = ["EMITTERS", "DotEmitter", "PngEmitter", "SvgEmitter"]

VIEW = Option[str | None](
    "view", "supernode (the machine collapsed), node (one node in detail), plane (the "
    "supernode view of one plane) or grid (a torus or mesh as its grid); default: node with "
    "-O node, plane with -O plane, grid with -O dims, else supernode", None, str, VIEWS)
NODE = optional_text_option(
    "node", "node view: which node, an ordinal among the node instances (default 0) or an "
    "instance path; alone it selects view=node")
PLANE = optional_text_option(
    "plane", "plane view: the plane to draw (e.g. ub); alone it selects view=plane; with "
    "view=node it keeps only that plane's links")
DIMS = optional_text_option(
    "dims", "grid view: the two dimensions of the array laid out as rows and columns "
    "(default 0,1; the others held at index 0); alone it selects view=grid")
OPTIONS: tuple[Option[Any], ...] = (VIEW, NODE, PLANE, DIMS)


def _dot_for(ctx: EmitContext) -> str:
    node, plane, dims = ctx.value(NODE), ctx.value(PLANE), ctx.value(DIMS)
    default = ("node" if node is not None else "grid" if dims is not None
               else "plane" if plane is not None else "supernode")
    return dot_text(ctx.graph, ctx.value(VIEW) or default, node if node is not None else "0",
                    plane or None, dims or "0,1")


class DotEmitter(Emitter):
    """Graphviz DOT text of one view of the machine (rendered from ``codegen/dot/``)."""

    name = "dot"
    description = "Graphviz DOT drawing: the supernode collapsed, one node, or one plane"
    options: ClassVar[tuple[Option[Any], ...]] = OPTIONS
    suffix = ".dot"

    def emit(self, ctx: EmitContext) -> str:
        return _dot_for(ctx)


class SvgEmitter(Emitter):
    """The DOT drawing laid out as SVG by Graphviz ``dot -Tsvg`` (text)."""

    name = "svg"
    description = "SVG drawing laid out by Graphviz dot (needs the dot program)"
    options: ClassVar[tuple[Option[Any], ...]] = OPTIONS
    suffix = ".svg"

    def emit(self, ctx: EmitContext) -> str:
        return run_dot(_dot_for(ctx), "svg").decode("utf-8")


class PngEmitter(Emitter):
    """The DOT drawing laid out as PNG by Graphviz ``dot -Tpng`` (bytes)."""

    name = "png"
    description = "PNG drawing laid out by Graphviz dot (needs the dot program)"
    options: ClassVar[tuple[Option[Any], ...]] = OPTIONS
    suffix = ".png"

    def emit(self, ctx: EmitContext) -> bytes:
        return run_dot(_dot_for(ctx), "png")


EMITTERS: tuple[type[Emitter], ...] = (DotEmitter, SvgEmitter, PngEmitter)
