"""What the report's sections share: the inputs (:class:`ReportInputs`), number formatting
(:func:`fmt`, :func:`num`, :func:`ms`, :func:`msv`), the op colours and chart helpers
(:func:`op_colour`, :func:`ink`, :func:`legend`, :func:`nice_ticks`, :func:`tick_text`) and
the notes of sections without data."""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from supernode_dsl.elaborate import Model
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.sweep.table import SweepTable

__all__ = [
    "NO_DEPLOYMENT",
    "OP_COLOURS",
    "ReportInputs",
    "base_name",
    "declared_deployments",
    "fmt",
    "ink",
    "layers_text",
    "legend",
    "ms",
    "msv",
    "nice_ticks",
    "num",
    "old_plan_note",
    "op_colour",
    "tick_text",
]


@dataclass(frozen=True)
class ReportInputs:
    """What a report is made of besides the compiled model and graph.

    ``source`` and ``plan_name``/``loads_name`` are file names shown on the page (reduced to
    their base name); ``plan`` is a plan of this topology (or None: no
    deployment section); ``loads`` the [MoE layers x routed experts] loads the heatmap is drawn
    with (None: equal loads); ``diagrams`` False leaves the Graphviz drawings out.
    """

    source: str
    plan: PlanDocument | None = None
    loads: np.ndarray | None = None
    plan_name: str | None = None
    loads_name: str | None = None
    diagrams: bool = True
    sweep: SweepTable | None = None
    sweep_name: str | None = None


def declared_deployments(model: Model) -> list[str]:
    """The names of the deployments ``model`` declares, in declaration order."""
    return [s.name for s in model.specs if s.category == "deployment"]


def base_name(name: str | None) -> str | None:
    return None if name is None else PurePath(name).name


def fmt(x: float) -> str:
    """A coordinate with at most one decimal, no trailing ``.0``."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def num(x: float, decimals: int = 0) -> str:
    """``x`` with thousands separators and ``decimals`` decimals."""
    return f"{x:,.{decimals}f}"


def msv(ms: float) -> str:
    """Milliseconds: one decimal from 1,000 ms, two from 10 ms, three below."""
    return num(ms, 1) if abs(ms) >= 1000 else num(ms, 2) if abs(ms) >= 10 else num(ms, 3)


def ms(us: float) -> str:
    """Microseconds shown as milliseconds (:func:`msv`)."""
    return msv(us / 1e3)


#: Fixed colours of the ops the planner emits (Okabe-Ito and Tol palettes); other op names
#: get a colour of :data:`_FALLBACK` chosen by a CRC of the name, so a name always gets the
#: same colour, on every run and in every chart.
OP_COLOURS: dict[str, str] = {
    "mla_prolog": "#56B4E9", "attention": "#0072B2", "o_proj": "#CC79A7",
    "dense_ffn": "#44AA99", "gate": "#999933", "dispatch": "#E69F00", "experts": "#009E73",
    "combine": "#D55E00", "mtp_proj": "#882255", "lm_head": "#332288",
    "all_gather": "#AA4499", "all_to_all": "#DDCC77",
}
_FALLBACK = ("#88CCEE", "#661100", "#6699CC", "#888888", "#AA4466", "#117733", "#44BB99")


def op_colour(name: str) -> str:
    """The colour of op ``name`` in every chart of the page (deterministic)."""
    return OP_COLOURS.get(name) or _FALLBACK[zlib.crc32(name.encode()) % len(_FALLBACK)]


def ink(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (``#rrggbb``)."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def legend(names: Sequence[str]) -> list[tuple[str, str]]:
    """(op, colour) for the legend, in the order given."""
    return [(n, op_colour(n)) for n in names]


def nice_ticks(lo: float, hi: float, target: int = 10) -> list[float]:
    """Round tick positions (1, 2, 2.5 or 5 x 10^k apart) covering [lo, hi], about
    ``target`` of them; [lo] when the range is empty."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [first + i * step for i in range(count)]


def tick_text(v: float, step: float) -> str:
    """A tick label with as many decimals as the tick step needs."""
    decimals = next((d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * step), 6)
    return num(v, decimals)


def layers_text(layers: Sequence[int]) -> str:
    if not layers:
        return ""
    if len(layers) > 1 and all(b == a + 1 for a, b in itertools.pairwise(layers)):
        return f"{layers[0]}\u2013{layers[-1]}"
    return ", ".join(str(x) for x in layers)


NO_DEPLOYMENT = "No deployment: there is no serving plan to show."
_NO_SERVING = ("The plan has no serving estimate (plan schema {version}, made before the "
               "serving planner): run cmx plan again for the {what}.")


def old_plan_note(plan: PlanDocument, what: str) -> str:
    """The note of a section whose blocks ``plan`` lacks (made before the serving planner),
    naming its schema version."""
    return _NO_SERVING.format(version=plan.schema_version, what=what)
