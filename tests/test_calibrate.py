"""Calibration: declared measurements and bounded free parameters (plan/serving/calibrate.py),
the efficiency tables, and the shared-HBM approximation against a rate-sharing schedule.

The shipped fit must use layer-level measurements only, keep every fitted value inside its
declared bounds, and still reproduce its recorded residuals with the current cost model.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supernode_dsl import compile_file
from supernode_dsl.diagnostics import DiagnosticSink
from supernode_dsl.graph import build_graph
from supernode_dsl.plan import role_contexts
from supernode_dsl.plan.serving.calibrate import (
    COLLECTIVE_FIGURES,
    END_TO_END,
    FIGURES,
    Calibration,
    Measurement,
    calibrated_context,
    coverage,
    figure_seconds,
    read_calibration,
)
from supernode_dsl.plan.serving.estimate import RoleContext
from supernode_dsl.plan.serving.hardware import DeviceFacts, interpolate
from supernode_dsl.plan.serving.ops import Op, op_seconds

ROOT = Path(__file__).resolve().parent.parent
FITTED = ROOT / "topologies/calibration/cloudmatrix-infer.fitted.cmx"
INPUT = ROOT / "topologies/calibration/cloudmatrix-infer.cmx"


def _read(path: Path):  # type: ignore[no-untyped-def]
    spec = next(s for s in compile_file(path, {}).specs if s.category == "calibration")
    sink = DiagnosticSink()
    cal = read_calibration(spec, sink)
    return cal, sink


def test_shipped_fit_uses_layer_level_inputs_and_stays_in_bounds() -> None:
    for path in (INPUT, FITTED):
        cal, sink = _read(path)
        assert cal is not None and not sink.diagnostics
        assert cal.measurements and all(m.figure in FIGURES for m in cal.measurements)
        assert not any(m.figure in END_TO_END for m in cal.measurements)
    fitted = dict(cal.fitted)
    assert set(fitted) == {p.attr for p in cal.free}
    for p in cal.free:
        assert p.low <= fitted[p.attr] <= p.high, p.attr


def test_an_end_to_end_figure_is_refused_as_input(tmp_path: Path) -> None:
    text = INPUT.read_text().replace('figure.layer_mtp       = "decode_layer"',
                                     'figure.layer_mtp       = "tpot"')
    assert '"tpot"' in text
    bad = tmp_path / "bad.cmx"
    bad.write_text(text)
    cal, sink = _read(bad)
    assert cal is None
    assert any(d.code == "E022" and "validation only" in d.message for d in sink.diagnostics)


def _decode(cal: Calibration) -> RoleContext:
    topo = compile_file(FITTED.parent / cal.topology, {})
    return role_contexts(topo, build_graph(topo), cal.deployment)["decode"]


def test_fitted_residuals_are_what_the_model_gives_now() -> None:
    cal, _ = _read(FITTED)
    assert cal is not None
    ctx = calibrated_context(_decode(cal), dict(cal.fitted))
    for name in ("layer_mtp", "dispatch_ep32", "combine_ep256"):
        m = next(m for m in cal.measurements if m.name == name)
        residual = dict(cal.residuals)[name]
        assert figure_seconds(ctx, m) / m.value - 1 == pytest.approx(residual, abs=1e-4)


def test_the_shipped_fit_includes_the_papers_collective_measurements() -> None:
    """Decode's dispatch and combine at EP 8-256 (operator level) are inputs, and they set
    the low-latency kernels' fixed time and rate of every estimate made with the fit."""
    cal, _ = _read(FITTED)
    assert cal is not None
    collectives = [m for m in cal.measurements if m.figure in COLLECTIVE_FIGURES]
    assert sorted({m.ep for m in collectives}) == [8, 16, 32, 64, 128, 256]
    assert {p.attr for p in cal.free} >= {"overhead.dispatch_ll", "overhead.combine_ll"}
    ctx = calibrated_context(_decode(cal), dict(cal.fitted))
    assert dict(ctx.paths.collective_overhead)["dispatch_ll"] == pytest.approx(
        dict(cal.fitted)["overhead.dispatch_ll"])


def test_a_collective_figure_is_its_fixed_time_plus_its_messages_at_its_rate() -> None:
    """At EP n with t tokens per rank a rank sends and receives t x distinct-ranks messages;
    the figure grows with the ranks a token reaches (not with n itself) and by the
    declared fixed time."""
    cal, _ = _read(INPUT)
    assert cal is not None
    base = _decode(cal)
    m = Measurement("d", 100e-6, "dispatch", 0, False, 1, 0, "", ep=256, tokens=128)
    small = calibrated_context(base, {"overhead.dispatch_ll": 10e-6})
    large = calibrated_context(base, {"overhead.dispatch_ll": 30e-6})
    assert figure_seconds(large, m) - figure_seconds(small, m) == pytest.approx(20e-6)
    fewer = Measurement("d8", 100e-6, "dispatch", 0, False, 1, 0, "", ep=8, tokens=128)
    assert figure_seconds(small, fewer) < figure_seconds(small, m)


def test_a_collective_figure_needs_its_ranks_and_tokens(tmp_path: Path) -> None:
    text = INPUT.read_text().replace("    ep.dispatch_ep8      = 8\n", "")
    assert "ep.dispatch_ep8 " not in text
    bad = tmp_path / "bad.cmx"
    bad.write_text(text)
    cal, sink = _read(bad)
    assert cal is None
    assert any(d.code == "E022" and "'ep.dispatch_ep8'" in d.message
               for d in sink.diagnostics)


