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
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from supernode_dsl import schema as S
from supernode_dsl.diagnostics import CmxError
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
from supernode_dsl.plan.document import DeviceRow, PlanDocument
from supernode_dsl.plan.document.role import RolePlan

__all__ = [
    "EMITTERS",
    "HcclRankTableEmitter",
    "SglangExpertLocationEmitter",
    "SglangRankCostEmitter",
    "SglangServerArguments",
    "VllmAscendExpertMapEmitter",
    "routed_devices",
    "super_device_id",
]

#: The dispatch message of DeepSeek-V3 in 8-bit: 7,168 B of hidden state + 512 B of scales.
DEFAULT_MESSAGE_BYTES = 7680

# ---- options ---------------------------------------------------------------------------------

ROLE = text_option("role", "the plan role", "decode")
INSTANCE = int_option("instance", "instance number of the role", 0)
LAYERS = choice_option("layers", "rows: model = one per model layer (dense rows trivial), "
                       "SGLang's layout; moe = one per MoE layer, refused (SGLang indexes rows "
                       "by model layer)", ("model", "moe"))
PLANE = optional_text_option("plane", "plane the EP traffic uses, or planes joined by + "
                             "(default: the plane with most links at the devices if it joins "
                             "them all, else every plane)")
MESSAGE_BYTES = int_option("message_bytes", "bytes of one message (7 KiB of 8-bit hidden "
                           "state + 512 B of scales)", DEFAULT_MESSAGE_BYTES)
RANKS = choice_option("ranks", "routed = the ranks holding routed experts, all = every EP rank",
                      ("routed", "all"))
LAYER_ID = choice_option("layer_id", "moe = the MoE layer ordinal 0..L-1 (what vllm-ascend "
                         "writes), model = the model's layer number", ("moe", "model"))
TABLE_ROLES = text_option("role", "all (every role: one table for the deployment) or role "
                          "names, comma-separated", "all")
UNIT = choice_option("unit", "die = one device per EP device of the plan (an Atlas A3 die: "
                     "/dev/davinciN, one HCCL rank each), npu = one device per NPU",
                     ("die", "npu"))
TABLE_INSTANCE = Option[int | None](
    "instance", "one instance of each chosen role (its communicator's own table; default: "
    "every instance)", None, INSTANCE.parse, metavar=INSTANCE.metavar)
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

class SglangServerArguments(UserWarning):
    """The SGLang server arguments a written expert-location file needs (shown on stderr)."""


# SGLang indexes physical_to_logical_map by the model's layer number (DeepseekV2MoE passes its
# layer_id; the loader's model config has num_layers = num_hidden_layers):
# sgl-project/sglang@01fec5c2 python/sglang/srt/eplb/expert_location.py (init_by_mapping).
MOE_ROWS_REFUSED = ("layers=moe: SGLang indexes physical_to_logical_map by the model's layer "
                    "number (python/sglang/srt/eplb/expert_location.py @ sglang 01fec5c2, "
                    "num_layers = num_hidden_layers), static or dynamic dispatch alike: with {moe} "
                    "rows for {layers} layers, layer {first} would read row {first} (written "
                    "for {shifted}) and layers {moe}..{last} no row. Use layers=model (the "
                    "default)")


def _row_owner(moe_layers: tuple[int, ...], row: int) -> str:
    """Which layer row ``row`` of a one-row-per-MoE-layer map belongs to (for the message)."""
    return f"layer {moe_layers[row]}" if row < len(moe_layers) else "no layer"


