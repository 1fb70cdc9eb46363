"""Section 6, performance estimate (plan schema 1.1): per role the headline figures (TPOT or
TTFT, tokens/s per NPU and per TFLOPS, ...), op times of representative layers as stacked
bars, all layers as a table (identical consecutive layers as one row) and the KV block; then
the deployment's serving block (workload, role split, KV transfer, P/D mapping, cache pool
and the effect of prefix reuse)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from supernode_dsl.emit.report.common import (
    NO_DEPLOYMENT,
    fmt,
    ink,
    layers_text,
    legend,
    ms,
    msv,
    nice_ticks,
    num,
    old_plan_note,
    op_colour,
    tick_text,
)
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import Estimate, Kv, LayerEstimate
from supernode_dsl.plan.document.serving import CachePool, Serving, WorkloadSummary

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "headline",
    "layer_bars_svg",
    "layer_groups",
    "performance_section",
    "representatives",
]


def _auto(x: float) -> str:
    """A number for people: integers as such, otherwise fewer decimals the larger it is
    (1,235 / 123.5 / 12.35 / 1.235 / 1.7 / 0.0123)."""
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}"
    a = abs(x)
    if a >= 1000:
        return num(x, 0)
    if a >= 100:
        return num(x, 1)
    if a >= 10:
        return num(x, 2)
    if a >= 0.1:
        return num(x, 3).rstrip("0").rstrip(".")
    return f"{x:.3g}"


def _yes(v: object) -> str:
    """"yes" or "no"."""
    return "yes" if v else "no"


def _bytes(b: float) -> str:
    """Bytes in decimal TB, GB or MB (two decimals), or plain bytes."""
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if abs(b) >= scale:
            return f"{num(b / scale, 2)} {unit}"
    return f"{num(b)} B"


_LABELS = {
    "npu_budget": "NPU budget", "npus_used": "NPUs used", "fits_budget": "fits the budget",
    "sustainable_requests_per_s": "sustainable requests/s",
    "prefill_requests_per_s_per_instance": "prefill requests/s per instance",
    "decode_requests_per_s_per_instance": "decode requests/s per instance",
    "meets_arrival_rate": "meets the arrival rate", "tpot_slo_ms": "TPOT SLO (ms)",
    "ttft_slo_ms": "TTFT SLO (ms)", "mtp_accept": "MTP acceptance",
    "decode_batch_per_npu": "decode batch per NPU",
    "prefill_tokens_per_npu": "prefill tokens per NPU", "max_over_mean": "max/mean",
    "prefill_tp": "prefill TP", "decode_tp": "decode TP", "decode_dp": "decode DP",
    "kv_capacity_bytes": "KV capacity per device", "bytes_per_sequence": "KV per sequence",
    "max_sequences_per_device": "max sequences per device",
    "max_batch_per_npu": "max batch per NPU", "context_len": "context length (tokens)",
    "capacity_bytes": "capacity", "prompt_len": "prompt length (tokens)",
    "output_len": "output length (tokens)", "arrival_rate": "arrival rate (requests/s)",
    "load_bandwidth": "load bandwidth per device", "device_bandwidth": "bandwidth per device",
}

#: Zero in these means "not set".
_UNSET_IF_ZERO = ("tpot_slo_ms", "ttft_slo_ms", "arrival_rate")


def _label(key: str) -> str:
    """A plan key for people: "transfer_ms" -> "transfer (ms)", some names spelled out."""
    if key in _LABELS:
        return _LABELS[key]
    if key.endswith("ms"):
        return f"{key[:-3].replace('_', ' ')} (ms)"
    return key.replace("_", " ")


def _value(key: str, v: object) -> str | None:
    """A plan value formatted by what its key says it is (bytes, bandwidth, ms without the
    unit, which :func:`_label` adds, a share in percent); None for lists and objects."""
    if isinstance(v, bool):
        return _yes(v)
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v or "\u2014"
    if not isinstance(v, int | float):
        return None
    x = float(v)
    if key in _UNSET_IF_ZERO and x == 0:
        return "none"
    if "bandwidth" in key:
        return f"{num(x / 1e9, 1)} GB/s"
    if "bytes" in key:
        return _bytes(x)
    if key.endswith("ms"):
        return msv(x)
    if key in ("utilisation", "prefix_reuse", "mtp_accept"):
        return f"{_auto(100 * x)} %"
    return _auto(v)


def _present(block: DataclassInstance) -> dict[str, object]:
    """The fields of a plan block that its JSON form holds, name -> value in declaration
    order (the JSON key order): a field written only when set is left out when None."""
    return {f.name: v for f in dataclasses.fields(block)
            if (v := getattr(block, f.name)) is not None or not f.metadata.get("omit")}


def _rows(block: DataclassInstance) -> list[tuple[str, str]]:
    """(label, value) of the scalar fields of ``block`` (those :func:`_present` gives), and
    of the scalar fields of its blocks one level down ("placement: max/mean"); lists are
    left out."""
    out: list[tuple[str, str]] = []
    for key, v in _present(block).items():
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out += [(f"{_label(key)}: {_label(k)}", t) for k, sub in _present(v).items()
                    if (t := _value(k, sub)) is not None]
        elif (text := _value(key, v)) is not None:
            out.append((_label(key), text))
    return out


_DECODE_HEAD = (
    ("batch per NPU", "batch_per_npu"), ("requests per device", "requests_per_device"),
    ("tokens per device per step", "tokens_per_device_per_step"),
    ("accepted tokens per step", "accepted_tokens_per_step"), ("step (ms)", "step_ms"),
    ("host time per step (ms)", "host_ms"),
    ("TPOT (ms)", "tpot_ms"), ("tokens/s per NPU", "tokens_per_s_per_npu"),
    ("tokens/s per TFLOPS", "tokens_per_s_per_tflops"), ("batch chosen by", "batch_chosen_by"),
)
_PREFILL_HEAD = (
    ("tokens per NPU", "tokens_per_npu"), ("prompts per device", "prompts_per_device"),
    ("prefix-reused tokens", "prefix_reused_tokens"),
    ("reused KV load from the pool (ms)", "kv_load_ms"), ("step (ms)", "step_ms"),
    ("host time per step (ms)", "host_ms"),
    ("TTFT (ms)", "ttft_ms"), ("tokens/s per NPU", "tokens_per_s_per_npu"),
    ("tokens/s per TFLOPS", "tokens_per_s_per_tflops"),
)


def _slo(met: bool | None, slo_ms: float, what: str) -> tuple[str, str] | None:
    """("TPOT SLO met", "yes (≤ 50 ms)") from the ``meets_<what>_slo`` flag ``met`` and the
    workload's SLO ``slo_ms`` (0: none set); None if the flag is absent."""
    if met is None:
        return None
    bound = f" (\u2264 {_auto(slo_ms)} ms)" if slo_ms > 0 else " (no SLO set)"
    return f"{what.upper()} SLO met", _yes(met) + bound


