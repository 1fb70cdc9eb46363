"""Serving plans: the cost model, microbatch pipelines, KV capacity, the batch chosen under a
TPOT target, the roles planner, the P/D mapping, and the plan's serving checks."""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError, DiagnosticSink
from supernode_dsl.emit.plansummary import plan_summary
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment, validate_plan
from supernode_dsl.plan.document.codec import dump
from supernode_dsl.plan.serving.hardware import DeviceFacts, Route
from supernode_dsl.plan.serving.ops import (
    CommPaths,
    LayerShape,
    Op,
    layer_ops,
    op_seconds,
    transfer,
)
from supernode_dsl.plan.serving.pipeline import schedule
from supernode_dsl.plan.serving.roles import RoleRates, pd_mapping, role_split
from supernode_dsl.plan.spec import ModelArch, read_deployment

ROOT = Path(__file__).resolve().parent.parent
CM384 = ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx"
H800 = ROOT / "topologies" / "deepseek-v3-h800.cmx"


def _doc(path: Path, **defines: str) -> PlanDocument:
    model = cmx.compile_file(path, defines or None)
    return plan_deployment(model, cmx.build_graph(model), PlanRequest())


def _plan(path: Path, **defines: str) -> dict[str, Any]:
    return _doc(path, **defines).to_json()


@pytest.fixture(scope="module")
def cm384() -> dict[str, Any]:
    return _plan(CM384)


@pytest.fixture(scope="module")
def cm384_slo() -> dict[str, Any]:
    # a target the model meets above the smallest batch (at 15 ms it meets none: 15.4 ms at
    # batch 2, docs/validation.md)
    return _plan(CM384, tpot_slo_ms="20", decode_batch_per_npu="0")


def test_prefill_lists_its_attention_collectives_fixed_time(cm384: dict[str, Any]) -> None:
    # the hybrid attention's all-gather and all-to-all over the 4 TP dies have no measured
    # fixed time: each is charged one UB path latency (1.9 us inter-node write, reference
    # §3), and the estimate says so; decode has no attention collective
    prefill = cm384["roles"]["prefill"]["estimate"]["assumptions"]
    for name in ("all_gather", "all_to_all"):
        assert f"attention {name} over 4 devices: no measured fixed time, one path latency " \
            "(1.9 us) each" in prefill
    assert not any(a.startswith("attention ") for a in
                   cm384["roles"]["decode"]["estimate"]["assumptions"])
    # prefill's causal attention is costed at the mean prompt, and says so
    assert any(a.startswith("every prompt 4096 tokens (workload.prompt_len)") for a in prefill)


def test_every_role_has_an_estimate_pipeline_and_kv(cm384: dict[str, Any]) -> None:
    assert validate_plan(cm384) == []
    for name, role in cm384["roles"].items():
        assert role["estimate"]["tokens_per_s_per_npu"] > 0, name
        assert role["pipeline"]["schedule"], name
        assert role["kv"]["max_sequences_per_device"] > 0, name
    decode = cm384["roles"]["decode"]["estimate"]
    assert decode["batch_per_npu"] == 96
    # throughput per NPU = batch / TPOT (reference §5), to the rounding of the two figures
    assert decode["tokens_per_s_per_npu"] == pytest.approx(96 / decode["tpot_ms"] * 1e3,
                                                           rel=1e-4)
    # 61 layers + the MTP module + the output head, in execution order
    kinds = [row["kind"] for row in decode["per_layer"]]
    assert kinds[:3] == ["dense"] * 3 and kinds[-2:] == ["mtp", "head"]


def test_tpot_target_picks_the_largest_batch_that_meets_it(cm384_slo: dict[str, Any]) -> None:
    est = cm384_slo["roles"]["decode"]["estimate"]
    assert est["batch_chosen_by"] == "tpot_slo" and est["meets_tpot_slo"]
    assert est["tpot_ms"] <= 20
    bigger = _plan(CM384, decode_batch_per_npu=str(est["batch_per_npu"] + 2))
    assert bigger["roles"]["decode"]["estimate"]["tpot_ms"] > 20


def test_memory_is_checked_at_the_served_batch(cm384: dict[str, Any],
                                               cm384_slo: dict[str, Any]) -> None:
    big = cm384["roles"]["decode"]["memory"]["kv_cache"]
    small = cm384_slo["roles"]["decode"]["memory"]["kv_cache"]
    batch = cm384_slo["roles"]["decode"]["estimate"]["batch_per_npu"]
    assert small / big == pytest.approx(batch / 96)
    limit = cm384["roles"]["decode"]["kv"]["max_batch_per_npu"]
    with pytest.raises(CmxError) as err:
        _plan(CM384, decode_batch_per_npu=str(limit + 2))
    assert err.value.diagnostics[0].code == "E023"


