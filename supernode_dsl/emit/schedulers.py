"""Emitters for schedulers: Slurm topology (``topology.yaml`` and legacy ``topology.conf``)
and Kubernetes node labels in NVIDIA Topograph's convention.

**Slurm nodes** are the ``node`` instances, in instance order, named ``PREFIX<ordinal>``
(ordinal from 0); the prefix is ``-O node_prefix=...``, by default the root instance name
and ``-n`` (``cm384-n0`` ... ``cm384-n47``, compressed ``cm384-n[0-47]``).  Switch names are
their instance paths with ``.`` as ``-`` and the brackets dropped (``cluster.leaf[0][1]`` ->
``cluster-leaf0-1``).

**Planes.** A plane is *scale-out* when an accelerator or die links to a ``nic`` on it;
*scale-up* otherwise, when it links an accelerator or die to another or to a switch.

* **Blocks** (the supernodes): nodes joined through a scale-up plane (its switches and
  direct links) form one block.  Blocks are written only when one spans more than one node.
* **Tree** (the scale-out fabric): switches outside any node on the scale-out planes (or
  ``-O plane=...``).  Slurm's tree plugin wants one leaf per node: every node goes to the
  first leaf switch it reaches in instance order (on a rail-optimised fabric, rail 0); the
  other leaves, and switches only they reach, are left out.  Upper switches list their
  child switches; several top switches get a virtual root ``<root>-root`` (Slurm only: the
  Kubernetes labels stop below it, as Topograph's do).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.options import Option, choice_option, names_option, optional_text_option
from supernode_dsl.emit.templates import render
from supernode_dsl.emit.yamltext import yaml_text
from supernode_dsl.graph import UnionFind, graph_planes, ordered_nodes, segments, unit_owner
from supernode_dsl.schema import EDGE_PLANE, NODE_CATEGORY

__all__ = [
    "EMITTERS",
    "K8sNodeLabelsEmitter",
    "SchedulerTopology",
    "SlurmTopologyConfEmitter",
    "SlurmTopologyYamlEmitter",
    "hostlist",
    "kubectl_commands",
    "label_value",
    "node_labels",
    "scheduler_topology",
]

_NPU = frozenset({"accelerator", "die"})
_FORWARD = frozenset({"switch", "nic"})
NODE_PREFIX = optional_text_option("node_prefix", "Slurm node name prefix (default: ROOT-n, "
                                   "names ROOT-n0, ROOT-n1, ...)")
PLANES = names_option("plane", "comma-separated scale-out planes for the tree (default: every "
                      "scale-out plane)")
CONVENTION = choice_option("convention", "topograph = accelerator.topograph.run/domain, "
                           "fabric.topograph.run/tier-N; legacy = "
                           "network.topology.nvidia.com/accelerator, /block, /spine, "
                           "/datacenter", ("topograph", "legacy"))
FORMAT = choice_option("format", "output syntax: json or yaml (node -> labels), kubectl (one "
                       "`kubectl label node NODE --overwrite k=v ...` command per node)",
                       ("json", "yaml", "kubectl"))


def hostlist(names: Sequence[str]) -> str:
    """Slurm hostlist expression for ``names`` (order kept, duplicates dropped): runs of one
    prefix with consecutive numbers become ``prefix[a-b,c]``; a name that does not end in a
    number is kept as it is (leading zeros of a number stay in the prefix: ``n007``)."""
    groups: list[tuple[str, list[int]]] = []
    for name in dict.fromkeys(names):
        prefix, number = _trailing_number(name)
        if number is None:
            groups.append((name, []))
            continue
        num = int(number)
        if groups and groups[-1][0] == prefix and groups[-1][1]:
            groups[-1][1].append(num)
        else:
            groups.append((prefix, [num]))
    parts: list[str] = []
    for prefix, nums in groups:
        if not nums:
            parts.append(prefix)
        elif len(nums) == 1:
            parts.append(f"{prefix}{nums[0]}")
        else:
            parts.append(f"{prefix}[{_ranges(nums)}]")
    return ",".join(parts)


def _trailing_number(name: str) -> tuple[str, str | None]:
    """``name`` split into a prefix and the number it ends in, written without leading zeros
    (``n007`` -> ``n00``, ``7``; ``n00`` -> ``n0``, ``0``); ``None`` when it ends in no
    digit."""
    digits = len(name) - len(name.rstrip("0123456789"))
    if digits == 0:
        return name, None
    head, tail = name[:-digits], name[-digits:]
    number = tail.lstrip("0") or "0"
    return head + tail[:len(tail) - len(number)], number


def _ranges(nums: list[int]) -> str:
    out: list[str] = []
    start = prev = nums[0]
    for x in [*nums[1:], None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(out)


def _switch_name(g: nx.Graph, switch: str) -> str:
    """The switch's position with ``-`` between names and indices (``cluster.leaf[0][1]`` ->
    ``cluster-leaf0-1``), from its ``array`` and ``indices`` and its ancestors'."""
    return "-".join(array + "-".join(str(i) for i in indices)
                    for array, indices in segments(g, switch))


