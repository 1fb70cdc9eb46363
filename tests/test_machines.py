"""Machines in general: the one rule for device facts (a die from its package, a package from
its dies), the scale-up plane and the default expert-parallel unit, the two ways microbatches
overlap (Ascend's core split, the GPU's computation beside communication), and DeepSeek-V3 on
GB200 NVL72 with its hand-computed memory terms."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError, DiagnosticSink
from supernode_dsl.graph.devices import attachments, device_attrs, scale_up_plane
from supernode_dsl.plan import PlanRequest, plan_deployment, role_contexts, validate_plan
from supernode_dsl.plan.devices import device_table, ep_unit
from supernode_dsl.plan.document.role import Pipeline
from supernode_dsl.plan.serving import pipeline as pl
from supernode_dsl.plan.serving.estimate import RoleContext, prefill_estimate
from supernode_dsl.plan.serving.hardware import device_facts
from supernode_dsl.plan.serving.ops import Op
from supernode_dsl.plan.spec import read_deployment

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
GB200 = TOPOLOGIES / "deepseek-v3-gb200-nvl72.cmx"
GB = 1e9

# ---- device facts ----------------------------------------------------------------------------

FACTS = """
plane link "scale-up"
die HalfA { hbm = 50 GB }
accelerator PkgA {
    die[2]: HalfA
    hbm = 80 GB; hbm_bw = 4 TB/s; compute.bf16 = 1000 TFLOPS; cores.sm = 133
    efficiency.gemm = 0.7; overhead.op = 2 us; overlap = "comm_overlap"; x_note = 1
}
die HalfB {
    hbm = 16 GB; hbm_bw = 1 TB/s; compute.int8 = 300 TOPS; cores.aic = 12
    efficiency.gemm = 0.8; clock = 1 GHz
}
die HalfC {
    hbm = 16 GB; hbm_bw = 1 TB/s; compute.int8 = 300 TOPS; cores.aic = 12
    efficiency.gemm = 0.9
}
accelerator PkgB { die[2]: HalfB }
accelerator PkgC { d0: HalfB; d1: HalfC }
system S { a: PkgA; b: PkgB; c: PkgC }
instance s: S
"""


@pytest.fixture(scope="module")
def facts_graph() -> nx.Graph:
    return cmx.build_graph(cmx.compile_string(FACTS))


def test_a_die_takes_its_package_facts_divided_and_its_intensive_facts_unchanged(
        facts_graph: nx.Graph) -> None:
    die = device_attrs(facts_graph, "s.a.die[0]")
    assert die["hbm"] == 50 * GB                       # declared: kept
    assert die["hbm_bw"] == 4e12 / 2                   # the package's over its 2 dies
    assert die["compute.bf16"] == 1000e12 / 2
    assert die["cores.sm"] == 133 // 2                 # whole cores
    assert die["efficiency.gemm"] == 0.7               # intensive: unchanged
    assert die["overhead.op"] == 2e-6
    assert die["overlap"] == "comm_overlap"
    assert "x_note" not in die                         # free-form: the package's own


def test_a_package_takes_the_sum_of_its_dies_and_what_they_agree_on(
        facts_graph: nx.Graph) -> None:
    assert device_attrs(facts_graph, "s.a")["hbm"] == 80 * GB      # declared: kept
    b = device_attrs(facts_graph, "s.b")
    assert (b["hbm"], b["hbm_bw"], b["compute.int8"]) == (32 * GB, 2e12, 600e12)
    assert b["cores.aic"] == 24
    assert (b["efficiency.gemm"], b["clock"]) == (0.8, 1e9)
    c = device_attrs(facts_graph, "s.c")
    assert c["hbm"] == 32 * GB
    assert "efficiency.gemm" not in c                  # the dies disagree (0.8, 0.9)
    assert "clock" not in c                            # only one die declares it


def test_the_cost_model_and_the_device_table_read_the_same_rule(facts_graph: nx.Graph) -> None:
    f = device_facts(facts_graph, "s.a.die[1]")
    assert (f.peak_of("bf16"), f.hbm, f.hbm_bw) == (500e12, 50 * GB, 2e12)
    assert (dict(f.cores), f.eff("gemm"), f.overlap) == ({"sm": 66}, 0.7, "comm_overlap")
    dies = device_table(facts_graph, unit="die")
    assert [[d.hbm for d in acc] for acc in dies] == [[50 * GB] * 2, [16 * GB] * 2,
                                                      [16 * GB] * 2]
    packages = device_table(facts_graph, unit="accelerator")
    assert [[(d.path, d.hbm) for d in acc] for acc in packages] == [
        [("s.a", 80 * GB)], [("s.b", 32 * GB)], [("s.c", 32 * GB)]]


# ---- the scale-up plane and the default EP unit -----------------------------------------------

def _deployment_graph(path: Path) -> tuple[cmx.Model, nx.Graph]:
    model = cmx.compile_file(path)
    return model, cmx.build_graph(model)


@pytest.fixture(scope="module")
def cm384() -> tuple[cmx.Model, nx.Graph]:
    return _deployment_graph(TOPOLOGIES / "deepseek-r1-cloudmatrix384.cmx")


@pytest.fixture(scope="module")
def gb200() -> tuple[cmx.Model, nx.Graph]:
    return _deployment_graph(GB200)


def _default_unit(model: cmx.Model, g: nx.Graph) -> str:
    specs = {s.name: s for s in model.specs if s.category == "model"}
    (spec,) = [s for s in model.specs if s.category == "deployment"]
    dep = read_deployment(spec, specs, DiagnosticSink())
    assert dep is not None and dep.ep_unit == ""
    return ep_unit(g, dep)


def test_default_ep_unit_is_the_die_on_cloudmatrix384(cm384: tuple[cmx.Model, nx.Graph]
                                                      ) -> None:
    model, g = cm384
    up = scale_up_plane(g)
    # UB: 7 links of 28 GB/s per die, 2 dies per NPU, on the dies; RDMA 2 x 200 Gbps.
    assert up is not None and (up.plane, up.level) == ("ub", "die")
    assert up.bandwidth == pytest.approx(2 * 7 * 28 * GB)
    assert [(a.plane, a.level) for a in attachments(g)] == [("ub", "die"), ("rdma", "die")]
    assert _default_unit(model, g) == "die"


def test_default_ep_unit_is_the_package_on_gb200(gb200: tuple[cmx.Model, nx.Graph]) -> None:
    model, g = gb200
    up = scale_up_plane(g)
    # NVLink 5: 18 links x 50 GB/s to the B200 package; the NV-HBI die pair stays inside.
    assert up is not None and (up.plane, up.level) == ("nvlink", "accelerator")
    assert up.bandwidth == pytest.approx(18 * 50 * GB)
    assert "nvhbi" not in {a.plane for a in attachments(g)}
    assert _default_unit(model, g) == "accelerator"


def test_the_shipped_gb200_plans_ep72_without_editing_its_topology(tmp_path: Path) -> None:
    src = tmp_path / "ep72.cmx"
    src.write_text(f'import "{TOPOLOGIES / "gb200-nvl72.cmx"}"\n'
                   f'import "{TOPOLOGIES / "models" / "deepseek-v3.cmx"}"\n'
                   "instance nvl72: GB200NVL72\n"
                   "deployment EP72 {\n    model = DeepSeekV3\n"
                   "    decode.instances = 1; decode.npus = 72; decode.ep = 72\n"
                   "    decode.routed_slots = 4; decode.shared_slots = 1\n"   # 72 x 4 = 256 + 32
                   "    decode.redundant = 32; decode.batch_per_npu = 64\n"
                   "    decode.context_len = 2000\n}\n", encoding="utf-8")
    model = cmx.compile_file(src)
    plan = plan_deployment(model, cmx.build_graph(model)).to_json()
    assert validate_plan(plan) == []
    (instance,) = plan["roles"]["decode"]["instance_devices"]
    assert len(instance) == 72 and all("die" not in d for d in instance)


def test_an_explicit_ep_unit_overrides_the_default() -> None:
    # tiny.cmx plus a slower plane on the packages: UB on the dies stays the scale-up plane
    text = TINY.read_text(encoding="utf-8").replace(
        'plane ub "scale-up"\n', 'plane ub "scale-up"\nplane eth "on the packages"\n').replace(
        "    sw: Sw\n", "    sw: Sw\n    link eth npu[*] <-> sw { bw = 10 GB/s }\n")
    model = cmx.compile_string(text)
    g = cmx.build_graph(model)
    assert [(a.plane, a.level) for a in attachments(g)] == [("ub", "die"),
                                                            ("eth", "accelerator")]
    assert _default_unit(model, g) == "die"
    text = text.replace(
        "    decode.ep = 8\n    decode.routed_slots = 3\n",
        "    ep_unit = \"accelerator\"\n    decode.ep = 4\n    decode.routed_slots = 6\n").replace(
        "    prefill.ep = 4\n    prefill.routed_slots = 5\n",
        "    prefill.ep = 2\n    prefill.routed_slots = 10\n")
    model = cmx.compile_string(text)
    plan = plan_deployment(model, cmx.build_graph(model)).to_json()
    assert validate_plan(plan) == []
    # one device per NPU, with the HBM of its two 16 GB dies, reached over eth
    assert [d["path"] for d in plan["devices"][:2]] == ["pod.node[0].npu[0]",
                                                         "pod.node[0].npu[1]"]
    assert plan["roles"]["decode"]["memory"]["capacity"] == 2 * 16 * GB


# ---- how microbatches overlap ------------------------------------------------------------------

_OPS = st.builds(
    Op, name=st.sampled_from(["a", "b", "c"]), stream=st.sampled_from(["attention", "moe"]),
    stage=st.integers(0, 1), ops=st.sampled_from([0.0, 1e6, 3e9]),
    hbm_bytes=st.sampled_from([0.0, 5e6]), comm_s=st.sampled_from([0.0, 2e-5, 1e-4]))


def _secs(op: Op) -> float:
    return op.ops / 1e12 + op.hbm_bytes / 1e12 + op.comm_s


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_OPS, min_size=1, max_size=6), min_size=1, max_size=4),
       st.integers(1, 4), st.booleans())
def test_comm_overlap_never_computes_two_microbatches_at_once(
        layers: list[list[Op]], microbatches: int, across_layers: bool) -> None:
    sched = pl.schedule(pl.comm_overlap_streams(list(enumerate(layers))), microbatches, _secs,
                        across_layers)
    computing = sorted((e.start, e.end, e.microbatch) for e in sched.events
                       if e.stream == pl.COMPUTE_STREAM)
    for (_, end, _), (start, _, _) in itertools.pairwise(computing):
        assert start >= end - 1e-12
    # every op that reads memory or computes is on the compute stream, the rest beside it
    for layer, ops in pl.comm_overlap_streams(list(enumerate(layers))):
        assert all((o.stream == pl.COMPUTE_STREAM) != pl.is_communication(o) for o in ops)
        assert [replace(o, stream="", stage=0) for o in ops] == \
            [replace(o, stream="", stage=0) for o in layers[layer]]


@pytest.fixture(scope="module")
def h800_plan() -> dict[str, Any]:
    model = cmx.compile_file(TOPOLOGIES / "deepseek-v3-h800.cmx")
    return plan_deployment(model, cmx.build_graph(model)).to_json()


def test_h800_decode_computes_on_every_sm_one_microbatch_at_a_time(
        h800_plan: dict[str, Any]) -> None:
    pipe = h800_plan["roles"]["decode"]["pipeline"]
    assert pipe["split"] == {"compute": {"sm": 132}, "comm": {}}
    assert all(c["split"] == pipe["split"] for c in pipe["candidates"])
    for kind in pipe["schedule"]:
        spans = sorted((e["start_us"], e["start_us"] + e["dur_us"]) for e in kind["events"]
                       if e["stream"] == "compute")
        # (rounded to 1 ns each: a start may read up to 2 ns before the previous end)
        assert all(b[0] >= a[1] - 2e-3 for a, b in itertools.pairwise(spans))
        # in a MoE layer, a microbatch's dispatch or combine runs while another computes
        layer = [e for e in kind["events"] if e["layer"] == 10]
        assert any(c["stream"] == "compute" and e["stream"] == "comm"
                   and c["microbatch"] != e["microbatch"]
                   and c["start_us"] < e["start_us"] + e["dur_us"]
                   and e["start_us"] < c["start_us"] + c["dur_us"]
                   for c in layer for e in layer)


@pytest.fixture(scope="module")
def h800_contexts() -> dict[str, RoleContext]:
    model = cmx.compile_file(TOPOLOGIES / "deepseek-v3-h800.cmx")
    return role_contexts(model, cmx.build_graph(model))


def test_collective_tables_are_read_at_the_instance_ep_size(
        h800_contexts: dict[str, RoleContext]) -> None:
    """DeepEP's figures by EP size (nvidia.cmx): decode's EP144 lies between the measured
    EP128 and EP256 (interpolated in log EP), prefill's EP32 is a measured point."""
    decode = dict(h800_contexts["decode"].paths.collective_efficiency)
    prefill = dict(h800_contexts["prefill"].paths.collective_efficiency)
    t = math.log(144 / 128) / math.log(256 / 128)
    assert decode["ib_dispatch_ll"] == pytest.approx(39 / 50)
    assert decode["ib_combine_ll"] == pytest.approx(39 / 50 + t * (40 - 39) / 50)
    assert prefill["ib_dispatch_ll"] == pytest.approx(41 / 50)
    assert prefill["ib_dispatch"] == pytest.approx(44 / 50)
    assert prefill["ib_combine"] == pytest.approx(47 / 50)
    # held at the table's end outside it: EP64 is the largest normal-kernel point
    assert decode["ib_dispatch"] == pytest.approx(46 / 50)


