"""ASTRA-sim runs the ``chakra-et`` workload of a plan's serving step (``cmx simulate``).

The consumer is the kit's ASTRA-sim analytical binaries (astra-sim c459ab6: the kit's
``astra-sim/README.md``) and Chakra's own protobuf schema (the kit's wheel, chakra 214f2c5).
``chakra-et`` writes one instance of the role on one Switch dimension whose EP group holds
every NPU, so ASTRA-sim runs dispatch and combine as its direct all-to-all on the
congestion-aware back end (``supernode_dsl/emit/chakra/network.py`` says why).  The suite
runs the first four layers of both shipped deployments' decode step (three dense layers and
one MoE layer: 2 all-to-alls over 320 dies, 4 over 144 GPUs; a few seconds each) and the
whole decode and prefill steps of the tiny fixture.  With ``CMX_LONG_SIMULATIONS=1`` also
the whole decode step of both deployments (minutes: docs/validation.md) and a
CloudMatrix384 prefill slice with every kind of collective.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from consumers import ROOT
from test_consumer_astra import _binary, chakra  # noqa: F401  (the session fixture)

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, FileTree, document_json
from supernode_dsl.emit.chakra import ChakraEtEmitter
from supernode_dsl.emit.chakra.step import step_workload
from supernode_dsl.emit.chakra.wire import ALL_TO_ALL, TraceNode, trace_bytes
from supernode_dsl.emit.simulators import role_instance_npus
from supernode_dsl.files import MANIFEST, write_atomic
from supernode_dsl.plan import PlanRequest, deployment_spec, plan_deployment
from supernode_dsl.simulate import SimulationError, parse_finished, run_astra_sim

TOPO = ROOT / "topologies"
CM384 = TOPO / "deepseek-r1-cloudmatrix384.cmx"
H800 = TOPO / "deepseek-v3-h800.cmx"
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"


@pytest.fixture(scope="module")
def compiled() -> dict[Path, tuple[Any, Any, Any]]:
    """(model, graph, plan) of both shipped deployments, made once."""
    out = {}
    for path in (CM384, H800, TINY):
        model = cmx.compile_file(path)
        graph = cmx.build_graph(model)
        out[path] = (model, graph, plan_deployment(model, graph, PlanRequest()))
    return out


def _tree(compiled: dict[Path, tuple[Any, Any, Any]], path: Path, **options: str) -> FileTree:
    model, graph, plan = compiled[path]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ChakraEtEmitter().emit(EmitContext(model, graph, plan, str(path),
                                                  {"unit": "die", **options}))


def _decode(data: bytes, chakra_path: Path) -> list[Any]:
    """The messages of a trace file, read by Chakra's generated et_def_pb2."""
    sys.path.insert(0, str(chakra_path))
    try:
        from chakra.schema.protobuf.et_def_pb2 import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
            GlobalMetadata,
            Node,
        )
        from chakra.src.third_party.utils.protolib import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
            decodeMessage,
            encodeMessage,
        )
    finally:
        sys.path.remove(str(chakra_path))
    import io
    f, out, messages = io.BytesIO(data), io.BytesIO(), []
    meta = GlobalMetadata()
    decodeMessage(f, meta)
    encodeMessage(out, meta)
    while True:
        node = Node()
        if not decodeMessage(f, node):
            break
        encodeMessage(out, node)
        messages.append(node)
    assert out.getvalue() == data  # the bytes protobuf itself writes for these messages
    assert meta.version == "0.0.4"
    return messages


def test_traces_are_chakra_protobufs(chakra: Path) -> None:  # noqa: F811
    nodes = [TraceNode(1, "attention", (), 334), TraceNode(2, "experts", (1,), 12, cpu=True),
             TraceNode(3, "dispatch", (1, 2), comm_type=ALL_TO_ALL, comm_size=3 << 20,
                       group="2")]
    read = _decode(trace_bytes(nodes), chakra)
    assert [(n.id, n.name, list(n.data_deps), n.duration_micros) for n in read] == [
        (1, "attention", [], 334), (2, "experts", [1], 12), (3, "dispatch", [1, 2], 0)]
    attrs = {a.name: a for a in read[2].attr}
    assert attrs["comm_type"].int64_val == ALL_TO_ALL and attrs["pg_name"].string_val == "2"
    assert attrs["comm_size"].int64_val == 3 << 20 and read[1].attr[0].bool_val