@dataclass
class _Switch:
    name: str
    nodes: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    level: int = 0
    virtual: bool = False


@dataclass
class SchedulerTopology:
    """What the scheduler emitters write: ``nodes`` (Slurm names in instance order),
    ``blocks`` (name -> node names), ``switches`` (tree, leaves first, then by level and
    instance order), ``notes`` (comments for the output)."""

    nodes: list[str]
    blocks: dict[str, list[str]]
    switches: list[_Switch]
    notes: list[str]


def _node_owner(g: nx.Graph) -> tuple[list[str], dict[str, str]]:
    """The node instances in order, and every instance inside one -> its node."""
    nodes = [n for n in ordered_nodes(g) if g.nodes[n].get(NODE_CATEGORY) == "node"]
    return nodes, unit_owner(g, nodes)


def _classify(g: nx.Graph) -> tuple[list[str], list[str]]:
    """(scale-up planes, scale-out planes) in declaration order: scale-out when an NPU links
    to a NIC on the plane, else scale-up when an NPU links to an NPU or a switch."""
    up: list[str] = []
    out: list[str] = []
    for plane in graph_planes(g):
        npu_edge = nic_edge = False
        for a, b, d in g.edges(data=True):
            if d.get(EDGE_PLANE) != plane:
                continue
            ca, cb = g.nodes[a].get(NODE_CATEGORY), g.nodes[b].get(NODE_CATEGORY)
            for x, y in ((ca, cb), (cb, ca)):
                if x in _NPU:
                    nic_edge = nic_edge or y == "nic"
                    npu_edge = npu_edge or y in _NPU or y == "switch"
        if nic_edge:
            out.append(plane)
        elif npu_edge:
            up.append(plane)
    return up, out


def scheduler_topology(g: nx.Graph, prefix: str | None = None,
                       planes: Iterable[str] | None = None) -> SchedulerTopology:
    """Blocks and tree of ``g`` by the rules of this module's docstring; E026 when the graph
    has no ``node`` instance or ``planes`` names an unknown plane."""
    nodes, owner = _node_owner(g)
    if not nodes:
        raise emit_error("the graph has no 'node' instance: nothing for a scheduler")
    root = str(g.graph.get("name", "cluster"))
    pre = f"{root}-n" if prefix is None else prefix
    name = {n: f"{pre}{i}" for i, n in enumerate(nodes)}
    up, out = _classify(g)
    notes = [f"scale-up planes: {', '.join(up) or 'none'}; "
             f"scale-out planes: {', '.join(out) or 'none'}"]
    # blocks
    idx = {n: i for i, n in enumerate(nodes)}
    uf = UnionFind(len(nodes))
    for plane in up:
        h = nx.Graph()
        for a, b, d in g.edges(data=True):
            if d.get(EDGE_PLANE) == plane and all(
                    g.nodes[x].get(NODE_CATEGORY) in _NPU | _FORWARD for x in (a, b)):
                h.add_edge(a, b)
        for comp in nx.connected_components(h):
            members = sorted({idx[owner[x]] for x in comp
                              if x in owner and g.nodes[x].get(NODE_CATEGORY) in _NPU})
            for m in members[1:]:
                uf.union(members[0], m)
    groups = sorted(uf.groups(), key=lambda gr: gr[0])
    blocks: dict[str, list[str]] = {}
    if any(len(gr) > 1 for gr in groups):
        blocks = {f"b{i}": [name[nodes[j]] for j in gr] for i, gr in enumerate(groups)}
    # tree
    chosen = out if planes is None else list(planes)
    unknown = [p for p in chosen if p not in graph_planes(g)]
    if unknown:
        raise emit_error(f"unknown plane '{unknown[0]}' (planes: {', '.join(graph_planes(g))})")
    switches = _tree(g, owner, name, set(chosen), root, notes)
    return SchedulerTopology([name[n] for n in nodes], blocks, switches, notes)


