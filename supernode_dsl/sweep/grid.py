"""The grid of a sweep: axes of ``-D`` parameter values and their cartesian product."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["Axis", "GridError", "grid_points", "parse_axis"]


class GridError(ValueError):
    """An axis written wrongly (a usage mistake: the CLI reports it with exit status 2)."""


@dataclass(frozen=True)
class Axis:
    """One swept parameter and its values, as ``-D`` text, in sweep order."""

    name: str
    values: tuple[str, ...]


def _range(text: str) -> tuple[str, ...]:
    """``lo:hi:step``, both ends included, in decimal arithmetic (no float drift)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise GridError(f"range {text!r}: write lo:hi:step")
    try:
        lo, hi, step = (Decimal(p) for p in parts)
    except InvalidOperation as err:
        raise GridError(f"range {text!r}: lo, hi and step are numbers") from err
    if step <= 0 or hi < lo:
        raise GridError(f"range {text!r}: needs lo <= hi and step > 0")
    count = int((hi - lo) / step) + 1
    return tuple(str(lo + i * step) for i in range(count))


def parse_axis(text: str) -> Axis:
    """``name=v1,v2,...`` (listed values, any ``-D`` text) or ``name=lo:hi:step``."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not rest.strip():
        raise GridError(f"{text!r}: write name=v1,v2,... or name=lo:hi:step")
    rest = rest.strip()
    values = _range(rest) if ":" in rest else tuple(v.strip() for v in rest.split(","))
    if any(not v for v in values):
        raise GridError(f"{text!r}: an empty value")
    if len(set(values)) != len(values):
        raise GridError(f"{text!r}: a value is listed twice")
    return Axis(name, values)


def grid_points(axes: tuple[Axis, ...]) -> list[dict[str, str]]:
    """Every combination of the axes' values, the last axis varying fastest."""
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise GridError("a parameter is swept twice")
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(a.values for a in axes))]
