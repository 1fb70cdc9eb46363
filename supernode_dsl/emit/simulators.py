"""Emitters for network simulators: the ASTRA-sim 2.x bundle and the ns-3 edge list.

* ``astra-network``: ASTRA-sim's analytical ``network.yml`` (one entry per dimension);
* ``astra-system``: ``system.json`` with one collective implementation per dimension;
* ``astra-comm-group``: ``comm_group.json``, one communicator per deployment role instance
  (needs ``--plan``);
* ``ns3-topology``: the edge list of the ASTRA-sim ns-3 back end and SimAI, for any graph.

**NPUs.** ASTRA-sim's NPU ids are the *units* in instance order, numbered from 0: with
``-O unit=accelerator`` (the default) every ``accelerator`` instance; with ``-O unit=die``
every ``die``, and every accelerator that has no die (the planner's notion of an EP device).
Everything inside a unit (its dies, with ``unit=accelerator``) is folded into it.

**The symmetric-dimension collapse** (:func:`collapse`): see ``docs/emitters-simulators.md``.
Where it loses information the output says so in a comment at its top and the same text is
issued once as a :class:`TopologyApproximationWarning` through :func:`warnings.warn` (shown on
standard error by the default warning filters).
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.graphutil import UnionFind, graph_planes, ordered_nodes, unit_owner
from supernode_dsl.emit.jsontext import document_json
from supernode_dsl.emit.templates import render
from supernode_dsl.emit.yamltext import yaml_text
from supernode_dsl.schema import (
    EDGE_BANDWIDTH,
    EDGE_LATENCY,
    EDGE_PLANE,
    ENDPOINT_EXCLUDED,
    NODE_CATEGORY,
    NODE_INDEX,
    NODE_PARENT,
)

__all__ = [
    "EMITTERS",
    "AstraCommGroupEmitter",
    "AstraNetworkEmitter",
    "AstraSystemEmitter",
    "Collapse",
    "Dimension",
    "Ns3TopologyEmitter",
    "TopologyApproximationWarning",
    "collapse",
    "npu_units",
    "unit_owner",
    "yaml_text",
]

UNIT_CHOICES = ("accelerator", "die")
_UNIT_HELP = "NPU granularity: accelerator (default) or die (dies of multi-die accelerators)"
_GB = 1e9


class TopologyApproximationWarning(UserWarning):
    """The graph does not collapse exactly into symmetric ASTRA-sim dimensions."""


# ---- NPU units -------------------------------------------------------------------------------

def npu_units(g: nx.Graph, unit: str) -> list[str]:
    """The NPUs of ``g`` in instance order: accelerators (``unit='accelerator'``, falling back
    to dies when there is no accelerator) or dies plus the accelerators without a die
    (``unit='die'``).  E026 for an unknown ``unit`` or a graph with neither."""
    if unit not in UNIT_CHOICES:
        raise emit_error(f"unknown unit '{unit}' (choices: {', '.join(UNIT_CHOICES)})")
    nodes = ordered_nodes(g)
    accs = [n for n in nodes if g.nodes[n].get(NODE_CATEGORY) == "accelerator"]
    dies = [n for n in nodes if g.nodes[n].get(NODE_CATEGORY) == "die"]
    if not accs and not dies:
        raise emit_error("the graph has no accelerator or die instance to simulate")
    if unit == "accelerator":
        return accs or dies
    with_dies: set[str] = set()
    for d in dies:
        p = g.nodes[d].get(NODE_PARENT, "")
        while p and p in g:
            with_dies.add(p)
            p = g.nodes[p].get(NODE_PARENT, "")
    return [n for n in nodes if n in set(dies) or (n in set(accs) and n not in with_dies)]


# ---- the symmetric-dimension collapse ------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """One ASTRA-sim dimension: ``topology`` (Ring, FullyConnected or Switch), ``npus``,
    ``bandwidth`` (GB/s: per NPU for Switch, per neighbour link for Ring and FullyConnected),
    ``latency`` (ns per link) and ``source`` (the plane, or plane and index direction)."""

    topology: str
    npus: int
    bandwidth: float
    latency: float
    source: str


@dataclass
class Collapse:
    """The result of :func:`collapse`: the units (NPU id = position), the dimensions, notes
    (how each plane was used) and ``lost`` (what the approximation loses; empty = exact)."""

    units: list[str]
    dimensions: list[Dimension]
    notes: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    label: str
    order: int
    switched: bool
    edges: list[tuple[str, str, float, float]]  # mapped ends, bandwidth B/s, latency s
    groups: list[list[int]] = field(default_factory=list)
    per_npu: dict[int, float] = field(default_factory=dict)





_INDEX = re.compile(r"\[(\d+)\]")


def _direction_classes(edges: list[tuple[str, str, float, float]]
                       ) -> list[tuple[str, list[tuple[str, str, float, float]]]]:
    """Split direct unit-to-unit edges into directions: an edge's key is the set of array
    index positions in which its two paths differ; keys sharing a position are merged
    (x-links inside a tray and x-links between trays form one direction)."""
    keys: list[frozenset[int]] = []
    for a, b, _, _ in edges:
        sa, sb = _INDEX.sub("[]", a), _INDEX.sub("[]", b)
        ia, ib = [int(x) for x in _INDEX.findall(a)], [int(x) for x in _INDEX.findall(b)]
        if sa != sb or len(ia) != len(ib):
            keys.append(frozenset({-1}))
        else:
            keys.append(frozenset(i for i, (x, y) in enumerate(zip(ia, ib, strict=True))
                                  if x != y) or frozenset({-1}))
    positions = sorted({p for k in keys for p in k})
    uf = UnionFind(len(positions))
    pos_id = {p: i for i, p in enumerate(positions)}
    for k in keys:
        first, *rest = sorted(k)
        for p in rest:
            uf.union(pos_id[first], pos_id[p])
    classes: dict[int, list[tuple[str, str, float, float]]] = {}
    names: dict[int, list[int]] = {}
    for k, e in zip(keys, edges, strict=True):
        root = uf.find(pos_id[min(k)])
        classes.setdefault(root, []).append(e)
        names.setdefault(root, sorted({positions[i] for i in range(len(positions))
                                       if uf.find(i) == root}))
    return [(",".join(str(p) for p in names[r]), classes[r]) for r in classes]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def collapse(g: nx.Graph, unit: str = "accelerator") -> Collapse:
    """Collapse ``g`` into symmetric ASTRA-sim dimensions (the rule of
    docs/emitters-simulators.md): every plane (a direct-link plane split into index
    directions) that joins NPUs is a candidate; candidates go innermost-first by bandwidth
    per NPU (highest first), then group size, then declaration order; each one that joins
    groups of the previous dimensions adds a dimension of ``npus`` = new group size / old.
    Deterministic; never raises for irregular graphs (``lost`` says what was approximated),
    E026 when no plane joins two NPUs."""
    units = npu_units(g, unit)
    uid = {u: i for i, u in enumerate(units)}
    owner = unit_owner(g, units)
    n = len(units)
    result = Collapse(units, [])
    cands: list[_Candidate] = []
    for plane in graph_planes(g):
        kept: list[tuple[str, str, float, float]] = []
        touches_unit = False
        for a, b, d in g.edges(data=True):
            if d.get(EDGE_PLANE) != plane:
                continue
            ends: list[str] = []
            for x in (a, b):
                if x in owner:
                    ends.append(owner[x])
                elif g.nodes[x].get(NODE_CATEGORY) in ENDPOINT_EXCLUDED:
                    ends.append(x)
            if len(ends) < 2:
                touches_unit = touches_unit or bool(ends and ends[0] in uid)
                continue
            if ends[0] == ends[1]:
                continue  # inside one unit
            touches_unit = touches_unit or ends[0] in uid or ends[1] in uid
            kept.append((ends[0], ends[1], float(d.get(EDGE_BANDWIDTH, 0.0)),
                         float(d.get(EDGE_LATENCY, 0.0) or 0.0)))
        if not any(a in uid or b in uid for a, b, _, _ in kept):
            if touches_unit:
                result.notes.append(f"plane {plane}: links NPUs to hosts only, not used")
            continue
        switched = any(a not in uid or b not in uid for a, b, _, _ in kept)
        if switched:
            cands.append(_Candidate(plane, len(cands), True, kept))
        else:
            split = _direction_classes(kept)
            for label, edges in split:
                name = plane if len(split) == 1 else f"{plane}/index {label}"
                cands.append(_Candidate(name, len(cands), False, edges))

    for c in cands:
        h = nx.Graph()
        h.add_nodes_from(units)
        for a, b, bw, _ in c.edges:
            h.add_edge(a, b)
            for x in (a, b):
                if x in uid:
                    c.per_npu[uid[x]] = c.per_npu.get(uid[x], 0.0) + bw
        c.groups = [sorted(uid[x] for x in comp if x in uid) for comp in nx.connected_components(h)]
        c.groups = sorted((gr for gr in c.groups if gr), key=lambda gr: gr[0])

    def key(c: _Candidate) -> tuple[float, int, int]:
        mean_bw = sum(c.per_npu.values()) / max(1, len(c.per_npu))
        return (-round(mean_bw, 3), _mode(len(gr) for gr in c.groups), c.order)

    uf = UnionFind(n)
    span = 1
    for c in sorted(cands, key=key):
        before = len(uf.groups())
        for gr in c.groups:
            for i in gr[1:]:
                uf.union(gr[0], i)
        groups = uf.groups()
        mean_bw = sum(c.per_npu.values()) / max(1, len(c.per_npu))
        if len(groups) == before:
            if any(len(gr) > 1 for gr in c.groups):
                result.lost.append(
                    f"plane {c.label} ({_fmt(mean_bw / _GB)} GB/s per NPU) runs parallel to "
                    "the dimensions above and is not represented")
            continue
        sizes = Counter(len(gr) for gr in groups)
        size = _mode(len(gr) for gr in groups)
        count = max(2, round(size / span))
        dim_no = len(result.dimensions) + 1
        if len(sizes) > 1 or size % span:
            result.lost.append(
                f"dimension {dim_no} ({c.label}): groups of "
                f"{', '.join(f'{s} NPUs x{k}' for s, k in sorted(sizes.items()))}; "
                f"npus_count {count} assumes {span * count}")
        topo, bw, lat = _shape(c, units, uid, dim_no, result.lost)
        result.dimensions.append(Dimension(topo, count, bw, lat, c.label))
        result.notes.append(f"dimension {dim_no}: {topo} of {count} from plane {c.label}")
        span *= count
    if not result.dimensions:
        raise emit_error("no plane joins two NPUs: nothing for a network simulator")
    final = uf.groups()
    if len(final) > 1:
        result.lost.append(f"the NPUs form {len(final)} disconnected groups; the dimensions "
                           f"describe one group of {span} of the {n} NPUs")
    elif span != n:
        result.lost.append(f"npus_count multiplies out to {span}, not to the {n} NPUs")
    return result


def _mode(values: Iterable[int]) -> int:
    counts = Counter(values)
    if not counts:
        return 1
    top = max(counts.values())
    return max(v for v, k in counts.items() if k == top)


def _spread(values: Sequence[float], what: str, label: str, lost: list[str]) -> float:
    lo, hi = min(values), max(values)
    mean = sum(values) / len(values)
    if hi - lo > 1e-9 * max(1.0, abs(hi)):
        lost.append(f"{label}: {what} varies from {_fmt(lo)} to {_fmt(hi)}; "
                    f"the mean {_fmt(mean)} is used")
    return mean


def _shape(c: _Candidate, units: list[str], uid: dict[str, int], dim_no: int,
           lost: list[str]) -> tuple[str, float, float]:
    label = f"dimension {dim_no} ({c.label})"
    if c.switched:
        members = [u for gr in c.groups if len(gr) > 1 for u in gr]
        bw = _spread([c.per_npu.get(u, 0.0) / _GB for u in members],
                     "bandwidth per NPU (GB/s)", label, lost)
        h = nx.Graph()
        for a, b, _, lat in c.edges:
            if not h.has_edge(a, b) or h[a][b]["latency"] > lat:
                h.add_edge(a, b, latency=lat)
        first = next(gr for gr in c.groups if len(gr) > 1)
        dist = nx.single_source_dijkstra_path_length(h, units[first[0]], weight="latency")
        peers = [dist[units[u]] for u in first[1:] if units[u] in dist]
        latency = sum(peers) / len(peers) / 2 * 1e9 if peers else 0.0
        return "Switch", round(bw, 6), round(latency, 3)
    pair_bw: dict[tuple[int, int], float] = {}
    for a, b, bw_e, _ in c.edges:
        k = (min(uid[a], uid[b]), max(uid[a], uid[b]))
        pair_bw[k] = pair_bw.get(k, 0.0) + bw_e
    degree = Counter(i for pair in pair_bw for i in pair)
    bw = _spread([v / _GB for v in pair_bw.values()], "bandwidth per link (GB/s)", label, lost)
    latency = sum(lat for *_, lat in c.edges) / len(c.edges) * 1e9
    multi = [gr for gr in c.groups if len(gr) > 1]
    if all(degree[u] == len(gr) - 1 for gr in multi for u in gr):
        return "FullyConnected", round(bw, 6), round(latency, 3)
    if not all(degree[u] == 2 for gr in multi for u in gr):
        lost.append(f"{label}: NPUs with {sorted(set(degree.values()))} neighbours, neither a "
                    "ring nor fully connected; written as a Ring")
    return "Ring", round(bw, 6), round(latency, 3)


def _collapse_for(ctx: EmitContext) -> Collapse:
    result = collapse(ctx.graph, ctx.option("unit", "accelerator"))
    for line in result.lost:
        warnings.warn(f"{ctx.source or 'graph'}: {line}", TopologyApproximationWarning,
                      stacklevel=3)
    return result


def _header(ctx: EmitContext, what: str, result: Collapse) -> list[str]:
    lines = [f"{what} generated by cmx from {ctx.source or ctx.graph.graph.get('name', '')}",
             f"{len(result.units)} NPUs ({ctx.option('unit', 'accelerator')}s), "
             "NPU id = position in instance order", *result.notes]
    if result.lost:
        lines += ["WARNING: approximation; what is lost:", *(f"  - {x}" for x in result.lost)]
    else:
        lines.append("exact: the graph collapses into these dimensions without loss")
    return lines


# ---- emitters --------------------------------------------------------------------------------

class AstraNetworkEmitter(Emitter):
    """ASTRA-sim 2.x analytical ``network.yml``: ``topology``, ``npus_count``, ``bandwidth``
    (GB/s) and ``latency`` (ns), one entry per dimension of :func:`collapse`.  The product of
    ``npus_count`` is the number of NPUs when the graph is connected and symmetric;
    otherwise the header comment lists what the approximation loses and the same lines are
    issued as :class:`TopologyApproximationWarning`."""

    name = "astra-network"
    description = "ASTRA-sim analytical network.yml (graph collapsed into symmetric dims)"
    options: ClassVar[Mapping[str, str]] = {"unit": _UNIT_HELP}
    suffix = ".yml"

    def emit(self, ctx: EmitContext) -> str:
        result = _collapse_for(ctx)
        dims = result.dimensions
        data = {
            "topology": [d.topology for d in dims],
            "npus_count": [d.npus for d in dims],
            "bandwidth": [d.bandwidth for d in dims],
            "latency": [d.latency for d in dims],
        }
        return yaml_text(data, _header(ctx, "ASTRA-sim network.yml", result))


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
    options: ClassVar[Mapping[str, str]] = {
        "unit": _UNIT_HELP,
        "scheduling_policy": "LIFO (default) or FIFO",
        "active_chunks": "active-chunks-per-dimension (default 1)",
        "dataset_splits": "preferred-dataset-splits (default 4)",
        "collective_optimization": "localBWAware (default) or baseline",
    }
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        result = _collapse_for(ctx)
        policy = ctx.option("scheduling_policy", "LIFO")
        if policy not in ("LIFO", "FIFO"):
            raise emit_error(f"scheduling_policy must be LIFO or FIFO, not '{policy}'")
        opt = ctx.option("collective_optimization", "localBWAware")
        if opt not in ("localBWAware", "baseline"):
            raise emit_error(f"collective_optimization must be localBWAware or baseline, "
                             f"not '{opt}'")
        chunks = _positive(ctx, "active_chunks", "1")
        splits = _positive(ctx, "dataset_splits", "4")
        ar = [_IMPL[d.topology][0] for d in result.dimensions]
        a2a = [_IMPL[d.topology][1] for d in result.dimensions]
        data: dict[str, Any] = {
            "scheduling-policy": policy,
            "endpoint-delay": 10,
            "active-chunks-per-dimension": chunks,
            "preferred-dataset-splits": splits,
            "all-reduce-implementation": ar,
            "all-gather-implementation": ar,
            "reduce-scatter-implementation": ar,
            "all-to-all-implementation": a2a,
            "collective-optimization": opt,
            "local-reduction-delay": 1,
            "boost-mode": 0,
            "roofline-enabled": 0,
        }
        first = _unit_attrs(ctx.graph, result.units[0])
        if "hbm_bw" in first:
            data["local-mem-bw"] = round(float(first["hbm_bw"]) / _GB, 6)
        if "compute.bf16" in first:
            data["peak-perf"] = round(float(first["compute.bf16"]) / 1e12, 6)
        return document_json(data)


def _positive(ctx: EmitContext, name: str, default: str) -> int:
    text = ctx.option(name, default)
    if not text.isdigit() or int(text) < 1:
        raise emit_error(f"{name} must be a positive integer, not '{text}'")
    return int(text)


def _unit_attrs(g: nx.Graph, unit: str) -> dict[str, Any]:
    """A unit's attributes; an accelerator without its own hbm_bw/compute sums its dies'."""
    attrs = dict(g.nodes[unit])
    for key in ("hbm_bw", "compute.bf16"):
        if key not in attrs:
            parts = [float(g.nodes[c][key]) for c in g.nodes
                     if g.nodes[c].get(NODE_PARENT) == unit and key in g.nodes[c]]
            if parts:
                attrs[key] = sum(parts)
    return attrs


class AstraCommGroupEmitter(Emitter):
    """ASTRA-sim ``comm_group.json`` ``{"0": [npu ids], ...}``: one group per instance of
    every role of the plan (roles in the plan's order, instances in order), each the sorted
    NPU ids (positions in instance order, as ``astra-network``) of the instance's EP
    devices.  With ``unit=accelerator`` a die device counts as its accelerator.  Needs
    ``--plan``; E026 when a plan device is not in the graph."""

    name = "astra-comm-group"
    description = "ASTRA-sim comm_group.json: one communicator per plan role instance (--plan)"
    options: ClassVar[Mapping[str, str]] = {"unit": _UNIT_HELP}
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        plan = ctx.require_plan(self.name)
        units = npu_units(ctx.graph, ctx.option("unit", "accelerator"))
        uid = {u: i for i, u in enumerate(units)}
        owner = unit_owner(ctx.graph, units)
        groups: dict[str, list[int]] = {}
        for role, body in plan.roles.items():
            for devices in body.instance_devices:
                ids: set[int] = set()
                for dev in devices:
                    if dev not in ctx.graph:
                        raise emit_error(f"plan device '{dev}' ({role}) is not in the graph: "
                                         "was the plan made for this topology?")
                    unit = owner.get(dev) or _unit_inside(ctx.graph, dev, uid)
                    if unit is None:
                        raise emit_error(f"plan device '{dev}' is not an NPU of the graph")
                    ids.add(uid[unit])
                groups[str(len(groups))] = sorted(ids)
        if not groups:
            raise emit_error("the plan has no role instance")
        return json.dumps(groups, indent=2) + "\n"


def _unit_inside(g: nx.Graph, dev: str, uid: Mapping[str, int]) -> str | None:
    """The first unit inside ``dev`` (a device that is an accelerator while units are dies
    would be split; the planner never does that, so the first is enough)."""
    for n in ordered_nodes(g):
        p = g.nodes[n].get(NODE_PARENT, "")
        if n in uid and (p == dev or p.startswith(dev + ".")):
            return n
    return None


def _rate(bandwidth: float) -> str:
    gbps = bandwidth * 8 / 1e9
    if abs(gbps - round(gbps)) < 1e-6:
        return f"{round(gbps)}Gbps"
    return f"{gbps:.6f}".rstrip("0").rstrip(".") + "Gbps"


def _delay(latency: float) -> str:
    text = f"{latency * 1e3:.9f}".rstrip("0").rstrip(".")
    return f"{text or '0'}ms"


class Ns3TopologyEmitter(Emitter):
    """The ns-3 topology edge list of ASTRA-sim's ns-3 back end and SimAI, for any graph:
    line 1 ``total_nodes switch_nodes links``, line 2 the switch node ids, then one
    ``src dst <rate>Gbps <delay>ms 0`` line per link bundle.  NPUs (``unit``) are ids
    0..n-1 in instance order; every other node with a link on the chosen planes (switches,
    NICs, CPUs, ...) follows in instance order and is listed as a switch node.  Bundles
    between the same two ids (dies folded into their accelerator) are merged: rate = sum of
    their bandwidths, delay = the smallest latency; links inside one NPU are dropped."""

    name = "ns3-topology"
    description = "ns-3 edge list for ASTRA-sim's ns-3 back end and SimAI (any graph)"
    options: ClassVar[Mapping[str, str]] = {"unit": _UNIT_HELP,
               "plane": "comma-separated planes to include (default: every plane)"}
    suffix = ".txt"

    def emit(self, ctx: EmitContext) -> str:
        g = ctx.graph
        units = npu_units(g, ctx.option("unit", "accelerator"))
        owner = unit_owner(g, units)
        planes = graph_planes(g)
        chosen_text = ctx.option("plane", "")
        chosen = [p.strip() for p in chosen_text.split(",") if p.strip()] or planes
        unknown = [p for p in chosen if p not in planes]
        if unknown:
            raise emit_error(f"unknown plane '{unknown[0]}' (planes: {', '.join(planes)})")
        wanted = set(chosen)
        links: dict[tuple[str, str], list[float]] = {}
        for a, b, d in g.edges(data=True):
            if d.get(EDGE_PLANE) not in wanted:
                continue
            x, y = owner.get(a, a), owner.get(b, b)
            if x == y:
                continue
            k = (x, y) if g.nodes[x][NODE_INDEX] <= g.nodes[y][NODE_INDEX] else (y, x)
            bw, lat = float(d.get(EDGE_BANDWIDTH, 0.0)), float(d.get(EDGE_LATENCY, 0.0) or 0.0)
            if k in links:
                links[k] = [links[k][0] + bw, min(links[k][1], lat)]
            else:
                links[k] = [bw, lat]
        used = {x for k in links for x in k}
        others = [v for v in ordered_nodes(g) if v in used and v not in set(units)]
        ids = {v: i for i, v in enumerate([*units, *others])}
        rows = sorted((ids[a], ids[b], bw, lat) for (a, b), (bw, lat) in links.items())
        rows = [(min(a, b), max(a, b), bw, lat) for a, b, bw, lat in rows]
        rows.sort()
        return render(
            "ns3/topology.txt.j2",
            total=len(ids), switches=[ids[v] for v in others],
            links=[{"src": a, "dst": b, "rate": _rate(bw), "delay": _delay(lat)}
                   for a, b, bw, lat in rows],
            error_rate="0",
        )


EMITTERS: tuple[type[Emitter], ...] = (
    AstraNetworkEmitter,
    AstraSystemEmitter,
    AstraCommGroupEmitter,
    Ns3TopologyEmitter,
)
