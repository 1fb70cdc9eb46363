"""Typed views of the ``model`` and ``deployment`` declarations the planner works from.

Elaboration has already checked every attribute's kind and unit; this module checks what only
makes sense together (an EP degree that matches the instance size, slot counts that add up to
the experts) and derives the numbers the planner needs, each from the declared facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from supernode_dsl.diagnostics import DiagnosticSink, Span
from supernode_dsl.elaborate import Spec
from supernode_dsl.units import Quantity

__all__ = ["BYTES_PER_PARAM", "DeploymentSpec", "ModelArch", "RoleSpec", "read_deployment"]

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
    """A transformer's shape, as the planner needs it (all sizes in parameters or bytes)."""

    name: str
    layers: int
    dense_layers: int
    hidden: int
    vocab: int
    dense_intermediate: int
    routed_experts: int
    shared_experts: int
    top_k: int
    expert_groups: int
    expert_intermediate: int
    heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_dim: int
    qk_rope_dim: int
    v_head_dim: int
    kv_bytes_per_token_layer: float
    mtp_layers: int
    precision: dict[str, str]

    @property
    def moe_layers(self) -> list[int]:
        """Indices of the MoE layers (every layer after the dense ones)."""
        return list(range(self.dense_layers, self.layers))

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
        """Parameters of one attention block (MLA projections when the ranks are declared)."""
        h, n = self.hidden, self.heads
        qk = self.qk_nope_dim + self.qk_rope_dim
        if self.kv_lora_rank:
            q = (h * self.q_lora_rank + self.q_lora_rank * n * qk) if self.q_lora_rank \
                else h * n * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_dim) \
                + self.kv_lora_rank * n * (self.qk_nope_dim + self.v_head_dim)
            return q + kv + n * self.v_head_dim * h
        return 4 * h * h

    def dispatch_bytes(self) -> float:
        """Bytes sent per token per destination on dispatch: the hidden vector in the
        dispatch precision, plus (for 8-bit) its scale padded to 512 B as CloudMatrix-Infer
        does (reference §4)."""
        size = self.bytes_of("dispatch")
        return self.hidden * size + (512 if size < 2 else 0)

    def combine_bytes(self) -> float:
        """Bytes sent back per token per source on combine."""
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


def _model(spec: Spec) -> ModelArch:
    precision = {k.split(".", 1)[1]: str(v) for k, v in spec.attrs
                 if k.startswith("precision.")}
    kv = _num(spec, "kv_bytes_per_token_layer", 0.0) or 0.0
    names = ("layers", "dense_layers", "hidden", "vocab", "dense_intermediate",
             "routed_experts", "shared_experts", "top_k", "expert_groups",
             "expert_intermediate", "heads", "q_lora_rank", "kv_lora_rank", "qk_nope_dim",
             "qk_rope_dim", "v_head_dim")
    values = {n: _int(spec, n) for n in names}
    values["expert_groups"] = values["expert_groups"] or 1
    return ModelArch(name=spec.name, kv_bytes_per_token_layer=kv, precision=precision,
                     mtp_layers=_int(spec, "mtp_depth"), **values)


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
    return r


def read_deployment(deployment: Spec, models: dict[str, Spec],
                    sink: DiagnosticSink) -> DeploymentSpec | None:
    """Interpret a deployment declaration; report inconsistencies (E022) to ``sink``."""
    name = deployment.get("model")
    if not isinstance(name, str) or name not in models:
        sink.error("E022", f"deployment '{deployment.name}' needs `model = NAME` naming a "
                   "declared model", deployment.span)
        return None
    arch = _model(models[name])
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


def _role_order(spec: Spec) -> list[str]:
    """Roles in the order the file first mentions them: devices are allocated in this order."""
    order: list[str] = []
    for key, _ in spec.attrs:
        head = key.split(".", 1)[0]
        if head in ("prefill", "decode") and head not in order:
            order.append(head)
    return order
