"""Models in general: attention kinds, layer kinds, the shipped GQA models' memory against
hand arithmetic, their Q/K/V projection work, and that every accepted model and deployment
attribute is read by the planner."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.diagnostics import DiagnosticSink, SourceText, Span
from supernode_dsl.elaborate import Spec
from supernode_dsl.plan import PlanRequest, plan_deployment, validate_plan
from supernode_dsl.plan.attention import ATTENTION_KINDS, GQA, KIND_ATTRS, MLA, read_attention
from supernode_dsl.plan.memory import non_expert_params
from supernode_dsl.plan.serving.ops import CommPaths, LayerShape, layer_ops
from supernode_dsl.plan.spec import ModelArch, read_deployment
from supernode_dsl.schema import DEPLOYMENT_ATTRS, MODEL_ATTRS
from supernode_dsl.units import Quantity

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"
QWEN3 = TOPOLOGIES / "qwen3-235b-cloudmatrix384.cmx"
MIXTRAL = TOPOLOGIES / "mixtral-8x22b-h800.cmx"
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"

#: Every attribute a plan of these files reads, recorded by the ``read_attrs`` fixture.
_READ: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def read_attrs() -> Iterator[set[str]]:
    """Record the name of every attribute the planner asks a model or deployment for."""
    original = Spec.get

    def get(self: Spec, name: str, default: Any = None) -> Any:
        _READ.add(name)
        return original(self, name, default)

    mp = pytest.MonkeyPatch()
    mp.setattr(Spec, "get", get)
    yield _READ
    mp.undo()


def _plan(path: Path) -> dict[str, Any]:
    model = cmx.compile_file(path)
    return plan_deployment(model, cmx.build_graph(model), PlanRequest()).to_json()


def _arch(path: Path) -> ModelArch:
    model = cmx.compile_file(path)
    models = {s.name: s for s in model.specs if s.category == "model"}
    deployment = next(s for s in model.specs if s.category == "deployment")
    dep = read_deployment(deployment, models, DiagnosticSink())
    assert dep is not None
    return dep.model


@pytest.fixture(scope="module")
def qwen3(read_attrs: set[str]) -> dict[str, Any]:
    return _plan(QWEN3)


@pytest.fixture(scope="module")
def mixtral(read_attrs: set[str]) -> dict[str, Any]:
    return _plan(MIXTRAL)


@pytest.fixture(scope="module")
def tiny(read_attrs: set[str]) -> dict[str, Any]:
    return _plan(TINY)


# ---- the shipped GQA models ----------------------------------------------------------------

def test_new_deployments_plan_and_validate(qwen3: dict[str, Any],
                                           mixtral: dict[str, Any]) -> None:
    for plan in (qwen3, mixtral):
        assert validate_plan(plan) == []
        for name, role in plan["roles"].items():
            assert role["memory"]["free"] > 0, name
            assert role["estimate"]["tokens_per_s_per_npu"] > 0, name


def test_qwen3_memory_equals_the_hand_arithmetic(qwen3: dict[str, Any]) -> None:
    bf16 = 2
    layers = 94
    # Attention per layer: q, k and v, o projections, and the q/k RMSNorm weights (QK-norm).
    attention = 4096 * 64 * 128 + 2 * 4096 * 4 * 128 + 64 * 128 * 4096 + 2 * 128
    other = (
        layers * attention * bf16            # attention (no MTP module)
        + layers * 4096 * 128 * bf16         # router of every (MoE) layer
        + 2 * 151936 * 4096 * bf16           # untied embedding and output head
        + 2 * layers * 4096 * bf16           # two RMSNorms per layer; no dense FFN
    )
    expert = 3 * 4096 * 1536 * bf16
    decode = qwen3["roles"]["decode"]["memory"]
    assert decode["other_weights"] == other
    # the Q/K/V and O projections (and the QK-norm weights) are shown as their own part
    assert decode["other_weights_by_part"] == {
        "attention": layers * attention * bf16, "dense_ffn": 0, "router": layers * 4096 * 128
        * bf16, "embedding": 2 * 151936 * 4096 * bf16, "norms": 2 * layers * 4096 * bf16}
    assert decode["expert_weights"] == 1 * layers * expert        # one slot per die
    # 64 requests per NPU = 32 sequences per die; 2 x 4 KV heads x 128 values in BF16
    assert decode["kv_cache"] == 32 * 4096 * (2 * 4 * 128 * bf16) * layers
    # EP160 x (32 tokens x min(top-8, 1 expert per die)) x the BF16 hidden vector
    assert decode["dispatch_buffer"] == 160 * 32 * 1 * 4096 * bf16
    prefill = qwen3["roles"]["prefill"]["memory"]
    assert prefill["expert_weights"] == 5 * layers * expert       # five slots per die


def test_mixtral_memory_equals_the_hand_arithmetic(mixtral: dict[str, Any]) -> None:
    bf16 = 2
    layers = 56
    attention = 6144 * 48 * 128 + 2 * 6144 * 8 * 128 + 48 * 128 * 6144    # q, k and v, o
    other = (layers * attention * bf16 + layers * 6144 * 8 * bf16
             + 2 * 32768 * 6144 * bf16 + 2 * layers * 6144 * bf16)
    decode = mixtral["roles"]["decode"]["memory"]
    assert decode["other_weights"] == other
    assert decode["expert_weights"] == layers * 3 * 6144 * 16384 * bf16
    assert decode["kv_cache"] == 24 * 4096 * (2 * 8 * 128 * bf16) * layers


def test_gqa_plans_show_qkv_projection_time(qwen3: dict[str, Any],
                                            mixtral: dict[str, Any]) -> None:
    for plan in (qwen3, mixtral):
        for name, role in plan["roles"].items():
            layers = [row for row in role["estimate"]["per_layer"] if row["kind"] == "moe"]
            assert len(layers) == plan["model"]["layers"], name
            for row in layers:
                ops = row["ops_us"]
                assert ops["qkv_proj"] > 0 and ops["o_proj"] > 0 and ops["attention"] > 0
                assert "mla_prolog" not in ops


def test_gqa_operators_count_the_projections_and_the_kv_heads() -> None:
    arch = _arch(QWEN3)
    attention = arch.attention
    assert isinstance(attention, GQA)
    shape = LayerShape(tokens=32, requests=16, context=4096, routed_tokens=0.0,
                       routed_experts_held=1, shared_tokens=0.0, send_tokens=0.0,
                       recv_tokens=0.0, prefill=False)
    ops = {o.name: o for o in layer_ops(arch, 0, shape, CommPaths(()))}
    assert ops["qkv_proj"].ops == 2 * 32 * 4096 * (64 + 2 * 4) * 128
    assert ops["qkv_proj"].hbm_bytes == 4096 * (64 + 2 * 4) * 128 * 2
    assert ops["o_proj"].ops == 2 * 32 * 64 * 128 * 4096
    # QK^T and PV over 4096 keys for each of the 64 query heads; the cache of 4 KV heads
    assert ops["attention"].ops == 2 * 32 * 64 * 4096 * 2 * 128
    assert ops["attention"].hbm_bytes == 16 * 4096 * 2 * 4 * 128 * 2


def test_gqa_prefill_tensor_parallel_attention_exchanges_heads() -> None:
    arch = _arch(QWEN3)
    shape = LayerShape(tokens=4096, requests=1, context=0, routed_tokens=0.0,
                       routed_experts_held=1, shared_tokens=0.0, send_tokens=0.0,
                       recv_tokens=0.0, prefill=True, attention_tp=4)
    names = [o.name for o in layer_ops(arch, 0, shape, CommPaths(())) if o.kind != "vector"]
    assert names[:5] == ["qkv_proj", "all_to_all", "attention", "all_to_all", "o_proj"]


# ---- attention and layer kinds --------------------------------------------------------------

def test_mla_keeps_the_deepseek_shape() -> None:
    arch = _arch(TOPOLOGIES / "deepseek-r1-cloudmatrix384.cmx")
    assert isinstance(arch.attention, MLA)
    assert arch.kv_bytes_per_token_layer == (512 + 64) * 2
    assert arch.moe_layers == list(range(3, 61))


def test_mha_is_gqa_with_a_kv_head_per_query_head() -> None:
    shape = ATTENTION_KINDS["mha"].build({"heads": 16, "head_dim": 64, "qk_norm": False})
    assert shape == GQA(16, 16, 64, False)
    assert shape.kv_values() == 2 * 16 * 64


def test_tied_embeddings_hold_one_vocabulary_matrix() -> None:
    arch = _arch(MIXTRAL)
    untied = non_expert_params(arch)["embedding"]
    assert non_expert_params(replace(arch, tie_embeddings=True))["embedding"] == untied / 2


def test_moe_every_second_layer() -> None:
    # Llama 4's interleaving: layers step-1, 2*step-1, ... are MoE (here after 1 dense layer)
    arch = replace(_arch(MIXTRAL), layers=7, dense_layers=1, moe_every=2,
                   dense_intermediate=1024)
    assert arch.moe_layers == [2, 4, 6]
    assert [arch.moe_index(i) for i in arch.moe_layers] == [0, 1, 2]
    assert non_expert_params(arch)["dense_ffn"] == 4 * 3 * 6144 * 1024 * 2
    shape = LayerShape(8, 8, 128, 16.0, 1, 0.0, 16.0, 16.0, False)
    kinds = ["experts" in {o.name for o in layer_ops(arch, i, shape, CommPaths(()))}
             for i in range(7)]
    assert kinds == [False, False, True, False, True, False, True]


def test_several_shared_experts_are_all_held() -> None:
    arch = replace(_arch(TOPOLOGIES / "deepseek-r1-cloudmatrix384.cmx"), shared_experts=2)
    shape = LayerShape(8, 8, 128, 16.0, 1, 16.0, 16.0, 16.0, False)
    experts = next(o for o in layer_ops(arch, 5, shape, CommPaths(())) if o.name == "experts")
    assert experts.hbm_bytes == (1 + 2) * arch.expert_bytes


def test_message_sizes_can_be_overridden() -> None:
    arch = _arch(QWEN3)
    assert arch.dispatch_bytes() == 4096 * 2
    arch = replace(arch, dispatch_bytes_per_token=4096 + 512, combine_bytes_per_token=8192)
    assert (arch.dispatch_bytes(), arch.combine_bytes()) == (4096 + 512, 8192)


@given(kind=st.sampled_from(sorted(ATTENTION_KINDS)),
       declared=st.sets(st.sampled_from(KIND_ATTRS)))
def test_an_attribute_of_another_kind_is_reported_where_it_is_set(
        kind: str, declared: set[str]) -> None:
    # heads = 8, kv_heads = 2, every other count 64: valid whichever are declared
    names = sorted(declared)
    values = {n: (True if n == "qk_norm" else Quantity(2.0 if n == "kv_heads" else
                                                        8.0 if n == "heads" else 64.0))
              for n in names}
    source = SourceText("m.cmx", "\n".join(["attention", *names]))
    spans = [("attention", Span(source, 1, 1, 1, 2))] + [
        (n, Span(source, i + 2, 1, i + 2, 2)) for i, n in enumerate(names)]
    spec = Spec("M", "model", (("attention", kind), *values.items()), spans[0][1],
                tuple(spans))
    sink = DiagnosticSink()
    shape = read_attention(spec, sink)
    entry = ATTENTION_KINDS[kind]
    foreign = {n for n in names if n not in entry.attrs}
    missing = {n for n in entry.attrs if n not in declared and n not in entry.optional}
    errors = [(d.code, d.span.line if d.span else 0) for d in sink.diagnostics]
    assert sorted(e for e in errors if e[0] == "E002") == \
        sorted(("E002", names.index(n) + 2) for n in foreign)
    assert [e for e in errors if e[0] == "E019"] == ([("E019", 1)] if missing else [])
    assert (shape is None) == bool(foreign or missing)


def test_the_cli_reports_an_attribute_of_another_kind() -> None:
    fixture = ROOT / "tests" / "errors" / "e002_attribute_of_other_kind.cmx"
    run = subprocess.run([sys.executable, "-m", "supernode_dsl.cli", "plan", str(fixture),
                          "-o", "-"], capture_output=True, text=True, check=False, cwd=ROOT)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert ":11:20: error[E002]: 'kv_lora_rank' is not an attribute of attention kind " \
        "'gqa'" in run.stderr


# ---- every attribute is read ----------------------------------------------------------------

def test_every_attribute_is_read(qwen3: dict[str, Any], mixtral: dict[str, Any],
                                 tiny: dict[str, Any], read_attrs: set[str]) -> None:
    # reading is by name: a vocabulary entry no reader asks for is accepted and ignored
    unread = (set(MODEL_ATTRS) | set(DEPLOYMENT_ATTRS)) - read_attrs
    assert not unread, f"accepted but never read by the planner: {sorted(unread)}"
