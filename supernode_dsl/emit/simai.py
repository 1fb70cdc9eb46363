"""``simai-topology``: the topology file of SimAI's ns-3 back end.

Consumer: SimAI (repo ``aliyun/SimAI``, commit ``cef83f9ddd96``), file
``astra-sim-alibabacloud/astra-sim/network_frontend/ns3/common.h``, ``SetupNetwork()``
(l.694-727): ``node_num gpus_per_server nvswitch_num switch_num link_num gpu_type`` (l.701-702;
``gpu_type`` A100/A800/H100/H800, anything else ``GPUType::NONE``, l.705-714), then the
NVSwitch ids (node type 2, l.720-721), then the switch ids (type 1, l.726-727), then
``src dst <rate> <delay> <error_rate>`` per link.  As SimAI's own generator
(``inputs/topo/gen_Topo_Template.py``) numbers them: GPUs ``0..g-1``, NVSwitches next, the other
switches last, and there is no NIC or CPU node: a NIC is folded into its GPU-switch link.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.options import Option, choice_option
from supernode_dsl.emit.simulators import (
    PLANES,
    UNIT,
    Bundle,
    bundles,
    check_routes,
    export_planes,
    ns3_delay,
    ns3_rate,
    numbered,
)
from supernode_dsl.graph import ancestor, npu_units, ordered_nodes, unit_owner
from supernode_dsl.graph.devices import scale_up_plane
from supernode_dsl.schema import EDGE_PLANE, NODE_CATEGORY, NODE_TYPE

__all__ = ["EMITTERS", "SimaiTopologyEmitter"]

#: SimAI writes what it cannot route with a warning by default: SimAI routes the pairs it can
#: (its BFS skips the others), and every shipped machine must have a file.
UNROUTABLE = choice_option("unroutable", "NPU pairs SimAI cannot route: warn (write the file, "
                           "warn naming them), or error (refuse)", ("warn", "error"))

#: The GPU types SimAI knows (common.h l.705-714); any other text reads as GPUType::NONE.
SIMAI_GPU_TYPES = ("A100", "A800", "H100", "H800")


def gpu_type(g: nx.Graph, npu: str) -> str:
    """SimAI's ``gpu_type`` for the NPU type of ``npu``: the known name it contains, else the
    type name as one token (SimAI reads it as ``GPUType::NONE``)."""
    declared = str(g.nodes[npu].get(NODE_TYPE, "") or "NONE")
    known = [t for t in SIMAI_GPU_TYPES if t in declared.upper()]
    return known[0] if known else "".join(c if c.isalnum() or c in "_.-" else "_"
                                          for c in declared)


def gpus_per_server(g: nx.Graph, units: list[str]) -> int:
    """The number of NPUs in every ``node`` instance (SimAI's server); E026 when an NPU lies
    in no node or the nodes hold different numbers."""
    count: dict[str, int] = {}
    for unit in units:
        server = ancestor(g, unit, "node")
        if server is None:
            raise emit_error(f"SimAI groups GPUs by server: NPU '{unit}' lies in no node")
        count[server] = count.get(server, 0) + 1
    sizes = sorted(set(count.values()))
    if len(sizes) != 1:
        raise emit_error(f"SimAI takes one gpus_per_server: the nodes hold {sizes} NPUs")
    return sizes[0]


def fold_nics(g: nx.Graph, found: list[Bundle], owner: Mapping[str, str]) -> list[Bundle]:
    """``found`` with every NIC replaced by one NPU-switch link per switch it reaches (rate:
    the smaller of the two sides, delay: their sum), as SimAI's generator writes it.  E026
    for a NIC that is not between exactly one NPU and switches."""
    sides: dict[str, list[tuple[str, Bundle]]] = {}
    out: list[Bundle] = []
    for b in found:
        nics = [n for n in (b.a, b.b) if g.nodes[n].get(NODE_CATEGORY) == "nic"]
        if len(nics) == 2:
            raise emit_error(f"SimAI has no NIC nodes: NICs '{b.a}' and '{b.b}' are linked")
        if nics:
            sides.setdefault(nics[0], []).append((b.b if nics[0] == b.a else b.a, b))
        else:
            out.append(b)
    for nic, ends in sides.items():
        npus = [(n, b) for n, b in ends if n in owner]
        if len(npus) != 1:
            raise emit_error(f"SimAI folds a NIC into one GPU-switch link: NIC '{nic}' serves "
                             f"{len(npus)} NPUs")
        npu, first = npus[0]
        out.extend(Bundle(npu, sw, min(first.bandwidth, b.bandwidth),
                          first.latency + b.latency) for sw, b in ends if sw != npu)
    return out


class SimaiTopologyEmitter(Emitter):
    """SimAI's topology file (see the module docstring): NPUs (``unit``) are the GPUs, ids
    ``0..n-1`` in instance order; the switches with a link on the scale-up plane are the
    NVSwitches, the other switches follow, both in instance order; NICs are folded into their
    NPU-switch links; CPUs and other endpoints are dropped.  ``gpus_per_server`` = NPUs per
    ``node`` instance; ``gpu_type`` from the NPU's type.  E026 for what SimAI's model cannot
    express (NPUs not in equal servers, a NIC shared by NPUs or linked to a NIC).  When
    SimAI's routing (only switches and NVSwitches forward) leaves NPU pairs without a route
    (a direct torus, servers joined only through their GPUs) the file is written and an
    :class:`~supernode_dsl.emit.simulators.UnroutableWarning` counts and names them
    (``-O unroutable=error``: refuse instead)."""

    name = "simai-topology"
    description = "SimAI ns-3 topology file (6-field header, NVSwitches first, NICs folded)"
    options: ClassVar[tuple[Option[Any], ...]] = (UNIT, PLANES, UNROUTABLE)
    suffix = ".txt"

    def emit(self, ctx: EmitContext) -> str:
        g = ctx.graph
        units = npu_units(g, ctx.value(UNIT))
        owner = unit_owner(g, units)
        planes = export_planes(ctx, [])
        found = fold_nics(g, bundles(g, owner, planes), owner)
        up = scale_up_plane(g)
        nvswitches = _switches_on(g, up.plane if up else "", planes)
        used = {n for b in found for n in (b.a, b.b)}
        unit_set = set(units)
        nvs = [v for v in ordered_nodes(g) if v in used and v in nvswitches]
        others = [v for v in ordered_nodes(g)
                  if v in used and v not in unit_set and v not in nvswitches]
        ids = {v: i for i, v in enumerate([*units, *nvs, *others])}
        rows = numbered(found, ids)
        forwarders = [ids[v] for v in [*nvs, *others]]
        check_routes(ctx, ids, len(units), forwarders, [(r[0], r[1]) for r in rows], planes,
                     "SimAI", UNROUTABLE)
        head = (f"{len(ids)} {gpus_per_server(g, units)} {len(nvs)} {len(others)} "
                f"{len(rows)} {gpu_type(g, units[0])}")
        lines = [head, " ".join(map(str, forwarders)),
                 *(f"{a} {b} {ns3_rate(bw)} {ns3_delay(lat)} 0" for a, b, bw, lat in rows)]
        return "\n".join(lines) + "\n"


def _switches_on(g: nx.Graph, plane: str, planes: list[str]) -> set[str]:
    """The switches with a link on ``plane`` (when it is exported): SimAI's NVSwitches."""
    if plane not in planes:
        return set()
    return {n for u, v, d in g.edges(data=True) if d.get(EDGE_PLANE) == plane
            for n in (u, v) if g.nodes[n].get(NODE_CATEGORY) == "switch"}


EMITTERS: tuple[type[Emitter], ...] = (SimaiTopologyEmitter,)