def _run(tree: FileTree, tmp_path: Path, timeout: float = 120) -> tuple[float, float]:
    """(ASTRA-sim step us, estimate us) of an emitted tree, on the congestion-aware back end
    (the one that shares a link between the messages of an all-to-all)."""
    bundle = tmp_path / "bundle"
    write_atomic(bundle, tree)
    npus = sum(1 for n in tree.files if n.endswith(".et"))
    result = run_astra_sim(_binary("Aware"), bundle, npus, timeout=timeout)
    return result.step_ns / 1e3, json.loads(tree.files["estimate.json"])["estimate_us"]


@pytest.mark.parametrize("path", [CM384, H800], ids=["cloudmatrix384", "h800"])
def test_decode_dense_layers_match_the_pipeline(compiled: dict[Path, tuple[Any, Any, Any]],
                                                path: Path, tmp_path: Path) -> None:
    """Compute only (the dense layers have no collective in decode): ASTRA-sim's step is the
    plan's pipeline to the microsecond rounding; fails if the streams ran on one resource
    (CloudMatrix384's attention and MoE streams overlap) or deps were lost."""
    tree = _tree(compiled, path, role="decode", layers="1")
    simulated, estimate = _run(tree, tmp_path)
    assert simulated == pytest.approx(estimate, abs=2.0)
    assert tree == _tree(compiled, path, role="decode", layers="1")  # deterministic


def _one_instance_on_one_dimension(tree: FileTree) -> dict[str, Any]:
    """The network of ``tree``, checked to be one dimension over the instance whose EP group
    (key "1") holds every NPU, so that ASTRA-sim runs its all-to-alls with the system's
    ``direct`` implementation (a group of part of the NPUs is run as a ring:
    astra-sim c459ab6 astra-sim/system/CommunicatorGroup.cc:45-70)."""
    network = yaml.safe_load(tree.files["network.yml"])
    system = json.loads(tree.files["system.json"])
    groups = json.loads(tree.files["comm_group.json"])
    npus = sum(1 for n in tree.files if n.endswith(".et"))
    assert network["topology"] == ["Switch"] and network["npus_count"] == [npus]
    assert groups["1"] == list(range(npus))
    assert system["all-to-all-implementation"] == ["direct"]
    assert system["preferred-dataset-splits"] == 1
    return dict(network)


@pytest.mark.parametrize(("role", "npus"), [("decode", 8), ("prefill", 4)])
def test_tiny_whole_step_collectives(compiled: dict[Path, tuple[Any, Any, Any]], role: str,
                                     npus: int, tmp_path: Path) -> None:
    """A whole step of one instance, dispatch and combine as ASTRA-sim's direct all-to-all
    over it on the congestion-aware back end, which shares each NPU's link between its
    messages.  The tiny fixture declares no kernel overhead, so the estimate is the same
    bytes over the same bandwidth plus one latency, and ASTRA-sim's step is the estimate
    (decode +0.3 %, prefill +0.0 %).  The ring over a sub-group of the machine that chakra-et
    wrote before came out 34x (decode) and 1.7x (prefill)."""
    tree = _tree(compiled, TINY, role=role)
    assert _one_instance_on_one_dimension(tree)["npus_count"] == [npus]
    simulated, estimate = _run(tree, tmp_path)
    assert simulated == pytest.approx(estimate, rel=0.02)


#: The first four layers of the decode step (three dense layers, one MoE layer): every
#: rank of the instance (320 dies, 144 GPUs) in the all-to-alls.
MOE_SLICE = [pytest.param(CM384, 320, 196.0, id="cloudmatrix384"),
             pytest.param(H800, 144, 50.0, id="h800")]