def test_tpot_grows_with_the_batch() -> None:
    tpots = [_plan(CM384, decode_batch_per_npu=str(b))["roles"]["decode"]["estimate"]["tpot_ms"]
             for b in (8, 32, 96)]
    assert tpots == sorted(tpots) and tpots[0] < tpots[-1]


def test_prefix_reuse_raises_prefill_throughput(cm384: dict[str, Any]) -> None:
    effect = cm384["serving"]["cache_pool"]["prefix_reuse_effect"]
    shares = [row["prefix_reuse"] for row in effect]
    assert shares == sorted(shares) and shares[0] == 0
    tput = [row["tokens_per_s_per_npu"] for row in effect]
    assert tput == sorted(tput) and tput[-1] > tput[0]
    assert all(row["load_ms"] > 0 for row in effect[1:])


def test_the_h800_deployment_gets_plausible_numbers() -> None:
    plan = _plan(H800)
    assert validate_plan(plan) == []
    dec, pre = plan["roles"]["decode"]["estimate"], plan["roles"]["prefill"]["estimate"]
    assert dec["batch_chosen_by"] == "tpot_slo" and dec["tpot_ms"] <= 50
    # the expert traffic of EP32 over 4 nodes crosses InfiniBand: prefill is slower per GPU
    # than on CloudMatrix's UB despite the GPU's higher peak
    assert 1000 < pre["tokens_per_s_per_npu"] < 20000
    assert plan["serving"]["kv_transfer"]["plane"] == "ib"


def test_validate_plan_catches_a_broken_pipeline(cm384: dict[str, Any]) -> None:
    bad = copy.deepcopy(cm384)
    events = bad["roles"]["decode"]["pipeline"]["schedule"][0]["events"]
    events[1]["start_us"] = events[0]["start_us"]  # two ops of one stream at once
    assert any("overlap" in p for p in validate_plan(bad))
    bad = copy.deepcopy(cm384)
    bad["roles"]["prefill"]["pipeline"]["speedup"] *= 2
    assert any("speed-up" in p for p in validate_plan(bad))
    bad = copy.deepcopy(cm384)
    bad["roles"]["decode"]["kv"]["kv_capacity_bytes"] += 1e9
    assert any("KV capacity" in p for p in validate_plan(bad))


def test_pd_mapping_follows_the_published_formula() -> None:
    m = dump(pd_mapping(prefill_tp=4, decode_tp=1, decode_dp=320))
    assert m["ratio"] == 4 and m["group_size"] == 80
    ranks = m["prefill_tp_rank_of_decode_rank"]
    assert ranks[0] == 0 and ranks[79] == 0 and ranks[80] == 1 and ranks[319] == 3
    assert [ranks.count(r) for r in range(4)] == [80] * 4


def test_role_split_carries_the_rate_or_uses_the_budget_best() -> None:
    r = RoleRates(prefill_npus=16, decode_npus=160, prefill_rate=20.0, decode_rate=50.0)
    fixed = dump(role_split(r, 384, arrival=90.0))
    assert (fixed["prefill_instances"], fixed["decode_instances"]) == (5, 2)
    assert not fixed["fits_budget"] and not fixed["meets_arrival_rate"]
    best = dump(role_split(r, 384, arrival=0.0))
    assert best["npus_used"] <= 384
    assert best["sustainable_requests_per_s"] == pytest.approx(
        min(best["prefill_instances"] * 20.0, best["decode_instances"] * 50.0))
    # no other split of the budget sustains more
    for d in range(1, 3):
        p = (384 - 160 * d) // 16
        assert min(p * 20.0, d * 50.0) <= best["sustainable_requests_per_s"] + 1e-9


_OPS = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 2),
                          st.floats(0, 5)), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(layers=st.lists(_OPS, min_size=1, max_size=5), microbatches=st.integers(1, 4),
       across_layers=st.booleans())