def _tree(g: nx.Graph, owner: Mapping[str, str], name: Mapping[str, str], planes: set[str],
          root: str, notes: list[str]) -> list[_Switch]:
    order = {n: i for i, n in enumerate(ordered_nodes(g))}
    fabric = nx.Graph()
    attach: dict[str, set[str]] = {}
    for a, b, d in g.edges(data=True):
        if d.get(EDGE_PLANE) not in planes:
            continue
        ends = [x for x in (a, b)
                if g.nodes[x].get(NODE_CATEGORY) == "switch" and x not in owner]
        if len(ends) == 2:
            fabric.add_edge(a, b)
        elif len(ends) == 1:
            other = b if ends[0] == a else a
            if other in owner:
                attach.setdefault(ends[0], set()).add(owner[other])
    leaves = sorted(attach, key=order.__getitem__)
    leaf_of: dict[str, str] = {}
    for leaf in leaves:
        for node in sorted(attach[leaf], key=order.__getitem__):
            leaf_of.setdefault(node, leaf)
    kept = [leaf for leaf in leaves if leaf in leaf_of.values()]
    dropped = set(leaves) - set(kept)
    if dropped:
        notes.append(f"tree: one leaf per node; {len(dropped)} other leaf switches "
                     "(parallel rails) and the switches only they reach are left out")
    level = {leaf: 1 for leaf in kept}
    frontier = kept
    while frontier:
        nxt: list[str] = []
        for s in frontier:
            if s not in fabric:
                continue
            for t in sorted(fabric[s], key=order.__getitem__):
                if t not in level and t not in dropped:
                    level[t] = level[s] + 1
                    nxt.append(t)
        frontier = sorted(set(nxt), key=order.__getitem__)
    result: dict[str, _Switch] = {}
    for s in sorted(level, key=lambda s: (level[s], order[s])):
        sw = _Switch(_switch_name(g, s), level=level[s])
        sw.nodes = [name[n] for n in sorted(attach.get(s, set()), key=order.__getitem__)
                    if leaf_of.get(n) == s]
        if s in fabric:
            sw.children = [_switch_name(g, t) for t in sorted(fabric[s], key=order.__getitem__)
                           if level.get(t) == level[s] - 1]
            sw.parents = [_switch_name(g, t) for t in sorted(fabric[s], key=order.__getitem__)
                          if level.get(t) == level[s] + 1]
        result[s] = sw
    switches = list(result.values())
    tops = [s for s in switches if not s.parents]
    if len(tops) > 1:
        virtual = _Switch(f"{root}-root",
                          children=[s.name for s in tops],
                          level=max(s.level for s in tops) + 1, virtual=True)
        for top in tops:
            top.parents.append(virtual.name)
        switches.append(virtual)
        notes.append(f"tree: {virtual.name} is a virtual root over {len(tops)} top switches")
    return switches


def _topology(ctx: EmitContext) -> SchedulerTopology:
    planes = ctx.value(PLANES)
    return scheduler_topology(ctx.graph, ctx.value(NODE_PREFIX),
                              None if planes is None else list(planes))


def _header(ctx: EmitContext, what: str, topo: SchedulerTopology) -> list[str]:
    return [f"{what} generated by cmx from {ctx.source or ctx.graph.graph.get('name', '')}",
            *topo.notes]


