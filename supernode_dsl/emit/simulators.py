"""Emitters for network simulators: the ASTRA-sim 2.x bundle and the ns-3 edge list.

* ``astra-network``: ASTRA-sim's analytical ``network.yml`` (one entry per dimension);
* ``astra-system``: ``system.json`` with one collective implementation per dimension;
* ``astra-comm-group``: ``comm_group.json``, one communicator per deployment role instance
  (needs ``--plan``);
* ``ns3-topology``: the topology file of ASTRA-sim's ns-3 back end (hosts = NPUs, the
  scale-up plane by default; refuses what ns-3 cannot route);
* ``ns3-logical-dims``: the ``logical-dims`` JSON that ASTRA-sim's ns-3 front end reads.

SimAI's own topology format is :mod:`supernode_dsl.emit.simai`.

**NPUs.** ASTRA-sim's NPU ids are the *units* in instance order, numbered from 0: with
``-O unit=accelerator`` (the default) every ``accelerator`` instance; with ``-O unit=die``
every ``die``, and every accelerator that has no die (the planner's notion of an EP device).
Everything inside a unit (its dies, with ``unit=accelerator``) is folded into it.

**The symmetric-dimension collapse** (:func:`supernode_dsl.graph.collapse`): see
``docs/emitters-simulators.md``.
Where it loses information the output says so in a comment at its top and the same text is
issued once as a :class:`TopologyApproximationWarning` through :func:`warnings.warn` (shown on
standard error by the default warning filters).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import networkx as nx

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.jsontext import document_json
from supernode_dsl.emit.options import Option, choice_option, int_option, names_option
from supernode_dsl.emit.templates import render
from supernode_dsl.emit.yamltext import yaml_text
from supernode_dsl.graph import (
    UNIT_CHOICES,
    Collapse,
    Dimension,
    collapse,
    graph_planes,
    npu_units,
    ordered_nodes,
    unit_owner,
    unroutable_pairs,
)
from supernode_dsl.graph.devices import device_attrs, scale_up_plane
from supernode_dsl.graph.instances import traversal_latency
from supernode_dsl.schema import (
    EDGE_BANDWIDTH,
    EDGE_LATENCY,
    EDGE_PLANE,
    ENDPOINT_EXCLUDED,
    NODE_CATEGORY,
    NODE_INDEX,
)

__all__ = [
    "EMITTERS",
    "UNIT",
    "AstraCommGroupEmitter",
    "AstraNetworkEmitter",
    "AstraSystemEmitter",
    "Bundle",
    "Collapse",
    "Dimension",
    "Ns3LogicalDimsEmitter",
    "Ns3TopologyEmitter",
    "TopologyApproximationWarning",
    "UnroutableWarning",
    "ZeroLatencyWarning",
    "bundles",
    "check_routes",
    "collapse",
    "export_planes",
    "forwarding",
    "network_yml",
    "npu_units",
    "ns3_delay",
    "ns3_rate",
    "numbered",
    "role_instance_npus",
    "system_json",
    "unit_owner",
    "yaml_text",
]

UNIT = choice_option("unit", "NPU granularity: accelerator, or die (the dies of multi-die "
                     "accelerators)", UNIT_CHOICES)
SCHEDULING_POLICY = choice_option("scheduling_policy", "scheduling-policy", ("LIFO", "FIFO"))
#: 2 as in ASTRA-sim's validated system file (astra-sim c459ab6
#: examples/system/native_collectives/HGX-H100-validated.json:4): with 1 the dataset splits of
#: a collective run one after another and the congestion-aware back end doubles a Switch
#: all-reduce against the ring formula (docs/emitters-simulators.md).
ACTIVE_CHUNKS = int_option("active_chunks", "active-chunks-per-dimension", 2, minimum=1)
DATASET_SPLITS = int_option("dataset_splits", "preferred-dataset-splits", 4, minimum=1)
COLLECTIVE_OPTIMIZATION = choice_option("collective_optimization", "collective-optimization",
                                        ("localBWAware", "baseline"))
PLANES = names_option("plane", "comma-separated planes to include (default: every plane)")
NS3_PLANES = names_option("plane", "comma-separated planes to include (default: the scale-up "
                          "plane)")
UNROUTABLE = choice_option("unroutable", "NPU pairs ns-3 cannot route: error (refuse), or warn "
                           "(write the file, warn)", ("error", "warn"))
_GB = 1e9
#: ASTRA-sim's analytical network reads ``bandwidth`` in GiB/s although it names it GB/s:
#: ``bw_GBps * (1 << 30) / (1'000'000'000)``, "1 GB is 2^30 B" (astra-network-analytical
#: 599a047, pinned by astra-sim c459ab6: common/NetworkFunction.cpp:14-16, used by
#: congestion_unaware/basic-topology/BasicTopology.cpp:29 and congestion_aware/network/Link.cpp:49).
#: system.json's ``local-mem-bw`` is decimal GB/s (``* 1000000000``, astra-sim/system/Sys.cc:474).
_ASTRA_NETWORK_GB = float(1 << 30)


class TopologyApproximationWarning(UserWarning):
    """The graph does not collapse exactly into symmetric ASTRA-sim dimensions."""


def _collapse_for(ctx: EmitContext) -> Collapse:
    result = collapse(ctx.graph, ctx.value(UNIT))
    for line in result.lost:
        warnings.warn(f"{ctx.source or 'graph'}: {line}", TopologyApproximationWarning,
                      stacklevel=3)
    return result


def _header(ctx: EmitContext, what: str, result: Collapse) -> list[str]:
    lines = [f"{what} generated by cmx from {ctx.source or ctx.graph.graph.get('name', '')}",
             f"{len(result.units)} NPUs ({ctx.value(UNIT)}s), "
             "NPU id = position in instance order", *result.notes]
    if result.lost:
        lines += ["WARNING: approximation; what is lost:", *(f"  - {x}" for x in result.lost)]
    else:
        lines.append("exact: the graph collapses into these dimensions without loss")
    return lines


# ---- emitters --------------------------------------------------------------------------------

class AstraNetworkEmitter(Emitter):
    """ASTRA-sim 2.x analytical ``network.yml``: ``topology``, ``npus_count``, ``bandwidth``
    (GiB/s, the unit ASTRA-sim reads: see ``_ASTRA_NETWORK_GB``) and ``latency`` (ns), one
    entry per dimension of :func:`collapse`.  The product of
    ``npus_count`` is the number of NPUs when the graph is connected and symmetric;
    otherwise the header comment lists what the approximation loses and the same lines are
    issued as :class:`TopologyApproximationWarning`."""

    name = "astra-network"
    description = "ASTRA-sim analytical network.yml (graph collapsed into symmetric dims)"
    options: ClassVar[tuple[Option[Any], ...]] = (UNIT,)
    suffix = ".yml"

    def emit(self, ctx: EmitContext) -> str:
        result = _collapse_for(ctx)
        return network_yml(ctx, result.dimensions, _header(ctx, "ASTRA-sim network.yml",
                                                            result))


def network_yml(ctx: EmitContext, dims: Sequence[Dimension], header: list[str]) -> str:
    """``network.yml`` of ``dims`` (bandwidth converted to GiB/s) under the comment lines
    ``header``; a :class:`ZeroLatencyWarning` for dimensions of latency 0."""
    data = {
        "topology": [d.topology for d in dims],
        "npus_count": [d.npus for d in dims],
        "bandwidth": [_astra_bandwidth(d.bandwidth) for d in dims],
        "latency": [d.latency for d in dims],
    }
    _warn_zero_latency(ctx, "dimension(s)", sum(1 for d in dims if d.latency == 0))
    lines = [*header,
             "units: bandwidth GiB/s (2^30 B/s, which ASTRA-sim calls GB/s), latency ns"]
    return yaml_text(data, lines)


class ZeroLatencyWarning(UserWarning):
    """Links written with a latency of 0: their statements declare no ``latency``."""


def _warn_zero_latency(ctx: EmitContext, what: str, count: int) -> None:
    """Say that ``count`` ``what`` reach the simulator with latency 0 (a link statement
    without ``latency = ...`` gets 0 s): the simulator then models them as instantaneous."""
    if count:
        warnings.warn(f"{ctx.source or 'graph'}: {count} {what} written with latency 0: "
                      "their link statements declare no latency (give them "
                      "`latency = ...`)", ZeroLatencyWarning, stacklevel=2)


def _astra_bandwidth(gb_per_s: float) -> float:
    """Decimal GB/s (a :class:`Dimension`'s unit) in the GiB/s ASTRA-sim's network reads."""
    return round(gb_per_s * _GB / _ASTRA_NETWORK_GB, 6)


_IMPL = {"Ring": ("ring", "ring"), "FullyConnected": ("direct", "direct"),
         "Switch": ("ring", "direct")}


class AstraSystemEmitter(Emitter):
    """ASTRA-sim 2.x ``system.json``: one collective implementation per dimension of
    ``astra-network`` (Ring: ring; FullyConnected: direct; Switch: ring for all-reduce,
    all-gather and reduce-scatter, direct for all-to-all), ASTRA-sim's usual defaults for the
    rest, and ``local-mem-bw`` (GB/s) and ``peak-perf`` (TFLOPS, bf16) from the first NPU
    when the graph gives them."""

    name = "astra-system"
    description = "ASTRA-sim system.json, one collective implementation per network dimension"
    options: ClassVar[tuple[Option[Any], ...]] = (UNIT, SCHEDULING_POLICY, ACTIVE_CHUNKS,
                                                   DATASET_SPLITS, COLLECTIVE_OPTIMIZATION)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        result = _collapse_for(ctx)
        return system_json(ctx, result.dimensions, result.units[0])


def system_json(ctx: EmitContext, dims: Sequence[Dimension], first: str) -> str:
    """``system.json`` for a network of ``dims`` (``astra-system``'s options read from
    ``ctx``), with the memory bandwidth and peak of the NPU ``first``."""
    ar = [_IMPL[d.topology][0] for d in dims]
    a2a = [_IMPL[d.topology][1] for d in dims]
    data: dict[str, Any] = {
        "scheduling-policy": ctx.value(SCHEDULING_POLICY),
        "endpoint-delay": 10,
        "active-chunks-per-dimension": ctx.value(ACTIVE_CHUNKS),
        "preferred-dataset-splits": ctx.value(DATASET_SPLITS),
        "all-reduce-implementation": ar,
        "all-gather-implementation": ar,
        "reduce-scatter-implementation": ar,
        "all-to-all-implementation": a2a,
        "collective-optimization": ctx.value(COLLECTIVE_OPTIMIZATION),
        "local-reduction-delay": 1,
        "boost-mode": 0,
        "roofline-enabled": 0,
    }
    facts = device_attrs(ctx.graph, first)  # inherited facts too
    if "hbm_bw" in facts:
        data["local-mem-bw"] = round(float(facts["hbm_bw"]) / _GB, 6)
    if "compute.bf16" in facts:
        data["peak-perf"] = round(float(facts["compute.bf16"]) / 1e12, 6)
    return document_json(data)




class AstraCommGroupEmitter(Emitter):
    """ASTRA-sim ``comm_group.json`` ``{"1": [npu ids], ...}``: one group per instance of
    every role of the plan (roles in the plan's order, instances in order, keys from 1: ASTRA-sim
    reserves 0 for collectives without a group, ``CommunicatorGroup::set_id`` asserts
    ``id > 0``, astra-sim c459ab6 astra-sim/system/CommunicatorGroup.cc:32), each the sorted
    NPU ids (positions in instance order, as ``astra-network``) of the instance's EP
    devices.  With ``unit=accelerator`` a die device counts as its accelerator.  Needs
    ``--plan``; E026 when a plan device is not in the graph."""

    name = "astra-comm-group"
    description = "ASTRA-sim comm_group.json: one communicator per plan role instance (--plan)"
    options: ClassVar[tuple[Option[Any], ...]] = (UNIT,)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        groups = {str(k + 1): sorted(set(ids)) for k, (_, _, ids) in
                  enumerate(role_instance_npus(ctx))}
        return json.dumps(groups, indent=2) + "\n"


def role_instance_npus(ctx: EmitContext) -> list[tuple[str, int, list[int]]]:
    """``(role, instance, NPU id of each device)`` for every instance of every role of the
    plan (roles in the plan's order, instances in order, devices in the instance's rank
    order; NPU ids as ``astra-network`` numbers the ``-O unit`` units).  E026 without a
    plan, for a plan device that is not in the graph, and for a plan without instances."""
    plan = ctx.require_plan("astra-comm-group")
    units = npu_units(ctx.graph, ctx.value(UNIT))
    uid = {u: i for i, u in enumerate(units)}
    owner = unit_owner(ctx.graph, units)
    out: list[tuple[str, int, list[int]]] = []
    for role, body in plan.roles.items():
        for number, devices in enumerate(body.instance_devices):
            ids: list[int] = []
            for dev in devices:
                if dev not in ctx.graph:
                    raise emit_error(f"plan device '{dev}' ({role}) is not in the graph: "
                                     "was the plan made for this topology?")
                unit = owner.get(dev) or _unit_inside(ctx.graph, dev, uid)
                if unit is None:
                    raise emit_error(f"plan device '{dev}' is not an NPU of the graph")
                ids.append(uid[unit])
            out.append((role, number, ids))
    if not out:
        raise emit_error("the plan has no role instance")
    return out


def _unit_inside(g: nx.Graph, dev: str, uid: Mapping[str, int]) -> str | None:
    """The first unit inside ``dev`` (a device that is an accelerator while units are dies
    would be split; the planner never does that, so the first is enough)."""
    below = unit_owner(g, [dev])  # dev and every instance inside it
    return next((n for n in ordered_nodes(g) if n in uid and n != dev and n in below), None)


def ns3_rate(bandwidth: float) -> str:
    gbps = bandwidth * 8 / 1e9
    if abs(gbps - round(gbps)) < 1e-6:
        return f"{round(gbps)}Gbps"
    return f"{gbps:.6f}".rstrip("0").rstrip(".") + "Gbps"


def ns3_delay(latency: float) -> str:
    text = f"{latency * 1e3:.9f}".rstrip("0").rstrip(".")
    return f"{text or '0'}ms"


@dataclass(frozen=True)
class Bundle:
    """The links between two nodes of an export, merged: ``bandwidth`` (B/s, one way) is
    their sum, ``latency`` (s) the smallest."""

    a: str
    b: str
    bandwidth: float
    latency: float


def forwarding(g: nx.Graph, node: str) -> bool:
    """Whether ``node`` forwards traffic in ns-3's model (a switch or a NIC)."""
    return g.nodes[node].get(NODE_CATEGORY) in ENDPOINT_EXCLUDED


def export_planes(ctx: EmitContext, default: list[str]) -> list[str]:
    """The planes ``-O plane=`` names (``default`` when not given); E026 for an unknown one."""
    planes = graph_planes(ctx.graph)
    given = ctx.value(PLANES)
    chosen = list(given) if given else (default or planes)
    unknown = [p for p in chosen if p not in planes]
    if unknown:
        raise emit_error(f"unknown plane '{unknown[0]}' (planes: {', '.join(planes)})")
    return chosen


def bundles(g: nx.Graph, owner: Mapping[str, str], planes: list[str]) -> list[Bundle]:
    """The links of ``planes`` between NPUs (``owner``: node -> its NPU) and forwarding
    nodes, merged per pair of ends, in instance order of the ends (a link to a switch carries
    half the switch's traversal latency).  Links inside one NPU,
    links to any other node (CPUs, memory) and links of a NIC that no NPU links to (a DPU or
    a CPU's NIC: it would forward between switches) are dropped: ns-3 models only hosts (the
    NPUs) and the switches between them."""
    wanted = set(planes)
    merged: dict[tuple[str, str], tuple[float, float]] = {}
    for u, v, d in g.edges(data=True):
        if d.get(EDGE_PLANE) not in wanted:
            continue
        x, y = owner.get(u, u), owner.get(v, v)
        if x == y or not all(n in owner or forwarding(g, n) for n in (x, y)):
            continue
        key = (x, y) if g.nodes[x][NODE_INDEX] <= g.nodes[y][NODE_INDEX] else (y, x)
        bw, lat = float(d.get(EDGE_BANDWIDTH, 0.0)), float(d.get(EDGE_LATENCY, 0.0) or 0.0)
        # half of a switch's traversal latency on each of its links: a path through it pays
        # the whole, as the compiler's path latency counts it
        lat += sum(traversal_latency(g.nodes[n]) for n in (x, y)) / 2
        old = merged.get(key)
        merged[key] = (bw, lat) if old is None else (old[0] + bw, min(old[1], lat))
    attached = {n for pair in merged for n in pair if any(m in owner for m in pair)}
    return [Bundle(a, b, bw, lat) for (a, b), (bw, lat) in merged.items()
            if all(n in owner or n in attached or _is_switch(g, n) for n in (a, b))]


def _is_switch(g: nx.Graph, node: str) -> bool:
    return bool(g.nodes[node].get(NODE_CATEGORY) == "switch")


Row = tuple[int, int, float, float]


def numbered(found: list[Bundle], ids: Mapping[str, int]) -> list[Row]:
    """``(src, dst, bandwidth, latency)`` per bundle, ``src < dst`` by ``ids``, sorted."""
    return sorted((min(ids[b.a], ids[b.b]), max(ids[b.a], ids[b.b]), b.bandwidth, b.latency)
                  for b in found)


def check_routes(ctx: EmitContext, ids: Mapping[str, int], npus: int, switches: list[int],
                 links: list[tuple[int, int]], planes: list[str], consumer: str,
                 option: Option[str] = UNROUTABLE) -> None:
    """E026 (or, with ``option`` = ``warn``, a :class:`UnroutableWarning`) when the BFS of
    ns-3 (:func:`~supernode_dsl.graph.routing.unroutable_pairs`, switches forwarding) finds
    no route between some NPUs ``0..npus-1``; the message counts them and names the first."""
    bad = unroutable_pairs(range(npus), switches, links)
    if not bad:
        return
    name = {i: n for n, i in ids.items()}
    first = ", ".join(f"{a} ({name[a]}) -> {b} ({name[b]})" for a, b in bad[:3])
    message = (f"{consumer} cannot route {len(bad)} of {npus * (npus - 1)} NPU pairs on "
               f"plane(s) {', '.join(planes)}: only switches forward, so NPUs "
               f"joined directly or through other NPUs have no route; first: {first}; choose "
               f"planes that join every NPU through switches (-O plane=...)"
               + ("" if option.default == "warn" else ", or write it anyway with "
                  "-O unroutable=warn"))
    if ctx.value(option) == "error":
        raise emit_error(message)
    warnings.warn(f"{ctx.source or 'graph'}: {message}", UnroutableWarning, stacklevel=3)


class UnroutableWarning(UserWarning):
    """ns-3 would have no route between some NPUs of the export (``-O unroutable=warn``)."""


class Ns3TopologyEmitter(Emitter):
    """The topology file of ASTRA-sim's ns-3 back end (``scratch/common.h`` of
    astra-sim/astra-network-ns3 ``8fd360471385``, ``SetupNetwork`` l.559): line 1
    ``total_nodes switch_nodes links``, line 2 the switch node ids, then one
    ``src dst <rate>Gbps <delay>ms 0`` line per link bundle.  Only NPUs (``unit``) are hosts:
    ids 0..n-1 in instance order; switches and NICs (they forward) follow in instance order
    and are listed as switch nodes; CPUs and other endpoints are dropped with their links.
    The planes are ``-O plane=`` (default: the scale-up plane, so traffic does not mix
    planes).  Bundles between the same two ids (dies folded into their accelerator) are
    merged: rate = sum of their bandwidths, delay = the smallest latency; links inside one
    NPU are dropped.  E026 when ns-3's routing (hosts do not forward) leaves NPU pairs
    without a route, naming them (``-O unroutable=warn``: a warning instead)."""

    name = "ns3-topology"
    description = "ASTRA-sim ns-3 back end topology file (hosts = NPUs; scale-up plane)"
    options: ClassVar[tuple[Option[Any], ...]] = (UNIT, NS3_PLANES, UNROUTABLE)
    suffix = ".txt"

    def emit(self, ctx: EmitContext) -> str:
        g = ctx.graph
        units = npu_units(g, ctx.value(UNIT))
        up = scale_up_plane(g)
        planes = export_planes(ctx, [up.plane] if up else [])
        found = bundles(g, unit_owner(g, units), planes)
        unit_set = set(units)
        used = {n for b in found for n in (b.a, b.b)}
        others = [v for v in ordered_nodes(g) if v in used and v not in unit_set]
        ids = {v: i for i, v in enumerate([*units, *others])}
        rows = numbered(found, ids)
        switches = [ids[v] for v in others]
        check_routes(ctx, ids, len(units), switches, [(r[0], r[1]) for r in rows],
                     planes, "ASTRA-sim's ns-3 back end")
        _warn_zero_latency(ctx, "link bundle(s)", sum(1 for *_, lat in rows if lat == 0))
        return render(
            "ns3/topology.txt.j2",
            total=len(ids), switches=switches,
            links=[{"src": a, "dst": b, "rate": ns3_rate(bw), "delay": ns3_delay(lat)}
                   for a, b, bw, lat in rows],
            error_rate="0",
        )


class Ns3LogicalDimsEmitter(Emitter):
    """The ``logical-dims`` JSON of ASTRA-sim's ns-3 front end
    (``--logical-topology-configuration``; ``read_logical_topo_config`` in
    ``astra-sim/network_frontend/ns3/AstraSimNetwork.cc`` of ASTRA-sim ``c459ab6``, l.205-233:
    a list of strings read with ``stoi``, whose product is the number of NPUs, hosts
    ``0..n-1``): ``{"logical-dims": ["8", "16"]}``, the ``npus_count`` of ``astra-network``
    so that ``astra-system``'s ``system.json`` has one entry per logical dimension.  E026 when
    those do not multiply out to the NPUs of ``ns3-topology``."""

    name = "ns3-logical-dims"
    description = "ASTRA-sim ns-3 logical-dims JSON (the astra-network dimensions)"
    options: ClassVar[tuple[Option[Any], ...]] = (UNIT,)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        result = _collapse_for(ctx)
        dims = [d.npus for d in result.dimensions]
        if math.prod(dims) != len(result.units):
            raise emit_error(f"the dimensions {dims} do not multiply out to the "
                             f"{len(result.units)} NPUs: ASTRA-sim would use the wrong hosts")
        return json.dumps({"logical-dims": [str(n) for n in dims]}) + "\n"


EMITTERS: tuple[type[Emitter], ...] = (
    AstraNetworkEmitter,
    AstraSystemEmitter,
    AstraCommGroupEmitter,
    Ns3TopologyEmitter,
    Ns3LogicalDimsEmitter,
)
