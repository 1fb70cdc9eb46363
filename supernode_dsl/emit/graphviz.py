"""Graphviz drawings of a compiled graph: ``dot`` (DOT text), ``svg`` and ``png``.

Three views, chosen with ``-O view=...`` (see ``docs/emitters-graphviz.md``):

* ``supernode`` (default): the whole machine collapsed.  Instances are grouped by their
  *template path* (the path with indices replaced by ``[*]``, e.g. ``cm384.node[*].l1[*]``).
  Container instances (categories ``system``, ``rack``, ``node``, ``board``) that have children
  become clusters, one per template ("48 x CM384Node"); every other instance becomes one box
  per template that also holds its descendants (an NPU box holds its dies).  A switch array
  with two or more dimensions is split by its first index when that gives 2 to 16 boxes (the
  L2 tier of CloudMatrix384 becomes 7 sub-plane boxes of 16).  Edges are aggregated per pair
  of boxes, plane and *scope*: links whose lowest common ancestor is a replicated instance
  (inside one node, one NPU) are labelled per replica ("per node"), the others with the
  machine-wide total.
* ``node``: one ``node`` instance in detail (``-O node=K``: the K-th instance of category
  ``node`` in instance order, default 0, or an instance path).  Every instance inside it is
  drawn; links leaving it go to collapsed boxes of the outside, keyed as in the supernode
  view.  A bundle of more than 8 links that joins every member of one sibling group to every
  member of another (16 dies x 7 L1 switches) is drawn as one edge between the two groups.
* ``plane``: the supernode view restricted to one plane (``-O plane=NAME``); boxes and
  clusters without a link of that plane are left out.  ``-O plane=NAME`` alone selects this
  view; with ``view=node`` it filters the node view.

Every edge carries machine-readable attributes that renderers ignore: ``cmx_plane``,
``cmx_links`` (parallel links in the aggregate, whole machine), ``cmx_bandwidth`` (B/s one
direction, whole machine, a Python float ``repr``) and ``cmx_scope`` (the template a
per-replica label refers to, or ``""``).  Colours are per plane, in declaration order; the
legend is the graph label.  Same graph and options, same bytes.
"""

from __future__ import annotations

import html
import math
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx

from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.templates import render
from supernode_dsl.schema import (
    EDGE_BANDWIDTH,
    EDGE_COUNT,
    EDGE_LINK_BANDWIDTH,
    EDGE_PLANE,
    GRAPH_NAME,
    GRAPH_PLANES,
    GRAPH_ROOT,
    NODE_CATEGORY,
    NODE_INDEX,
    NODE_PARENT,
    NODE_TYPE,
)

__all__ = [
    "DOT_MISSING",
    "EMITTERS",
    "VIEWS",
    "DotEmitter",
    "PngEmitter",
    "SvgEmitter",
    "dot_text",
    "format_bandwidth",
    "run_dot",
    "template_path",
]

#: The views ``-O view=`` accepts.
VIEWS = ("supernode", "node", "plane")

#: The E026 message when the ``dot`` program cannot be found on PATH.
DOT_MISSING = "the Graphviz 'dot' program is not installed (Debian: apt-get install graphviz)"

#: Categories drawn as clusters (when they have children).
CONTAINERS = frozenset({"system", "rack", "node", "board"})

#: Plane colours (Okabe-Ito, without yellow, then extras), by plane declaration order.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255",
           "#332288", "#117733", "#999933", "#AA4499", "#44AA99")

_FILL = {
    "accelerator": "#FDE3C8", "die": "#FEF0E0", "cpu": "#D8E8F6", "memory": "#EDE3F5",
    "switch": "#E6E6E6", "nic": "#DCF0DC", "board": "#F3F6FB", "node": "#FAFAFA",
    "rack": "#FFFDF0", "system": "#FFFFFF",
}

_X = "\u00d7"        # the multiplication sign of labels ("48 x CM384Node")
_INDEX = re.compile(r"\[(\d+)\]")
_MAX_SPLIT = 16      # a switch array is split by first index into at most this many boxes
_COLLAPSE_MIN = 9    # node view: bundles of more edges than this between groups are merged
_DOT_TIMEOUT_S = 300


def template_path(path: str) -> str:
    """``path`` with every index replaced by ``[*]``: ``a.node[3].npu[5]`` ->
    ``a.node[*].npu[*]``."""
    return _INDEX.sub("[*]", path)


