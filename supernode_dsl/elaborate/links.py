"""Resolving ``link`` statements: patterns over child arrays -> endpoint pairs.

Semantics (docs/language.md, "Links"):

* ``*`` is every index of its dimension, ``[lo:hi]`` the indices lo..hi-1, on each side
  independently: ``a[*] <-> b[*]`` joins every a to every b (all-to-all).
* A name used alone as an index (``npu[i]``) is an *index variable*; it ranges over that
  dimension and ties the two sides together: ``npu[i] <-> nic[i]`` is one-to-one,
  ``node[*].l1[j] <-> l2[j][*]`` is index-matched.  A variable used in two places must range
  over dimensions of the same size.
* Arithmetic on variables (``chip[(x+1)%n]``) gives rings and tori.  A binding whose
  arithmetic index falls outside the array produces no link (that is how a mesh without
  wrap-around is written); a constant index out of range is an error.
* Pairs repeated by one statement add up to parallel links; a link from an instance to itself
  is an error; a statement that yields no link at all is an error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from supernode_dsl.diagnostics import Span
from supernode_dsl.elaborate.evaluate import (
    EvalError,
    Value,
    as_int,
    evaluate,
    free_names,
    truth,
)
from supernode_dsl.elaborate.model import ChildArray, Template
from supernode_dsl.parse import ast as A
from supernode_dsl.units import Quantity

__all__ = [
    "LinkLimitError",
    "Resolved",
    "Reversal",
    "local_path",
    "resolve_pairs",
    "shadowing_params",
    "touches_empty_array",
]


class LinkLimitError(Exception):
    """The statement would create more links than the configured limit."""

    def __init__(self, estimate: int) -> None:
        super().__init__(estimate)
        self.estimate = estimate


@dataclass(frozen=True, slots=True)
class Reversal:
    """A pair a statement matched from both ends: (a, b) first, then (b, a) under the
    binding ``again``; ``pairs`` counts the pairs so matched."""

    a: str
    b: str
    again: str
    pairs: int


@dataclass(frozen=True, slots=True)
class Resolved:
    """The links of one statement: ``pairs`` maps local index pairs to their count;
    ``errors`` are index errors (each once); ``reversal`` the first pair matched from both
    ends; ``filtered`` whether the ``where`` guard rejected any binding (a guard may leave
    nothing at a degenerate size, a full mesh of one, which is then not an error)."""

    pairs: dict[tuple[int, int], int]
    errors: list[EvalError]
    reversal: Reversal | None
    filtered: bool


@dataclass(frozen=True, slots=True)
class _Step:
    child: ChildArray
    segment: A.Segment


def _walk(tpl: Template, ref: A.Ref) -> list[_Step]:
    """Resolve the names of a reference to child arrays (indices are checked for arity)."""
    steps: list[_Step] = []
    cur = tpl
    for seg in ref.segments:
        child = next((c for c in cur.children if c.name == seg.name), None)
        if child is None:
            names = ", ".join(c.name for c in cur.children) or "none"
            raise EvalError(
                "E002",
                f"'{cur.type_name}' has no instance '{seg.name}' (its instances: {names})",
                seg.span,
            )
        if len(seg.indices) != len(child.shape):
            dims = "".join(f"[{n}]" for n in child.shape)
            want = (f"{len(child.shape)} index(es): it is declared {seg.name}{dims}"
                    if child.shape else "no index: it is a single instance")
            raise EvalError("E005", f"'{seg.name}' takes {want}", seg.span)
        steps.append(_Step(child, seg))
        cur = child.template
    return steps


def _variables(
    sides: list[list[_Step]], is_param: Callable[[str], bool], guard: A.Expr | None
) -> dict[str, tuple[int, Span]]:
    """Index variables with their ranges, from their plain (``x[i]``) occurrences."""
    ranges: dict[str, tuple[int, Span]] = {}
    used: dict[str, Span] = {}
    if guard is not None:
        for name in sorted(free_names(guard)):
            if not is_param(name):
                used.setdefault(name, guard.span)
    for steps in sides:
        for step in steps:
            for dim, idx in zip(step.child.shape, step.segment.indices, strict=True):
                exprs = [idx.expr] if isinstance(idx, A.IndexExpr) else (
                    [idx.lo, idx.hi] if isinstance(idx, A.IndexRange) else [])
                for e in exprs:
                    for name in free_names(e):
                        if not is_param(name):
                            used.setdefault(name, e.span)
                if isinstance(idx, A.IndexExpr) and isinstance(idx.expr, A.Var) \
                        and not is_param(idx.expr.name):
                    name = idx.expr.name
                    if name in ranges and ranges[name][0] != dim:
                        raise EvalError(
                            "E018",
                            f"index variable '{name}' ranges over {ranges[name][0]} "
                            f"elsewhere but over {dim} here",
                            idx.span,
                        )
                    ranges.setdefault(name, (dim, idx.span))
    for name, span in used.items():
        if name not in ranges:
            raise EvalError(
                "E018",
                f"'{name}' is not a parameter, and as an index variable it is never used "
                "alone as an index, so its range is unknown",
                span,
            )
    return ranges


def shadowing_params(stmt: A.LinkStmt, is_param: Callable[[str], bool]) -> list[A.Var]:
    """Parameters used alone as an index *and* inside index arithmetic of the same statement:
    ``chip[x] <-> chip[(x + 1) % n]`` with a parameter ``x`` is one fixed link, almost never
    what was meant (a ring)."""
    plain: dict[str, A.Var] = {}
    in_arithmetic: set[str] = set()
    for ref in (stmt.left, stmt.right):
        for seg in ref.segments:
            for idx in seg.indices:
                if not isinstance(idx, A.IndexExpr):
                    continue
                if isinstance(idx.expr, A.Var):
                    if is_param(idx.expr.name):
                        plain.setdefault(idx.expr.name, idx.expr)
                else:
                    in_arithmetic |= {n for n in free_names(idx.expr) if is_param(n)}
    return [v for name, v in plain.items() if name in in_arithmetic]


def _expand(
    steps: list[_Step],
    lookup: Callable[[str, Span], Value],
    variables: set[str],
    errors: list[EvalError],
) -> list[int]:
    """Local indices matched by one side under the current variable binding."""
    bases = [0]
    for step in steps:
        per_dim: list[range | list[int]] = []
        for dim, idx in zip(step.child.shape, step.segment.indices, strict=True):
            if isinstance(idx, A.IndexAll):
                per_dim.append(range(dim))
                continue
            if isinstance(idx, A.IndexRange):
                lo = as_int(evaluate(idx.lo, lookup), idx.lo.span, "a range bound")
                hi = as_int(evaluate(idx.hi, lookup), idx.hi.span, "a range bound")
                if hi > dim or lo >= hi:
                    raise EvalError("E013", f"range [{lo}:{hi}] is not inside 0..{dim}",
                                    idx.span)
                per_dim.append(range(lo, hi))
                continue
            value = evaluate(idx.expr, lookup)
            has_var = bool(free_names(idx.expr) & variables)
            i = as_int(value, idx.span, "an index", minimum=-(2**62))
            if not 0 <= i < dim:
                if has_var:
                    return []
                errors.append(EvalError(
                    "E013", f"index {i} is out of range for '{step.segment.name}' "
                    f"(size {dim})", idx.span))
                return []
            per_dim.append([i])
        size = step.child.template.size
        flat = [
            step.child.offset + _flat(combo, step.child.shape) * size
            for combo in itertools.product(*per_dim)
        ]
        bases = [b + f for b in bases for f in flat]
    return bases


def _flat(combo: tuple[int, ...], shape: tuple[int, ...]) -> int:
    out = 0
    for i, n in zip(combo, shape, strict=True):
        out = out * n + i
    return out


def _side_bound(steps: list[_Step]) -> int:
    return math.prod(s.child.count for s in steps)


def touches_empty_array(tpl: Template, stmt: A.LinkStmt) -> bool:
    """Whether a reference of ``stmt`` goes through an array of size 0 (an absent tier):
    such a statement makes no link and is not an error."""
    return any(step.child.count == 0
               for ref in (stmt.left, stmt.right) for step in _walk(tpl, ref))


def local_path(tpl: Template, index: int) -> str:
    """The path of local instance ``index`` below ``tpl``, e.g. ``node[1].l1[3]``."""
    parts: list[str] = []
    cur = tpl
    while index:
        child = next(c for c in reversed(cur.children) if c.offset <= index)
        element, index = divmod(index - child.offset, child.template.size)
        dims = []
        for n in reversed(child.shape):
            element, i = divmod(element, n)
            dims.append(f"[{i}]")
        parts.append(child.name + "".join(reversed(dims)))
        cur = child.template
    return ".".join(parts)


def _binding_text(binding: dict[str, int]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in binding.items()) or "no index variable"


def _guard_holds(stmt: A.LinkStmt, lookup: Callable[[str, Span], Value]) -> bool:
    if stmt.guard is None:
        return True
    return truth(evaluate(stmt.guard, lookup), stmt.guard.span, "a 'where' condition")


def resolve_pairs(
    tpl: Template,
    stmt: A.LinkStmt,
    lookup: Callable[[str, Span], Value],
    is_param: Callable[[str], bool],
    max_links: int,
) -> Resolved:
    """All ``(a, b) -> count`` pairs of ``stmt`` inside ``tpl`` (local indices), for the
    bindings where its ``where`` guard holds.

    Raises :class:`EvalError` for a statement-level mistake and :class:`LinkLimitError` when
    the statement would create more than ``max_links`` links; index errors found while
    expanding are returned with whatever pairs were found (see :class:`Resolved`).
    """
    left, right = _walk(tpl, stmt.left), _walk(tpl, stmt.right)
    ranges = _variables([left, right], is_param, stmt.guard)
    estimate = _side_bound(left) * _side_bound(right)
    if estimate > max_links:
        tied = math.prod(n for n, _ in ranges.values()) or 1
        if estimate // tied > max_links:
            raise LinkLimitError(estimate // tied)
    names = list(ranges)
    pairs: dict[tuple[int, int], int] = {}
    reversal: Reversal | None = None
    reversed_pairs = 0
    filtered = False
    errors: list[EvalError] = []
    for combo in itertools.product(*(range(ranges[n][0]) for n in names)):
        binding = dict(zip(names, combo, strict=True))

        def bound(name: str, span: Span, binding: dict[str, int] = binding) -> Value:
            if name in binding:
                return Quantity(float(binding[name]))
            return lookup(name, span)

        if not _guard_holds(stmt, bound):
            filtered = True
            continue
        a_side = _expand(left, bound, set(names), errors)
        if not a_side:
            continue
        b_side = _expand(right, bound, set(names), errors)
        for a in a_side:
            for b in b_side:
                if a == b:
                    raise EvalError("E012", "this link joins an instance to itself", stmt.span)
                if (b, a) in pairs:
                    reversed_pairs += 1
                    if reversal is None:
                        reversal = Reversal(local_path(tpl, b), local_path(tpl, a),
                                            _binding_text(binding), 0)
                    pairs[(b, a)] += 1
                    continue
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        if len(pairs) > max_links:
            raise LinkLimitError(len(pairs))
    unique: dict[tuple[str, int, int], EvalError] = {}
    for e in errors:
        unique.setdefault((e.message, e.span.line, e.span.col), e)
    if reversal is not None:
        reversal = Reversal(reversal.a, reversal.b, reversal.again, reversed_pairs)
    return Resolved(pairs, list(unique.values()), reversal, filtered)