def test_schedule_is_a_valid_list_schedule(layers: list[list[tuple[str, int, float]]],
                                           microbatches: int, across_layers: bool) -> None:
    """No stream runs two ops at once, every microbatch runs its ops in order, and the step
    lies between the busiest stream's work and the sum of all work (stages merged across
    layers or not)."""
    plan = [(i, [Op(f"op{j}", s, stage, comm_s=d) for j, (s, stage, d) in enumerate(ops)])
            for i, ops in enumerate(layers)]
    sched = schedule(plan, microbatches, lambda op: op.comm_s, across_layers)
    by_stream: dict[str, list[tuple[float, float]]] = {}
    by_mb: dict[int, list[tuple[float, float]]] = {}
    for e in sched.events:
        by_stream.setdefault(e.stream, []).append((e.start, e.end))
        by_mb.setdefault(e.microbatch, []).append((e.start, e.end))
    for spans in by_stream.values():
        spans.sort()
        assert all(a[1] <= b[0] + 1e-12 for a, b in itertools.pairwise(spans))
    for spans in by_mb.values():   # events of a microbatch are recorded in its order
        assert all(a[1] <= b[0] + 1e-12 for a, b in itertools.pairwise(spans))
    total = sum(d for ops in layers for _, _, d in ops) * microbatches
    busiest = max(sum(e - s for s, e in spans) for spans in by_stream.values())
    assert busiest - 1e-9 <= sched.step <= total + 1e-9
    assert sum(sched.layer_spans().values()) == pytest.approx(sched.step)


@settings(max_examples=40, deadline=None)
@given(layers=st.lists(_OPS, min_size=1, max_size=4), microbatches=st.integers(1, 4),
       head=st.floats(0.1, 5))
def test_a_step_level_op_runs_once_after_every_microbatch_and_stream(
        layers: list[list[tuple[str, int, float]]], microbatches: int, head: float) -> None:
    """A step-level op (``once``, the output head) runs once, after every microbatch's
    layers and every stream's work, and adds exactly its own time to the step."""
    plan = [(i, [Op(f"op{j}", s, stage, comm_s=d) for j, (s, stage, d) in enumerate(ops)])
            for i, ops in enumerate(layers)]
    before = schedule(plan, microbatches, lambda op: op.comm_s)
    step = [*plan, (-1, [Op("lm_head", "a", 0, comm_s=head, once=True)])]
    sched = schedule(step, microbatches, lambda op: op.comm_s)
    heads = [e for e in sched.events if e.name == "lm_head"]
    assert len(heads) == 1
    assert heads[0].start == pytest.approx(before.step)
    assert sched.step == pytest.approx(before.step + head)


def test_the_head_runs_once_per_step_on_the_whole_device(cm384: dict[str, Any]) -> None:
    """Every device kind's schedule holds one output head, whatever the microbatch count,
    and nothing else runs beside it."""
    for role in ("decode", "prefill"):
        for kind in cm384["roles"][role]["pipeline"]["schedule"]:
            heads = [e for e in kind["events"] if e["name"] == "lm_head"]
            assert len(heads) == 1, (role, kind["device_kind"])
            start = heads[0]["start_us"]
            assert all(e["start_us"] + e["dur_us"] <= start + 1e-3
                       for e in kind["events"] if e["layer"] >= 0)


def test_ttft_target_picks_the_most_prompts_that_meet_it() -> None:
    plan = _plan(CM384, ttft_slo_ms="2500", prefill_tokens_per_npu="0")
    assert validate_plan(plan) == []
    est = plan["roles"]["prefill"]["estimate"]
    assert est["batch_chosen_by"] == "ttft_slo" and est["meets_ttft_slo"]
    assert est["ttft_ms"] <= 2500 and est["tokens_per_npu"] % (2 * 4096) == 0
    more = _plan(CM384, prefill_tokens_per_npu=str(est["tokens_per_npu"] + 2 * 4096))
    assert more["roles"]["prefill"]["estimate"]["ttft_ms"] > 2500


def test_plan_and_trace_bytes_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    outputs = []
    for seed in ("1", "4242"):
        plan, trace = tmp_path / f"plan{seed}.json", tmp_path / f"trace{seed}.json"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "supernode_dsl.cli", "plan", str(H800), "-o",
                        str(plan), "--trace", str(trace)], check=True, env=env, cwd=ROOT)
        outputs.append((plan.read_bytes(), trace.read_bytes()))
    assert outputs[0] == outputs[1]
    trace_doc = json.loads(outputs[0][1])
    spans = [e for e in trace_doc["traceEvents"] if e["ph"] == "X"]
    plan_doc = json.loads(outputs[0][0])
    events = sum(len(s["events"]) for r in plan_doc["roles"].values()
                 for s in r["pipeline"]["schedule"])
    assert len(spans) == events