def headline(est: Estimate, workload: WorkloadSummary | None) -> list[tuple[str, str]]:
    """The headline (label, value) pairs of a role's estimate: decode figures when it has a
    TPOT, prefill figures otherwise (``workload`` None: no SLO known)."""
    decode = est.tpot_ms is not None
    fields = _DECODE_HEAD if decode else _PREFILL_HEAD
    present = _present(est)
    out = [(label, text) for label, key in fields if key in present
           if (text := _value(key, present[key])) is not None]
    if decode:
        slo = _slo(est.meets_tpot_slo, workload.tpot_slo_ms if workload else 0.0, "tpot")
    else:
        slo = _slo(est.meets_ttft_slo, workload.ttft_slo_ms if workload else 0.0, "ttft")
    return out + ([slo] if slo else []) + [_calibration(est)]


def _calibration(est: Estimate) -> tuple[str, str]:
    """The row that says which terms are calibrated and the band their fit leaves."""
    cal = est.calibration
    if cal is None:
        return "calibration", "none: every term is a declared fact"
    fitted = ", ".join(f"{k} = {v:.4g}" for k, v in sorted(cal.fitted.items()))
    outside = f"; this estimate is outside its measurements, band unknown: " \
        f"{'; '.join(cal.outside)}" if cal.outside else ""
    return "calibration", (f"{cal.name}, band \u00b1{cal.band:.1%} (its largest residual); "
                           f"fitted: {fitted}; every other term is a declared fact{outside}")


def _signature(row: LayerEstimate) -> tuple[object, ...]:
    return row.kind, row.span_us, tuple(row.ops_us.items())


def layer_groups(per_layer: Sequence[LayerEstimate]) -> list[dict[str, Any]]:
    """Consecutive identical rows (kind, span and op times) merged: one dict per group with
    its ``layers`` and the shared ``kind``, ``span_us`` and ``ops_us``."""
    groups: list[dict[str, Any]] = []
    for i, row in enumerate(per_layer):
        if i and _signature(per_layer[i - 1]) == _signature(row):
            groups[-1]["layers"].append(row.layer)
        else:
            groups.append({"layers": [row.layer], "kind": row.kind, "span_us": row.span_us,
                           "ops_us": dict(row.ops_us)})
    return groups


