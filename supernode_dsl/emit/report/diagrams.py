"""Section 2, topology diagrams: the Graphviz supernode view, the view of the first node and
one view per plane, inlined as SVG (when the ``dot`` program is missing the section says so
and everything else still renders)."""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Sequence
from typing import Any

import networkx as nx
from markupsafe import Markup

from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit.graphviz import DOT_MISSING, dot_text, run_dot

__all__ = [
    "diagrams_section",
    "inline_svg",
]


_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_ID = re.compile(r'\bid="([^"]*)"')
_SIZE = re.compile(r'\A<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def inline_svg(svg: str, prefix: str) -> str:
    """Graphviz SVG made fit for inlining in HTML: no XML prologue, DOCTYPE or comments (they
    name the Graphviz version), no namespace declarations (the only URLs), every ``id``
    prefixed with ``prefix`` so several drawings on one page do not clash."""
    out = _SVG_PROLOGUE.sub("", svg, count=1)
    out = _COMMENT.sub("", out)
    out = _XMLNS.sub("", out)
    out = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', out)
    return Markup(_SIZE.sub(lambda m: f'<svg class="diagram" width="{m.group(1)}pt" '
                                      f'height="{m.group(2)}pt"', out, count=1).strip())


def diagrams_section(g: nx.Graph, planes: Sequence[str], enabled: bool) -> dict[str, Any]:
    """Section 2: the supernode, first-node and per-plane drawings as inline SVG (a drawing
    that fails carries its error), or why there are none (``missing``)."""
    if not enabled:
        return {"missing": "Diagrams were not requested.", "items": []}
    if shutil.which("dot") is None:
        # said on stderr too (cmx prints an emitter's warnings), not only inside the page
        warnings.warn(f"the report has no diagrams: {DOT_MISSING}", stacklevel=2)
        return {"missing": f"No diagrams: {DOT_MISSING}.", "items": []}
    views: list[tuple[str, str, str, dict[str, str | None]]] = [
        ("supernode", "Supernode view", "supernode", {}),
        ("node", "Node view (first node)", "node", {"node": "0"}),
    ]
    views += [(f"plane-{p}", f"Plane {p}", "plane", {"plane": p}) for p in planes]
    items = []
    for key, title, view, kw in views:
        try:
            dot = dot_text(g, view, node=kw.get("node") or "0", plane=kw.get("plane"))
            svg, error = inline_svg(run_dot(dot, "svg").decode("utf-8"), f"d-{key}"), None
        except CmxError as err:
            svg, error = None, "; ".join(d.message for d in err.diagnostics)
        items.append({"key": key, "title": title, "svg": svg, "error": error})
    return {"missing": None, "items": items}
