"""Units and quantities: every number with a unit is converted to SI base units here, once.

A :class:`Quantity` holds a value in base units (bytes, seconds, operations, watts, bits are
converted to bytes) and a :class:`Dim`, the exponents of those base dimensions.  Arithmetic
checks dimensions, so ``28 GB/s + 5 ns`` is refused instead of silently producing nonsense,
and ``Gbps`` (bits) can never be confused with ``GB/s`` (bytes).

Decimal prefixes are powers of 10 (``GB`` = 1e9 bytes), binary prefixes powers of 2
(``GiB`` = 2**30 bytes), as in the vendors' datasheets.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = [
    "BANDWIDTH",
    "BYTES",
    "COUNT",
    "DIMENSIONLESS",
    "FREQUENCY",
    "OPS_RATE",
    "POWER",
    "TIME",
    "UNITS",
    "Dim",
    "Quantity",
    "dim_name",
    "format_quantity",
    "suggest_unit",
]


@dataclass(frozen=True, slots=True)
class Dim:
    """Exponents of the base dimensions: bytes, seconds, operations, watts."""

    byte: int = 0
    second: int = 0
    op: int = 0
    watt: int = 0

    def __mul__(self, other: Dim) -> Dim:
        return Dim(
            self.byte + other.byte,
            self.second + other.second,
            self.op + other.op,
            self.watt + other.watt,
        )

    def __truediv__(self, other: Dim) -> Dim:
        return Dim(
            self.byte - other.byte,
            self.second - other.second,
            self.op - other.op,
            self.watt - other.watt,
        )

    def __pow__(self, n: int) -> Dim:
        return Dim(self.byte * n, self.second * n, self.op * n, self.watt * n)

    @property
    def is_dimensionless(self) -> bool:
        """True for plain numbers."""
        return self == DIMENSIONLESS


DIMENSIONLESS = Dim()
COUNT = DIMENSIONLESS
BYTES = Dim(byte=1)
TIME = Dim(second=1)
BANDWIDTH = Dim(byte=1, second=-1)
OPS_RATE = Dim(op=1, second=-1)
POWER = Dim(watt=1)
FREQUENCY = Dim(second=-1)

_DIM_NAMES: dict[Dim, str] = {
    DIMENSIONLESS: "a plain number",
    BYTES: "a size (B, GB, GiB, ...)",
    TIME: "a time (s, ms, us, ns)",
    BANDWIDTH: "a bandwidth (GB/s, Gbps, TB/s, ...)",
    OPS_RATE: "a compute rate (TFLOPS, TOPS, ...)",
    POWER: "a power (W, kW)",
    FREQUENCY: "a frequency (Hz, MHz, GHz)",
}


def dim_name(dim: Dim) -> str:
    """Human name of a dimension, e.g. 'a bandwidth (GB/s, Gbps, TB/s, ...)'."""
    if dim in _DIM_NAMES:
        return _DIM_NAMES[dim]
    parts = [
        f"{name}^{exp}"
        for name, exp in (("B", dim.byte), ("s", dim.second), ("op", dim.op), ("W", dim.watt))
        if exp
    ]
    return "a quantity of " + " ".join(parts)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number in SI base units together with its dimension."""

    value: float
    dim: Dim = DIMENSIONLESS


def _build_units() -> dict[str, tuple[float, Dim]]:
    units: dict[str, tuple[float, Dim]] = {}
    decimal = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
    binary = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
    for prefix, factor in (decimal | binary).items():
        units[f"{prefix}B"] = (factor, BYTES)
        units[f"{prefix}B/s"] = (factor, BANDWIDTH)
    for prefix, factor in decimal.items():
        units[f"{prefix}bps"] = (factor / 8.0, BANDWIDTH)
        units[f"{prefix}b/s"] = (factor / 8.0, BANDWIDTH)
        if prefix != "k":
            units[f"{prefix}FLOPS"] = (factor, OPS_RATE)
            units[f"{prefix}OPS"] = (factor, OPS_RATE)
    units["EFLOPS"] = (1e18, OPS_RATE)
    units["EOPS"] = (1e18, OPS_RATE)
    for name, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("\u00b5s", 1e-6),
                         ("ns", 1e-9), ("ps", 1e-12)):
        units[name] = (factor, TIME)
    units["W"] = (1.0, POWER)
    units["kW"] = (1e3, POWER)
    units["Hz"] = (1.0, FREQUENCY)
    units["kHz"] = (1e3, FREQUENCY)
    units["MHz"] = (1e6, FREQUENCY)
    units["GHz"] = (1e9, FREQUENCY)
    return units


#: Unit spelling -> (factor to SI base units, dimension).
UNITS: dict[str, tuple[float, Dim]] = _build_units()


def suggest_unit(word: str) -> str | None:
    """The closest known unit to a misspelt one, e.g. 'GBps' -> 'Gbps', or None."""
    lowered = {u.lower(): u for u in UNITS}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, list(UNITS), n=1, cutoff=0.6)
    return close[0] if close else None


#: Display units per dimension, largest first: a value is shown in the first one it reaches.
_DISPLAY: dict[Dim, tuple[tuple[float, str], ...]] = {
    BYTES: ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1.0, "B")),
    BANDWIDTH: ((1e15, "PB/s"), (1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s"),
                (1.0, "B/s")),
    TIME: ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"), (1e-12, "ps")),
    OPS_RATE: ((1e18, "EFLOPS"), (1e15, "PFLOPS"), (1e12, "TFLOPS"), (1e9, "GFLOPS"),
               (1e6, "MFLOPS"), (1.0, "FLOPS")),
    POWER: ((1e3, "kW"), (1.0, "W")),
    FREQUENCY: ((1e9, "GHz"), (1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz")),
}


def format_quantity(q: Quantity, digits: int = 6) -> str:
    """A quantity in the largest decimal unit of its dimension it reaches, ``digits``
    significant digits: ``Quantity(2.8e10, BANDWIDTH)`` -> ``'28 GB/s'``, ``6e-7 s`` ->
    ``'600 ns'``, zero in the base unit (``'0 s'``).  A plain number has no unit; a dimension
    without display units is shown in base units (``'3 B^2'``)."""
    scales = _DISPLAY.get(q.dim)
    if scales is None:
        if q.dim.is_dimensionless:
            return f"{q.value:.{digits}g}"
        return f"{q.value:.{digits}g} " + " ".join(
            f"{name}^{exp}" if exp != 1 else name
            for name, exp in (("B", q.dim.byte), ("s", q.dim.second), ("op", q.dim.op),
                              ("W", q.dim.watt)) if exp)
    base = next((f, u) for f, u in scales if f == 1.0)
    factor, unit = next(((f, u) for f, u in scales if abs(q.value) >= f),
                        scales[-1] if q.value else base)
    return f"{q.value / factor:.{digits}g} {unit}"
