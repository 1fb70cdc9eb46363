"""Calibration as a declared step: fit a part's free parameters to layer-level measurements.

A ``calibration`` declaration (attributes in ``schema.CALIBRATION_ATTRS``) names the part it
fits (``part``), the deployment it measures (``deployment`` in ``topology``, a path relative
to the calibration's file), its measurements and its free parameters:

* ``measure.<m>`` a measured time; ``figure.<m>`` is what the estimate computes for it
  (one of :data:`FIGURES`, each an operator-, layer- or stream-level time: no end-to-end
  figure such as throughput, TPOT or TTFT can be a calibration input); ``source.<m>``
  where it was published.  A layer or stream time is taken at ``batch.<m>`` requests per
  NPU with (``mtp.<m>``) or without MTP, ``microbatches.<m>`` microbatches and
  ``split.<m>`` matrix cores on the attention stream; a collective (``dispatch``,
  ``combine``: decode's low-latency kernels) at ``ep.<m>`` ranks with ``tokens.<m>`` tokens
  per rank.
* ``low.<attr>``, ``high.<attr>`` (physical bounds) and ``start.<attr>`` of each free part
  attribute (an ``efficiency.*`` or ``overhead.*``), with ``why.<attr>``.

:func:`fit` minimises the relative residuals (estimate / measurement - 1) by bounded least
squares (scipy); :func:`fitted_text` writes the same declaration with ``fitted.<attr>`` and
``residual.<m>``, which a deployment applies with ``calibration = "<name>"``
(:func:`apply_fitted`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from supernode_dsl.contracts import present
from supernode_dsl.diagnostics import CmxError, Diagnostic, DiagnosticSink
from supernode_dsl.elaborate import Spec
from supernode_dsl.plan.serving.estimate import RoleContext, Split, decode_schedules
from supernode_dsl.plan.serving.hardware import DeviceFacts
from supernode_dsl.plan.serving.ops import COLLECTIVES, collective_kernel, distinct_devices
from supernode_dsl.plan.serving.paths import with_collective_facts
from supernode_dsl.units import Quantity

__all__ = [
    "COLLECTIVE_FIGURES",
    "END_TO_END",
    "FIGURES",
    "LAYER_FIGURES",
    "Calibration",
    "Coverage",
    "FreeParameter",
    "Measurement",
    "apply_fitted",
    "calibrate_file",
    "calibrated_context",
    "coverage",
    "figure_seconds",
    "fit",
    "fitted_text",
    "read_calibration",
    "relative_band",
]

#: What a measurement may be compared with: the mean span of a decode MoE layer, the busy
#: time of the attention or the MoE stream per microbatch in a MoE layer, and one decode
#: dispatch or combine (the low-latency kernels) on its own.
LAYER_FIGURES = ("decode_layer", "attention_stream", "moe_stream")
COLLECTIVE_FIGURES = COLLECTIVES
FIGURES = (*LAYER_FIGURES, *COLLECTIVE_FIGURES)
#: Figures that are validation only and never calibration inputs.
END_TO_END = ("throughput", "tpot", "ttft")
#: The part attribute families a calibration may fit.
_FITTABLE = ("efficiency.", "overhead.")


@dataclass(frozen=True)
class Measurement:
    """One operator- or layer-level measurement and the conditions it was taken at
    (``value`` in s; ``ep`` and ``tokens``, the ranks and tokens per rank, only for a
    collective's figure; the others only for a layer's or stream's)."""

    name: str
    value: float
    figure: str
    batch: int
    mtp: bool
    microbatches: int
    split: int
    source: str
    ep: int = 0
    tokens: float = 0.0


@dataclass(frozen=True)
class FreeParameter:
    """A part attribute the calibration may set, within its physical bounds."""

    attr: str
    low: float
    high: float
    start: float
    why: str


@dataclass(frozen=True)
class Calibration:
    """A calibration declaration; ``fitted`` and ``residuals`` (estimate / measurement - 1
    per measurement) are empty until fitted."""

    name: str
    part: str
    topology: str
    deployment: str
    measurements: tuple[Measurement, ...]
    free: tuple[FreeParameter, ...]
    fitted: tuple[tuple[str, float], ...] = ()
    residuals: tuple[tuple[str, float], ...] = ()

    @property
    def band(self) -> float:
        """The relative uncertainty the fit leaves: the largest |residual| (0 if none)."""
        return max((abs(r) for _, r in self.residuals), default=0.0)


@dataclass(frozen=True)
class Coverage:
    """Where a calibration's band holds: the deployment and role its layer-level
    measurements were taken on, and their conditions (requests per NPU, microbatches, MTP
    on or off).  ``applied_to`` names the deployment an estimate applies the fit to."""

    deployment: str
    applied_to: str
    batches: tuple[int, ...]
    microbatches: tuple[int, ...]
    mtp: tuple[bool, ...]
    role: str = "decode"

    def outside(self, role: str, batch: int | None, microbatches: int,
                mtp: bool) -> tuple[str, ...]:
        """How an estimate of ``role`` (decode at ``batch`` requests per NPU, or prefill
        when ``batch`` is None) with ``microbatches`` and ``mtp`` lies outside the
        measurements: one phrase per condition the fit never saw (empty: inside them)."""
        out = []
        if self.applied_to != self.deployment:
            out.append(f"deployment {self.applied_to} (measured: {self.deployment})")
        if role != self.role:
            return (*out, f"{role} (measured: {self.role} only)")
        if batch is not None and self.batches and batch not in self.batches:
            out.append(f"batch {batch}/NPU (measured: {_listed(self.batches)})")
        if self.microbatches and microbatches not in self.microbatches:
            out.append(f"{_microbatches(microbatches)} (measured: "
                       f"{_listed(self.microbatches)})")
        if self.mtp and mtp not in self.mtp:
            out.append(f"MTP {'on' if mtp else 'off'} (measured: "
                       f"{'on' if self.mtp[0] else 'off'})")
        return tuple(out)


def _listed(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


def _microbatches(n: int) -> str:
    return f"{n} microbatch" + ("" if n == 1 else "es")


def coverage(cal: Calibration, applied_to: str) -> Coverage:
    """The :class:`Coverage` of ``cal``'s layer-level measurements, for an estimate of the
    deployment ``applied_to``."""
    layers = [m for m in cal.measurements if m.figure in LAYER_FIGURES]
    return Coverage(cal.deployment, applied_to,
                    tuple(sorted({m.batch for m in layers})),
                    tuple(sorted({m.microbatches for m in layers})),
                    tuple(sorted({m.mtp for m in layers})))


def _num(spec: Spec, name: str) -> float | None:
    v = spec.get(name)
    return float(v.value) if isinstance(v, Quantity) else None


def _names(spec: Spec, head: str) -> list[str]:
    """The ``<m>`` of every ``head.<m>`` attribute, in declaration order."""
    return [k[len(head) + 1:] for k, _ in spec.attrs if k.startswith(head + ".")]


def read_calibration(spec: Spec, sink: DiagnosticSink) -> Calibration | None:
    """The calibration ``spec`` declares; None with E022 at the attribute when a figure is
    unknown or end-to-end, a free attribute is not fittable, or bounds do not hold."""
    errors = len(sink.diagnostics)
    ms = []
    for m in _names(spec, "measure"):
        figure = spec.get(f"figure.{m}")
        if figure not in FIGURES:
            why = "is an end-to-end figure: validation only, never a calibration input" \
                if figure in END_TO_END else f"must be one of {', '.join(FIGURES)}"
            sink.error("E022", f"'figure.{m}' {why}", spec.span_of(f"figure.{m}"))
            continue
        ep, tokens = int(_num(spec, f"ep.{m}") or 0), _num(spec, f"tokens.{m}") or 0.0
        if figure in COLLECTIVE_FIGURES and (ep < 2 or tokens <= 0):
            sink.error("E022", f"'figure.{m}' = \"{figure}\" needs 'ep.{m}' (2 or more "
                       f"ranks) and 'tokens.{m}' (tokens per rank, more than 0)",
                       spec.span_of(f"figure.{m}"))
            continue
        ms.append(Measurement(
            m, _num(spec, f"measure.{m}") or 0.0, str(figure),
            int(_num(spec, f"batch.{m}") or 0), spec.get(f"mtp.{m}") is True,
            int(_num(spec, f"microbatches.{m}") or 1), int(_num(spec, f"split.{m}") or 0),
            str(spec.get(f"source.{m}", "")), ep, tokens))
    free = []
    for attr in _names(spec, "low"):
        low, high = _num(spec, f"low.{attr}"), _num(spec, f"high.{attr}")
        start = _num(spec, f"start.{attr}")
        where = spec.span_of(f"low.{attr}")
        if not attr.startswith(_FITTABLE):
            sink.error("E022", f"'{attr}' cannot be fitted (only efficiency.* and "
                       "overhead.* part attributes)", where)
        elif high is None or low is None or not low <= (start if start is not None
                                                        else low) <= high:
            sink.error("E022", f"'{attr}' needs high.{attr} and low <= start <= high", where)
        else:
            free.append(FreeParameter(attr, low, high, start if start is not None
                                      else (low + high) / 2, str(spec.get(f"why.{attr}", ""))))
    fitted = tuple((a, v) for a in _names(spec, "fitted")
                   if (v := _num(spec, f"fitted.{a}")) is not None)
    residuals = tuple((m, v - 1) for m in _names(spec, "residual")
                      if (v := _num(spec, f"residual.{m}")) is not None)
    if len(sink.diagnostics) > errors:
        return None
    return Calibration(spec.name, str(spec.get("part", "")), str(spec.get("topology", "")),
                       str(spec.get("deployment", "")), tuple(ms), tuple(free), fitted,
                       residuals)


def apply_fitted(facts: DeviceFacts, values: Mapping[str, float]) -> DeviceFacts:
    """``facts`` with the ``efficiency.*`` and ``overhead.*`` entries of ``values`` set."""
    eff, over = dict(facts.efficiency), dict(facts.overhead)
    for attr, v in values.items():
        family, _, key = attr.partition(".")
        (eff if family == "efficiency" else over)[key] = v
    return replace(facts, efficiency=eff, overhead=over)


def calibrated_context(ctx: RoleContext, values: Mapping[str, float]) -> RoleContext:
    """``ctx`` with the part attributes ``values`` set on its device facts and on the
    collective kernels of its routes."""
    facts = apply_fitted(ctx.facts, values)
    devices = ctx.role.npus * ctx.devices_per_npu
    return replace(ctx, facts=facts, paths=with_collective_facts(ctx.paths, facts, devices))


def collective_seconds(ctx: RoleContext, m: Measurement) -> float:
    """One decode dispatch or combine (low-latency kernel) on its own at ``m.ep`` ranks
    with ``m.tokens`` tokens per rank and equally loaded experts: every token goes to the
    distinct ranks its ``top_k`` experts live on (:func:`distinct_devices`, the model's
    routed experts spread evenly over the ranks), every rank receives as many messages as
    it sends; the deployment's routes carry them (their mix of classes, not the smaller
    group's)."""
    a = ctx.arch
    messages = m.tokens * distinct_devices(a, m.ep, 1)
    size = a.dispatch_bytes() if m.figure == "dispatch" else a.combine_bytes()
    kernel = collective_kernel(m.figure, prefill=False)
    return ctx.paths.seconds(messages * size, messages * size, kernel)


def figure_seconds(ctx: RoleContext, m: Measurement) -> float:
    """What the estimate gives for measurement ``m`` (s) on the decode role ``ctx``."""
    if m.figure in COLLECTIVE_FIGURES:
        return collective_seconds(ctx, m)
    w = replace(ctx.workload, mtp_accept=0.7 if m.mtp else 0.0)
    run = replace(ctx, workload=w)
    scheds = decode_schedules(run, m.batch, Split(m.microbatches, m.split))
    moe = [i for i in range(ctx.arch.layers) if ctx.arch.is_moe(i)]
    if m.figure == "decode_layer":   # a layer lasts as long as on its slowest device kind
        return max(float(np.mean([s.layer_spans()[i] for i in moe])) for _, s in scheds)
    # a stream's busy time on the first device kind: the routed-expert die (most of the
    # EP group; another kind's busy time differs by its share of the combine's wait)
    _, sched = scheds[0]
    stream = m.figure.removesuffix("_stream")
    busy = sum(e.duration for e in sched.events if e.stream == stream and e.layer in moe)
    return busy / (len(moe) * m.microbatches)


def _residuals(cal: Calibration, ctx: RoleContext, x: Sequence[float]) -> np.ndarray:
    run = calibrated_context(ctx, {p.attr: float(v) for p, v in zip(cal.free, x,
                                                                    strict=True)})
    return np.array([figure_seconds(run, m) / m.value - 1 for m in cal.measurements])


def fit(cal: Calibration, ctx: RoleContext) -> Calibration:
    """``cal`` with its free parameters fitted (bounded least squares on the relative
    residuals) and the residuals they leave."""
    lo = np.array([p.low for p in cal.free])
    hi = np.array([p.high for p in cal.free])
    x0 = np.clip([p.start for p in cal.free], lo, hi)
    result = least_squares(lambda x: _residuals(cal, ctx, x), x0, bounds=(lo, hi),
                           diff_step=1e-3, xtol=1e-6)
    x = np.clip(result.x, lo, hi)
    res = _residuals(cal, ctx, x)
    return replace(cal, fitted=tuple((p.attr, float(v)) for p, v in zip(cal.free, x,
                                                                      strict=True)),
                   residuals=tuple((m.name, float(r)) for m, r in zip(cal.measurements, res,
                                                                      strict=True)))


def _value(attr: str, v: float) -> str:
    """A part attribute's value in .cmx (overheads in us)."""
    if attr.startswith("overhead."):
        return f"{v * 1e6:.4f} us"
    return f"{v:.6g}"


def _time(v: float) -> str:
    return f"{v * 1e6:.4f} us"


def _conditions(m: Measurement) -> list[str]:
    """The condition attributes of ``m`` as declared (those of its kind of figure)."""
    if m.figure in COLLECTIVE_FIGURES:
        return [f"    ep.{m.name} = {m.ep}", f"    tokens.{m.name} = {m.tokens:g}"]
    return [f"    batch.{m.name} = {m.batch}",
            f"    mtp.{m.name} = {'true' if m.mtp else 'false'}",
            f"    microbatches.{m.name} = {m.microbatches}",
            f"    split.{m.name} = {m.split}"]


def fitted_text(cal: Calibration, source: str) -> str:
    """The fitted calibration as a ``.cmx`` declaration: its inputs as declared, then
    ``fitted.<attr>`` and ``residual.<m>`` (with provenance in comments)."""
    q = '"'
    lines = [f"# Written by `cmx calibrate {source}`: bounded least squares over "
             f"{len(cal.free)} free parameter(s)",
             f"# and {len(cal.measurements)} operator- or layer-level measurement(s); do not "
             "edit by hand (re-run the command).",
             "", f"calibration {cal.name} {{",
             f"    part       = {q}{cal.part}{q}",
             f"    topology   = {q}{cal.topology}{q}",
             f"    deployment = {q}{cal.deployment}{q}"]
    for m in cal.measurements:
        lines += ["", f"    measure.{m.name} = {_time(m.value)}",
                  f"    figure.{m.name} = {q}{m.figure}{q}", *_conditions(m),
                  f"    source.{m.name} = {q}{m.source}{q}"]
    fitted = dict(cal.fitted)
    for p in cal.free:
        lines += ["", f"    low.{p.attr} = {_value(p.attr, p.low)}",
                  f"    high.{p.attr} = {_value(p.attr, p.high)}",
                  f"    start.{p.attr} = {_value(p.attr, p.start)}",
                  f"    why.{p.attr} = {q}{p.why}{q}"]
        if p.attr in fitted:
            lines.append(f"    fitted.{p.attr} = {_value(p.attr, fitted[p.attr])}")
    if cal.residuals:
        lines.append("")
        lines.append("    # estimate / measurement at the fitted values")
        lines += [f"    residual.{m} = {1 + r:.6f}" for m, r in cal.residuals]
    lines.append("}")
    return "\n".join(lines) + "\n"


def relative_band(cal: Calibration | None) -> float:
    """The band (relative) an estimate made with ``cal`` carries: its largest residual;
    NaN-free, 0 without a calibration."""
    band = cal.band if cal is not None else 0.0
    return band if math.isfinite(band) else 0.0


def calibrate_file(path: Path) -> str:
    """Fit the one calibration ``path`` declares against the decode role of its
    ``deployment`` in its ``topology`` (a path relative to ``path``) and return the fitted
    declaration's text.  Raises CmxError (E025: no single calibration, E022: bad
    declarations) or the compile errors of the topology."""
    from supernode_dsl import compile_file
    from supernode_dsl.graph import build_graph
    from supernode_dsl.plan import role_contexts

    model = compile_file(path, {})
    specs = [s for s in model.specs if s.category == "calibration"]
    if len(specs) != 1:
        raise CmxError([Diagnostic("E025", f"'{path}' declares {len(specs)} calibrations; "
                                   "`cmx calibrate` fits exactly one")])
    sink = DiagnosticSink()
    cal = read_calibration(specs[0], sink)
    sink.raise_if_errors()
    cal = present(cal, "the calibration")
    topo = compile_file(path.parent / cal.topology, {})
    decode = role_contexts(topo, build_graph(topo), cal.deployment or None).get("decode")
    if decode is None or decode.facts.type_name != cal.part:
        raise CmxError([Diagnostic("E025", f"calibration '{cal.name}': the decode role of "
                                   f"'{cal.topology}' does not run on part '{cal.part}'")])
    return fitted_text(fit(cal, decode), str(path))