class SlurmTopologyYamlEmitter(Emitter):
    """Slurm 25.05+ ``topology.yaml``: a list of topologies.  ``supernode`` (block plugin:
    ``block_sizes`` [the block size; the smallest if blocks differ] and ``blocks``) when a
    scale-up plane spans nodes; ``scaleout`` (tree plugin: ``switches`` with ``nodes`` or
    ``children``) when the scale-out planes have switches; ``flat`` when neither.  The first
    one written is ``cluster_default: true``.  Every node is in exactly one block and under
    exactly one leaf switch."""

    name = "slurm-topology-yaml"
    description = "Slurm topology.yaml (block topology per supernode, tree for scale-out)"
    options: ClassVar[tuple[Option[Any], ...]] = (NODE_PREFIX, PLANES)
    suffix = ".yaml"

    def emit(self, ctx: EmitContext) -> str:
        topo = _topology(ctx)
        docs: list[dict[str, Any]] = []
        if topo.blocks:
            sizes = sorted({len(v) for v in topo.blocks.values()})
            if len(sizes) > 1:
                topo.notes.append(f"blocks differ in size ({sizes}); block_sizes uses the "
                                  "smallest")
            docs.append({"topology": "supernode", "cluster_default": not docs,
                         "block": {"block_sizes": [sizes[0]],
                                   "blocks": [{"block": b, "nodes": hostlist(n)}
                                              for b, n in topo.blocks.items()]}})
        if topo.switches:
            docs.append({"topology": "scaleout", "cluster_default": not docs,
                         "tree": {"switches": [_yaml_switch(s) for s in topo.switches]}})
        if not docs:
            docs.append({"topology": "flat", "cluster_default": True, "flat": True})
        return yaml_text(docs, _header(ctx, "Slurm topology.yaml", topo))


def _yaml_switch(s: _Switch) -> dict[str, str]:
    out = {"switch": s.name}
    if s.children:
        out["children"] = hostlist(s.children)
    if s.nodes:
        out["nodes"] = hostlist(s.nodes)
    return out


class SlurmTopologyConfEmitter(Emitter):
    """Legacy Slurm ``topology.conf`` for the tree plugin (``TopologyPlugin=topology/tree``):
    one ``SwitchName=... Nodes=...`` line per leaf switch and ``SwitchName=...
    Switches=...`` per upper switch, from the scale-out fabric (module docstring).  E026
    when the chosen planes have no switch fabric."""

    name = "slurm-topology-conf"
    description = "Slurm topology.conf (tree plugin) from the scale-out switch hierarchy"
    options: ClassVar[tuple[Option[Any], ...]] = (NODE_PREFIX, PLANES)
    suffix = ".conf"

    def emit(self, ctx: EmitContext) -> str:
        topo = _topology(ctx)
        if not topo.switches:
            raise emit_error("no scale-out switch reaches a node: no tree for topology.conf "
                             "(use slurm-topology-yaml for block topologies)")
        lines = [{"name": s.name, "switches": hostlist(s.children) if s.children else "",
                  "nodes": hostlist(s.nodes) if s.nodes else ""} for s in topo.switches]
        return render("slurm/topology.conf.j2",
                      header=_header(ctx, "Slurm topology.conf", topo), switches=lines)


# NVIDIA/topograph e2b625071e327ee5c3bb119d8a31289a818c30fc pkg/topology/topology.go l.41-42
# (KeyFabricTierPrefix, KeyTopologyXclrDomain).
_TOPOGRAPH_DOMAIN = "accelerator.topograph.run/domain"
_TOPOGRAPH_TIER = "fabric.topograph.run/tier-"
# NVIDIA/topograph 43d6be8de29e25942afd6adfb8d6835c7ac1191c pkg/engines/k8s/labeler.go l.26-29,
# 42 (DefaultLabelAccelerator, switchNetworkHierarchy = block, spine, datacenter: tiers 0-2).
_LEGACY_DOMAIN = "network.topology.nvidia.com/accelerator"
_LEGACY_TIERS = tuple(f"network.topology.nvidia.com/{t}" for t in ("block", "spine",
                                                                    "datacenter"))
_LABEL_VALUE_MAX = 63  # Kubernetes label values (k8s.io/apimachinery IsValidLabelValue)
_FNV64_OFFSET = 0xCBF29CE484222325  # FNV-1a 64-bit (Go hash/fnv New64a)
_FNV64_PRIME = 0x100000001B3