_KIND_NAMES = (("dense", "dense"), ("moe", "MoE"), ("mtp", "MTP"), ("head", "head"))


def representatives(per_layer: Sequence[LayerEstimate]) -> list[tuple[str, LayerEstimate]]:
    """One row per layer kind (dense, MoE, MTP, head, those present): the most common row
    of that kind (ties: the earliest), labelled with its layer."""
    out: list[tuple[str, LayerEstimate]] = []
    for kind, title in _KIND_NAMES:
        rows = [r for r in per_layer if r.kind == kind]
        if not rows:
            continue
        counts: dict[tuple[object, ...], int] = {}
        for r in rows:
            counts[_signature(r)] = counts.get(_signature(r), 0) + 1
        top = max(counts.values())
        row = next(r for r in rows if counts[_signature(r)] == top)
        layer = row.layer
        out.append((title if layer < 0 else f"{title} (layer {layer})", row))
    return out


@dataclass(frozen=True)
class _Bars:
    """Geometry of the per-layer bar chart: plot from ``left`` (px) for ``width`` px showing
    0..``end`` µs, bars ``bar_h`` high and ``gap`` apart."""

    end: float
    left: int = 170
    width: int = 820
    bar_h: int = 24
    gap: int = 14
    top: int = 10

    def x(self, us: float) -> float:
        """The x coordinate of ``us`` microseconds."""
        return self.left + self.width * us / self.end


def _bar(label: str, row: LayerEstimate, y: int, b: _Bars) -> list[str]:
    """One stacked bar (op times of a layer) with its span marked and written on the right."""
    ops = {k: float(v) for k, v in row.ops_us.items()}
    span, total = float(row.span_us), sum(ops.values())
    text_y = y + b.bar_h - 8
    parts = [f'<text x="{b.left - 6}" y="{text_y}" text-anchor="end">{escape(label)}</text>']
    pos = 0.0
    for op, us in ops.items():
        x0, x1 = b.x(pos), b.x(pos + us)
        fill = op_colour(op)
        parts.append(f'<rect x="{fmt(x0)}" y="{y}" width="{fmt(max(x1 - x0, 0.4))}" '
                     f'height="{b.bar_h}" fill="{fill}" stroke="#fff" stroke-width="0.6">'
                     f"<title>{escape(op)}: {num(us, 1)} \u00b5s</title></rect>")
        if x1 - x0 >= 6.2 * len(op) + 4:
            parts.append(f'<text x="{fmt((x0 + x1) / 2)}" y="{text_y}" text-anchor="middle" '
                         f'fill="{ink(fill)}">{escape(op)}</text>')
        pos += us
    xs = fmt(b.x(span))
    parts.append(f'<line x1="{xs}" x2="{xs}" y1="{y - 3}" y2="{y + b.bar_h + 3}" '
                 f'stroke="#222" stroke-width="2"><title>span in the step: {num(span, 1)} '
                 "\u00b5s</title></line>")
    parts.append(f'<text x="{b.left + b.width + 10}" y="{text_y}">span {num(span, 1)} '
                 f"\u00b5s \u00b7 ops {num(total, 1)} \u00b5s</text>")
    return parts


def layer_bars_svg(role: str, reps: Sequence[tuple[str, LayerEstimate]]) -> str:
    """Stacked horizontal bars of op times (µs, summed over microbatches) for the
    representative layers; a black mark shows each layer's span in the step."""
    hi = max((max(sum(float(v) for v in r.ops_us.values()), float(r.span_us))
              for _, r in reps), default=1.0) or 1.0
    ticks = nice_ticks(0.0, hi, 8)
    b = _Bars(end=max(hi, ticks[-1]))
    bottom = b.top + len(reps) * (b.bar_h + b.gap)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    parts = [f'<svg class="chart layer-bars" role="img" width="{b.left + b.width + 260}" '
             f'height="{bottom + 30}" data-role="{escape(role)}">',
             '<g class="axis" font-size="10">']
    for t in ticks:
        xt = fmt(b.x(t))
        parts.append(f'<line x1="{xt}" x2="{xt}" y1="{b.top - 4}" y2="{bottom - b.gap + 4}" '
                     f'stroke="#ddd"/><text x="{xt}" y="{bottom + 6}" text-anchor="middle">'
                     f"{tick_text(t, step)}</text>")
    parts.append(f'<text x="{b.left + b.width // 2}" y="{bottom + 22}" text-anchor="middle">'
                 "op time in the step (\u00b5s, summed over microbatches)</text></g>"
                 '<g class="bars" font-size="11">')
    for i, (label, row) in enumerate(reps):
        parts += _bar(label, row, b.top + i * (b.bar_h + b.gap), b)
    parts.append("</g></svg>")
    return Markup("".join(parts))


