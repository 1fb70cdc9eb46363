"""Emitters for inference runtimes: what SGLang, vllm-ascend and HCCL load from a plan.

Every format here needs a plan (``cmx emit FORMAT FILE --plan plan.json``) and writes JSON
built as data and serialised deterministically (:func:`document_json`: sorted keys, one line
per list of plain values).  The mapping choices (which ranks a runtime sees, how layers are
numbered, the placeholder addresses of the rank table) are documented in
``docs/emitters-runtimes.md``.

* ``sglang-expert-location``: SGLang's ``--init-expert-location`` file;
* ``sglang-rank-cost``: SGLang's topology-aware balancer input, an EP rank cost matrix (us);
* ``vllm-ascend-expert-map``: the vllm-ascend / MindIE expert map;
* ``hccl-rank-table``: the HCCL rank table v1.2 of the deployment's NPUs.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.jsontext import document_json
from supernode_dsl.emit.options import (
    Option,
    choice_option,
    int_option,
    ipv4_option,
    optional_text_option,
    text_option,
)
from supernode_dsl.graph import busiest_plane, message_costs
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import RolePlan

__all__ = [
    "EMITTERS",
    "HcclRankTableEmitter",
    "SglangExpertLocationEmitter",
    "SglangRankCostEmitter",
    "VllmAscendExpertMapEmitter",
    "routed_devices",
]

#: The dispatch message of DeepSeek-V3 in 8-bit: 7,168 B of hidden state + 512 B of scales.
DEFAULT_MESSAGE_BYTES = 7680

# ---- options ---------------------------------------------------------------------------------

ROLE = text_option("role", "the plan role", "decode")
INSTANCE = int_option("instance", "instance number of the role", 0)
LAYERS = choice_option("layers", "rows: model = one per model layer (dense rows trivial), "
                       "moe = one per MoE layer", ("model", "moe"))
PLANE = optional_text_option("plane", "plane the EP traffic uses (default: the plane with "
                             "most links at the devices)")
MESSAGE_BYTES = int_option("message_bytes", "bytes of one message (7 KiB of 8-bit hidden "
                           "state + 512 B of scales)", DEFAULT_MESSAGE_BYTES)
RANKS = choice_option("ranks", "routed = the ranks holding routed experts, all = every EP rank",
                      ("routed", "all"))
LAYER_ID = choice_option("layer_id", "model = the model's layer number, moe = the MoE layer "
                         "ordinal", ("model", "moe"))
TABLE_ROLES = text_option("role", "all (every role: one table for the deployment) or role "
                          "names, comma-separated", "all")
UNIT = choice_option("unit", "npu = one device per NPU, die = one device per EP device",
                     ("npu", "die"))
SERVER_IP_BASE = ipv4_option("server_ip_base", "node i gets server_id base + i + 1",
                             "10.0.0.0")
DEVICE_IP_BASE = ipv4_option("device_ip_base", "device k (global ordinal) gets device_ip "
                             "base + k + 1", "192.168.0.0")


# ---- plan access -----------------------------------------------------------------------------

def _role(ctx: EmitContext, plan: PlanDocument) -> tuple[str, RolePlan]:
    """The ``-O role=`` role of the plan and its entry, or E026 naming the plan's roles."""
    name = ctx.value(ROLE)
    roles = plan.roles
    if name not in roles:
        raise emit_error(f"the plan has no role '{name}' (roles: {', '.join(roles) or 'none'})")
    return name, roles[name]


def _instance(ctx: EmitContext, role: str, entry: RolePlan) -> int:
    number = ctx.value(INSTANCE)
    if number >= len(entry.instance_devices):
        raise emit_error(f"role '{role}' has {len(entry.instance_devices)} instance(s); "
                         f"there is no instance {number}")
    return number


def routed_devices(role: str, entry: RolePlan, instance: int = 0) -> list[str]:
    """The devices of ``instance`` that hold routed-expert slots, in EP rank order.

    Dedicated shared-expert devices (decode EP320: 32 dies) hold no routed slot and are left
    out, so routed rank ``r`` is the ``r``-th entry.  Raises E026 unless physical slot ``s``
    lies on routed rank ``s // slots_per_device`` (the contiguous layout runtimes assume).
    """
    placement = entry.expert_placement
    slots = placement.instance_slot_devices[instance]
    holding = set(slots)
    routed = [d for d in entry.instance_devices[instance] if d in holding]
    per = placement.slots_per_device
    for s, device in enumerate(slots):
        if s // per >= len(routed) or routed[s // per] != device:
            raise emit_error(f"role '{role}': physical slot {s} is on '{device}', not on routed "
                             f"rank {s // per}; the plan's slots are not contiguous per rank")
    return routed