class SglangExpertLocationEmitter(Emitter):
    """SGLang's ``--init-expert-location`` JSON: ``{"physical_to_logical_map": rows}``.

    One row per model layer, SGLang's layout (it indexes the map by the model's layer
    number; rows of dense layers hold SGLang's trivial map ``s % experts``); ``layers=moe``
    (one row per MoE layer) is refused with E026 saying why, as SGLang would misread it.
    Physical slot ``s`` is on routed EP rank ``s // slots_per_device``; dedicated
    shared-expert devices are not SGLang ranks.  The document has this one key only: SGLang
    passes every key on.  The ``--ep-size`` / ``--ep-num-redundant-experts`` the file needs
    are issued as a :class:`SglangServerArguments` warning (``cmx emit`` prints it).
    """

    name = "sglang-expert-location"
    description = "SGLang --init-expert-location JSON (physical_to_logical_map) of one role"
    options: ClassVar[tuple[Option[Any], ...]] = (ROLE, LAYERS)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        role, entry = _role(ctx, plan)
        placement = entry.expert_placement
        if ctx.value(LAYERS) == "moe" and len(placement.moe_layers) != plan.model.layers:
            raise emit_error(MOE_ROWS_REFUSED.format(
                moe=len(placement.moe_layers), layers=plan.model.layers,
                first=placement.moe_layers[0], last=plan.model.layers - 1,
                shifted=_row_owner(placement.moe_layers, placement.moe_layers[0])))
        ranks = len(routed_devices(role, entry))
        by_layer = dict(zip(placement.moe_layers, placement.phy2log, strict=True))
        logical, physical = placement.num_logical, placement.num_physical
        trivial = [s % logical for s in range(physical)]
        phy2log = [list(by_layer.get(layer, trivial)) for layer in range(plan.model.layers)]
        warnings.warn(f"role '{role}': run SGLang with --ep-size {ranks} "
                      f"--ep-num-redundant-experts {physical - logical} "
                      f"--init-expert-location FILE (routed EP ranks; "
                      f"{physical} physical experts)", SglangServerArguments, stacklevel=2)
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
        cost = _rank_costs(ctx.graph, ctx.value(PLANE), devices, message)
        matrix = [[round(float(v) * 1e6, 6) + 0.0 for v in row] for row in cost]
        return document_json({"rank_cost_matrix": matrix})


def _rank_costs(g: nx.Graph, plane: str | None, devices: list[str], message: int
                ) -> np.ndarray:
    """:func:`message_costs` on ``plane`` (planes joined by ``+``: their links together).
    No plane given: the busiest plane at the devices, or, when it does not join them all
    (NVLink of one H800 board, the EP group spanning boards), every plane together (paths
    such as NVLink to the GPU of another rail, then that rail's InfiniBand)."""
    if plane is not None:
        return message_costs(*_joined(g, plane.split("+")), devices, message)
    busiest = busiest_plane(g, devices)
    try:
        return message_costs(g, busiest, devices, message)
    except CmxError:
        return message_costs(*_joined(g, list(g.graph.get(S.GRAPH_PLANES, {}))), devices,
                             message)


def _joined(g: nx.Graph, planes: list[str]) -> tuple[nx.Graph, str]:
    """``g`` and the plane when ``planes`` is one; else a graph whose one plane, named
    ``a+b``, holds the links of all of ``planes``.  E026 for an undeclared plane."""
    declared = g.graph.get(S.GRAPH_PLANES, {})
    if len(planes) == 1:
        return g, planes[0]
    for p in planes:
        if p not in declared:
            raise emit_error(f"unknown plane '{p}' (planes: {', '.join(declared)})")
    name = "+".join(planes)
    joined = nx.Graph()
    joined.graph[S.GRAPH_PLANES] = {name: "planes " + ", ".join(planes)}
    joined.add_nodes_from(g.nodes(data=True))
    joined.add_edges_from((u, v, {**d, S.EDGE_PLANE: name})
                          for u, v, d in g.edges(data=True) if d[S.EDGE_PLANE] in planes)
    return joined, name


# ---- vllm-ascend-expert-map ------------------------------------------------------------------