def label_value(value: str) -> str:
    """``value`` as Topograph writes a label value: kept when at most 63 characters, else
    ``x`` + the lower-case hex FNV-1a 64 hash of its UTF-8 bytes (NVIDIA/topograph
    e2b625071e327ee5c3bb119d8a31289a818c30fc pkg/engines/k8s/labeler.go l.213-231,
    checkLabel)."""
    if len(value) <= _LABEL_VALUE_MAX:
        return value
    h = _FNV64_OFFSET
    for byte in value.encode():
        h = ((h ^ byte) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"x{h:x}"


def node_labels(topo: SchedulerTopology, convention: str) -> dict[str, dict[str, str]]:
    """Node name -> labels in Topograph's convention: the domain key for the node's block,
    one tier key per switch from the leaf (tier 0) up each switch's first parent, closest
    first, stopping below a virtual root (Topograph's tree root has no ID and gets no label:
    labeler.go l.137-141 and getTierLabels l.178-211 at e2b62507; pkg/topology/graph.go
    l.181-186); the legacy convention has three tiers.  Values via :func:`label_value`."""
    domain_key, tiers = ((_TOPOGRAPH_DOMAIN, None) if convention == "topograph"
                         else (_LEGACY_DOMAIN, _LEGACY_TIERS))
    domain = {n: b for b, ns in topo.blocks.items() for n in ns}
    by_name = {s.name: s for s in topo.switches}
    leaf = {n: s for s in topo.switches for n in s.nodes}
    labels: dict[str, dict[str, str]] = {}
    for node in topo.nodes:
        mine: dict[str, str] = {}
        if node in domain:
            mine[domain_key] = label_value(domain[node])
        tier, sw = 0, leaf.get(node)
        while sw is not None and not sw.virtual and (tiers is None or tier < len(tiers)):
            key = f"{_TOPOGRAPH_TIER}{tier}" if tiers is None else tiers[tier]
            mine[key] = label_value(sw.name)
            sw = by_name.get(sw.parents[0]) if sw.parents else None
            tier += 1
        labels[node] = mine
    return labels


def kubectl_commands(labels: Mapping[str, Mapping[str, str]], header: Sequence[str]) -> str:
    """A shell script: ``header`` as comments, then one ``kubectl label node NODE
    --overwrite k=v ...`` per node with labels (keys sorted), what an operator runs against
    the cluster (``--overwrite`` so that a rerun after a change replaces the old values)."""
    lines = [f"# {h}" for h in header]
    for node, mine in labels.items():
        if mine:
            pairs = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(mine.items()))
            lines.append(f"kubectl label node {shlex.quote(node)} --overwrite {pairs}")
    return "\n".join(lines) + "\n"


class K8sNodeLabelsEmitter(Emitter):
    """Kubernetes node labels in NVIDIA Topograph's convention (:func:`node_labels`).
    ``convention=topograph`` (default, Topograph at e2b62507):
    ``accelerator.topograph.run/domain`` = the node's block (supernode) and
    ``fabric.topograph.run/tier-N`` = the switch N levels above the node (tier 0 = its
    leaf).  ``convention=legacy`` (Topograph 0.x): ``network.topology.nvidia.com/accelerator``,
    ``/block``, ``/spine``, ``/datacenter`` (tiers 0-2).  Labels absent when the graph has no
    such level; values over 63 characters hashed as Topograph does.  ``format=json``
    (default) or ``yaml``: node -> {label: value}; ``format=kubectl``: the ``kubectl label``
    commands."""

    name = "k8s-node-labels"
    description = "Kubernetes node labels in NVIDIA Topograph's convention (JSON, YAML or " \
                  "kubectl commands)"
    options: ClassVar[tuple[Option[Any], ...]] = (NODE_PREFIX, PLANES, CONVENTION, FORMAT)
    suffix = ".json"

    def emit(self, ctx: EmitContext) -> str:
        fmt = ctx.value(FORMAT)
        topo = _topology(ctx)
        labels = node_labels(topo, ctx.value(CONVENTION))
        header = _header(ctx, "Kubernetes node labels", topo)
        if fmt == "yaml":
            return yaml_text(labels, header)
        if fmt == "kubectl":
            return kubectl_commands(labels, header)
        return json.dumps(labels, indent=2) + "\n"


EMITTERS: tuple[type[Emitter], ...] = (
    SlurmTopologyYamlEmitter,
    SlurmTopologyConfEmitter,
    K8sNodeLabelsEmitter,
)