def test_efficiency_tables_interpolate_in_log_size_and_hold_their_ends() -> None:
    points = ((64.0, 0.2), (256.0, 0.6))
    assert interpolate(points, 8) == 0.2 and interpolate(points, 4096) == 0.6
    assert interpolate(points, 128) == pytest.approx(0.4)
    assert math.isclose(interpolate(points, 64), 0.2)


def _rate_shared(a: float, b: float, share: float, bandwidth: float) -> tuple[float, float]:
    """Finish times of two memory-bound transfers of ``a`` and ``b`` bytes that start
    together and share HBM in proportion ``share`` : ``1 - share`` while both run; the one
    left alone gets all of it (processor sharing)."""
    ta, tb = a / (share * bandwidth), b / ((1 - share) * bandwidth)
    if ta <= tb:
        return ta, ta + (b - (1 - share) * bandwidth * ta) / bandwidth
    return tb + (a - share * bandwidth * tb) / bandwidth, tb


@given(st.floats(1e6, 1e9), st.floats(1e6, 1e9), st.floats(0.1, 0.9))
def test_shared_hbm_is_exact_while_both_streams_run_and_a_bound_after(
        a: float, b: float, share: float) -> None:
    facts = DeviceFacts("D", {"bf16": 1e15}, 64e9, 1e12, {"aic": 24}, {"memory": 1.0})
    ours = (op_seconds(Op("a", "attention", 0, kind="vector", hbm_bytes=a), facts, share),
            op_seconds(Op("b", "moe", 0, kind="vector", hbm_bytes=b), facts, 1 - share))
    exact = _rate_shared(a, b, share, 1e12)
    first = min(range(2), key=lambda i: exact[i])
    assert ours[first] == pytest.approx(exact[first], rel=1e-9)
    assert ours[1 - first] >= exact[1 - first] * (1 - 1e-9)


def test_cmx_calibrate_fits_a_declared_parameter_through_the_cli(tmp_path: Path) -> None:
    topology = ROOT / "topologies/deepseek-r1-cloudmatrix384.cmx"
    (tmp_path / "one.cmx").write_text(f'''calibration One {{
    part = "Ascend910CDie"
    topology = "{topology}"
    measure.layer = 1260 us
    figure.layer = "decode_layer"
    batch.layer = 96
    mtp.layer = true
    microbatches.layer = 2
    split.layer = 16
    source.layer = "arXiv 2506.12708 v2"
    low.overhead.gemm = 0 us
    high.overhead.gemm = 60 us
    start.overhead.gemm = 5 us
}}
''')
    out = tmp_path / "fitted.cmx"
    done = subprocess.run([sys.executable, "-m", "supernode_dsl.cli", "calibrate",
                           str(tmp_path / "one.cmx"), "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    cal, sink = _read(out)
    assert cal is not None and not sink.diagnostics
    (attr, value), = cal.fitted
    assert attr == "overhead.gemm" and 0 <= value <= 60e-6
    # one parameter, one measurement, bounds wide enough: the fit meets it
    assert abs(dict(cal.residuals)["layer"]) < 0.01


def test_cmx_calibrate_refuses_a_file_without_a_calibration(tmp_path: Path) -> None:
    out = tmp_path / "fitted.cmx"
    done = subprocess.run([sys.executable, "-m", "supernode_dsl.cli", "calibrate",
                           str(ROOT / "topologies/cloudmatrix384.cmx"), "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and "error[E025]" in done.stderr and not out.exists()


def test_coverage_says_where_an_estimate_leaves_the_measurements() -> None:
    cal, _ = _read(FITTED)
    assert cal is not None
    cov = coverage(cal, "DeepSeekR1OnCloudMatrix384")
    # the four layer-level measurements: batch 96/NPU, two microbatches, MTP on and off
    assert (cov.batches, cov.microbatches, cov.mtp) == ((96,), (2,), (False, True))
    assert cov.outside("decode", 96, 2, True) == ()
    assert cov.outside("decode", 8, 1, True) == ("batch 8/NPU (measured: 96)",
                                                 "1 microbatch (measured: 2)")
    # no prefill measurement at all: the role is the one phrase that matters
    assert cov.outside("prefill", None, 4, False) == ("prefill (measured: decode only)",)
    other = coverage(cal, "Qwen3OnCloudMatrix384").outside("decode", 96, 2, True)
    assert other == ("deployment Qwen3OnCloudMatrix384 (measured: "
                     "DeepSeekR1OnCloudMatrix384)",)


def test_plans_carry_the_conditions_outside_the_calibration(tmp_path: Path) -> None:
    # through the CLI, as a user reads it: the plan's calibration block and the summary
    out = tmp_path / "plan.json"
    run = subprocess.run([sys.executable, "-m", "supernode_dsl.cli", "plan",
                          str(ROOT / "topologies/deepseek-r1-cloudmatrix384.cmx"),
                          "-D", "decode_batch_per_npu=8", "-o", str(out)],
                         capture_output=True, text=True, check=True)
    roles = json.loads(out.read_text())["roles"]
    assert roles["decode"]["estimate"]["calibration"]["outside"] == [
        "batch 8/NPU (measured: 96)", "1 microbatch (measured: 2)"]
    assert roles["prefill"]["estimate"]["calibration"]["outside"] == [
        "prefill (measured: decode only)"]
    assert "outside its measurements, band unknown: prefill (measured: decode only)" in \
        run.stdout