# vllm-ascend numbers the map's layers by MoE layer: AscendRoutedExperts.init_eplb loads entry
# layer_id = moe_counter (0, 1, 2, ... per MoE layer; the MTP layer gets moe_layer_count) and
# expert_file_to_tensor indexes layer_list by that position (vllm-project/vllm-ascend@182b75ea
# vllm_ascend/ops/fused_moe/routed_experts.py l.217/293, vllm_ascend/eplb/core/eplb_utils.py
# l.27); its writers number layer_id the same way.
class VllmAscendExpertMapEmitter(Emitter):
    """The vllm-ascend / MindIE expert map of one role's instance.

    ``{"moe_layer_count": L, "layer_list": [{"layer_id", "device_count", "device_list":
    [{"device_id", "device_expert"}]}]}``: one entry per MoE layer in model order
    (``layer_id``: the MoE layer's ordinal 0..L-1, as vllm-ascend's own writers number it and
    its loader counts layers, or with ``layer_id=model`` the model's layer number); devices
    are the routed EP ranks in rank order (``device_id`` = routed rank), each listing the
    logical experts of its slots in slot order.  Instances share the placement, so the map
    is the same for every instance.
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


# The Atlas A3 super_device_id (SDID) is the driver's id of a die in its super pod: HCCL reads it
# back (hrtGetDeviceInfo(..., HCCL_INFO_TYPE_SDID)) and rejects a rank table whose value differs
# (HCCL HcclCommunicatorAttrs::CheckSuperDeviceId, "super_device_id is invalid in ranktable").
# Its bit layout, read off the 16 dies of one A3 server in a recorded rank table (MindCluster
# ascend-faultdiag, docs "log collection", MindIE pod log sample: device_id 0..15 ->
# 113246208 = 27<<22 | 0<<18 | 0<<16 | 0, 113311745 = 27<<22 | 0<<18 | 1<<16 | 1, ...,
# 115146767 = 27<<22 | 7<<18 | 1<<16 | 15): server slot in the super pod << 22 | NPU (chip)
# in the server << 18 | die in the NPU << 16 | device_id.
SDID_FIELDS = ((22, 10, "server"), (18, 4, "NPU in its server"), (16, 2, "die in its NPU"),
               (0, 16, "device in its server"))


def super_device_id(server: int, npu: int, die: int, device: int) -> int:
    """The A3 ``super_device_id`` of ``die`` of NPU ``npu`` in server ``server`` (its slot in
    the super pod), ``device`` being its ``device_id`` (layout above); E026 when a number does
    not fit its field."""
    sdid = 0
    for (shift, bits, what), value in zip(SDID_FIELDS, (server, npu, die, device), strict=True):
        if value >= 1 << bits:
            raise emit_error(f"super_device_id: {what} number {value} does not fit in {bits} "
                             "bits (Atlas A3 super pods are smaller)")
        sdid |= value << shift
    return sdid


@dataclass(frozen=True)
class _Unit:
    """One rank-table device: its node, its ordinal in the plan's table (for the placeholder
    address) and the numbers its ``device_id`` / ``super_device_id`` are made of."""

    node: str
    ordinal: int
    server: int
    npu: int
    die: int
    local: int


def _units(table: tuple[DeviceRow, ...], key: str) -> dict[str, _Unit]:
    """The rank-table devices of the plan's device table, by NPU (``key="npu"``) or by EP
    device path: ``local`` counts them inside their node in table order (/dev/davinciN: the
    dies of NPU k are 2k, 2k+1), ``npu`` / ``die`` count NPUs in the node and dies in the NPU."""
    nodes: dict[str, int] = {}
    npus: dict[str, int] = {}
    dies: dict[str, int] = {}
    per_node: dict[str, int] = {}
    npus_per_node: dict[str, int] = {}
    units: dict[str, _Unit] = {}
    for d in table:
        nodes.setdefault(d.node, len(nodes))
        if d.npu not in npus:
            npus[d.npu] = npus_per_node.get(d.node, 0)
            npus_per_node[d.node] = npus[d.npu] + 1
        die = dies[d.npu] = dies.get(d.npu, -1) + 1
        u = d.npu if key == "npu" else d.path
        if u not in units:
            local = per_node.get(d.node, 0)
            per_node[d.node] = local + 1
            units[u] = _Unit(d.node, len(units), nodes[d.node], npus[d.npu],
                             0 if key == "npu" else die, local)
    return units


class HcclRankTableEmitter(Emitter):
    """The HCCL rank table v1.2 (``RANK_TABLE_FILE``) of the deployment's devices.

    A device is an EP device of the plan (``unit=die``, default): on Atlas A3 each die of a
    910C is its own device, ``/dev/davinciN`` and HCCL rank (16 per server); where the
    accelerator is one EP device (a GPU) this is the accelerator.  ``unit=npu`` lists one
    device per NPU instead.  Devices of the chosen roles (``role=all``, default: every role in
    the order the deployment names them; or a comma-separated list) and instances (every
    instance, or ``instance=N``: one communicator's table) are listed once in plan rank order
    (role, instance, EP rank); ``rank_id`` counts 0..n-1 in that order.  A server is a node,
    listed in order of its first rank; ``device_id`` is the device's ordinal inside its node
    and ``super_device_id`` the A3 hardware id computed from the topology
    (:func:`super_device_id`).  Addresses cannot be known from a topology: node ``i`` (its
    ordinal among the plan's nodes) gets ``server_ip_base + i + 1`` as ``server_id`` and
    device ``k`` (ordinal in the plan's device table) gets ``device_ip_base + k + 1``.  One
    super pod, ``"0"``, holds every server.
    """

    name = "hccl-rank-table"
    description = "HCCL rank table v1.2 JSON of the deployment's devices (placeholder addresses)"
    options: ClassVar[tuple[Option[Any], ...]] = (TABLE_ROLES, TABLE_INSTANCE, UNIT,
                                                   SERVER_IP_BASE, DEVICE_IP_BASE)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        units = _units(plan.devices, "npu" if ctx.value(UNIT) == "npu" else "path")
        ranked = _ranked(plan, ctx.value(TABLE_ROLES), ctx.value(TABLE_INSTANCE),
                         ctx.value(UNIT) == "npu")
        server_base = ctx.value(SERVER_IP_BASE)
        device_base = ctx.value(DEVICE_IP_BASE)
        servers: dict[str, list[dict[str, str]]] = {}
        slot: dict[str, int] = {}
        for rank, u in enumerate(ranked):
            unit = units[u]
            slot[unit.node] = unit.server
            servers.setdefault(unit.node, []).append({
                "device_id": str(unit.local),
                "device_ip": _address(device_base, unit.ordinal + 1, "device_ip_base"),
                "super_device_id": str(super_device_id(unit.server, unit.npu, unit.die,
                                                       unit.local)),
                "rank_id": str(rank),
            })
        server_ids = {node: _address(server_base, slot[node] + 1, "server_ip_base")
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


def _table_roles(plan: PlanDocument, wanted: str) -> list[str]:
    """The roles ``-O role=`` names (``all``: every role, in the order the deployment names
    them = order of their first device in the table); E026 for a role the plan lacks."""
    plan_roles = list(dict.fromkeys(d.role for d in plan.devices
                                    if d.role is not None and d.role in plan.roles))
    plan_roles += [r for r in plan.roles if r not in plan_roles]
    roles = plan_roles if wanted == "all" else [r.strip() for r in wanted.split(",")]
    for r in roles:
        if r not in plan.roles:
            raise emit_error(f"the plan has no role '{r}' (roles: {', '.join(plan_roles)})")
    return roles


def _ranked(plan: PlanDocument, wanted: str, instance: int | None, by_npu: bool) -> list[str]:
    """The rank-table devices (NPU names or EP device paths) of the chosen roles and
    instances, each once, in rank order."""
    by_path = {d.path: d for d in plan.devices}
    ranked: dict[str, None] = {}
    for r in _table_roles(plan, wanted):
        instances = plan.roles[r].instance_devices
        if instance is not None and instance >= len(instances):
            raise emit_error(f"role '{r}' has {len(instances)} instance(s); there is no "
                             f"instance {instance}")
        for devices in (instances if instance is None else (instances[instance],)):
            for path in devices:
                if path not in by_path:
                    raise emit_error(f"device '{path}' of role '{r}' is not in the plan's "
                                     "device table")
                ranked.setdefault(by_path[path].npu if by_npu else path)
    return list(ranked)


EMITTERS: tuple[type[Emitter], ...] = (
    SglangExpertLocationEmitter,
    SglangRankCostEmitter,
    VllmAscendExpertMapEmitter,
    HcclRankTableEmitter,
)
