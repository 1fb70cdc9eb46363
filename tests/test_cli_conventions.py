"""CLI conventions of issue 14: explicit warnings, the re-plan summary, synthetic loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SMALL = "tests/errors/e015_unknown_define.cmx"   # one die, no deployment


def _cmx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_report_without_graphviz_warns(tmp_path: Path) -> None:
    """Without `dot` on PATH the report still gets written, and stderr says it has no
    diagrams (before, only the page itself did)."""
    out = tmp_path / "r.html"
    proc = _cmx("report", SMALL, "-o", str(out), env={"PATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "cmx: warning: the report has no diagrams: the Graphviz 'dot' program is not " \
           "installed" in proc.stderr
    assert "No diagrams" in out.read_text(encoding="utf-8")


def test_synthetic_loads_are_labelled_deterministic_and_read_by_plan(tmp_path: Path) -> None:
    from supernode_dsl.plan.loads import SYNTHETIC_NOTE, read_loads

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    topo = "topologies/deepseek-v3-gb200-nvl72.cmx"
    for path in (a, b):
        proc = _cmx("loads", "synth", topo, "-o", str(path), "--seed", "3")
        assert proc.returncode == 0, proc.stderr
        assert "SYNTHETIC loads, 58 MoE layers x 256 experts" in proc.stderr
    assert a.read_bytes() == b.read_bytes()
    data = json.loads(a.read_text())
    assert data["synthetic"] == SYNTHETIC_NOTE and data["seed"] == 3
    loads = read_loads(a, 58, 256)
    assert loads.max() / loads.mean() > 3    # skewed, as lognormal(0, 1.2) is
    bad = _cmx("loads", "synth", SMALL, "-o", str(tmp_path / "c.json"))
    assert bad.returncode == 1 and "error[E025]" in bad.stderr
    assert not (tmp_path / "c.json").exists()


def test_given_loads_drive_the_estimate_and_the_summary_says_so() -> None:
    """With loads the estimate uses the placement's balance (the file says perfect_balance
    = true); `perfect_balance=True` in the request keeps the assumption; the summary names
    the balance, and a re-plan says what moved and the balance before and after."""
    import supernode_dsl as cmx
    from supernode_dsl.emit.plansummary import migration_summary, plan_summary
    from supernode_dsl.plan import PlanRequest, loads_shape, plan_deployment
    from supernode_dsl.plan.loads import synthetic_loads

    model = cmx.compile_file(ROOT / "topologies/deepseek-v3-gb200-nvl72.cmx")
    g = cmx.build_graph(model)
    loads = synthetic_loads(*loads_shape(model), seed=1).astype(float)
    src = {"expert_loads": "loads.json"}
    measured = plan_deployment(model, g, PlanRequest(loads=loads, source=src))
    perfect = plan_deployment(model, g, PlanRequest(loads=loads, source=src,
                                                    perfect_balance=True))
    assert measured.serving is not None and not measured.serving.workload.perfect_balance
    est_m, est_p = (d.roles["decode"].estimate for d in (measured, perfect))
    assert est_m is not None and est_p is not None and est_m.step_ms > est_p.step_ms
    assert any("estimate uses the placement's balance on the loads of loads.json"
               in line for line in plan_summary(measured))
    assert any("assumes perfectly balanced devices" in line for line in plan_summary(perfect))
    drifted = synthetic_loads(*loads_shape(model), seed=2).astype(float)
    again = plan_deployment(model, g, PlanRequest(loads=drifted, previous=measured))
    lines = migration_summary(again, measured)
    decode = next(line for line in lines if line.strip().startswith("decode:"))
    moved = again.roles["decode"].migration
    assert moved is not None and f"moved {moved.moved_experts:,} expert replicas" in decode
    assert f"{moved.moved_bytes / 1e9:,.2f} GB" in decode
    assert f"{measured.roles['decode'].balance.max_over_mean:.3f} before" in decode


def test_param_docs_default_and_meaning() -> None:
    from supernode_dsl.parse import parse_program
    from supernode_dsl.parse.docs import ParamDoc, param_docs

    text = '''# nodes of the machine,
# 8 dies each
param nodes = 4
param bw = 28 GB/s    # per die-to-die link
param name = "a # b"
param bare = nodes * 2
die D { hbm = 64 GB }
instance d: D
'''
    assert param_docs(parse_program(text=text)) == (
        ParamDoc("nodes", "4", "nodes of the machine, 8 dies each"),
        ParamDoc("bw", "28 GB/s", "per die-to-die link"),
        ParamDoc("name", '"a # b"', ""),
        ParamDoc("bare", "nodes * 2", ""),
    )


def test_info_lists_parameters() -> None:
    proc = _cmx("info", "-D", "nodes=3", SMALL, env={"COLUMNS": "150"})
    assert proc.returncode == 0, proc.stderr
    assert "parameters (override with -D NAME=VALUE)" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "│ nodes" in line)
    assert [c.strip() for c in row.strip("│").split("│")][:3] == ["nodes", "2", "3"]


class _Terminal:
    """A stand-in for stderr on a terminal: says it is a TTY and keeps what is written."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_only_on_a_terminal_and_only_after_a_second(monkeypatch: Any) -> None:
    import time

    from supernode_dsl import cli

    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with cli._progress("quick work"):
        pass
    assert "quick work" not in "".join(term.parts)       # under a second: nothing shown
    with cli._progress("slow work"):
        time.sleep(1.5)
    assert "slow work" in "".join(term.parts)


def test_undeclared_latency_is_a_warning_where_it_reaches_a_simulator() -> None:
    """A link without `latency` gets 0 s; astra-network and ns3-topology say so instead of
    silently writing `latency: [0.0]`."""
    import warnings

    import supernode_dsl as cmx
    from supernode_dsl.emit import EmitContext
    from supernode_dsl.emit.simulators import (
        AstraNetworkEmitter,
        Ns3TopologyEmitter,
        ZeroLatencyWarning,
    )

    ring = '''plane ub "scale-up"
die D { hbm = 64 GB }
node N {
    die[4]: D
    link ub die[i] <-> die[(i + 1) % 4] { bw = 28 GB/s%s }
}
instance n: N
'''
    for latency, expected in (("", 1), (", latency = 1 us", 0)):
        model = cmx.compile_string(ring.replace("%s", latency), name="ring.cmx")
        ctx = EmitContext(model, cmx.build_graph(model), source="ring.cmx",
                          options={"unroutable": "warn"})   # a ring: NPUs forward
        for emitter in (AstraNetworkEmitter(), Ns3TopologyEmitter()):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                emitter.emit(ctx)
            said = [w for w in caught if issubclass(w.category, ZeroLatencyWarning)]
            assert len(said) == expected, (emitter.name, latency)
            if said:
                assert "declare no latency" in str(said[0].message)