def _layer_table(per_layer: Sequence[LayerEstimate]) -> dict[str, Any]:
    """The per-layer table: op columns (in order of first appearance) and one row per group
    of identical consecutive layers, times in µs; the total of the spans is the step."""
    ops = list(dict.fromkeys(k for r in per_layer for k in r.ops_us))
    rows = []
    for grp in layer_groups(per_layer):
        layers = grp["layers"]
        name = "head" if layers == [-1] else layers_text(layers)
        rows.append({"layers": name, "count": len(layers), "kind": grp["kind"],
                     "span": num(float(grp["span_us"]), 1),
                     "ops": [num(float(grp["ops_us"][o]), 1) if o in grp["ops_us"] else ""
                             for o in ops]})
    total = sum(float(r.span_us) for r in per_layer)
    return {"ops": ops, "rows": rows, "total_ms": ms(total)}


def _performance_role(name: str, est: Estimate, kv: Kv | None,
                      workload: WorkloadSummary | None) -> dict[str, Any]:
    """Section 6 of one role: headline, per-layer chart and table of its estimate ``est``,
    and its KV block (context length, bytes per sequence, KV capacity, max sequences per
    device, max batch or tokens per NPU: :class:`~supernode_dsl.plan.document.role.Kv`'s
    order)."""
    per_layer = est.per_layer
    reps = representatives(per_layer)
    ops = list(dict.fromkeys(k for _, r in reps for k in r.ops_us))
    return {"name": name, "headline": headline(est, workload),
            "bars": layer_bars_svg(name, reps) if reps else None, "legend": legend(ops),
            "layers": _layer_table(per_layer),
            "kv": _rows(kv) if kv else []}


def _runs(ranks: Sequence[int], limit: int = 8) -> str:
    """"0-79 -> 0; 80-159 -> 1; ..." (with en dashes and arrows) for a rank mapping: runs of
    consecutive ranks mapped alike, at most ``limit`` of them, then an ellipsis."""
    runs: list[tuple[int, int, int]] = []
    for i, r in enumerate(ranks):
        if runs and runs[-1][2] == r and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i, r)
        else:
            runs.append((i, i, r))
    text = "; ".join(f"{a}\u2013{b} \u2192 {r}" if b > a else f"{a} \u2192 {r}"
                     for a, b, r in runs[:limit])
    return text + ("; \u2026" if len(runs) > limit else "")


def _reuse_rows(pool: CachePool, chosen: float) -> list[dict[str, Any]]:
    """The prefix-reuse table; the workload's own share is flagged ``best``."""
    return [{"share": f"{_auto(100 * float(r.prefix_reuse))} %",
             "load_ms": msv(float(r.load_ms)),
             "ttft_ms": msv(float(r.ttft_ms)),
             "tput": _auto(float(r.tokens_per_s_per_npu)),
             "best": abs(float(r.prefix_reuse) - chosen) < 1e-9}
            for r in pool.prefix_reuse_effect or ()]


def _serving(serving: Serving) -> dict[str, Any]:
    """The deployment-wide serving block: workload, role split, KV transfer, P/D mapping and
    the cache pool with the prefix-reuse effect (each None or empty when absent)."""
    pd = serving.pd_mapping
    mapping = pd.prefill_tp_rank_of_decode_rank if pd else ()
    return {
        "workload": _rows(serving.workload),
        "roles": _rows(serving.roles) if serving.roles else [],
        "kv_transfer": _rows(serving.kv_transfer) if serving.kv_transfer else [],
        "pd_mapping": (_rows(pd) if pd else []) + (
            [("prefill TP rank of decode ranks", _runs(mapping))] if mapping else []),
        "cache_pool": _rows(serving.cache_pool),
        "reuse": _reuse_rows(serving.cache_pool, float(serving.workload.prefix_reuse)),
    }


def performance_section(plan: PlanDocument | None) -> dict[str, Any]:
    """Section 6: per role with an ``estimate`` its figures, and the ``serving`` block;
    a note instead when the plan has neither."""
    if plan is None:
        return {"note": NO_DEPLOYMENT, "roles": [], "serving": None}
    serving = plan.serving
    workload = serving.workload if serving else None
    roles = [_performance_role(n, r.estimate, r.kv, workload) for n, r in plan.roles.items()
             if r.estimate is not None]
    note = None if roles or serving else old_plan_note(plan, "performance estimate")
    return {"note": note, "roles": roles, "serving": _serving(serving) if serving else None}
