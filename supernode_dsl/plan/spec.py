"""Typed views of the ``model`` and ``deployment`` declarations the planner works from.

Elaboration has already checked every attribute's kind and unit; this module checks what only
makes sense together (an EP degree that matches the instance size, slot counts that add up to
the experts) and derives the numbers the planner needs, each from the declared facts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from supernode_dsl.diagnostics import DiagnosticSink, Span
from supernode_dsl.elaborate import Spec
from supernode_dsl.plan.attention import Attention, read_attention
from supernode_dsl.schema import CACHE_POOLS, PRECISION_PARTS
from supernode_dsl.units import Quantity

__all__ = ["BYTES_PER_PARAM", "DeploymentSpec", "ModelArch", "RoleSpec", "read_deployment",
           "read_model"]

#: Bytes per parameter (or value) of each precision a model may name.
BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5, "fp4": 0.5,
}


def _num(spec: Spec, name: str, default: float | None = None) -> float | None:
    value = spec.get(name)
    if isinstance(value, Quantity):
        return value.value
    return default


def _int(spec: Spec, name: str, default: int = 0) -> int:
    value = _num(spec, name)
    return int(value) if value is not None else default


@dataclass(frozen=True)
class ModelArch:
    """A transformer's shape, as the planner needs it (all sizes in parameters or bytes).

    Layers: the first ``dense_layers`` have a dense FFN; after them every ``moe_every``-th
    layer is MoE (1: all of them) and the others dense.  ``shared_experts`` (0..n) are the
    size of a routed expert.  The message sizes are the deployment's overrides, or None.
    """

    name: str
    layers: int
    dense_layers: int
    moe_every: int
    hidden: int
    vocab: int
    tie_embeddings: bool
    dense_intermediate: int
    routed_experts: int
    shared_experts: int
    top_k: int
    expert_groups: int
    topk_groups: int
    expert_intermediate: int
    attention: Attention
    mtp_layers: int
    precision: dict[str, str]
    dispatch_bytes_per_token: float | None = None
    combine_bytes_per_token: float | None = None

    def is_moe(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) is MoE."""
        i = layer - self.dense_layers
        return i >= 0 and (i + 1) % self.moe_every == 0

    @property
    def moe_layers(self) -> list[int]:
        """Indices of the MoE layers."""
        return [i for i in range(self.layers) if self.is_moe(i)]

    def moe_index(self, layer: int) -> int:
        """Position of MoE layer ``layer`` among the MoE layers (its expert-load row)."""
        return (layer - self.dense_layers + 1) // self.moe_every - 1

    @property
    def dense_ffn_layers(self) -> int:
        """Layers with a dense FFN."""
        return self.layers - len(self.moe_layers)

    def bytes_of(self, part: str) -> float:
        """Bytes per parameter of ``part`` (experts, attention, ...); BF16 if not declared."""
        return BYTES_PER_PARAM[self.precision.get(part, "bf16")]

    @property
    def expert_params(self) -> int:
        """Parameters of one expert: gate, up and down projections."""
        return 3 * self.hidden * self.expert_intermediate

    @property
    def expert_bytes(self) -> float:
        """Bytes of one expert's weights."""
        return self.expert_params * self.bytes_of("experts")

    def attention_params(self) -> int:
        """Parameters of one attention block, from the attention kind's shape."""
        return self.attention.params(self.hidden)

    @property
    def kv_bytes_per_token_layer(self) -> float:
        """KV cache per token per layer: the values the attention kind caches, in the
        ``kv_cache`` precision."""
        return float(self.attention.kv_values() * self.bytes_of("kv_cache"))

    @property
    def embedding_copies(self) -> int:
        """Vocabulary matrices held: the input embedding and the output head, or one shared
        matrix when tied."""
        return 1 if self.tie_embeddings else 2

    def dispatch_bytes(self) -> float:
        """Bytes sent per token per destination on dispatch: the deployment's override, or
        the hidden vector in the dispatch precision, plus (for 8-bit) its scale padded to
        512 B as CloudMatrix-Infer does (reference §4)."""
        if self.dispatch_bytes_per_token is not None:
            return self.dispatch_bytes_per_token
        size = self.bytes_of("dispatch")
        return self.hidden * size + (512 if size < 2 else 0)

    def combine_bytes(self) -> float:
        """Bytes sent back per token per source on combine (the deployment's override, or
        the hidden vector in the combine precision)."""
        if self.combine_bytes_per_token is not None:
            return self.combine_bytes_per_token
        return self.hidden * self.bytes_of("combine")