def _last(path: str) -> str:
    """The last segment of a dotted path (``a.node[*].l1[*]`` -> ``l1[*]``)."""
    return path.rsplit(".", 1)[-1]


def _bare(segment: str) -> str:
    """A segment without indices (``l2[3][*]`` -> ``l2``)."""
    return segment.split("[", 1)[0]


def format_bandwidth(bps: float) -> str:
    """A bandwidth in B/s as decimal GB/s, TB/s or PB/s (MB/s below 1 GB/s), 4 significant
    digits: ``1.50528e14`` -> ``'150.5 TB/s'``."""
    for scale, unit in ((1e15, "PB/s"), (1e12, "TB/s"), (1e9, "GB/s")):
        if bps >= scale:
            return f"{bps / scale:.4g} {unit}"
    return f"{bps / 1e6:.4g} MB/s"


def _q(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(text: str) -> str:
    """Text escaped for a Graphviz HTML-like label."""
    return html.escape(text, quote=True)


Attrs = list[tuple[str, str]]


@dataclass
class _Box:
    """A DOT node: ``id`` and already-encoded attribute values."""

    id: str
    attrs: Attrs
    order: int


@dataclass
class _Cluster:
    """A DOT cluster (``subgraph "cluster..."``) with its boxes and sub-clusters."""

    id: str
    attrs: Attrs
    order: int
    parent: str | None
    boxes: list[_Box] = field(default_factory=list)
    clusters: list[_Cluster] = field(default_factory=list)
    #: groups of box ids drawn side by side (``rank=same``)
    ranks: list[list[str]] = field(default_factory=list)


@dataclass
class _Agg:
    """An aggregate of graph edges: links, bandwidth, the per-link bandwidths seen."""

    links: int = 0
    bandwidth: float = 0.0
    bundles: int = 0
    link_bws: set[float] = field(default_factory=set)
    tails: set[str] = field(default_factory=set)
    heads: set[str] = field(default_factory=set)

    def add(self, data: Mapping[str, Any], tail: str, head: str) -> None:
        self.links += int(data.get(EDGE_COUNT, 1))
        self.bandwidth += float(data.get(EDGE_BANDWIDTH, 0.0))
        self.bundles += 1
        self.link_bws.add(float(data.get(EDGE_LINK_BANDWIDTH, data.get(EDGE_BANDWIDTH, 0.0))))
        self.tails.add(tail)
        self.heads.add(head)


class _Machine:
    """Precomputed structure of a compiled graph: instance order, children, templates."""

    def __init__(self, g: nx.Graph) -> None:
        self.g = g
        self.order: dict[str, int] = {}
        nodes = sorted(g.nodes(data=True), key=lambda nd: (int(nd[1].get(NODE_INDEX, 0)),
                                                           str(nd[0])))
        self.children: dict[str, list[str]] = defaultdict(list)
        self.roots: list[str] = []
        for i, (path, data) in enumerate(nodes):
            self.order[path] = i
            parent = str(data.get(NODE_PARENT, ""))
            if parent and parent in g:
                self.children[parent].append(path)
            else:
                self.roots.append(path)
        self.template = {p: template_path(p) for p in self.order}
        self.template_count: Counter[str] = Counter(self.template.values())
        first: dict[str, set[str]] = defaultdict(set)
        for p, t in self.template.items():
            idx = _INDEX.findall(_last(p))
            if len(idx) >= 2:
                first[t].add(idx[0])
        self.first_dim = {t: len(v) for t, v in first.items()}
        planes = g.graph.get(GRAPH_PLANES) or {}
        seen = list(planes) if isinstance(planes, Mapping) else []
        for _u, _v, d in g.edges(data=True):
            plane = str(d.get(EDGE_PLANE, ""))
            if plane not in seen:
                seen.append(plane)
        self.planes = seen
        self.plane_text = {p: str(planes.get(p, "")) if isinstance(planes, Mapping) else ""
                           for p in seen}
        self.colour = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(seen)}

    def cat(self, path: str) -> str:
        return str(self.g.nodes[path].get(NODE_CATEGORY, ""))

    def typ(self, path: str) -> str:
        return str(self.g.nodes[path].get(NODE_TYPE, ""))

    def is_cluster(self, path: str) -> bool:
        return self.cat(path) in CONTAINERS and bool(self.children.get(path))

    def descendants(self, path: str) -> Iterable[str]:
        """``path`` and everything below it, in instance order."""
        stack = [path]
        while stack:
            p = stack.pop()
            yield p
            stack.extend(reversed(self.children.get(p, [])))

    def ancestors(self, path: str) -> list[str]:
        """``path`` and its ancestors, innermost first."""
        out = [path]
        while True:
            parent = str(self.g.nodes[out[-1]].get(NODE_PARENT, ""))
            if not parent or parent not in self.g:
                return out
            out.append(parent)

    def lca(self, a: str, b: str) -> str | None:
        mine = set(self.ancestors(a))
        for p in self.ancestors(b):
            if p in mine:
                return p
        return None

    def box_key(self, path: str) -> str:
        """The supernode-view box of a box-head instance: its template, with the first index
        of a multi-dimensional switch array kept when that gives 2..16 boxes."""
        t = self.template[path]
        if self.cat(path) == "switch" and 2 <= self.first_dim.get(t, 0) <= _MAX_SPLIT:
            first = _INDEX.findall(_last(path))[0]
            head, _, seg = t.rpartition(".")
            seg = seg.replace("[*]", f"[{first}]", 1)
            return f"{head}.{seg}" if head else seg
        return t

    def types_label(self, paths: Iterable[str]) -> str:
        return " / ".join(sorted({self.typ(p) for p in paths}))


