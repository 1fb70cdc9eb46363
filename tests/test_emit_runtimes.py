"""Runtime emitters: SGLang expert location and rank cost, vllm-ascend expert map, HCCL table."""

from __future__ import annotations

import ipaddress
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
    SglangServerArguments,
    VllmAscendExpertMapEmitter,
    super_device_id,
)
from supernode_dsl.graph.analysis import shortest_path
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment

pytestmark = pytest.mark.filterwarnings("ignore::supernode_dsl.emit.runtimes.SglangServerArguments")

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
DEVICE_BASE = ipaddress.IPv4Address("192.168.0.0")
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
    with pytest.raises(CmxError) as err:
        SglangExpertLocationEmitter().emit(_ctx(TINY, role=role, layers="moe"))
    assert "indexes physical_to_logical_map by the model's layer number" in str(err.value)
    with pytest.warns(SglangServerArguments, match=r"--ep-size \d+ --ep-num-redundant-experts"):
        SglangExpertLocationEmitter().emit(_ctx(TINY, role=role))
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
    for row, entry in zip(placement["phy2log"], doc["layer_list"], strict=True):
        assert entry["device_count"] == len(entry["device_list"]) == len(routed)
        assert [d["device_id"] for d in entry["device_list"]] == list(range(len(routed)))
        want: dict[str, list[int]] = {}
        for slot, device in enumerate(placement["slot_device"]):
            want.setdefault(device, []).append(row[slot])
        assert [d["device_expert"] for d in entry["device_list"]] == [want[d] for d in routed]
        listed = Counter(e for d in entry["device_list"] for e in d["device_expert"])
        assert sum(listed.values()) == placement["num_physical"]
        assert listed == Counter(row)
    assert [e["layer_id"] for e in doc["layer_list"]] == list(range(len(placement["moe_layers"])))
    model = _emit(VllmAscendExpertMapEmitter, path, role=role, layer_id="model")
    assert [e["layer_id"] for e in model["layer_list"]] == placement["moe_layers"]


def _device_ordinal(device: dict[str, str]) -> int:
    """The plan-table ordinal of a rank-table device (its default placeholder address)."""
    return int(ipaddress.IPv4Address(device["device_ip"])) - int(DEVICE_BASE) - 1


def _check_rank_table(doc: dict[str, Any], plan: dict[str, Any], roles: list[str],
                      key: str = "path") -> None:
    """Ranks are the roles' devices (``key``: EP device path or NPU) in plan order; each
    server's devices are one node's, ``device_id`` their ordinal in it and
    ``super_device_id`` the A3 SDID of that node slot, NPU and die."""
    units = list(dict.fromkeys(d[key] for d in plan["devices"]))
    row = {d[key]: d for d in reversed(plan["devices"])}
    by_path = {d["path"]: d for d in plan["devices"]}
    want = list(dict.fromkeys(by_path[p][key] for r in roles
                              for inst in plan["roles"][r]["instance_devices"] for p in inst))
    assert doc["version"] == "1.2" and doc["status"] == "completed"
    servers = doc["server_list"]
    assert doc["server_count"] == str(len(servers))
    devices = [d for s in servers for d in s["device"]]
    by_rank = sorted(devices, key=lambda d: int(d["rank_id"]))
    assert [int(d["rank_id"]) for d in by_rank] == list(range(len(want)))
    assert [units[_device_ordinal(d)] for d in by_rank] == want
    nodes = list(dict.fromkeys(d["node"] for d in plan["devices"]))
    for s in servers:
        node = {row[units[_device_ordinal(d)]]["node"] for d in s["device"]}
        assert len(node) == 1
        slot = nodes.index(node.pop())
        local = [u for u in units if row[u]["node"] == nodes[slot]]
        for d in s["device"]:
            unit = units[_device_ordinal(d)]
            assert int(d["device_id"]) == local.index(unit)
            assert int(d["super_device_id"]) >> 22 == slot
            assert int(d["super_device_id"]) & 0xFFFF == int(d["device_id"])
    assert len({d["super_device_id"] for d in devices}) == len(devices)
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
    assert sum(len(s["device"]) for s in doc["server_list"]) == len(plan["devices"])
    npus = _emit(HcclRankTableEmitter, TINY, unit="npu")
    _check_rank_table(npus, plan, ["decode", "prefill"], key="npu")
    assert sum(len(s["device"]) for s in npus["server_list"]) == len(plan["devices"]) // 2
    second = _emit(HcclRankTableEmitter, TINY, role="prefill", instance="1")
    assert second["server_count"] == "1"
    assert [d["rank_id"] for d in second["server_list"][0]["device"]] == [
        str(r) for r in range(plan["roles"]["prefill"]["ep"])]
    for options in ({"role": "train"}, {"role": "prefill", "instance": "2"},
                    {"server_ip_base": "10.0.0"}, {"device_ip_base": "255.255.255.255"}):
        with pytest.raises(CmxError) as err:
            HcclRankTableEmitter().emit(_ctx(TINY, **options))
        assert err.value.diagnostics[0].code == "E026"


def test_hccl_rank_table_cloudmatrix() -> None:
    plan = _plan_json(CM384)[2]
    doc = _emit(HcclRankTableEmitter, CM384)
    _check_rank_table(doc, plan, ["decode", "prefill"])
    # Atlas A3: both dies of every 910C are devices and ranks, 16 per server.
    assert sum(len(s["device"]) for s in doc["server_list"]) == 2 * (160 + 6 * 16)
    assert {len(s["device"]) for s in doc["server_list"]} == {16}
    assert doc["server_count"] == "32"
    decode = _emit(HcclRankTableEmitter, CM384, role="decode", instance="0")
    assert sum(len(s["device"]) for s in decode["server_list"]) == 320


def test_super_device_id_matches_a_recorded_a3_server() -> None:
    """The 16 dies of server slot 27 in a recorded A3 rank table (MindCluster ascend-faultdiag
    docs, MindIE pod log sample)."""
    recorded = [113246208, 113311745, 113508354, 113573891, 113770500, 113836037, 114032646,
                114098183, 114294792, 114360329, 114556938, 114622475, 114819084, 114884621,
                115081230, 115146767]
    assert [super_device_id(27, d // 2, d % 2, d) for d in range(16)] == recorded
    with pytest.raises(CmxError):
        super_device_id(1024, 0, 0, 0)


def test_cli_emits_the_sglang_expert_location(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(_plan_json(TINY)[2]), encoding="utf-8")
    out = tmp_path / "location.json"
    done = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit",
                           "sglang-expert-location", str(TINY), "--plan", str(plan_file),
                           "-O", "role=prefill", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    placement = _plan_json(TINY)[2]["roles"]["prefill"]["expert_placement"]
    rows = json.loads(out.read_text())["physical_to_logical_map"]
    assert rows[placement["moe_layers"][0]] == placement["phy2log"][0]
    redundant = placement["num_physical"] - placement["num_logical"]
    assert (f"--ep-size {_plan_json(TINY)[2]['roles']['prefill']['ep']} "
            f"--ep-num-redundant-experts {redundant}") in done.stderr
    missing = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit",
                              "sglang-expert-location", str(TINY), "-o", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "E026" in missing.stderr
