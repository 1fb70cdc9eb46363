"""What every Graphviz view shares: the machine model (:class:`Machine`: instance order,
children, templates, planes and their colours), the DOT building blocks (:class:`Box`,
:class:`Cluster`, :class:`Agg`, :func:`quote`) and the labels (:func:`edge_label`,
:func:`edge_attrs`, :func:`legend`, :func:`format_bandwidth`).

An instance's *template* is its path with every index replaced by ``[*]``; it is built from
the graph's ``array``, ``indices`` and ``parent`` node attributes (docs/graph-contract.md),
never by parsing the path.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from supernode_dsl.schema import (
    EDGE_BANDWIDTH,
    EDGE_COUNT,
    EDGE_LINK_BANDWIDTH,
    EDGE_PLANE,
    GRAPH_PLANES,
    NODE_ARRAY,
    NODE_CATEGORY,
    NODE_INDEX,
    NODE_INDICES,
    NODE_PARENT,
    NODE_TYPE,
)

__all__ = [
    "CONTAINERS",
    "FILL",
    "NOTE",
    "PALETTE",
    "TIMES",
    "Agg",
    "Attrs",
    "Box",
    "Cluster",
    "Machine",
    "edge_attrs",
    "edge_label",
    "format_bandwidth",
    "html_text",
    "last_segment",
    "legend",
    "quote",
    "template_path",
    "to_ports",
]

#: Categories drawn as clusters (when they have children).
CONTAINERS = frozenset({"system", "rack", "node", "board"})

#: Plane colours (Okabe-Ito, without yellow, then extras), by plane declaration order.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255",
           "#332288", "#117733", "#999933", "#AA4499", "#44AA99")

#: Fill colour by category.
FILL = {
    "accelerator": "#FDE3C8", "die": "#FEF0E0", "cpu": "#D8E8F6", "memory": "#EDE3F5",
    "switch": "#E6E6E6", "nic": "#DCF0DC", "board": "#F3F6FB", "node": "#FAFAFA",
    "rack": "#FFFDF0", "system": "#FFFFFF",
}

TIMES = "\u00d7"      # the multiplication sign of labels ("48 x CM384Node")
_MAX_SPLIT = 16      # a switch array is split by first index into at most this many boxes


def template_path(path: str) -> str:
    """``path`` with every index replaced by ``[*]``: ``a.node[3].npu[5]`` ->
    ``a.node[*].npu[*]`` (for a path given as text; :class:`Machine` builds the templates of
    a graph's instances from their attributes)."""
    parts = path.split("[")
    return parts[0] + "".join("[*]" + p.partition("]")[2] for p in parts[1:])


def last_segment(path: str) -> str:
    """The last segment of a dotted path (``a.node[*].l1[*]`` -> ``l1[*]``)."""
    return path.rsplit(".", 1)[-1]


def format_bandwidth(bps: float) -> str:
    """A bandwidth in B/s as decimal GB/s, TB/s or PB/s (MB/s below 1 GB/s), 4 significant
    digits: ``1.50528e14`` -> ``'150.5 TB/s'``."""
    for scale, unit in ((1e15, "PB/s"), (1e12, "TB/s"), (1e9, "GB/s")):
        if bps >= scale:
            return f"{bps / scale:.4g} {unit}"
    return f"{bps / 1e6:.4g} MB/s"


def quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def html_text(text: str) -> str:
    """Text escaped for a Graphviz HTML-like label."""
    return html.escape(text, quote=True)


Attrs = list[tuple[str, str]]


@dataclass
class Box:
    """A DOT node: ``id`` and already-encoded attribute values."""

    id: str
    attrs: Attrs
    order: int


@dataclass
class Cluster:
    """A DOT cluster (``subgraph "cluster..."``) with its boxes and sub-clusters."""

    id: str
    attrs: Attrs
    order: int
    parent: str | None
    boxes: list[Box] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    #: groups of box ids drawn side by side (``rank=same``)
    ranks: list[list[str]] = field(default_factory=list)


@dataclass
class Agg:
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


class Machine:
    """Precomputed structure of a compiled graph: instance order, children, templates."""

    def __init__(self, g: nx.Graph) -> None:
        self.g = g
        nodes = sorted(g.nodes(data=True), key=lambda nd: (int(nd[1].get(NODE_INDEX, 0)),
                                                           str(nd[0])))
        self._tree(nodes)
        self._templates(nodes)
        self._planes()

    def _tree(self, nodes: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Instance order, children and roots (instances without a parent in the graph)."""
        self.order: dict[str, int] = {}
        self.children: dict[str, list[str]] = defaultdict(list)
        self.roots: list[str] = []
        for i, (path, data) in enumerate(nodes):
            self.order[path] = i
            parent = str(data.get(NODE_PARENT, ""))
            if parent and parent in self.g:
                self.children[parent].append(path)
            else:
                self.roots.append(path)

    def _templates(self, nodes: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Every instance's template: its parent's template (parents come first in instance
        order) and its own array with one ``[*]`` per index; the array of every template;
        how many instances each has; and the box keys of split switch arrays."""
        self.template: dict[str, str] = {}
        #: the array (child declaration) name of every template
        self.template_array: dict[str, str] = {}
        first: dict[str, set[int]] = defaultdict(set)
        for path, data in nodes:
            own = str(data.get(NODE_ARRAY, path)) + "[*]" * len(data.get(NODE_INDICES, ()))
            parent = str(data.get(NODE_PARENT, ""))
            t = f"{self.template[parent]}.{own}" if parent in self.template else own
            self.template[path] = t
            self.template_array.setdefault(t, self.array(path))
            if len(idx := self.indices(path)) >= 2:
                first[t].add(idx[0])
        self.template_count: Counter[str] = Counter(self.template.values())
        self.first_dim = {t: len(v) for t, v in first.items()}
        #: split switch box key -> (the template it splits, its first index)
        self.split: dict[str, tuple[str, int]] = {}
        for path in self.order:
            if (key := self.box_key(path)) != self.template[path]:
                self.split[key] = (self.template[path], self.indices(path)[0])

    def _planes(self) -> None:
        """The planes (declared ones first, in declaration order), their descriptions and
        colours."""
        planes = self.g.graph.get(GRAPH_PLANES) or {}
        seen = list(planes) if isinstance(planes, Mapping) else []
        for _u, _v, d in self.g.edges(data=True):
            plane = str(d.get(EDGE_PLANE, ""))
            if plane not in seen:
                seen.append(plane)
        self.planes = seen
        self.plane_text = {p: str(planes.get(p, "")) if isinstance(planes, Mapping) else ""
                           for p in seen}
        self.colour = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(seen)}

    def array(self, path: str) -> str:
        """The child declaration ``path`` is an element of (``npu`` for ``a.node[3].npu[5]``)."""
        return str(self.g.nodes[path].get(NODE_ARRAY, path))

    def indices(self, path: str) -> tuple[int, ...]:
        """``path``'s indices in its array (``(2, 1)`` for ``l2[2][1]``)."""
        return tuple(int(i) for i in self.g.nodes[path].get(NODE_INDICES, ()))

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
            idx = self.indices(path)
            head, _, seg = t.rpartition(".")
            seg = f"{self.array(path)}[{idx[0]}]" + "[*]" * (len(idx) - 1)
            return f"{head}.{seg}" if head else seg
        return t

    def types_label(self, paths: Iterable[str]) -> str:
        return " / ".join(sorted({self.typ(p) for p in paths}))


def edge_label(agg: Agg, replicas: int, per: str) -> str:
    """``links x per-link = total`` (per replica when ``replicas`` > 1: "per ``per``", the
    array name of the replicated scope)."""
    links, bw = agg.links, agg.bandwidth
    suffix = ""
    if replicas > 1 and links % replicas == 0:
        links //= replicas
        bw /= replicas
        suffix = f" per {per}"
    if len(agg.link_bws) == 1:
        (one,) = agg.link_bws
        if links == 1:
            return f"{format_bandwidth(one)}{suffix}"
        return f"{links:,} {TIMES} {format_bandwidth(one)}\n= {format_bandwidth(bw)}{suffix}"
    return f"{links:,} links\n= {format_bandwidth(bw)}{suffix}"


def _penwidth(bw: float, lo: float, hi: float) -> str:
    if hi <= lo or bw <= 0:
        return "1.5"
    return f"{1.0 + 3.0 * (math.log(bw) - math.log(lo)) / (math.log(hi) - math.log(lo)):.1f}"


def edge_attrs(m: Machine, plane: str, agg: Agg, label: str, tooltip: str, scope: str,
                lo: float, hi: float) -> Attrs:
    colour = m.colour.get(plane, "#000000")
    return [
        ("label", quote(label)), ("color", quote(colour)), ("fontcolor", quote(colour)),
        ("penwidth", quote(_penwidth(agg.bandwidth, lo, hi))), ("tooltip", quote(tooltip)),
        ("cmx_plane", quote(plane)), ("cmx_links", quote(str(agg.links))),
        ("cmx_bandwidth", quote(repr(agg.bandwidth))), ("cmx_scope", quote(scope)),
    ]


def legend(m: Machine, title: str, planes: Sequence[str], note: str) -> str:
    """The graph label: title, one coloured line per plane drawn, the note (its lines one
    row each; HTML-like)."""
    rows = [f'<tr><td align="left"><b>{html_text(title)}</b></td></tr>']
    for p in planes:
        text = f"{p}: {m.plane_text[p]}" if m.plane_text.get(p) else p
        rows.append(f'<tr><td align="left"><font color="{m.colour[p]}"><b>———</b>  '
                    f"{html_text(text)}</font></td></tr>")
    for line in note.split("\n"):
        rows.append(f'<tr><td align="left"><font point-size="10">{html_text(line)}</font>'
                    "</td></tr>")
    return ('<<table border="0" cellborder="0" cellspacing="1" cellpadding="1">'
            + "".join(rows) + "</table>>")


NOTE = (f"edge label: links {TIMES} bandwidth per link = total, one direction "
         "(per replica where it says so); line width grows with the total")



def to_ports(port: Mapping[str, tuple[str, str]], edge: tuple[str, str, Attrs],
             tail: str = "", head: str = "") -> tuple[str, str, Attrs]:
    """``edge`` with each end found in ``port`` (a box id -> (HTML-table node, port))
    redirected to that node and port (``tailport``/``headport``, with the compass suffixes
    ``tail`` and ``head``, e.g. ``":s"``); unchanged otherwise."""
    a, b, attrs = edge
    extra: Attrs = []
    if a in port:
        a, tp = port[a]
        extra.append(("tailport", quote(tp + tail)))
    if b in port:
        b, hp = port[b]
        extra.append(("headport", quote(hp + head)))
    return (a, b, [*attrs, *extra]) if extra else edge
