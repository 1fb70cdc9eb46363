"""Position lookups in a parsed file: which syntax nodes enclose a line and column.

Editors ask "what is under the cursor"; :func:`nodes_at` answers with the chain of AST nodes
whose spans contain the position, outermost first, so a caller reads the innermost node and
its context (the type declaration around it) without writing a walker of its own.  The walk
is generic over the dataclasses of :mod:`supernode_dsl.parse.ast`: every field holding a node
(or a tuple of nodes) with a ``span`` is visited, so new node classes need no change here.
"""

from __future__ import annotations

import dataclasses
import re

from supernode_dsl.diagnostics import Span
from supernode_dsl.parse import ast as A

__all__ = ["contains", "name_span", "nodes_at"]


def contains(span: Span, line: int, col: int) -> bool:
    """True when (``line``, ``col``), 1-based, lies in ``span``; its end column is included,
    so a cursor just after a name still points at it."""
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def _children(node: object) -> list[object]:
    out: list[object] = []
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        out.extend(v for v in items
                   if dataclasses.is_dataclass(v) and isinstance(getattr(v, "span", None), Span))
    return out


def nodes_at(tree: A.FileAST, line: int, col: int) -> tuple[object, ...]:
    """The AST nodes of ``tree`` whose span contains (``line``, ``col``), outermost first
    (a statement, then its sub-expressions); empty when the position is between statements.
    Where siblings touch (``a+b`` with the cursor between them) the first one is followed."""
    chain: list[object] = []
    level = _children(tree)
    while True:
        inside = next((n for n in level if contains(n.span, line, col)),  # type: ignore[attr-defined]
                      None)
        if inside is None:
            return tuple(chain)
        chain.append(inside)
        level = _children(inside)


def name_span(node: object, name: str, keyword: str = "") -> Span:
    """The span of the word ``name`` on the first line of ``node``'s span, after ``keyword``
    (``plane``, ``instance``) when given: the name of a type use, reference segment,
    argument, call, plane or root declaration, which the AST does not store separately."""
    s: Span = node.span  # type: ignore[attr-defined]
    text = s.source.line(s.line)
    start = s.col - 1
    if keyword and text.startswith(keyword, start):
        start += len(keyword)
    found = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])").search(text, start)
    col = found.start() + 1 if found else s.col
    return Span(s.source, s.line, col, s.line, col + len(name))
