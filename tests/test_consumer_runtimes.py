"""The runtime exports of every shipped deployment, read by the consumers kit's loader ports.

Each format of each deployment with a plan goes through the kit's port of its consumer's
loader (``checks/`` of ../shared/consumers; each script names the consumer file and commit it
follows) with the server arguments the plan implies, and must be accepted (exit status 0):

* ``sglang-expert-location``: SGLang ``--init-expert-location`` (expert_location.py @ 01fec5c2);
* ``sglang-rank-cost``: SGLang ``load_rank_cost_matrix`` (topology.py @ 1855e32b);
* ``vllm-ascend-expert-map``: vllm-ascend ``expert_map_path`` (eplb_utils.py @ 182b75ea);
* ``hccl-rank-table``: the HCCL v1.2 rank-table rules (Atlas A3), on the Ascend machines only.

Each deployment is planned once for the module (the plans are the cost, about 3 s each).
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from consumers import ROOT, kit, kit_file, run_python

import supernode_dsl as cmx
from supernode_dsl.emit import EmitContext, Emitter
from supernode_dsl.emit.runtimes import (
    HcclRankTableEmitter,
    SglangExpertLocationEmitter,
    SglangRankCostEmitter,
    VllmAscendExpertMapEmitter,
    routed_devices,
)
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment

pytestmark = pytest.mark.filterwarnings(
    "ignore::supernode_dsl.emit.runtimes.SglangServerArguments")

ASCEND = ("deepseek-r1-cloudmatrix384", "qwen3-235b-cloudmatrix384")
NVIDIA = ("deepseek-v3-h800", "mixtral-8x22b-h800", "deepseek-v3-gb200-nvl72")
ROLES = ("decode", "prefill")
LOCATION = "checks/sglang/check_sglang_expert_location.py"
RANK_COST = "checks/sglang/check_sglang_rank_cost.py"
EXPERT_MAP = "checks/vllm_ascend/check_vllm_ascend_expert_map.py"
RANK_TABLE = "checks/hccl/check_hccl_rank_table.py"
CASES = [(d, r) for d in ASCEND + NVIDIA for r in ROLES]


@pytest.fixture(autouse=True)
def _needs_the_kit() -> None:
    """Skip before planning anything when the consumers kit is not there."""
    kit()


@cache
def _planned(name: str) -> tuple[EmitContext, PlanDocument]:
    """The deployment ``topologies/NAME.cmx`` compiled and planned (once per session)."""
    path = ROOT / "topologies" / f"{name}.cmx"
    model = cmx.compile_file(path)
    graph = cmx.build_graph(model)
    plan = plan_deployment(model, graph, PlanRequest())
    return EmitContext(model, graph, plan, str(path)), plan


def _emit(cls: type[Emitter], name: str, tmp_path: Path, **options: str) -> Path:
    base, _ = _planned(name)
    ctx = EmitContext(base.model, base.graph, base.plan, base.source, options)
    out = tmp_path / f"{cls.name}.json"
    text = cls().emit(ctx)
    assert isinstance(text, str)
    out.write_text(text, encoding="utf-8")
    return out


def _accepted(script: Path, *args: str | Path) -> str:
    """Run the kit's check ``script``; assert it accepts, return its output."""
    done = run_python(script, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _ep_args(name: str, role: str) -> tuple[int, int, int]:
    """(routed EP ranks, redundant experts, logical experts) of ``role``: the server
    arguments (--ep-size, --ep-num-redundant-experts) the expert files are written for."""
    _, plan = _planned(name)
    entry = plan.roles[role]
    placement = entry.expert_placement
    return (len(routed_devices(role, entry)), placement.num_physical - placement.num_logical,
            placement.num_logical)


@pytest.mark.parametrize("name,role", CASES)
def test_sglang_expert_location_is_loaded(name: str, role: str, tmp_path: Path) -> None:
    ep, redundant, logical = _ep_args(name, role)
    layers = _planned(name)[1].model.layers
    # Static dispatch (the per-rank dispatch map) once, on the paper's deployment; the
    # dynamic path runs every other check of the loader and is 15x faster.
    dispatch = "static" if (name, role) == ("deepseek-r1-cloudmatrix384", "decode") else "dynamic"
    out = _accepted(kit_file(LOCATION),
                    _emit(SglangExpertLocationEmitter, name, tmp_path, role=role),
                    str(ep), str(redundant), str(layers), str(logical), dispatch)
    assert f"p2l shape ({layers}, {logical + redundant})" in out


@pytest.mark.parametrize("name,role", CASES)
def test_sglang_rank_cost_is_loaded(name: str, role: str, tmp_path: Path) -> None:
    ep = _ep_args(name, role)[0]
    out = _accepted(kit_file(RANK_COST),
                    _emit(SglangRankCostEmitter, name, tmp_path, role=role), str(ep))
    assert f"({ep}, {ep})" in out


@pytest.mark.parametrize("name,role", CASES)
def test_vllm_ascend_expert_map_is_loaded(name: str, role: str, tmp_path: Path) -> None:
    # The map is machine-independent JSON; vllm-ascend itself runs on Ascend only, but the
    # loader port checks the file of every deployment.
    ep, redundant, logical = _ep_args(name, role)
    moe_layers = len(_planned(name)[1].roles[role].expert_placement.moe_layers)
    _accepted(kit_file(EXPERT_MAP),
              _emit(VllmAscendExpertMapEmitter, name, tmp_path, role=role),
              str(ep), str(logical), str(redundant), str(moe_layers))


def _devices_per_server(plan: PlanDocument) -> int:
    """Devices of a server on the hardware: the plan's EP devices (dies) per node."""
    return max(Counter(d.node for d in plan.devices).values())


@pytest.mark.parametrize("name", ASCEND)
def test_hccl_rank_table_is_accepted_and_lists_every_die(name: str, tmp_path: Path) -> None:
    plan = _planned(name)[1]
    per_server = _devices_per_server(plan)
    assert per_server == 16   # Atlas A3: 8 NPUs x 2 dies, each its own /dev/davinciN
    out = _accepted(kit_file(RANK_TABLE),
                    _emit(HcclRankTableEmitter, name, tmp_path), str(per_server))
    # Every server the deployment uses is listed with all its 16 dies, one rank each.
    assert "devices/server [16]" in out and "hardware has" not in out
    for role in ROLES:
        _accepted(kit_file(RANK_TABLE),
                  _emit(HcclRankTableEmitter, name, tmp_path, role=role, instance="0"),
                  str(per_server))


@pytest.mark.parametrize("name", NVIDIA)
def test_hccl_rank_table_does_not_apply_to_nvidia(name: str) -> None:
    pytest.skip(f"{name} runs on NVIDIA GPUs: HCCL (and its RANK_TABLE_FILE) is Huawei "
                "Ascend's collective library, NCCL needs no rank table")
