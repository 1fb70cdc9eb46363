"""Section 7, design-space sweep (when the report is given a ``cmx sweep`` folder): the
sweep's axes and fixed values, its Pareto plot (the drawing of the sweep's ``pareto.svg``,
inlined) and the points of the front as a table, and the points that could not be planned
by diagnostic code."""

from __future__ import annotations

import collections
from typing import Any

from markupsafe import Markup

from supernode_dsl.emit.report.common import msv, num
from supernode_dsl.sweep.plot import pareto_svg
from supernode_dsl.sweep.table import SweepTable

__all__ = [
    "LATENCY_LABELS",
    "sweep_section",
]

#: How the page names the latency a front is drawn against.
LATENCY_LABELS = {"tpot_ms": "TPOT", "ttft_ms": "TTFT"}


def _axis_values(table: SweepTable, axis: str) -> str:
    """The values of ``axis`` in grid order, each once."""
    return ", ".join(dict.fromkeys(r.defines[axis] for r in table.results))


def _figure(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if key.endswith("_ms"):
        return msv(value)
    return num(value, 2 if isinstance(value, float) and value < 100 else 0)


_FRONT_COLUMNS = (("decode tokens/s per NPU", "decode_tokens_per_s_per_npu"),
                  ("TPOT (ms)", "tpot_ms"), ("batch per NPU", "batch_per_npu"),
                  ("prefill tokens/s per NPU", "prefill_tokens_per_s_per_npu"),
                  ("TTFT (ms)", "ttft_ms"), ("NPUs used", "npus_used"),
                  ("bottleneck", "bottleneck"))


def sweep_section(table: SweepTable | None, name: str | None) -> dict[str, Any] | None:
    """Section 7 of the sweep ``table`` read from ``name`` (a base name), or None (no
    sweep given: the page has no section 7)."""
    if table is None:
        return None
    errors = collections.Counter(r.error.split(":", 1)[0] for r in table.results if r.error)
    front = [{"point": i, "axes": [table.results[i].defines[a] for a in table.axes],
              "figures": [_figure((table.results[i].metrics or {}).get(k), k)
                          for _, k in _FRONT_COLUMNS]} for i in table.front]
    return {
        "name": name or "",
        "points": f"{len(table.results):,}",
        "planned": f"{len(table.results) - sum(errors.values()):,}",
        "errors": [(code, f"{n:,}") for code, n in sorted(errors.items())],
        "axes": [(a, _axis_values(table, a)) for a in table.axes],
        "defines": list(table.defines),
        "deployment": table.deployment,
        "latency": LATENCY_LABELS[table.pareto_y],
        "svg": Markup(pareto_svg(list(table.results), list(table.front), table.pareto_y,
                                 namespace=False, per=table.pareto_per)),
        "per": list(table.pareto_per),
        "columns": [label for label, _ in _FRONT_COLUMNS],
        "front": front,
    }
