"""The planner end to end: plans of every shipped deployment validate, loads in every format,
migration-aware re-planning, memory and consistency diagnostics, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.plan import PlanRequest, plan_deployment, plan_schema, validate_plan
from supernode_dsl.plan.document import PlanDocument

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
CM384 = ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx"
H800 = ROOT / "topologies" / "deepseek-v3-h800.cmx"


def _plan(path: Path, defines: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    model = cmx.compile_file(path, defines)
    return plan_deployment(model, cmx.build_graph(model), PlanRequest(**kw)).to_json()


def _skewed(layers: int, experts: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(0.0, 1.2, size=(layers, experts)) * 1000


@pytest.fixture(scope="module")
def cm384_plan() -> dict[str, Any]:
    return _plan(CM384, loads=_skewed(58, 256, seed=7))


def test_schema_is_a_valid_versioned_json_schema() -> None:
    schema = plan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("/plan/1.2.json")


def test_cloudmatrix_plan_is_valid_for_both_roles(cm384_plan: dict[str, Any]) -> None:
    assert validate_plan(cm384_plan) == []
    jsonschema.validate(cm384_plan, plan_schema())
    decode, prefill = cm384_plan["roles"]["decode"], cm384_plan["roles"]["prefill"]
    # decode: EP320 = 288 routed dies x 1 slot + 32 shared dies (reference §4)
    assert decode["expert_placement"]["num_physical"] == 256 + 32
    assert len(decode["expert_placement"]["shared_devices"]) == 32
    assert len(decode["instance_devices"][0]) == 320
    # prefill: 6 instances x 32 dies x 9 routed slots
    assert prefill["instances"] == 6
    assert prefill["expert_placement"]["num_physical"] == 32 * 9
    assert len(prefill["expert_placement"]["phy2log"]) == 58


def test_device_table_maps_dies_to_npu_node_and_rack(cm384_plan: dict[str, Any]) -> None:
    rows = {d["path"]: d for d in cm384_plan["devices"]}
    assert len(rows) == 768
    die = rows["cm384.node[5].npu[3].die[1]"]
    assert die["npu"] == "cm384.node[5].npu[3]"
    assert die["node"] == "cm384.node[5]"
    assert die["rack"] == 5 // 4          # 4 nodes per compute rack
    used = [d for d in rows.values() if d["role"] is not None]
    assert len(used) == 2 * (160 + 6 * 16)  # 256 NPUs of 384 are used


def test_memory_fits_and_terms_come_from_the_model(cm384_plan: dict[str, Any]) -> None:
    mem = cm384_plan["roles"]["decode"]["memory"]
    expert = 3 * 7168 * 2048                  # one INT8 expert, bytes
    assert mem["expert_weights"] == 58 * expert
    assert mem["kv_cache"] == 48 * 4096 * 61 * (512 + 64) * 2
    # dispatch 320 ranks x 96 tokens x (7 KiB + 512 B); combine x 14 KiB (reference §4)
    assert mem["dispatch_buffer"] == 320 * 96 * (7168 + 512)
    assert mem["combine_buffer"] == 320 * 96 * 7168 * 2
    assert mem["capacity"] == 64e9 and mem["free"] > 0


def test_h800_deployment_plans() -> None:
    doc = _plan(H800)
    assert validate_plan(doc) == []
    assert doc["roles"]["decode"]["expert_placement"]["num_physical"] == 144 * 2
    assert doc["roles"]["prefill"]["instances"] == 46


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unseen_loads_give_valid_balanced_plans(seed: int) -> None:
    loads = _skewed(4, 16, seed)
    doc = _plan(TINY, loads=loads)
    assert validate_plan(doc) == []
    for role in doc["roles"].values():
        bal = role["balance"]
        assert bal["max_over_mean"] >= bal["lower_bound_max_over_mean"] - 1e-9


def test_replanning_moves_fewer_experts(cm384_plan: dict[str, Any]) -> None:
    rng = np.random.default_rng(11)
    drifted = _skewed(58, 256, seed=7) * rng.lognormal(0.0, 0.3, size=(58, 256))
    doc = _plan(CM384, loads=drifted, previous=PlanDocument.from_json(cm384_plan, "prev.json"))
    assert validate_plan(doc) == []
    for name, role in doc["roles"].items():
        mig = role["migration"]
        assert mig["moved_experts"] <= mig["from_scratch_moved_experts"] / 4, name
        assert role["balance"]["max_over_mean"] <= mig["from_scratch_max_over_mean"] + 0.01
        assert mig["moved_bytes"] == mig["moved_experts"] * 3 * 7168 * 2048


def test_validate_plan_catches_broken_plans(cm384_plan: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(cm384_plan))
    placement = broken["roles"]["prefill"]["expert_placement"]
    row = placement["phy2log"][0]
    row[1] = row[0]                       # slots 0 and 1 share a die: a duplicate replica
    problems = validate_plan(broken)
    assert any("two replicas" in p or "logcnt" in p for p in problems)
    missing = json.loads(json.dumps(cm384_plan))
    del missing["roles"]["decode"]["memory"]
    assert validate_plan(missing)


def test_memory_overflow_is_reported_with_the_overflow() -> None:
    with pytest.raises(CmxError) as exc:
        _plan(TINY, {"decode_batch": "100000"})
    (diag,) = exc.value.diagnostics
    assert diag.code == "E023" and "GB over" in diag.message
    assert diag.span is not None and diag.span.line > 0


def test_wrong_load_shape_is_an_error() -> None:
    with pytest.raises(CmxError) as exc:
        _plan(TINY, loads=np.ones((3, 16)))
    assert exc.value.codes == ["E021"]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_plan_with_every_loads_format(tmp_path: Path) -> None:
    loads = _skewed(4, 16, seed=5)
    (tmp_path / "loads.json").write_text(json.dumps({"logical_count": loads.tolist()}))
    np.save(tmp_path / "loads.npy", loads)
    np.savetxt(tmp_path / "loads.csv", loads, delimiter=",")
    outputs = []
    for name in ("loads.json", "loads.npy", "loads.csv"):
        out = tmp_path / f"plan-{name}.json"
        r = _run("plan", str(TINY), "--expert-loads", str(tmp_path / name), "-o", str(out))
        assert r.returncode == 0, r.stderr
        doc = json.loads(out.read_text())
        assert validate_plan(doc) == []
        outputs.append(doc["roles"]["prefill"]["expert_placement"]["phy2log"])
    assert outputs[0] == outputs[1] == outputs[2]


def test_cli_plan_errors_are_located(tmp_path: Path) -> None:
    bad = tmp_path / "loads.csv"
    bad.write_text("1,2,3\n4,x,6\n")
    out = tmp_path / "plan.json"
    out.write_text("keep me")
    r = _run("plan", str(TINY), "--expert-loads", str(bad), "-o", str(out))
    assert r.returncode == 1
    assert f"{bad}:2:3: error[E021]" in r.stderr
    assert "Traceback" not in r.stderr
    assert out.read_text() == "keep me"
    garbled = tmp_path / "prev.json"
    garbled.write_text('{"roles": [1, 2,]}')
    r = _run("plan", str(TINY), "--previous", str(garbled), "-o", str(out))
    assert r.returncode == 1 and f"{garbled}:1:" in r.stderr and "E024" in r.stderr


def test_cli_plan_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert _run("plan", str(TINY), "-o", str(a)).returncode == 0
    assert _run("plan", str(TINY), "-o", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_cli_plan_without_deployment_or_unknown_name(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    r = _run("plan", "topologies/cloudmatrix384.cmx", "-o", str(out))
    assert r.returncode == 1 and "error[E025]" in r.stderr and "declares no deployment" in r.stderr
    r = _run("plan", str(TINY), "--deployment", "Nope", "-o", str(out))
    assert r.returncode == 1 and "no deployment 'Nope'" in r.stderr
    assert not out.exists()


def test_cli_plan_rejects_a_previous_plan_of_another_deployment(tmp_path: Path) -> None:
    prev = tmp_path / "prev.json"
    assert _run("plan", str(CM384), "-o", str(prev)).returncode == 0
    r = _run("plan", str(TINY), "--previous", str(prev), "-o", str(tmp_path / "p.json"))
    assert r.returncode == 1 and "error[E024]" in r.stderr
    # the message names the plan's deployment and topology, and the file's
    assert "'DeepSeekR1OnCloudMatrix384' on topology 'cm384'" in r.stderr
    assert "'TinyOnPod' on topology 'pod'" in r.stderr and "Traceback" not in r.stderr
