"""Golden files for the plan and emit stages (the parse, elaborate and graph stages are in
test_golden.py).  Regenerate with the same switch: ``pytest --regen-golden``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import supernode_dsl as cmx
from supernode_dsl.emit import EmitContext, available_emitters, document_json
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment, validate_plan

ROOT = Path(__file__).resolve().parent.parent
TINY = "tests/fixtures/plan/tiny.cmx"
CM384 = "topologies/cloudmatrix384.cmx"


@pytest.fixture(autouse=True)
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # relative file names only, in every golden


def _tiny_plan() -> tuple[Any, Any, PlanDocument]:
    model = cmx.compile_file(TINY)
    g = cmx.build_graph(model)
    loads = np.random.default_rng(2026).lognormal(0.0, 1.0, size=(4, 16)).round(3) * 100
    plan = plan_deployment(model, g, PlanRequest(loads=loads, source={"file": TINY}))
    assert validate_plan(plan.to_json()) == []
    return model, g, plan


def test_plan_golden(golden: Any) -> None:
    _, _, plan = _tiny_plan()
    golden.check("plan/tiny.plan.json", document_json(plan.to_json()))


#: (format, file, defines, options, needs the tiny plan)
CASES = [
    ("sglang-expert-location", TINY, {}, {}, True),
    ("sglang-rank-cost", TINY, {}, {}, True),
    ("vllm-ascend-expert-map", TINY, {}, {"role": "prefill"}, True),
    ("hccl-rank-table", TINY, {}, {}, True),
    ("astra-comm-group", TINY, {}, {}, True),
    ("chrome-trace", TINY, {}, {}, True),
    ("astra-network", CM384, {"nodes": "2"}, {}, False),
    ("astra-system", CM384, {"nodes": "2"}, {}, False),
    ("ns3-topology", TINY, {}, {}, False),
    ("ns3-logical-dims", TINY, {}, {}, False),
    ("simai-topology", TINY, {}, {}, False),
    ("slurm-topology-yaml", "topologies/cloudmatrix384-cluster.cmx",
     {"supernodes": "2", "nodes": "2"}, {}, False),
    ("slurm-topology-conf", "topologies/cloudmatrix384-cluster.cmx",
     {"supernodes": "2", "nodes": "2"}, {}, False),
    ("k8s-node-labels", CM384, {"nodes": "2"}, {}, False),
    ("dot", CM384, {"nodes": "2"}, {}, False),
    ("dot", CM384, {"nodes": "2"}, {"view": "node"}, False),
]


@pytest.mark.parametrize(("fmt", "path", "defines", "options", "needs_plan"), CASES,
                         ids=[f"{c[0]}-{'-'.join(c[3].values()) or 'default'}" for c in CASES])
def test_emit_golden(fmt: str, path: str, defines: dict[str, str], options: dict[str, str],
                     needs_plan: bool, golden: Any) -> None:
    if needs_plan:
        model, g, plan = _tiny_plan()
    else:
        model = cmx.compile_file(path, defines)
        g, plan = cmx.build_graph(model), None
    cls = available_emitters()[fmt]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # approximation warnings: tested in their own files
        out = cls().emit(EmitContext(model, g, plan, path, options))
    assert isinstance(out, str)
    assert str(ROOT) not in out
    suffix = "-".join(options.values())
    golden.check(f"emit/{fmt}{'-' + suffix if suffix else ''}{cls.suffix}", out)