@dataclass(frozen=True)
class RoleSpec:
    """One serving role (prefill or decode) of a deployment."""

    name: str
    instances: int
    npus: int
    ep: int
    routed_slots: int
    shared_slots: int
    shared_devices: int
    redundant: int
    batch_per_device: int
    sequences_per_device: int
    context_len: int
    hbm_reserve: float
    span: Span
    spans: tuple[tuple[str, Span], ...] = ()

    def span_of(self, attr: str) -> Span:
        """Where ``role.attr`` is set (the role's first attribute if it is not set)."""
        return dict(self.spans).get(attr, self.span)

    @property
    def routed_devices(self) -> int:
        """EP devices that hold routed experts."""
        return self.ep - self.shared_devices

    @property
    def physical_slots(self) -> int:
        """Routed-expert slots per instance."""
        return self.routed_devices * self.routed_slots


@dataclass(frozen=True)
class DeploymentSpec:
    """A deployment: the model, its roles in allocation order, the racks' size, and the
    expert-parallel unit it asks for (``die`` or ``accelerator``; ``""``: the level the
    topology's scale-up plane attaches to), with where it is set.

    The unit is the deployment's, not a role's: the device table is one for the whole
    deployment (the plan lists every device once), roles take whole accelerators, and a
    package's dies cannot be both one device and two.
    """

    name: str
    model: ModelArch
    roles: tuple[RoleSpec, ...]
    nodes_per_rack: int
    span: Span
    ep_unit: str = ""
    ep_unit_span: Span | None = None


_COUNTS = ("layers", "dense_layers", "hidden", "vocab", "dense_intermediate",
           "routed_experts", "shared_experts", "top_k", "expert_groups", "topk_groups",
           "expert_intermediate")


def _precision(spec: Spec, sink: DiagnosticSink) -> dict[str, str]:
    """The declared ``precision.<part>`` formats; an unknown format is E002."""
    out: dict[str, str] = {}
    for part in PRECISION_PARTS:
        value = spec.get(f"precision.{part}")
        if not isinstance(value, str):
            continue
        if value not in BYTES_PER_PARAM:
            sink.error("E002", f"unknown precision '{value}' (known: "
                       f"{', '.join(BYTES_PER_PARAM)})", spec.span_of(f"precision.{part}"))
            continue
        out[part] = value
    return out


def read_model(spec: Spec, sink: DiagnosticSink) -> ModelArch | None:
    """The model ``spec`` declares; None (errors in ``sink``) if it does not add up."""
    attention = read_attention(spec, sink)
    precision = _precision(spec, sink)
    values = {n: _int(spec, n) for n in _COUNTS}
    values["expert_groups"] = values["expert_groups"] or 1
    tied = spec.get("tie_embeddings")
    arch = None if attention is None else ModelArch(
        name=spec.name, moe_every=_int(spec, "moe_every", 1), attention=attention,
        tie_embeddings=tied is True, precision=precision, mtp_layers=_int(spec, "mtp_depth"),
        **values)
    problems = _model_problems(arch) if arch is not None else []
    for attr, why in problems:
        sink.error("E005", f"'{attr}': {why}", spec.span_of(attr))
    return None if problems else arch


def _model_problems(a: ModelArch) -> list[tuple[str, str]]:
    """(attribute, why) for each count of ``a`` that does not fit the others."""
    out: list[tuple[str, str]] = []
    if a.moe_every < 1:
        out.append(("moe_every", "MoE comes every moe_every >= 1 layers"))
    elif not a.moe_layers and a.routed_experts:
        out.append(("dense_layers", f"{a.dense_layers} dense layers of {a.layers} leave no "
                    "MoE layer"))
    if a.top_k > a.routed_experts:
        out.append(("top_k", f"a token cannot choose {a.top_k} of {a.routed_experts} experts"))
    if a.routed_experts % a.expert_groups:
        out.append(("expert_groups", f"{a.expert_groups} groups do not divide "
                    f"{a.routed_experts} routed experts evenly"))
    elif a.topk_groups > a.expert_groups:
        out.append(("topk_groups", f"a token cannot use {a.topk_groups} of "
                    f"{a.expert_groups} expert groups"))
    elif a.topk_groups and a.topk_groups * a.routed_experts // a.expert_groups < a.top_k:
        out.append(("topk_groups", f"{a.topk_groups} groups of "
                    f"{a.routed_experts // a.expert_groups} experts hold fewer than the "
                    f"top_k = {a.top_k} experts a token chooses"))
    return out


