"""Expression evaluation with dimension checking.

Values are :class:`~supernode_dsl.units.Quantity` (numbers, with or without a unit), ``str``
or ``bool``.  A mistake raises :class:`EvalError`, which the elaborator turns into a located
diagnostic; evaluation itself never raises anything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from supernode_dsl.diagnostics import Span
from supernode_dsl.parse import ast as A
from supernode_dsl.units import DIMENSIONLESS, UNITS, Quantity, dim_name, suggest_unit

__all__ = ["EvalError", "Value", "as_int", "evaluate", "format_value", "free_names", "truth"]

Value = Quantity | str | bool


class EvalError(Exception):
    """A located evaluation mistake: a diagnostic code, a message and a span."""

    def __init__(self, code: str, message: str, span: Span) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.span = span


Lookup = Callable[[str, Span], Value]


def _unit_error(lit: A.QuantityLit) -> EvalError:
    unit = lit.unit
    hint = ""
    if unit.endswith("Bps") or unit.endswith("bytes/s"):
        hint = f"; did you mean '{unit[:-3]}B/s' (bytes) or '{unit[:-3]}bps' (bits)?"
    elif (guess := suggest_unit(unit)) is not None:
        hint = f"; did you mean '{guess}'?"
    return EvalError("E004", f"unknown unit '{unit}'{hint}", lit.unit_span)


def _num(v: Value, span: Span, what: str) -> Quantity:
    if isinstance(v, (bool, str)):
        kind = "a boolean" if isinstance(v, bool) else "a string"
        raise EvalError("E014", f"{what} needs a number, not {kind}", span)
    return v


def _binop(node: A.BinOp, left: Quantity, right: Quantity) -> Quantity:
    op = node.op
    if op in ("+", "-"):
        if left.dim != right.dim:
            verb = "add" if op == "+" else "subtract"
            raise EvalError(
                "E004",
                f"cannot {verb} {dim_name(left.dim)} and {dim_name(right.dim)}",
                node.span,
            )
        value = left.value + right.value if op == "+" else left.value - right.value
        return Quantity(value, left.dim)
    if op == "*":
        return Quantity(left.value * right.value, left.dim * right.dim)
    if op == "**":
        if not right.dim.is_dimensionless:
            raise EvalError("E004", "an exponent must be a plain number", node.right.span)
        if not left.dim.is_dimensionless and right.value != int(right.value):
            raise EvalError("E014", "a quantity with a unit needs a whole exponent", node.span)
        try:
            value = left.value ** right.value
        except (OverflowError, ZeroDivisionError):
            raise EvalError("E014", "the power is out of range", node.span) from None
        if isinstance(value, complex) or not math.isfinite(value):
            raise EvalError("E014", "the power is not a real number", node.span)
        return Quantity(value, left.dim ** int(right.value) if not left.dim.is_dimensionless
                        else DIMENSIONLESS)
    if right.value == 0:
        raise EvalError("E014", "division by zero", node.span)
    if op == "/":
        return Quantity(left.value / right.value, left.dim / right.dim)
    if left.dim != right.dim and not right.dim.is_dimensionless:
        raise EvalError("E004", f"'{op}' needs operands of the same kind", node.span)
    if op == "//":
        dim = DIMENSIONLESS if left.dim == right.dim else left.dim
        return Quantity(float(math.floor(left.value / right.value)), dim)
    return Quantity(left.value % right.value, left.dim)


_FUNCS: dict[str, Callable[[list[Quantity]], float]] = {
    "min": lambda a: min(q.value for q in a),
    "max": lambda a: max(q.value for q in a),
    "ceil": lambda a: float(math.ceil(a[0].value)),
    "floor": lambda a: float(math.floor(a[0].value)),
    "round": lambda a: float(round(a[0].value)),
    "abs": lambda a: abs(a[0].value),
}
_ARITY = {"min": None, "max": None, "ceil": 1, "floor": 1, "round": 1, "abs": 1}


def _call(node: A.Call, args: list[Quantity]) -> Quantity:
    if node.func not in _FUNCS:
        known = ", ".join(sorted(_FUNCS))
        raise EvalError("E002", f"unknown function '{node.func}' (known: {known})", node.span)
    arity = _ARITY[node.func]
    if (arity is not None and len(args) != arity) or not args:
        want = f"{arity} argument" if arity else "at least one argument"
        raise EvalError("E014", f"{node.func}() takes {want}", node.span)
    dims = {a.dim for a in args}
    if len(dims) > 1:
        raise EvalError("E004", f"{node.func}() arguments must be of the same kind", node.span)
    value = _FUNCS[node.func](args)
    if node.func in ("ceil", "floor", "round") and not args[0].dim.is_dimensionless:
        raise EvalError("E004", f"{node.func}() needs a plain number", node.span)
    return Quantity(value, args[0].dim)


#: The longest number literal (digits, point, exponent and ``_`` separators): far more than
#: the 17 significant digits a float holds.
MAX_LITERAL_CHARS = 100


def _literal(node: A.Number | A.QuantityLit) -> None:
    """E014 when a number literal is longer than :data:`MAX_LITERAL_CHARS` or out of the
    range of a float (1.8e308; 1e400 is inf, which would crash floor(), int(), ...)."""
    span = node.span
    end = node.unit_span.col if isinstance(node, A.QuantityLit) else span.end_col
    n = len(span.source.line(span.line)[span.col - 1:end - 1].rstrip())
    if n > MAX_LITERAL_CHARS:
        raise EvalError("E014", f"a number literal of {n:,} characters; the limit is "
                        f"{MAX_LITERAL_CHARS}", span)
    if not math.isfinite(node.value):
        raise EvalError("E014", "the number is out of range (at most about 1.8e308)", span)


def evaluate(node: A.Expr, lookup: Lookup) -> Value:
    """Evaluate ``node``; ``lookup(name, span)`` resolves names (or raises EvalError)."""
    if isinstance(node, A.Number):
        _literal(node)
        return Quantity(node.value)
    if isinstance(node, A.QuantityLit):
        _literal(node)
        if node.unit not in UNITS:
            raise _unit_error(node)
        factor, dim = UNITS[node.unit]
        if not math.isfinite(node.value * factor):
            raise EvalError("E014", "the number is out of range", node.span)
        return Quantity(node.value * factor, dim)
    if isinstance(node, A.Var):
        return lookup(node.name, node.span)
    if isinstance(node, A.String):
        return node.value
    if isinstance(node, A.Bool):
        return node.value
    if isinstance(node, A.Neg):
        q = _num(evaluate(node.operand, lookup), node.span, "'-'")
        return Quantity(-q.value, q.dim)
    if isinstance(node, A.BinOp):
        left = _num(evaluate(node.left, lookup), node.left.span, f"'{node.op}'")
        right = _num(evaluate(node.right, lookup), node.right.span, f"'{node.op}'")
        result = _binop(node, left, right)
        if not math.isfinite(result.value):
            raise EvalError("E014", "the result is out of range", node.span)
        return result
    if isinstance(node, A.Compare):
        return _compare(node, evaluate(node.left, lookup), evaluate(node.right, lookup))
    if isinstance(node, A.Logic):
        first = truth(evaluate(node.left, lookup), node.left.span, f"'{node.op}'")
        if first == (node.op == "or"):  # short-circuit: `i > 0 and 10 / i > 2` is safe
            return first
        return truth(evaluate(node.right, lookup), node.right.span, f"'{node.op}'")
    if isinstance(node, A.Not):
        return not truth(evaluate(node.operand, lookup), node.operand.span, "'not'")
    args = [_num(evaluate(a, lookup), a.span, f"{node.func}()") for a in node.args]
    return _call(node, args)


def truth(v: Value, span: Span, what: str) -> bool:
    """``v`` as a boolean, or an E004 EvalError: ``what`` needs true or false."""
    if not isinstance(v, bool):
        raise EvalError("E004", f"{what} needs true or false (a comparison such as "
                        "'i != j'), not a number" if isinstance(v, Quantity)
                        else f"{what} needs true or false, not a string", span)
    return v


_ORDER: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _compare(node: A.Compare, left: Value, right: Value) -> bool:
    """``==``/``!=`` on two values of one kind; ``<`` ... ``>=`` on two numbers of one
    dimension (E004 otherwise)."""
    if isinstance(left, Quantity) and isinstance(right, Quantity):
        if left.dim != right.dim:
            raise EvalError("E004", f"cannot compare {dim_name(left.dim)} and "
                            f"{dim_name(right.dim)}", node.span)
        if node.op in _ORDER:
            return _ORDER[node.op](left.value, right.value)
        return (left.value == right.value) == (node.op == "==")
    if type(left) is not type(right) or node.op in _ORDER:
        raise EvalError("E004", f"'{node.op}' cannot compare {_kind(left)} and "
                        f"{_kind(right)}", node.span)
    return (left == right) == (node.op == "==")


def _kind(v: Value) -> str:
    if isinstance(v, bool):
        return "a boolean"
    return "a string" if isinstance(v, str) else "a number"


def free_names(node: A.Expr) -> set[str]:
    """Every name an expression refers to."""
    if isinstance(node, A.Var):
        return {node.name}
    if isinstance(node, (A.BinOp, A.Compare, A.Logic)):
        return free_names(node.left) | free_names(node.right)
    if isinstance(node, (A.Neg, A.Not)):
        return free_names(node.operand)
    if isinstance(node, A.Call):
        out: set[str] = set()
        for a in node.args:
            out |= free_names(a)
        return out
    return set()


def as_int(v: Value, span: Span, what: str, minimum: int = 0) -> int:
    """``v`` as a whole number >= ``minimum``, or an E005/E003 EvalError naming ``what``."""
    q = _num(v, span, what)
    if not q.dim.is_dimensionless:
        raise EvalError("E004", f"{what} must be a plain number, not {dim_name(q.dim)}", span)
    if not math.isfinite(q.value):  # e.g. 1e400: int() would raise OverflowError
        raise EvalError("E005", f"{what} must be a finite whole number", span)
    if q.value != int(q.value):
        raise EvalError("E005", f"{what} must be a whole number, not {q.value:g}", span)
    if q.value < minimum:
        raise EvalError("E005", f"{what} must be at least {minimum}, not {int(q.value)}", span)
    return int(q.value)


def format_value(v: Value) -> str:
    """A short human form of a value (SI base units)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    return f"{v.value:g}"


def lookup_in(*scopes: Mapping[str, Value]) -> Callable[[str], Value | None]:
    """A name resolver over several scopes, innermost first."""
    def find(name: str) -> Value | None:
        for scope in scopes:
            if name in scope:
                return scope[name]
        return None

    return find