def _per(scope: str) -> str:
    """How a per-replica label names its scope: ``a.node[*]`` -> ``node``."""
    return _bare(_last(scope))


def _edge_label(agg: _Agg, replicas: int, scope: str) -> str:
    """``links x per-link = total`` (per replica when ``replicas`` > 1)."""
    links, bw = agg.links, agg.bandwidth
    suffix = ""
    if replicas > 1 and links % replicas == 0:
        links //= replicas
        bw /= replicas
        suffix = f" per {_per(scope)}"
    if len(agg.link_bws) == 1:
        (one,) = agg.link_bws
        if links == 1:
            return f"{format_bandwidth(one)}{suffix}"
        return f"{links:,} {_X} {format_bandwidth(one)}\n= {format_bandwidth(bw)}{suffix}"
    return f"{links:,} links\n= {format_bandwidth(bw)}{suffix}"


def _penwidth(bw: float, lo: float, hi: float) -> str:
    if hi <= lo or bw <= 0:
        return "1.5"
    return f"{1.0 + 3.0 * (math.log(bw) - math.log(lo)) / (math.log(hi) - math.log(lo)):.1f}"


def _edge_attrs(m: _Machine, plane: str, agg: _Agg, label: str, tooltip: str, scope: str,
                lo: float, hi: float) -> Attrs:
    colour = m.colour.get(plane, "#000000")
    return [
        ("label", _q(label)), ("color", _q(colour)), ("fontcolor", _q(colour)),
        ("penwidth", _q(_penwidth(agg.bandwidth, lo, hi))), ("tooltip", _q(tooltip)),
        ("cmx_plane", _q(plane)), ("cmx_links", _q(str(agg.links))),
        ("cmx_bandwidth", _q(repr(agg.bandwidth))), ("cmx_scope", _q(scope)),
    ]


def _legend(m: _Machine, title: str, planes: Sequence[str], note: str) -> str:
    """The graph label: title, one coloured line per plane drawn, the note (HTML-like)."""
    rows = [f'<tr><td align="left"><b>{_h(title)}</b></td></tr>']
    for p in planes:
        text = f"{p}: {m.plane_text[p]}" if m.plane_text.get(p) else p
        rows.append(f'<tr><td align="left"><font color="{m.colour[p]}"><b>———</b>  {_h(text)}'
                    "</font></td></tr>")
    rows.append(f'<tr><td align="left"><font point-size="10">{_h(note)}</font></td></tr>')
    return ('<<table border="0" cellborder="0" cellspacing="1" cellpadding="1">'
            + "".join(rows) + "</table>>")


_NOTE = (f"edge label: links {_X} bandwidth per link = total, one direction "
         "(per replica where it says so); line width grows with the total")


# ---- supernode and plane views ----------------------------------------------------------