# ---- sglang-expert-location ------------------------------------------------------------------

class SglangExpertLocationEmitter(Emitter):
    """SGLang's ``--init-expert-location`` JSON: ``{"physical_to_logical_map": rows}``.

    One row per model layer (``layers=model``, SGLang's layout: it indexes the map by the
    model's layer number; rows of dense layers hold SGLang's trivial map ``s % experts``) or
    one row per MoE layer (``layers=moe``: exactly the plan's ``phy2log``).  Physical slot
    ``s`` is on routed EP rank ``s // slots_per_device``; dedicated shared-expert devices are
    not SGLang ranks.  The document has this one key only: SGLang passes every key on.
    """

    name = "sglang-expert-location"
    description = "SGLang --init-expert-location JSON (physical_to_logical_map) of one role"
    options: ClassVar[tuple[Option[Any], ...]] = (ROLE, LAYERS)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        role, entry = _role(ctx, plan)
        layers = ctx.value(LAYERS)
        routed_devices(role, entry)
        placement = entry.expert_placement
        phy2log: list[list[int]] = [list(r) for r in placement.phy2log]
        if layers == "model":
            by_layer = dict(zip(placement.moe_layers, phy2log, strict=True))
            logical, physical = placement.num_logical, placement.num_physical
            trivial = [s % logical for s in range(physical)]
            phy2log = [by_layer.get(layer, trivial) for layer in range(plan.model.layers)]
        return document_json({"physical_to_logical_map": phy2log})


# ---- sglang-rank-cost ------------------------------------------------------------------------

class SglangRankCostEmitter(Emitter):
    """SGLang's topology-aware balancer input: ``{"rank_cost_matrix": R x R}`` in us.

    Over the routed EP ranks of one instance (``ranks=routed``, the ranks
    ``sglang-expert-location`` numbers) or every EP rank (``ranks=all``, dedicated
    shared-expert devices included), in rank order; entries from
    :func:`supernode_dsl.graph.message_costs` on the chosen plane, in microseconds rounded
    to 1e-6 us.  The document has this one key only.
    """

    name = "sglang-rank-cost"
    description = "SGLang topology-aware balancer rank_cost_matrix (us) of one role instance"
    options: ClassVar[tuple[Option[Any], ...]] = (ROLE, INSTANCE, PLANE, MESSAGE_BYTES, RANKS)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        role, entry = _role(ctx, plan)
        instance = _instance(ctx, role, entry)
        which = ctx.value(RANKS)
        message = ctx.value(MESSAGE_BYTES)
        devices = (routed_devices(role, entry, instance) if which == "routed"
                   else list(entry.instance_devices[instance]))
        plane = ctx.value(PLANE) or busiest_plane(ctx.graph, devices)
        cost = message_costs(ctx.graph, plane, devices, message)
        matrix = [[round(float(v) * 1e6, 6) + 0.0 for v in row] for row in cost]
        return document_json({"rank_cost_matrix": matrix})


# ---- vllm-ascend-expert-map ------------------------------------------------------------------

class VllmAscendExpertMapEmitter(Emitter):
    """The vllm-ascend / MindIE expert map of one role's instance.

    ``{"moe_layer_count": L, "layer_list": [{"layer_id", "device_count", "device_list":
    [{"device_id", "device_expert"}]}]}``: one entry per MoE layer in model order
    (``layer_id``: the model's layer number, or with ``layer_id=moe`` the MoE layer's
    ordinal 0..L-1); devices are the routed EP ranks in rank order (``device_id`` = routed
    rank), each listing the logical experts of its slots in slot order.  Instances share the
    placement, so the map is the same for every instance.
    """

    name = "vllm-ascend-expert-map"
    description = "vllm-ascend / MindIE expert map JSON (device_expert per layer) of one role"
    options: ClassVar[tuple[Option[Any], ...]] = (ROLE, LAYER_ID)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        role, entry = _role(ctx, plan)
        numbering = ctx.value(LAYER_ID)
        devices = routed_devices(role, entry)
        placement = entry.expert_placement
        per = placement.slots_per_device
        layer_list = []
        for ordinal, (layer, row) in enumerate(
                zip(placement.moe_layers, placement.phy2log, strict=True)):
            layer_list.append({
                "layer_id": layer if numbering == "model" else ordinal,
                "device_count": len(devices),
                "device_list": [{"device_id": r, "device_expert": list(row[r * per:(r + 1) * per])}
                                for r in range(len(devices))],
            })
        return document_json({"moe_layer_count": len(layer_list), "layer_list": layer_list})