def test_op_time_is_the_roofline_plus_communication_plus_the_declared_overhead() -> None:
    facts = DeviceFacts("D", {"int8": 1e15}, 64e9, 1e12, {"aic": 24},
                        {"gemm": 0.5, "memory": 0.5}, {"op": 5e-6})
    compute_bound = Op("x", "s", 0, ops=1e12, fmt="int8", hbm_bytes=1e6, comm_s=1e-6)
    # 1e12 / (1e15 x 0.5 x 0.25) = 8 ms of compute beats 2 us of memory
    assert op_seconds(compute_bound, facts, 0.25) == pytest.approx(8e-3 + 1e-6 + 5e-6)
    memory_bound = Op("y", "s", 0, ops=1e6, fmt="int8", hbm_bytes=1e9)
    assert op_seconds(memory_bound, facts, 1.0) == pytest.approx(2e-3 + 5e-6)
    undeclared = Op("z", "s", 0, ops=1e12, fmt="fp4")
    assert op_seconds(undeclared, facts, 1.0) == pytest.approx(5e-6)


def test_cmx_plan_prints_a_summary_and_keeps_stdout_json(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "supernode_dsl.cli", "plan", str(H800)]
    to_file = subprocess.run([*cmd, "-o", str(tmp_path / "p.json")], capture_output=True,
                             text=True, check=True, cwd=ROOT)
    assert "decode: 4 x 144 NPUs, EP144: batch" in to_file.stdout
    assert "tokens/s per NPU" in to_file.stdout and "requests/s" in to_file.stdout
    to_stdout = subprocess.run([*cmd, "-o", "-"], capture_output=True, text=True, check=True,
                               cwd=ROOT)
    assert json.loads(to_stdout.stdout)["schema_version"] == "1.2"
    assert "tokens/s per NPU" in to_stdout.stderr


def test_the_summary_says_when_a_latency_target_is_missed() -> None:
    """One prompt per die is the smallest prefill pass; it takes longer than 500 ms."""
    plan = _doc(CM384, ttft_slo_ms="500", prefill_tokens_per_npu="0")
    prefill = next(line for line in plan_summary(plan) if "prefill:" in line)
    assert "(misses the TTFT target)" in prefill
    assert not any("misses" in line for line in plan_summary(_doc(H800)))


def test_a_collective_pays_no_kernel_fixed_time_of_its_own() -> None:
    """A transfer's fixed time is its collective's (in ``comm_s``); the parts' per-kernel
    ``overhead.*`` never adds to it."""
    facts = DeviceFacts("D", {"bf16": 1e15}, 64e9, 1e12, {"aic": 24}, {},
                        overhead={"gemm": 10e-6, "op": 5e-6})
    assert op_seconds(transfer("dispatch", "moe", 1, 70e-6), facts, 0.5) == \
        pytest.approx(70e-6)
    assert op_seconds(Op("gate", "moe", 1, ops=1e6), facts, 1.0) == \
        pytest.approx(1e6 / 1e15 + 10e-6)


def test_a_collective_pays_its_measured_fixed_time_and_rate() -> None:
    """A declared ``overhead.<collective>`` replaces the path latency; a low-latency kernel
    uses its own efficiency, else its family's, else the plane's."""
    paths = CommPaths(((Route("ub", 200e9, 0.5, 2e-6), 1.0),),
                      (("ub_dispatch", 0.25), ("ub_combine_ll", 0.8)),
                      (("dispatch_ll", 50e-6),))
    # plane efficiency 0.5: 1e6 B / 100 GB/s = 10 us, plus the 2 us path latency
    assert paths.seconds(1e6, 0.0) == pytest.approx(12e-6)
    # high-throughput dispatch: its measured 0.25 (20 us), the path latency
    assert paths.seconds(1e6, 5e5, "dispatch") == pytest.approx(22e-6)
    # low-latency dispatch: the family's rate, its own 50 us fixed time
    assert paths.seconds(1e6, 0.0, "dispatch_ll") == pytest.approx(70e-6)
    # low-latency combine: its own rate (160 GB/s), no declared fixed time
    assert paths.seconds(0.0, 1.6e6, "combine_ll") == pytest.approx(12e-6)


def test_decode_dispatch_pays_the_low_latency_kernels_fixed_time(
        cm384: dict[str, Any]) -> None:
    """The shipped Ascend die declares the low-latency kernel's fixed time from
    DeepEP-Ascend's two measurements; the shipped calibration refits it to the paper's own
    dispatch measurements, and decode's dispatch costs at least that per microbatch."""
    g = cmx.build_graph(_cm384_model())
    die = next(n for n, d in g.nodes(data=True) if d.get("type") == "Ascend910CDie")
    assert g.nodes[die]["overhead.dispatch_ll"] == pytest.approx(80e-6 - 32 * 73e-6 / 96)
    fixed = cm384["roles"]["decode"]["estimate"]["calibration"]["fitted"][
        "overhead.dispatch_ll"]
    layer = next(r for r in cm384["roles"]["decode"]["estimate"]["per_layer"]
                 if r["kind"] == "moe")
    microbatches = cm384["roles"]["decode"]["pipeline"]["microbatches"]
    assert layer["ops_us"]["dispatch"] >= microbatches * fixed * 1e6


