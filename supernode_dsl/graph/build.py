"""Building the networkx graph from the model, with the whole-graph checks.

Nodes are keyed by instance path and added in instance order; edges are bundles of parallel
links of one plane.  Attribute names and units: :mod:`supernode_dsl.schema`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from itertools import groupby
from operator import itemgetter
from typing import Any

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.contracts import check_instance
from supernode_dsl.diagnostics import DiagnosticSink, Span
from supernode_dsl.elaborate import Model, Template, Value
from supernode_dsl.graph.gcpause import gc_paused
from supernode_dsl.units import Quantity

__all__ = ["build_graph"]


def _plain(v: Value) -> Any:
    """Attribute value as stored in the graph: SI float, int for whole plain numbers."""
    if isinstance(v, Quantity):
        if v.dim.is_dimensionless and v.value == int(v.value):
            return int(v.value)
        return v.value
    return v


def _node_attrs(tpl: Template) -> dict[str, Any]:
    attrs = {name: _plain(v) for name, v in tpl.attrs}
    attrs[S.NODE_CATEGORY] = tpl.category
    attrs[S.NODE_TYPE] = tpl.type_name
    return attrs


def build_graph(model: Model) -> nx.Graph:
    """The compiled graph of ``model`` (built with the cyclic GC paused).

    Raises :class:`~supernode_dsl.diagnostics.CmxError` for two instances joined twice on one
    plane or on two planes (E012) and for a switch wired to more links than it has ports, or
    to a link faster than its ports (E006), and
    :class:`~supernode_dsl.diagnostics.ArgumentError` (E028) when ``model`` is not a
    :class:`~supernode_dsl.elaborate.Model`.
    """
    model = check_instance(model, Model, "build_graph", "model")
    with gc_paused():
        return _build(model)


def _build(model: Model) -> nx.Graph:
    """Build the graph (the body of :func:`build_graph`)."""
    g = nx.Graph()
    g.graph.update({
        S.GRAPH_NAME: model.root_name,
        S.GRAPH_ROOT: model.root.type_name,
        S.GRAPH_PLANES: {p.name: p.description for p in model.planes},
        S.GRAPH_SCHEMA_VERSION: S.SCHEMA_VERSION,
    })
    paths: list[str] = [""] * model.num_instances
    shared: dict[int, dict[str, Any]] = {}
    linked: list[tuple[Template, int]] = []
    for inst in model.instances():
        paths[inst.index] = inst.path
        tid = id(inst.template)
        if tid not in shared:
            shared[tid] = _node_attrs(inst.template)
        g.add_node(inst.path, **shared[tid], path=inst.path, parent=inst.parent,
                   index=inst.index, array=inst.array, indices=inst.indices)
        if inst.template.links:
            linked.append((inst.template, inst.index))
    total = 0
    for tpl, base in linked:
        for bundle in tpl.links:
            extras = {k: _plain(v) for k, v in bundle.extras}
            # one call per run of pairs with one link count (a bundle is usually one run):
            # networkx copies the shared attributes into each edge's own dict
            for n, run in groupby(bundle.pairs, key=itemgetter(2)):
                g.add_edges_from(((paths[base + a], paths[base + b]) for a, b, _ in run), **{
                    **extras,
                    S.EDGE_PLANE: bundle.plane,
                    S.EDGE_BANDWIDTH: bundle.link_bandwidth * n,
                    S.EDGE_LINK_BANDWIDTH: bundle.link_bandwidth,
                    S.EDGE_LATENCY: bundle.latency,
                    S.EDGE_COUNT: n,
                })
            total += len(bundle.pairs)
    sink = DiagnosticSink()
    if g.number_of_edges() != total:
        _report_duplicates(linked, paths, sink)
    _check_ports(g, model, sink, lambda node: _bundles_touching(node, linked, paths))
    sink.raise_if_errors()
    return g


def _report_duplicates(linked: list[tuple[Template, int]], paths: list[str],
                       sink: DiagnosticSink) -> None:
    seen: dict[tuple[str, str], Any] = {}
    for tpl, base in linked:
        for bundle in tpl.links:
            for a, b, _ in bundle.pairs:
                u, v = paths[base + a], paths[base + b]
                key = (u, v) if u < v else (v, u)
                if key in seen:
                    first = seen[key]
                    other = (f" on plane '{first.plane}' (one pair of instances carries one "
                             "plane)" if first.plane != bundle.plane else
                             "; write one link statement with `count = N` for parallel links")
                    sink.error(
                        "E012",
                        f"{u} and {v} are already linked{other}",
                        bundle.span,
                        notes=(("first linked here", first.span),),
                    )
                else:
                    seen[key] = bundle


def _bundles_touching(node: str, linked: list[tuple[Template, int]],
                      paths: list[str]) -> list[Span]:
    """Spans of the link statements that wire ``node`` (error path only: a full scan)."""
    spans: list[Span] = []
    for tpl, base in linked:
        for bundle in tpl.links:
            if bundle.span not in spans and any(
                    node in (paths[base + a], paths[base + b]) for a, b, _ in bundle.pairs):
                spans.append(bundle.span)
    return spans


def _check_ports(g: nx.Graph, model: Model, sink: DiagnosticSink,
                 wiring: Callable[[str], list[Span]]) -> None:
    over: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    slow: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    spans = {}
    for node, data in g.nodes(data=True):
        if data[S.NODE_CATEGORY] != "switch" or "ports" not in data:
            continue
        edges = g.adj[node].values()
        used = sum(e[S.EDGE_COUNT] for e in edges)
        fastest = max((e[S.EDGE_LINK_BANDWIDTH] for e in edges), default=0.0)
        ttype = data[S.NODE_TYPE]
        if used > data["ports"]:
            over[ttype].append((node, used, data["ports"]))
        if "port_bw" in data and fastest > data["port_bw"] * (1 + 1e-9):
            slow[ttype].append((node, fastest, data["port_bw"]))
    for t in model.templates():
        spans[t.type_name] = t.span
    for ttype, items in over.items():
        node, used, ports = items[0]
        more = f" (and {len(items) - 1} more switches of type {ttype})" if len(items) > 1 else ""
        links = wiring(node)
        notes: tuple[tuple[str, Span | None], ...] = tuple(
            ("a link statement wiring it", s) for s in links[1:])
        notes += (("the switch type declares its ports here", spans.get(ttype)),)
        sink.error("E006", f"switch {node} ({ttype}, {ports} ports) is wired to {used} "
                   f"links{more}", links[0] if links else spans.get(ttype), notes=notes)
    for ttype, slows in slow.items():
        node, bw, port_bw = slows[0]
        sink.error("E006", f"switch {node} ({ttype}) has a {bw / 1e9:g} GB/s link but its "
                   f"ports run at {port_bw / 1e9:g} GB/s", spans.get(ttype))