def test_h800_prefill_computes_on_the_sms_its_collectives_leave(
        h800_contexts: dict[str, RoleContext]) -> None:
    """``prefill.comm_cores = 24`` (DeepSeek's prefill profile): with two microbatches the
    computation holds 108 of 132 SMs, so a compute-bound op lasts 132/108 as long; one
    microbatch computes alone, on every SM."""
    ctx = h800_contexts["prefill"]
    assert ctx.workload.prefill_comm_cores == 24
    alone = replace(ctx, workload=replace(ctx.workload, prefill_comm_cores=0))
    _, held = prefill_estimate(ctx, 16384)
    _, free = prefill_estimate(alone, 16384)
    assert held.split == {"compute": {"sm": 108}, "comm": {"sm": 24}}
    assert free.split == {"compute": {"sm": 132}, "comm": {}}

    def attention(p: Pipeline) -> float:
        return next(e.dur_us for e in p.schedule[0].events if e.name == "attention")

    assert attention(held) == pytest.approx(attention(free) * 132 / 108)
    one = replace(ctx, workload=replace(ctx.workload, prefill_microbatches=1))
    _, single = prefill_estimate(one, 16384)
    assert single.split == {"compute": {"sm": 132}, "comm": {}}
    # (one microbatch: every prompt at once, twice the work of one of two)
    assert attention(single) == pytest.approx(2 * attention(free))