def _role(spec: Spec, role: str, arch: ModelArch, sink: DiagnosticSink) -> RoleSpec | None:
    if spec.get(f"{role}.instances") is None:
        return None
    def get(attr: str, default: int = 0) -> int:
        return _int(spec, f"{role}.{attr}", default)

    r = RoleSpec(
        name=role, instances=get("instances", 1), npus=get("npus", 1), ep=get("ep", 1),
        routed_slots=get("routed_slots", 1), shared_slots=get("shared_slots"),
        shared_devices=get("shared_devices"), redundant=get("redundant"),
        batch_per_device=get("batch_per_device", 1),
        sequences_per_device=get("sequences_per_device", 1),
        context_len=get("context_len"),
        hbm_reserve=_num(spec, f"{role}.hbm_reserve", 0.0) or 0.0,
        span=spec.span_of(f"{role}.instances"),
        spans=tuple((k.split(".", 1)[1], s) for k, s in spec.attr_spans
                    if k.startswith(f"{role}.")),
    )
    if arch.routed_experts and r.physical_slots != arch.routed_experts + r.redundant:
        sink.error(
            "E022",
            f"{role}: {r.routed_devices} routed devices x {r.routed_slots} slot(s) = "
            f"{r.physical_slots} slots, but {arch.routed_experts} experts + {r.redundant} "
            f"redundant = {arch.routed_experts + r.redundant}",
            spec.span_of(f"{role}.routed_slots"),
        )
    if arch.routed_experts and r.routed_devices < 1:
        sink.error("E022", f"{role}: no device is left for routed experts",
                   spec.span_of(f"{role}.shared_devices"))
    for attr, why in _shared_problems(arch, r):
        sink.error("E022", f"{role}: {why}", r.span_of(attr))
    return r


def _shared_problems(arch: ModelArch, r: RoleSpec) -> list[tuple[str, str]]:
    """(role attribute, why) where the role's shared-expert slots and devices do not match
    the model's shared experts: every device with shared slots holds all of them, and a
    model with shared experts needs one of the two."""
    n = arch.shared_experts
    if not n:
        return [(attr, f"'{attr}' is {value}, but model '{arch.name}' has no shared expert")
                for attr, value in (("shared_slots", r.shared_slots),
                                    ("shared_devices", r.shared_devices)) if value]
    if r.shared_slots not in (0, n):
        return [("shared_slots", f"a device holds all {n} shared expert(s) or none, not "
                 f"{r.shared_slots}")]
    if not r.shared_slots and not r.shared_devices:
        return [("instances", f"model '{arch.name}' has {n} shared expert(s) but no device "
                 "holds one (set shared_slots or shared_devices)")]
    return []


def read_deployment(deployment: Spec, models: dict[str, Spec],
                    sink: DiagnosticSink) -> DeploymentSpec | None:
    """Interpret a deployment declaration; report inconsistencies (E022) to ``sink``."""
    name = deployment.get("model")
    if not isinstance(name, str) or name not in models:
        sink.error("E022", f"deployment '{deployment.name}' needs `model = NAME` naming a "
                   "declared model", deployment.span)
        return None
    arch = read_model(models[name], sink)
    if arch is None:
        return None
    arch = replace(arch, dispatch_bytes_per_token=_num(deployment, "dispatch_bytes_per_token"),
                   combine_bytes_per_token=_num(deployment, "combine_bytes_per_token"))
    _check_serving(deployment, arch, sink)
    roles = [r for role in _role_order(deployment)
             if (r := _role(deployment, role, arch, sink)) is not None]
    if not roles:
        sink.error("E022", f"deployment '{deployment.name}' declares no role "
                   "(set prefill.instances or decode.instances)", deployment.span)
        return None
    unit = deployment.get("ep_unit")
    return DeploymentSpec(deployment.name, arch, tuple(roles),
                          _int(deployment, "nodes_per_rack"), deployment.span,
                          ep_unit=unit if isinstance(unit, str) else "",
                          ep_unit_span=deployment.span_of("ep_unit"))


def _check_serving(spec: Spec, arch: ModelArch, sink: DiagnosticSink) -> None:
    """The deployment's serving attributes that must match the model or the planner:
    multi-token prediction needs an MTP module, the caching pool a kind the planner knows."""
    accept = _num(spec, "mtp.accept", 0.0)
    if accept and not arch.mtp_layers:
        sink.error("E022", f"'mtp.accept' is {accept:g}, but model '{arch.name}' has no MTP "
                   "module (mtp_depth = 0)", spec.span_of("mtp.accept"))
    pool = spec.get("cache.pool")
    if isinstance(pool, str) and pool not in CACHE_POOLS:
        sink.error("E002", f"unknown caching pool '{pool}' (known: {', '.join(CACHE_POOLS)})",
                   spec.span_of("cache.pool"))


def _role_order(spec: Spec) -> list[str]:
    """Roles in the order the file first mentions them: devices are allocated in this order."""
    order: list[str] = []
    for key, _ in spec.attrs:
        head = key.split(".", 1)[0]
        if head in ("prefill", "decode") and head not in order:
            order.append(head)
    return order