@settings(max_examples=25, deadline=None)
@given(microbatches=st.sampled_from([1, 2, 4, 8]), prompts=st.integers(1, 4),
       prefix=st.sampled_from([0, 1024]))
def test_prefill_attention_work_does_not_depend_on_the_microbatch_count(
        microbatches: int, prompts: int, prefix: int) -> None:
    """Splitting prompts into microbatches (even into chunks of one prompt) moves the
    causal attention's work between microbatches but neither adds nor loses any."""
    arch = _arch()
    paths = CommPaths(((Route("ub", 200e9, 1.0, 0.0), 1.0),))

    def attention_ops(m: int) -> float:
        shape = LayerShape(tokens=prompts * 4096 / m, requests=prompts / m, context=prefix,
                           routed_tokens=0, routed_experts_held=0, shared_tokens=0,
                           send_tokens=0, recv_tokens=0, prefill=True)
        return m * next(o.ops for o in layer_ops(arch, 0, shape, paths)
                        if o.name == "attention")

    assert attention_ops(microbatches) == pytest.approx(attention_ops(1))


@cache
def _cm384_model() -> cmx.Model:
    return cmx.compile_file(CM384)


@cache
def _arch() -> ModelArch:
    model = _cm384_model()
    models = {s.name: s for s in model.specs if s.category == "model"}
    deployment = next(s for s in model.specs if s.category == "deployment")
    dep = read_deployment(deployment, models, DiagnosticSink())
    assert dep is not None
    return dep.model


def test_a_declared_host_time_is_in_the_step_and_the_plan_checks(tmp_path: Path) -> None:
    # the step is the schedule's layers, then the host time: the plan says so (host_ms)
    # and passes its own checks (it failed them before: the spans did not add up)
    text = CM384.read_text(encoding="utf-8").replace("workload.host_time    = 0 ms",
                                                     "workload.host_time    = 1.5 ms")
    assert "1.5 ms" in text
    path = tmp_path / "host.cmx"
    path.write_text(text.replace('import "', f'import "{CM384.parent}/'), encoding="utf-8")
    plan = _plan(path)
    assert validate_plan(plan) == []
    for role in ("decode", "prefill"):
        est = plan["roles"][role]["estimate"]
        assert est["host_ms"] == 1.5
        spans = sum(r["span_us"] for r in est["per_layer"]) / 1e3
        assert est["step_ms"] == pytest.approx(spans + 1.5, abs=1e-3)
    assert "host_ms" not in _plan(CM384)["roles"]["decode"]["estimate"]


def test_reused_kv_is_loaded_from_the_pool_in_the_prefill_estimate() -> None:
    plan = _plan(CM384, prefix_reuse="0.5")
    est, pool = plan["roles"]["prefill"]["estimate"], plan["serving"]["cache_pool"]
    # 2 prompts of 4,096 tokens per die, 2,048 of each reused: their KV (70,272 B per
    # token, every layer, BF16) read over UB from the pool's CPUs
    load_s = est["prompts_per_device"] * est["prefix_reused_tokens"] * 70272 / \
        pool["load_bandwidth"]
    assert est["kv_load_ms"] == pytest.approx(load_s * 1e3, rel=1e-4)
    spans = sum(r["span_us"] for r in est["per_layer"]) / 1e3
    assert est["ttft_ms"] == pytest.approx(spans + est["kv_load_ms"], abs=1e-3)
    # the reuse table's row at the declared share is the estimate itself
    row = next(r for r in pool["prefix_reuse_effect"] if r["prefix_reuse"] == 0.5)
    assert (row["ttft_ms"], row["load_ms"]) == (est["ttft_ms"], est["kv_load_ms"])
    assert "kv_load_ms" not in _plan(CM384)["roles"]["prefill"]["estimate"]


def test_reuse_without_a_pool_is_an_assumption() -> None:
    # DeepSeek's H800 file declares its 56.3% cache hits but no caching pool
    est = _plan(H800)["roles"]["prefill"]["estimate"]
    assert est["kv_load_ms"] == 0.0
    assert "cache.prefix_reuse 0.563 with no caching pool reachable: the reused KV loads " \
        "in no time" in est["assumptions"]