@pytest.mark.parametrize(("path", "npus", "gbps"), MOE_SLICE)
def test_decode_moe_layer_all_to_all(compiled: dict[Path, tuple[Any, Any, Any]], path: Path,
                                     npus: int, gbps: float, tmp_path: Path) -> None:
    """One instance on one Switch at the per-NPU bandwidth of the outermost dimension it
    spans (CloudMatrix384: UB, 196 GB/s per die; H800: a GPU's InfiniBand rail, 50 GB/s).
    ASTRA-sim's all-to-all is the bytes over that link plus one path latency; the estimate
    adds the kernels' declared fixed time and efficiency, so ASTRA-sim's step is a few per
    cent shorter (CloudMatrix384 -4.3 %, H800 -2.8 %: docs/validation.md).  The sub-group
    ring chakra-et wrote before made the H800 slice 100x the estimate."""
    tree = _tree(compiled, path, role="decode", layers="4")
    network = _one_instance_on_one_dimension(tree)
    assert network["npus_count"] == [npus]
    assert network["bandwidth"] == [pytest.approx(gbps * 1e9 / 2**30, abs=1e-5)]
    simulated, estimate = _run(tree, tmp_path)
    assert 0.85 * estimate < simulated < 1.02 * estimate, (simulated, estimate)


@pytest.mark.skipif(not os.environ.get("CMX_LONG_SIMULATIONS"),
                    reason="minutes of ASTRA-sim: set CMX_LONG_SIMULATIONS=1")
@pytest.mark.parametrize(("path", "npus", "gbps"), MOE_SLICE)
def test_whole_decode_step(compiled: dict[Path, tuple[Any, Any, Any]], path: Path, npus: int,
                           gbps: float, tmp_path: Path) -> None:
    """The whole decode step of one instance (every layer, the MTP module and the head):
    CloudMatrix384 -13.0 % (its one microbatch puts each all-to-all, about 180 us shorter
    per MoE layer than the measured kernels, on the critical path), H800 -7.0 %; about 5.5
    and 1.3 minutes of ASTRA-sim on a quiet 2-core machine."""
    tree = _tree(compiled, path, role="decode")
    assert _one_instance_on_one_dimension(tree)["npus_count"] == [npus]
    simulated, estimate = _run(tree, tmp_path, timeout=3600)
    assert 0.8 * estimate < simulated < 1.02 * estimate, (simulated, estimate)


@pytest.mark.skipif(not os.environ.get("CMX_LONG_SIMULATIONS"),
                    reason="set CMX_LONG_SIMULATIONS=1")
def test_cloudmatrix384_prefill_moe_layer_collectives(compiled: dict[Path, tuple[Any, Any, Any]],
                                                      tmp_path: Path) -> None:
    """TP all-gather and all-to-all in 4-die groups, dispatch and combine over the
    instance's 32 dies."""
    tree = _tree(compiled, CM384, role="prefill", layers="4")
    groups = json.loads(tree.files["comm_group.json"])
    assert [len(groups[k]) for k in ("1", "2", "9")] == [32, 4, 4]  # EP, then 8 TP groups
    simulated, estimate = _run(tree, tmp_path)
    assert 0.85 * estimate < simulated < 1.02 * estimate, (simulated, estimate)  # -6.3 %


def test_unfinished_npus_are_an_error() -> None:
    line = "[x] [workload] [info] sys[{}] finished, {} cycles, exposed communication 5 cycles."
    text = "\n".join(line.format(n, 100 + n) for n in (0, 1))
    assert parse_finished(text, 2).step_ns == 101
    with pytest.raises(SimulationError, match="did not finish 1 of 3 NPUs"):
        parse_finished(text, 3)