def _supernode(m: _Machine, plane: str | None) -> dict[str, Any]:
    """The clusters, boxes and edges of the collapsed machine (one plane if given)."""
    clusters: dict[str, _Cluster] = {}
    heads: dict[str, list[str]] = defaultdict(list)          # box key -> head instances
    box_parent: dict[str, str | None] = {}
    box_of: dict[str, str] = {}
    folded: dict[str, Counter[str]] = defaultdict(Counter)  # box -> descendant template

    def cluster_for(path: str, parent: str | None) -> str:
        key = m.template[path]
        if key not in clusters:
            clusters[key] = _Cluster(f"cluster:{key}", [], m.order[path], parent)
        return key

    def walk(path: str, parent: str | None) -> None:
        for child in m.children.get(path, []):
            if m.is_cluster(child):
                walk(child, cluster_for(child, parent))
                continue
            key = m.box_key(child)
            heads[key].append(child)
            box_parent.setdefault(key, parent)
            for d in m.descendants(child):
                box_of[d] = key
                if d != child:
                    folded[key][m.template[d]] += 1

    for root in m.roots:
        if not m.children.get(root):
            key = m.box_key(root)
            heads[key].append(root)
            box_parent.setdefault(key, None)
            box_of[root] = key
        elif m.cat(root) in ("rack", "node", "board"):
            walk(root, cluster_for(root, None))
        else:
            walk(root, None)

    # edges, aggregated per (box pair, plane, scope)
    aggs: dict[tuple[str, str, str, str], _Agg] = defaultdict(_Agg)
    box_order = {k: min(m.order[h] for h in hs) for k, hs in heads.items()}
    for u, v, d in m.g.edges(data=True):
        p = str(d.get(EDGE_PLANE, ""))
        if plane is not None and p != plane:
            continue
        a, b = box_of[u], box_of[v]
        if (box_order[a], a) > (box_order[b], b):
            a, b, u, v = b, a, v, u
        lca = m.lca(u, v)
        scope = ""
        if lca is not None and m.template_count[m.template[lca]] > 1:
            scope = m.template[lca]
        aggs[(a, b, p, scope)].add(d, u, v)

    used_boxes = set(heads) if plane is None else {k[0] for k in aggs} | {k[1] for k in aggs}
    used_clusters: set[str] = set()
    for key in used_boxes:
        parent = box_parent[key]
        while parent is not None and parent not in used_clusters:
            used_clusters.add(parent)
            parent = clusters[parent].parent

    def multiplicity(key_count: int, parent: str | None) -> int:
        base = m.template_count[parent] if parent is not None else 1
        return max(1, key_count // max(1, base))

    for key in sorted(used_clusters, key=lambda k: clusters[k].order):
        c = clusters[key]
        members = [p for p, t in m.template.items() if t == key]
        n = multiplicity(len(members), c.parent)
        cat = m.cat(members[0])
        label = (f"{_last(key)}: {n} {_X} {m.types_label(members)}" if n > 1
                 else f"{_last(key)}: {m.types_label(members)}")
        if len(members) != n:
            label += f"  ({len(members)} in all)"
        c.attrs = [("label", _q(label)), ("style", _q("rounded,filled")),
                   ("fillcolor", _q(_FILL.get(cat, "#FFFFFF"))), ("color", _q("#555555")),
                   ("fontsize", _q("13")), ("tooltip", _q(f"{key} ({cat})"))]
        if c.parent is not None:
            clusters[c.parent].clusters.append(c)

    top_boxes: list[_Box] = []
    for key in sorted(used_boxes, key=lambda k: (box_order[k], k)):
        hs = heads[key]
        n = multiplicity(len(hs), box_parent[key])
        lines = [_last(key) if box_parent[key] is not None else key,
                 f"{n} {_X} {m.types_label(hs)}" if n > 1 else m.types_label(hs)]
        inner = sorted(folded[key].items(),
                       key=lambda kv: min(m.order[p] for p in m.template if m.template[p]
                                          == kv[0]))
        for t, count in inner[:3]:
            per = count // len(hs)
            sample = next(p for p in m.template if m.template[p] == t)
            lines.append(f"each: {per} {_X} {_bare(_last(t))} ({m.typ(sample)})")
        if len(inner) > 3:
            lines.append(f"each: +{len(inner) - 3} more kinds")
        cat = m.cat(hs[0])
        shape = "box3d" if len(hs) > 1 else "box"
        box = _Box(key, [("label", _q("\n".join(lines))), ("shape", _q(shape)),
                         ("fillcolor", _q(_FILL.get(cat, "#FFFFFF"))),
                         ("tooltip", _q(f"{key}: {len(hs)} {_X} {m.types_label(hs)} ({cat})"))],
                   box_order[key])
        parent = box_parent[key]
        (clusters[parent].boxes if parent is not None else top_boxes).append(box)

    edges: list[tuple[str, str, Attrs]] = []
    keys = sorted(aggs, key=lambda k: (box_order[k[0]], k[0], box_order[k[1]], k[1],
                                       m.planes.index(k[2]), k[3]))
    totals = [aggs[k].bandwidth for k in keys if aggs[k].bandwidth > 0]
    lo, hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    loops: dict[tuple[str, str], list[tuple[str, _Agg]]] = defaultdict(list)
    for ekey in keys:
        a, b, p, scope = ekey
        agg = aggs[ekey]
        replicas = m.template_count[scope] if scope else 1
        label = _edge_label(agg, replicas, scope)
        if a == b:
            loops[(a, p)].append((label, agg))
            if len(loops[(a, p)]) > 1:
                continue  # merged into the first loop of this box and plane below
        tip = (f"{p}: {a} -- {b}: {agg.links:,} links, {format_bandwidth(agg.bandwidth)} "
               "in all" + (f" ({replicas} {_X} {_last(scope)})" if scope else ""))
        edges.append((a, b, _edge_attrs(m, p, agg, label, tip, scope, lo, hi)))
    # Self-loops: one per box and plane (scopes merged, labels stacked), with an external
    # label (dot places self-loop labels over the loop otherwise).
    for i, (a, b, attrs) in enumerate(edges):
        if a != b:
            continue
        plane_of = dict(attrs)["cmx_plane"][1:-1]
        parts = loops[(a, plane_of)]
        total = _Agg()
        for _label, agg in parts:
            total.links += agg.links
            total.bandwidth += agg.bandwidth
            total.link_bws |= agg.link_bws
        label = "\n".join(lbl for lbl, _agg in parts)
        scope = dict(attrs)["cmx_scope"][1:-1] if len(parts) == 1 else ""
        tip = f"{plane_of}: within {a}: {total.links:,} links, " \
              f"{format_bandwidth(total.bandwidth)} in all"
        new = _edge_attrs(m, plane_of, total, label, tip, scope, lo, hi)
        edges[i] = (a, b, [("xlabel", new[0][1]), *new[1:]])

    top = sorted((c for c in clusters.values() if c.parent is None and c.id[8:] in
                  used_clusters), key=lambda c: c.order)
    planes_drawn = [p for p in m.planes if any(k[2] == p for k in aggs)]
    return {"clusters": top, "boxes": top_boxes, "edges": edges, "planes": planes_drawn,
            "ranks": _split_tiers(top_boxes)}


def _split_tiers(boxes: list[_Box]) -> list[list[str]]:
    """Boxes of one switch array split by first index (``l2[0][*]``, ``l2[1][*]``, ...),
    to be drawn side by side in index order (dot would otherwise reorder them)."""
    tiers: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for box in boxes:
        head, sep, rest = box.id.rpartition(".")
        seg = rest if sep else box.id
        idx = re.findall(r"\[([^\]]*)\]", seg)
        if len(idx) > 1 and idx[0].isdigit() and all(i == "*" for i in idx[1:]):
            tiers[f"{head}.{_bare(seg)}"].append((int(idx[0]), box.id))
    return [[i for _, i in sorted(t)] for t in tiers.values() if len(t) > 1]


# ---- node view --------------------------------------------------------------------------

def _pick_node(m: _Machine, which: str) -> str:
    candidates = [p for p in m.order if m.cat(p) == "node"] or list(m.roots)
    if which.strip().lstrip("-").isdigit():
        k = int(which)
        if not 0 <= k < len(candidates):
            raise emit_error(f"node={which}: the topology has {len(candidates)} node instance"
                             f"{'s' if len(candidates) != 1 else ''} "
                             f"(node=0..{len(candidates) - 1})")
        return candidates[k]
    if which in m.order:
        return which
    raise emit_error(f"node={which!r}: give an ordinal (0..{len(candidates) - 1}) or an "
                     f"instance path such as {candidates[0]!r}")


def _node_view(m: _Machine, which: str, plane: str | None) -> dict[str, Any]:
    """One node instance in detail, its links out of it collapsed to outside boxes."""
    top = _pick_node(m, which)
    inside = set(m.descendants(top))
    sn_box: dict[str, str] = {}
    for p in m.order:
        if p in inside:
            continue
        # the supernode-view box head of p: its outermost non-cluster ancestor
        head = p
        for anc in reversed(m.ancestors(p)):
            if not m.is_cluster(anc) or anc == p:
                head = anc
                break
        sn_box[p] = m.box_key(head)

    def group_of(path: str, lca: str) -> tuple[str, str]:
        """The sibling group (parent, template of the child) of ``path`` under ``lca``."""
        chain = m.ancestors(path)
        child = chain[chain.index(lca) - 1] if lca != path else path
        return (str(m.g.nodes[child].get(NODE_PARENT, "")), _last(m.template[child]))

    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in m.descendants(top):
        if p != top:
            groups[(str(m.g.nodes[p].get(NODE_PARENT, "")), _last(m.template[p]))].append(p)

    group_cluster: dict[tuple[str, str], str] = {}
    inst_cluster: dict[str, str] = {}

    def build(path: str, depth: int) -> _Cluster:
        cat = m.cat(path)
        label = f"{path if depth == 0 else _last(path)}: {m.typ(path)}"
        c = _Cluster(f"cluster:{path}", [
            ("label", _q(label)), ("style", _q("rounded,filled")),
            ("fillcolor", _q(_FILL.get(cat, "#FFFFFF"))), ("color", _q("#555555")),
            ("tooltip", _q(f"{path} ({cat})"))], m.order[path], None)
        inst_cluster[path] = c.id
        kids = m.children.get(path, [])
        seen: list[str] = []
        for k in kids:
            seg = _last(m.template[k])
            if seg not in seen:
                seen.append(seg)
        for seg in seen:
            members = groups[(path, seg)]
            target = c
            if len(members) > 1:
                idx = [_INDEX.findall(_last(x)) for x in members]
                span = f"{_bare(seg)}[{','.join(idx[0])}..{','.join(idx[-1])}]"
                g_cluster = _Cluster(f"cluster:{path}.{seg}", [
                    ("label", _q(f"{span}: {len(members)} {_X} {m.types_label(members)}")),
                    ("style", _q("dashed,rounded")), ("color", _q("#888888")),
                    ("fontsize", _q("11"))], m.order[members[0]], c.id)
                group_cluster[(path, seg)] = g_cluster.id
                c.clusters.append(g_cluster)
                target = g_cluster
            if len(members) > 1 and not any(m.children.get(x) for x in members):
                target.ranks.append(list(members))
            for x in members:
                if m.children.get(x):
                    target.clusters.append(build(x, depth + 1))
                else:
                    xcat = m.cat(x)
                    label_x = _last(x) if len(members) > 1 else f"{_last(x)}\n{m.typ(x)}"
                    target.boxes.append(_Box(x, [
                        ("label", _q(label_x)), ("shape", _q("box")),
                        ("fillcolor", _q(_FILL.get(xcat, "#FFFFFF"))),
                        ("tooltip", _q(f"{x}: {m.typ(x)} ({xcat})"))], m.order[x]))
        return c

    main = build(top, 0)
    if not m.children.get(top):
        main.boxes.append(_Box(top, [("label", _q(m.typ(top))), ("shape", _q("box"))],
                               m.order[top]))

    internal: dict[tuple[str, tuple[str, str], tuple[str, str]], list[tuple[str, str,
                                                                         Mapping[str, Any]]]]
    internal = defaultdict(list)
    external: dict[tuple[str, str, str], _Agg] = defaultdict(_Agg)
    for u, v, d in m.g.edges(data=True):
        p = str(d.get(EDGE_PLANE, ""))
        if plane is not None and p != plane:
            continue
        ui, vi = u in inside, v in inside
        if not ui and not vi:
            continue
        if ui and vi:
            lca = m.lca(u, v)
            assert lca is not None
            ga, gb = group_of(u, lca), group_of(v, lca)
            if (m.order[u], u) > (m.order[v], v):
                u, v, ga, gb = v, u, gb, ga
            internal[(p, ga, gb)].append((u, v, d))
        else:
            if vi:
                u, v = v, u
            external[(u, sn_box[v], p)].add(d, u, v)

    ext_boxes: dict[str, _Box] = {}
    ext_peers: dict[str, set[str]] = defaultdict(set)
    for (_u, key, _p), agg in external.items():
        ext_peers[key] |= agg.heads
    for key in sorted(ext_peers, key=lambda k: (min(m.order[x] for x in ext_peers[k]), k)):
        peers = sorted(ext_peers[key], key=m.order.__getitem__)
        cat = m.cat(peers[0])
        n = len(peers)
        lines = [key, f"{n} {_X} {m.types_label(peers)}" if n > 1 else m.types_label(peers)]
        ext_boxes[key] = _Box(f"outside:{key}", [
            ("label", _q("\n".join(lines))), ("shape", _q("box3d" if n > 1 else "box")),
            ("style", _q("filled,dashed")), ("fillcolor", _q(_FILL.get(cat, "#FFFFFF"))),
            ("tooltip", _q(f"outside {top}: {key} ({n} linked)"))],
            min(m.order[x] for x in peers))

    items: list[tuple[tuple[int, int, int, str, str], str, str, str, _Agg, str, Attrs]] = []
    for (p, ga, gb), bundle in internal.items():
        agg = _Agg()
        for u, v, d in bundle:
            agg.add(d, u, v)
        tails, heads_ = agg.tails, agg.heads
        complete = (ga != gb and len(bundle) >= _COLLAPSE_MIN
                    and len(bundle) == len(tails) * len(heads_))
        if complete:
            t_rep = min(tails, key=m.order.__getitem__)
            h_rep = min(heads_, key=m.order.__getitem__)
            extra: Attrs = []
            for side, grp in (("ltail", ga), ("lhead", gb)):
                cid = group_cluster.get(grp)
                if cid is None:
                    members = groups[grp]
                    cid = inst_cluster.get(members[0]) if len(members) == 1 else None
                if cid is not None:
                    extra.append((side, _q(cid)))
            what = (f"every {_bare(_last(template_path(t_rep)))} ↔ "
                    f"every {_bare(_last(template_path(h_rep)))}")
            label = f"{what}\n{_edge_label(agg, 1, '')}"
            items.append(((m.order[t_rep], m.order[h_rep], m.planes.index(p), t_rep, h_rep),
                          t_rep, h_rep, p, agg, label, extra))
            continue
        for u, v, d in bundle:
            one = _Agg()
            one.add(d, u, v)
            items.append(((m.order[u], m.order[v], m.planes.index(p), u, v), u, v, p, one,
                          _edge_label(one, 1, ""), []))
    for (u, key, p), agg in external.items():
        target = ext_boxes[key]
        items.append(((m.order[u], target.order, m.planes.index(p), u, key), u, target.id, p,
                      agg, _edge_label(agg, 1, ""), []))
    items.sort(key=lambda it: it[0])
    totals = [it[4].bandwidth for it in items if it[4].bandwidth > 0]
    lo, hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    edges: list[tuple[str, str, Attrs]] = []
    def leaf_of(path: str) -> str:
        while m.children.get(path):
            path = m.children[path][0]
        return path

    for _k, u, v, p, agg, label, extra in items:
        names = {k for k, _v in extra}
        if m.children.get(u) and u in inst_cluster and "ltail" not in names:
            extra = [*extra, ("ltail", _q(inst_cluster[u]))]
        if m.children.get(v) and v in inst_cluster and "lhead" not in names:
            extra = [*extra, ("lhead", _q(inst_cluster[v]))]
        u, v = leaf_of(u) if u in inside else u, leaf_of(v) if v in inside else v
        tip = f"{p}: {u} -- {v}: {agg.links:,} links, {format_bandwidth(agg.bandwidth)}"
        edges.append((u, v, _edge_attrs(m, p, agg, label, tip, "", lo, hi) + extra))
    planes_drawn = [p for p in m.planes if any(it[3] == p for it in items)]
    return {"clusters": [main], "boxes": list(ext_boxes.values()), "edges": edges,
            "planes": planes_drawn, "node": top}


# ---- rendering --------------------------------------------------------------------------

def dot_text(g: nx.Graph, view: str = "supernode", node: str = "0",
             plane: str | None = None) -> str:
    """The DOT text of ``view`` (one of :data:`VIEWS`) of the compiled graph ``g``.

    ``node`` selects the node of the node view (an ordinal among the ``node`` instances in
    instance order, or a path); ``plane`` the plane of the plane view (required there) and
    filters the node view.  Raises an E026 :class:`~supernode_dsl.diagnostics.CmxError` for
    an unknown view, plane or node.  Deterministic: same graph and arguments, same text.
    """
    if view not in VIEWS:
        raise emit_error(f"view={view!r}: choose one of {', '.join(VIEWS)}")
    m = _Machine(g)
    if plane is not None and plane not in m.planes:
        raise emit_error(f"plane={plane!r}: the topology has the planes "
                         f"{', '.join(m.planes) or '(none)'}")
    if view == "plane" and plane is None:
        raise emit_error("view=plane needs -O plane=NAME (planes: "
                         f"{', '.join(m.planes) or 'none'})")
    name = str(g.graph.get(GRAPH_NAME, "graph"))
    root_type = str(g.graph.get(GRAPH_ROOT, ""))
    if view == "node":
        body = _node_view(m, node, plane)
        title = f"{name}: {root_type}, node view of {body['node']}"
        graph_attrs: Attrs = [("rankdir", _q("TB")), ("compound", _q("true")),
                              ("nodesep", _q("0.25")), ("ranksep", _q("0.9"))]
    else:
        body = _supernode(m, plane if view == "plane" else None)
        title = (f"{name}: {root_type}, plane {plane}" if view == "plane"
                 else f"{name}: {root_type}, supernode view")
        graph_attrs = [("rankdir", _q("TB")), ("nodesep", _q("0.35")), ("ranksep", _q("1.1"))]
    if plane is not None and view == "node":
        title += f", plane {plane}"
    if view != "node":
        graph_attrs.append(("ordering", _q("out")))  # keeps split tiers in index order
    graph_attrs += [("newrank", _q("true")), ("fontname", _q("Helvetica")),
                    ("fontsize", _q("12")), ("labelloc", _q("t")), ("labeljust", _q("l")),
                    ("label", _legend(m, title, body["planes"], _NOTE))]
    return render(f"dot/{view}.dot.j2", graph_id=name, title=title, graph_attrs=graph_attrs,
                  node_attrs=[("fontname", _q("Helvetica")), ("fontsize", _q("11")),
                              ("style", _q("filled")), ("margin", _q("0.12,0.06"))],
                  edge_attrs=[("fontname", _q("Helvetica")), ("fontsize", _q("10"))],
                  clusters=body["clusters"], boxes=body["boxes"], edges=body["edges"],
                  ranks=body.get("ranks", []),
                  q=_q)


def run_dot(dot: str, fmt: str) -> bytes:
    """Lay out ``dot`` with the Graphviz ``dot`` program, output format ``fmt`` (``svg``,
    ``png``, ``plain``...).  E026 when the program is missing, fails or times out."""
    exe = shutil.which("dot")
    if exe is None:
        raise emit_error(DOT_MISSING)
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"),
                              capture_output=True, timeout=_DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise emit_error(f"Graphviz 'dot -T{fmt}' took more than {_DOT_TIMEOUT_S} s") from err
    except OSError as err:
        raise emit_error(f"cannot run Graphviz 'dot': {err}") from err
    if done.returncode != 0:
        msg = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise emit_error(f"Graphviz 'dot -T{fmt}' failed: {msg[-1] if msg else done.returncode}")
    return done.stdout


_OPTIONS: dict[str, str] = {
    "view": "supernode (default: the machine collapsed), node (one node in detail) or plane "
            "(the supernode view of one plane)",
    "node": "node view: which node, an ordinal among the node instances (default 0) or an "
            "instance path; alone it selects view=node",
    "plane": "plane view: the plane to draw (e.g. ub); alone it selects view=plane; with "
             "view=node it keeps only that plane's links",
}


def _dot_for(ctx: EmitContext) -> str:
    node = ctx.options.get("node")
    plane = ctx.options.get("plane")
    default = "node" if node is not None else "plane" if plane is not None else "supernode"
    return dot_text(ctx.graph, ctx.option("view", default), node if node is not None else "0",
                    plane or None)


class DotEmitter(Emitter):
    """Graphviz DOT text of one view of the machine (rendered from ``codegen/dot/``)."""

    name = "dot"
    description = "Graphviz DOT drawing: the supernode collapsed, one node, or one plane"
    options: ClassVar[Mapping[str, str]] = _OPTIONS
    suffix = ".dot"

    def emit(self, ctx: EmitContext) -> str:
        return _dot_for(ctx)


class SvgEmitter(Emitter):
    """The DOT drawing laid out as SVG by Graphviz ``dot -Tsvg`` (text)."""

    name = "svg"
    description = "SVG drawing laid out by Graphviz dot (needs the dot program)"
    options: ClassVar[Mapping[str, str]] = _OPTIONS
    suffix = ".svg"

    def emit(self, ctx: EmitContext) -> str:
        return run_dot(_dot_for(ctx), "svg").decode("utf-8")


class PngEmitter(Emitter):
    """The DOT drawing laid out as PNG by Graphviz ``dot -Tpng`` (bytes)."""

    name = "png"
    description = "PNG drawing laid out by Graphviz dot (needs the dot program)"
    options: ClassVar[Mapping[str, str]] = _OPTIONS
    suffix = ".png"

    def emit(self, ctx: EmitContext) -> bytes:
        return run_dot(_dot_for(ctx), "png")


EMITTERS: tuple[type[Emitter], ...] = (DotEmitter, SvgEmitter, PngEmitter)
