"""Runtime emitters: SGLang expert location and rank cost, vllm-ascend expert map, HCCL table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit.runtimes import (
    EMITTERS,
    HcclRankTableEmitter,
    SglangExpertLocationEmitter,
    SglangRankCostEmitter,
    VllmAscendExpertMapEmitter,
)
from supernode_dsl.graph.analysis import shortest_path
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
CM384 = ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx"


@cache
def _compiled(path: Path) -> tuple[cmx.Model, nx.Graph, PlanDocument]:
    model = cmx.compile_file(path)
    g = cmx.build_graph(model)
    return model, g, plan_deployment(model, g, PlanRequest())


def _plan_json(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    model, g, plan = _compiled(path)
    return model, g, plan.to_json()


def _ctx(path: Path, **options: str) -> EmitContext:
    model, g, plan = _compiled(path)
    return EmitContext(model, g, plan, str(path), options)


def _emit(cls: type[Any], path: Path, **options: str) -> Any:
    text = cls().emit(_ctx(path, **options))
    assert isinstance(text, str) and text.endswith("\n")
    return json.loads(text)


def test_the_four_formats_are_registered() -> None:
    names = {cls.name for cls in EMITTERS}
    assert names == {"sglang-expert-location", "sglang-rank-cost", "vllm-ascend-expert-map",
                     "hccl-rank-table"}
    assert names <= set(available_emitters())


@pytest.mark.parametrize("cls", EMITTERS)
def test_every_format_needs_a_plan(cls: type[Any]) -> None:
    model, g, _ = _compiled(TINY)
    with pytest.raises(CmxError) as err:
        cls().emit(EmitContext(model, g, None, str(TINY), {}))
    assert err.value.diagnostics[0].code == "E026"


@pytest.mark.parametrize("cls", EMITTERS)
def test_outputs_are_deterministic(cls: type[Any]) -> None:
    first = cls().emit(_ctx(TINY))
    model = cmx.compile_file(TINY)
    g = cmx.build_graph(model)
    plan = plan_deployment(model, g, PlanRequest())
    assert cls().emit(EmitContext(model, g, plan, str(TINY), {})) == first


@pytest.mark.parametrize("role", ["decode", "prefill"])
def test_sglang_expert_location_is_the_plans_phy2log(role: str) -> None:
    placement = _plan_json(TINY)[2]["roles"][role]["expert_placement"]
    moe = _emit(SglangExpertLocationEmitter, TINY, role=role, layers="moe")
    assert moe == {"physical_to_logical_map": placement["phy2log"]}
    full = _emit(SglangExpertLocationEmitter, TINY, role=role)["physical_to_logical_map"]
    assert len(full) == _plan_json(TINY)[2]["model"]["layers"]
    for layer, row in zip(placement["moe_layers"], placement["phy2log"], strict=True):
        assert full[layer] == row
    dense = [i for i in range(len(full)) if i not in placement["moe_layers"]]
    assert dense and all(full[i] == [s % placement["num_logical"]
                                     for s in range(placement["num_physical"])] for i in dense)


def test_sglang_expert_location_rejects_an_unknown_role_and_option_value() -> None:
    for options in ({"role": "train"}, {"layers": "all"}):
        with pytest.raises(CmxError) as err:
            SglangExpertLocationEmitter().emit(_ctx(TINY, **options))
        assert err.value.diagnostics[0].code == "E026"


def _check_matrix(matrix: list[list[float]], size: int) -> None:
    assert len(matrix) == size and all(len(row) == size for row in matrix)
    for a in range(size):
        assert matrix[a][a] == 0.0
        for b in range(size):
            assert matrix[a][b] == matrix[b][a]
            assert matrix[a][b] >= 0 and (a == b or matrix[a][b] > 0)


def test_sglang_rank_cost_tiny_matches_the_path_query() -> None:
    _, g, plan = _plan_json(TINY)
    devices = plan["roles"]["decode"]["instance_devices"][0]
    matrix = _emit(SglangRankCostEmitter, TINY, ranks="all")["rank_cost_matrix"]
    _check_matrix(matrix, len(devices))
    for a in range(len(devices)):
        for b in range(len(devices)):
            if a != b:
                path = shortest_path(g, "ub", devices[a], devices[b])
                assert path is not None
                want = (path.latency + 7680 / path.bottleneck_bandwidth) * 1e6
                assert matrix[a][b] == pytest.approx(want, rel=1e-9, abs=1e-6)
    bigger = _emit(SglangRankCostEmitter, TINY, ranks="all",
                   message_bytes="76800")["rank_cost_matrix"]
    assert bigger[0][1] > matrix[0][1]


def test_sglang_rank_cost_prefill_instances_and_bad_options() -> None:
    plan = _plan_json(TINY)[2]
    for instance in ("0", "1"):
        doc = _emit(SglangRankCostEmitter, TINY, role="prefill", instance=instance)
        assert list(doc) == ["rank_cost_matrix"]
        _check_matrix(doc["rank_cost_matrix"], plan["roles"]["prefill"]["ep"])
    for options in ({"instance": "2", "role": "prefill"}, {"plane": "nvlink"},
                    {"message_bytes": "-1"}, {"ranks": "some"}):
        with pytest.raises(CmxError) as err:
            SglangRankCostEmitter().emit(_ctx(TINY, **options))
        assert err.value.diagnostics[0].code == "E026"


def test_sglang_rank_cost_cloudmatrix_decode_is_fast_and_node_aware() -> None:
    _, _, plan = _plan_json(CM384)
    entry = plan["roles"]["decode"]
    node = {d["path"]: d["node"] for d in plan["devices"]}
    for ranks, devices in (("routed", entry["expert_placement"]["instance_slot_devices"][0]),
                           ("all", entry["instance_devices"][0])):
        ordered = list(dict.fromkeys(d for d in entry["instance_devices"][0] if d in devices))
        start = time.perf_counter()
        matrix = _emit(SglangRankCostEmitter, CM384, ranks=ranks)["rank_cost_matrix"]
        assert time.perf_counter() - start < 5.0
        _check_matrix(matrix, len(ordered))
        intra = {matrix[a][b] for a in range(len(ordered)) for b in range(len(ordered))
                 if a != b and node[ordered[a]] == node[ordered[b]]}
        inter = {matrix[a][b] for a in range(len(ordered)) for b in range(len(ordered))
                 if node[ordered[a]] != node[ordered[b]]}
        assert max(intra) < min(inter)
    assert len(matrix) == entry["ep"] == 320


@pytest.mark.parametrize("path,role", [(TINY, "decode"), (TINY, "prefill"), (CM384, "decode"),
                                       (CM384, "prefill")])
def test_vllm_expert_map_matches_slot_device(path: Path, role: str) -> None:
    placement = _plan_json(path)[2]["roles"][role]["expert_placement"]
    doc = _emit(VllmAscendExpertMapEmitter, path, role=role)
    assert doc["moe_layer_count"] == len(placement["moe_layers"]) == len(doc["layer_list"])
    routed = list(dict.fromkeys(placement["slot_device"]))
    for layer, row, entry in zip(placement["moe_layers"], placement["phy2log"],
                                 doc["layer_list"], strict=True):
        assert entry["layer_id"] == layer
        assert entry["device_count"] == len(entry["device_list"]) == len(routed)
        assert [d["device_id"] for d in entry["device_list"]] == list(range(len(routed)))
        want: dict[str, list[int]] = {}
        for slot, device in enumerate(placement["slot_device"]):
            want.setdefault(device, []).append(row[slot])
        assert [d["device_expert"] for d in entry["device_list"]] == [want[d] for d in routed]
        listed = Counter(e for d in entry["device_list"] for e in d["device_expert"])
        assert sum(listed.values()) == placement["num_physical"]
        assert listed == Counter(row)
    moe = _emit(VllmAscendExpertMapEmitter, path, role=role, layer_id="moe")
    assert [e["layer_id"] for e in moe["layer_list"]] == list(range(len(placement["moe_layers"])))


def _check_rank_table(doc: dict[str, Any], plan: dict[str, Any], roles: list[str]) -> None:
    npus = list(dict.fromkeys(plan["devices"][i]["npu"] for i in range(len(plan["devices"]))))
    by_path = {d["path"]: d for d in plan["devices"]}
    want = list(dict.fromkeys(by_path[p]["npu"] for r in roles
                              for inst in plan["roles"][r]["instance_devices"] for p in inst))
    assert doc["version"] == "1.2" and doc["status"] == "completed"
    servers = doc["server_list"]
    assert doc["server_count"] == str(len(servers))
    devices = [d for s in servers for d in s["device"]]
    assert sorted(int(d["rank_id"]) for d in devices) == list(range(len(want)))
    by_rank = sorted(devices, key=lambda d: int(d["rank_id"]))
    assert [npus[int(d["super_device_id"])] for d in by_rank] == want
    assert len({d["device_ip"] for d in devices}) == len(devices)
    node_of_npu = {d["npu"]: d["node"] for d in plan["devices"]}
    for s in servers:
        nodes = {node_of_npu[npus[int(d["super_device_id"])]] for d in s["device"]}
        assert len(nodes) == 1
        assert len({d["device_id"] for d in s["device"]}) == len(s["device"])
    assert len({s["server_id"] for s in servers}) == len(servers)
    assert doc["super_pod_list"] == [{"super_pod_id": "0", "server_list": [
        {"server_id": s["server_id"]} for s in servers]}]
    assert all(isinstance(v, str) for d in devices for v in d.values())


def test_hccl_rank_table_tiny() -> None:
    plan = _plan_json(TINY)[2]
    doc = _emit(HcclRankTableEmitter, TINY)
    _check_rank_table(doc, plan, ["decode", "prefill"])
    assert doc["server_count"] == "2"
    assert doc["server_list"][0]["server_id"] == "10.0.0.1"
    assert doc["server_list"][0]["device"][0]["device_ip"] == "192.168.0.1"
    prefill = _emit(HcclRankTableEmitter, TINY, role="prefill", server_ip_base="172.16.0.0")
    _check_rank_table(prefill, plan, ["prefill"])
    assert prefill["server_list"][0]["server_id"] == "172.16.0.2"
    dies = _emit(HcclRankTableEmitter, TINY, unit="die")
    assert sum(len(s["device"]) for s in dies["server_list"]) == len(plan["devices"])
    for options in ({"role": "train"}, {"server_ip_base": "10.0.0"},
                    {"device_ip_base": "255.255.255.255"}):
        with pytest.raises(CmxError) as err:
            HcclRankTableEmitter().emit(_ctx(TINY, **options))
        assert err.value.diagnostics[0].code == "E026"


def test_hccl_rank_table_cloudmatrix() -> None:
    plan = _plan_json(CM384)[2]
    doc = _emit(HcclRankTableEmitter, CM384)
    _check_rank_table(doc, plan, ["decode", "prefill"])
    assert sum(len(s["device"]) for s in doc["server_list"]) == 160 + 6 * 16
    assert doc["server_count"] == "32"


def test_cli_emits_the_sglang_expert_location(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(_plan_json(TINY)[2]), encoding="utf-8")
    out = tmp_path / "location.json"
    done = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit",
                           "sglang-expert-location", str(TINY), "--plan", str(plan_file),
                           "-O", "role=prefill", "-O", "layers=moe", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    placement = _plan_json(TINY)[2]["roles"]["prefill"]["expert_placement"]
    assert json.loads(out.read_text()) == {"physical_to_logical_map": placement["phy2log"]}
    missing = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit",
                              "sglang-expert-location", str(TINY), "-o", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "E026" in missing.stderr