def test_tree_writes_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_atomic(target, FileTree({"a.et": b"1", "b.json": b"{}"}))
    assert sorted(p.name for p in target.iterdir()) == ["a.et", "b.json", MANIFEST]
    write_atomic(target, FileTree({"c.et": b"2"}))  # replaces what cmx wrote
    assert sorted(p.name for p in target.iterdir()) == ["c.et", MANIFEST]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    with pytest.raises(CmxError, match="E031"):
        write_atomic(mine, FileTree({"a.et": b"1"}))
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"]  # no temporaries


def test_cli_simulate_without_astra_sim_is_e027(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CMX_ASTRA_SIM"}
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "simulate", str(CM384),
                           "--plan", str(tmp_path / "none.json")], capture_output=True,
                          text=True, env=env, check=False)
    assert proc.returncode == 1 and "error[E029]: no ASTRA-sim binary" in proc.stderr


def test_cli_simulate_prints_step_and_estimate(compiled: dict[Path, tuple[Any, Any, Any]],
                                               tmp_path: Path) -> None:
    binary = _binary("Aware")
    plan = tmp_path / "plan.json"
    plan.write_text(document_json(compiled[TINY][2].to_json()))
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "simulate", str(TINY),
                           "--plan", str(plan), "-O", "role=prefill", "--astra-sim",
                           str(binary), "--json"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "W004" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    tree = _tree(compiled, TINY, role="prefill")
    assert out["role"] == "prefill" and out["layers"] == 0 and out["npus"] == 4
    assert out["estimate_us"] == json.loads(tree.files["estimate.json"])["estimate_us"]
    assert out["simulated_us"] == pytest.approx(_run(tree, tmp_path)[0])


def test_cli_emit_refuses_a_directory_it_did_not_write(compiled: dict[Path, tuple[Any, Any, Any]],
                                                       tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(document_json(compiled[TINY][2].to_json()))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit", "chakra-et", str(TINY),
                           "--plan", str(plan), "-O", "role=decode", "-O", "unit=die", "-o",
                           str(theirs)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "error[E031]" in proc.stderr and MANIFEST in proc.stderr
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def test_collective_sizes_follow_the_placement_loads(
        compiled: dict[Path, tuple[Any, Any, Any]]) -> None:
    """Without ``balance.perfect`` a rank receives its slots' share of the load: on
    CloudMatrix384's decode placement (288 slots for 256 experts) the busiest die holds more
    than the mean, and the group's combine grows with it; with it, every rank the mean."""
    model, graph, plan = compiled[CM384]
    ctx = EmitContext(model, graph, plan, str(CM384), {"unit": "die"})
    ids = [ids for r, _, ids in role_instance_npus(ctx) if r == "decode"]
    dep, _ = deployment_spec(model, plan.source.deployment)

    def combine(perfect: bool) -> int:
        step = step_workload(plan, dep, "decode", {0: ids[0]}, 768, layers=4,
                             perfect_balance=perfect)
        return next(n.comm_size for n in step.traces[ids[0][0]] if n.name == "combine.L3.mb0")

    # balanced, the shared-expert dies (48 x 320 / 32 tokens each) bound the group; with the
    # placement's loads the routed dies holding no replica (1.125x the mean) do
    balanced, placed = combine(True), combine(False)
    assert plan.roles["decode"].balance.max_over_mean_per_layer[0] == 1.125
    assert placed > balanced


def test_cli_simulate_warns_of_the_unaware_back_end(compiled: dict[Path, tuple[Any, Any, Any]],
                                                     tmp_path: Path) -> None:
    """W004: the unaware binary runs the tiny decode step's 8 all-to-alls in one message's
    latency each (11.8 us against 37.6 us on the aware one), and says so."""
    plan = tmp_path / "plan.json"
    plan.write_text(document_json(compiled[TINY][2].to_json()))
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "simulate", str(TINY),
                           "--plan", str(plan), "-O", "role=decode", "--astra-sim",
                           str(_binary("Unaware"))], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("cmx: warning[W004]: AstraSim_Analytical_Congestion_Unaware "
                                  "does not share links: its 8 all-to-all(s) per rank"), \
        proc.stderr