@pytest.mark.parametrize(("path", "edit", "message"), [
    (TINY, ("    decode.instances = 1\n", "    decode.instances = 1\n    decode.comm_cores = 2\n"),
     "'decode.comm_cores' applies to parts that overlap microbatches as comm_overlap"),
    (ROOT / "tests" / "errors" / "e022_comm_cores_take_every_core.cmx",
     ("cores.sm = 8; ", ""), "'prefill.comm_cores' needs the cores of Gpu, which declares "
     "no cores.*"),
], ids=["core_split", "no_cores"])
def test_comm_cores_the_part_cannot_give_are_refused(path: Path, edit: tuple[str, str],
                                                     message: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    model = cmx.compile_string(text.replace(*edit))
    with pytest.raises(CmxError, match="E022") as err:
        plan_deployment(model, cmx.build_graph(model))
    assert message in str(err.value)


def test_h800_decode_goes_on_into_the_next_layer_while_the_other_microbatch_combines(
        h800_plan: dict[str, Any]) -> None:
    """DeepSeek's dual-microbatch decode: the attention of one microbatch's next layer runs
    while the other microbatch's combine is in flight (the computation after a layer's last
    collective and before the next layer's first is one stage)."""
    events = h800_plan["roles"]["decode"]["pipeline"]["schedule"][0]["events"]

    def first(name: str, mb: int, layer: int) -> dict[str, Any]:
        return next(e for e in events if (e["name"], e["microbatch"], e["layer"])
                    == (name, mb, layer))

    combine = first("combine", 1, 10)
    attention = first("attention", 0, 11)
    assert attention["start_us"] < combine["start_us"] + combine["dur_us"]
    assert attention["start_us"] + attention["dur_us"] > combine["start_us"]


def test_an_undeclared_overlap_is_comm_overlap_and_an_assumption() -> None:
    text = TINY.read_text(encoding="utf-8").replace('; overlap = "core_split"', "")
    model = cmx.compile_string(text)
    plan = plan_deployment(model, cmx.build_graph(model)).to_json()
    decode = plan["roles"]["decode"]
    assert set(decode["pipeline"]["split"]) == {"compute", "comm"}
    assert any(a.startswith("overlap not declared") for a in decode["estimate"]["assumptions"])


# ---- DeepSeek-V3 on GB200 NVL72 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def gb200_plan(gb200: tuple[cmx.Model, nx.Graph]) -> dict[str, Any]:
    model, g = gb200
    return plan_deployment(model, g, PlanRequest()).to_json()


def test_gb200_deployment_plans_and_validates(gb200_plan: dict[str, Any]) -> None:
    assert validate_plan(gb200_plan) == []
    decode, prefill = gb200_plan["roles"]["decode"], gb200_plan["roles"]["prefill"]
    assert len(decode["instance_devices"][0]) == 48 and prefill["instances"] == 3
    assert len(gb200_plan["devices"]) == 72
    assert decode["pipeline"]["split"] == {"compute": {}, "comm": {}}  # no SM count declared
    assert "efficiency.gemm not declared: 1 (the peak)" in decode["estimate"]["assumptions"]
    # each role names the undeclared fixed time of the collective kernels it runs, with the
    # latency charged for it: the NVLink links of the shipped file declare none (0 us)
    assert "overhead.dispatch_ll not declared: one path latency (0 us) per dispatch_ll" in \
        decode["estimate"]["assumptions"]
    assert "overhead.combine not declared: one path latency (0 us) per combine" in \
        prefill["estimate"]["assumptions"]


def test_gb200_memory_terms_by_hand(gb200_plan: dict[str, Any]) -> None:
    expert = 3 * 7168 * 2048                          # one expert, INT8: 1 B per parameter
    attention = (7168 * 1536 + 1536 * 128 * 192       # q down, q up (nope 128 + rope 64)
                 + 7168 * (512 + 64)                  # kv down + rope key
                 + 512 * 128 * (128 + 128)            # W_UK, W_UV
                 + 128 * 128 * 7168)                  # output projection
    other = ((61 + 1) * attention                     # 61 layers + the MTP module, INT8
             + 3 * 3 * 7168 * 18432                   # 3 dense FFN layers, INT8
             + 58 * 7168 * 256 * 2                    # routers, BF16
             + 2 * 129280 * 7168 * 2                  # embedding + head, BF16
             + 2 * 61 * 7168 * 2)                     # norms, BF16
    kv_per_request = 2000 * (512 + 64) * 2 * 61       # 2,000-token context, 61 layers
    dispatch, combine = 7168 + 512, 7168 * 2          # INT8 token + scales; BF16 back
    # decode: 6 routed + 1 shared expert per GPU; each request sends up to min(8, 7) tokens
    # to each of the 48 ranks' buffers.
    mem = gb200_plan["roles"]["decode"]["memory"]
    fixed = 7 * 58 * expert + other + 4e9
    per_request = kv_per_request + 48 * 7 * (dispatch + combine)
    batch = int((186e9 - fixed) // per_request)       # the largest batch that fits: 996
    assert gb200_plan["roles"]["decode"]["estimate"]["batch_per_npu"] == batch == 996
    assert mem["expert_weights"] == 7 * 58 * expert == 17_880_317_952
    assert mem["other_weights"] == other == 16_710_938_624
    assert mem["kv_cache"] == batch * kv_per_request
    assert mem["dispatch_buffer"] == 48 * batch * 7 * dispatch
    assert mem["combine_buffer"] == 48 * batch * 7 * combine
    # prefill: 36 routed + 1 shared; 16,384 tokens = 9 prompts of 2,000 (rounded up);
    # 1,024 tokens per dispatch round x top-8 to each of 8 ranks.
    mem = gb200_plan["roles"]["prefill"]["memory"]
    assert mem["expert_weights"] == 37 * 58 * expert
    assert mem["kv_cache"] == 9 * kv_per_request
    assert mem["dispatch_buffer"] == 8 * 1024 * 8 * dispatch
    assert mem["combine_buffer"] == 8 * 1024 * 8 * combine


def test_gb200_plan_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    run = subprocess.run([sys.executable, "-m", "supernode_dsl", "plan", str(GB200), "-o",
                          str(out)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["roles"]["decode"]["ep"] == 48
