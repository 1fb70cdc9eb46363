"""Selecting instances by path pattern: ``cm384.node[0:24]``, ``node[*].npu[3]``, ``l2[2][*]``.

A pattern is written exactly as one side of a ``link`` statement (the grammar's ``ref``
rule, parsed by the .cmx parser itself): a dotted path whose indices are each a constant
expression (``3``, ``2 * 4``), ``*`` (any) or ``lo:hi`` (lo .. hi-1).  A pattern has no
index variables or parameters, so a name inside an index is an error.  The root name may be
left out.  Matching reads the nodes' ``array`` and ``indices`` attributes, never the path
strings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import networkx as nx
from lark.exceptions import UnexpectedInput

from supernode_dsl import schema as S
from supernode_dsl.diagnostics import Diagnostic, SourceText, Span
from supernode_dsl.elaborate.evaluate import EvalError, Value, as_int, evaluate
from supernode_dsl.graph.instances import Segment, segments
from supernode_dsl.parse import ast as A
from supernode_dsl.parse.errors import syntax_diagnostic
from supernode_dsl.parse.grammar import get_parser
from supernode_dsl.parse.transform import AstBuilder

__all__ = ["PatternError", "select"]

#: Display name of a pattern in diagnostics.
SOURCE_NAME = "<selector>"


class PatternError(ValueError):
    """A malformed pattern.  ``diagnostic`` is the E020 message located in the pattern (the
    grammar's own message for a syntax error); ``str()`` is its message."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass(frozen=True)
class _Spec:
    """One segment of a pattern: the array name and per index ``(lo, hi)`` or None (any)."""

    name: str
    ranges: tuple[tuple[int, int] | None, ...]


def _no_names(name: str, span: Span) -> Value:
    raise EvalError("E020", f"'{name}' is not a number: an index of a selector is a number, "
                    "'*' or 'lo:hi'", span)


def _range(idx: A.Index) -> tuple[int, int] | None:
    if isinstance(idx, A.IndexAll):
        return None
    if isinstance(idx, A.IndexRange):
        lo = as_int(evaluate(idx.lo, _no_names), idx.lo.span, "a range bound")
        hi = as_int(evaluate(idx.hi, _no_names), idx.hi.span, "a range bound")
        if lo >= hi:
            raise EvalError("E020", f"range [{lo}:{hi}] is empty", idx.span)
        return lo, hi
    i = as_int(evaluate(idx.expr, _no_names), idx.expr.span, "an index")
    return i, i + 1


def _parse(pattern: str) -> list[_Spec]:
    """The pattern's segments, or :class:`PatternError` with a located E020 diagnostic."""
    source = SourceText(SOURCE_NAME, pattern)
    try:
        ref: A.Ref = AstBuilder(source).transform(get_parser("ref").parse(pattern))
        return [_Spec(seg.name, tuple(_range(i) for i in seg.indices))
                for seg in ref.segments]
    except UnexpectedInput as err:
        diag = syntax_diagnostic(err, source)
        message = diag.message.replace("end of the file", "end of the selector")
        raise PatternError(dataclasses.replace(
            diag, code="E020", message=message.replace("end of file", "end of the selector"))
        ) from None
    except EvalError as err:
        raise PatternError(Diagnostic("E020", err.message, err.span)) from None


def _matches(specs: list[_Spec], position: tuple[Segment, ...]) -> bool:
    if len(position) != len(specs):
        return False
    for (name, idx), spec in zip(position, specs, strict=True):
        if name != spec.name or len(idx) != len(spec.ranges):
            return False
        for i, rng in zip(idx, spec.ranges, strict=True):
            if rng is not None and not rng[0] <= i < rng[1]:
                return False
    return True


def select(g: nx.Graph, pattern: str) -> list[str]:
    """Instance paths matching ``pattern``, in instance order (root name optional).

    Raises :class:`PatternError` for a pattern the grammar's ``ref`` rule refuses, a name in
    an index, a negative or fractional index, or an empty range.
    """
    specs = _parse(pattern)
    root = g.graph.get(S.GRAPH_NAME, "")
    if specs and specs[0].name != root:
        specs = [_Spec(root, ()), *specs]
    memo: dict[str, tuple[Segment, ...]] = {}
    return [n for n in g.nodes if _matches(specs, segments(g, n, memo))]