# ---- hccl-rank-table -------------------------------------------------------------------------

def _address(start: ipaddress.IPv4Address, offset: int, option: str) -> str:
    try:
        return str(start + offset)
    except ipaddress.AddressValueError:
        raise emit_error(f"option {option}={start}: {offset} addresses do not fit after it"
                         ) from None


class HcclRankTableEmitter(Emitter):
    """The HCCL rank table v1.2 (``RANK_TABLE_FILE``) of the deployment's devices.

    Devices are the NPUs (``unit=npu``, default: both dies of a 910C are one device) or the
    EP devices themselves (``unit=die``) of the chosen roles (``role=all``, default: every
    role in the order the deployment names them; or a comma-separated list), each listed
    once in plan rank order (role, instance, EP rank); ``rank_id`` counts 0..n-1 in that
    order.  A server is a node, listed in order of its first rank; ``device_id`` is the
    device's ordinal inside its node and ``super_device_id`` its global ordinal in the plan's
    device table.  Addresses cannot be known from a topology: node ``i`` (its ordinal among
    the plan's nodes) gets ``server_ip_base + i + 1`` as ``server_id`` and device ``k`` gets
    ``device_ip_base + k + 1``.  One super pod, ``"0"``, holds every server.
    """

    name = "hccl-rank-table"
    description = "HCCL rank table v1.2 JSON of the deployment's NPUs (placeholder addresses)"
    options: ClassVar[tuple[Option[Any], ...]] = (TABLE_ROLES, UNIT, SERVER_IP_BASE,
                                                   DEVICE_IP_BASE)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        unit = ctx.value(UNIT)
        table = plan.devices
        key = "npu" if unit == "npu" else "path"
        # Roles in the order the deployment names them = order of first device in the table.
        plan_roles = list(dict.fromkeys(d.role for d in table
                                        if d.role is not None and d.role in plan.roles))
        plan_roles += [r for r in plan.roles if r not in plan_roles]
        wanted = ctx.value(TABLE_ROLES)
        roles = plan_roles if wanted == "all" else [r.strip() for r in wanted.split(",")]
        for r in roles:
            if r not in plan.roles:
                raise emit_error(f"the plan has no role '{r}' (roles: {', '.join(plan_roles)})")
        node_ordinal: dict[str, int] = {}
        unit_ordinal: dict[str, int] = {}
        local_ordinal: dict[str, int] = {}
        per_node: dict[str, int] = {}
        node_of: dict[str, str] = {}
        for d in table:
            u = d.npu if key == "npu" else d.path
            node_ordinal.setdefault(d.node, len(node_ordinal))
            if u not in unit_ordinal:
                unit_ordinal[u] = len(unit_ordinal)
                local_ordinal[u] = per_node.get(d.node, 0)
                per_node[d.node] = local_ordinal[u] + 1
                node_of[u] = d.node
        by_path = {d.path: d for d in table}
        ranked: list[str] = []
        seen: set[str] = set()
        for r in roles:
            for devices in plan.roles[r].instance_devices:
                for path in devices:
                    if path not in by_path:
                        raise emit_error(f"device '{path}' of role '{r}' is not in the plan's "
                                         "device table")
                    u = by_path[path].npu if key == "npu" else path
                    if u not in seen:
                        seen.add(u)
                        ranked.append(u)
        server_base = ctx.value(SERVER_IP_BASE)
        device_base = ctx.value(DEVICE_IP_BASE)
        servers: dict[str, list[dict[str, str]]] = {}
        for rank, u in enumerate(ranked):
            servers.setdefault(node_of[u], []).append({
                "device_id": str(local_ordinal[u]),
                "device_ip": _address(device_base, unit_ordinal[u] + 1, "device_ip_base"),
                "super_device_id": str(unit_ordinal[u]),
                "rank_id": str(rank),
            })
        server_ids = {node: _address(server_base, node_ordinal[node] + 1, "server_ip_base")
                      for node in servers}
        doc = {
            "version": "1.2",
            "status": "completed",
            "server_count": str(len(servers)),
            "server_list": [{"server_id": server_ids[node], "device": devices}
                            for node, devices in servers.items()],
            "super_pod_list": [{"super_pod_id": "0",
                                "server_list": [{"server_id": server_ids[node]}
                                                for node in servers]}],
        }
        return document_json(doc)


EMITTERS: tuple[type[Emitter], ...] = (
    SglangExpertLocationEmitter,
    SglangRankCostEmitter,
    VllmAscendExpertMapEmitter,
    HcclRankTableEmitter,
)
