"""The supernode view (``-O view=supernode``, the default) and the plane view.

The whole machine collapsed: instances are grouped by template, containers with children
become clusters, every other instance one box per template holding its descendants, a
multi-dimensional switch array is split by its first index into 2..16 boxes, and edges are
aggregated per box pair, plane and scope (the package docstring has the rules).

The plane view (``-O view=plane``) is a variant of this view, not a module of its own:
:func:`supernode_view` with ``plane`` set keeps that plane's links and only the boxes and
clusters they touch.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from supernode_dsl.emit.graphviz.common import (
    FILL,
    TIMES,
    Agg,
    Attrs,
    Box,
    Cluster,
    Machine,
    edge_attrs,
    edge_label,
    format_bandwidth,
    html_text,
    last_segment,
    quote,
    to_ports,
)
from supernode_dsl.schema import EDGE_PLANE

__all__ = ["supernode_view"]


def supernode_view(m: Machine, plane: str | None) -> dict[str, Any]:
    """The clusters, boxes, edges and side-by-side ranks of the collapsed machine, and the
    planes drawn; only ``plane``'s links (and what they touch) when given: the plane view."""
    clusters: dict[str, Cluster] = {}
    heads: dict[str, list[str]] = defaultdict(list)          # box key -> head instances
    box_parent: dict[str, str | None] = {}
    box_of: dict[str, str] = {}
    folded: dict[str, Counter[str]] = defaultdict(Counter)  # box -> descendant template

    def cluster_for(path: str, parent: str | None) -> str:
        key = m.template[path]
        if key not in clusters:
            clusters[key] = Cluster(f"cluster:{key}", [], m.order[path], parent)
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
    aggs: dict[tuple[str, str, str, str], Agg] = defaultdict(Agg)
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
        label = (f"{last_segment(key)}: {n} {TIMES} {m.types_label(members)}" if n > 1
                 else f"{last_segment(key)}: {m.types_label(members)}")
        if len(members) != n:
            label += f"  ({len(members)} in all)"
        c.attrs = [("label", quote(label)), ("style", quote("rounded,filled")),
                   ("fillcolor", quote(FILL.get(cat, "#FFFFFF"))), ("color", quote("#555555")),
                   ("fontsize", quote("13")), ("tooltip", quote(f"{key} ({cat})"))]
        if c.parent is not None:
            clusters[c.parent].clusters.append(c)

    top_boxes: list[Box] = []
    box_lines: dict[str, list[str]] = {}
    for key in sorted(used_boxes, key=lambda k: (box_order[k], k)):
        hs = heads[key]
        n = multiplicity(len(hs), box_parent[key])
        lines = [last_segment(key) if box_parent[key] is not None else key,
                 f"{n} {TIMES} {m.types_label(hs)}" if n > 1 else m.types_label(hs)]
        inner = sorted(folded[key].items(),
                       key=lambda kv: min(m.order[p] for p in m.template if m.template[p]
                                          == kv[0]))
        for t, count in inner[:3]:
            per = count // len(hs)
            sample = next(p for p in m.template if m.template[p] == t)
            lines.append(f"each: {per} {TIMES} {m.template_array[t]} ({m.typ(sample)})")
        if len(inner) > 3:
            lines.append(f"each: +{len(inner) - 3} more kinds")
        box_lines[key] = lines
        cat = m.cat(hs[0])
        shape = "box3d" if len(hs) > 1 else "box"
        box = Box(key, [("label", quote("\n".join(lines))), ("shape", quote(shape)),
                         ("fillcolor", quote(FILL.get(cat, "#FFFFFF"))),
                         ("tooltip",
                          quote(f"{key}: {len(hs)} {TIMES} {m.types_label(hs)} ({cat})"))],
                   box_order[key])
        parent = box_parent[key]
        (clusters[parent].boxes if parent is not None else top_boxes).append(box)

    _fold_single_box_clusters(clusters, used_clusters, top_boxes, box_lines)
    edges: list[tuple[str, str, Attrs]] = []
    keys = sorted(aggs, key=lambda k: (box_order[k[0]], k[0], box_order[k[1]], k[1],
                                       m.planes.index(k[2]), k[3]))
    totals = [aggs[k].bandwidth for k in keys if aggs[k].bandwidth > 0]
    lo, hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    loops: dict[tuple[str, str], list[tuple[str, Agg]]] = defaultdict(list)
    for ekey in keys:
        a, b, p, scope = ekey
        agg = aggs[ekey]
        replicas = m.template_count[scope] if scope else 1
        label = edge_label(agg, replicas, m.template_array.get(scope, ""))
        if a == b:
            loops[(a, p)].append((label, agg))
            if len(loops[(a, p)]) > 1:
                continue  # merged into the first loop of this box and plane below
        tip = (f"{p}: {a} -- {b}: {agg.links:,} links, {format_bandwidth(agg.bandwidth)} "
               "in all" + (f" ({replicas} {TIMES} {last_segment(scope)})" if scope else ""))
        edges.append((a, b, edge_attrs(m, p, agg, label, tip, scope, lo, hi)))
    # Self-loops: one per box and plane (scopes merged).  Their figures go into the box's
    # own label, one line per plane ("ub inside: ..."): a loop's label, even an external
    # one, lands on the loop or under a neighbouring box.  The loop stays, unlabelled, in the
    # plane's colour, with the cmx_ attributes tools read.
    inside: dict[str, list[str]] = defaultdict(list)
    for i, (a, b, attrs) in enumerate(edges):
        if a != b:
            continue
        plane_of = dict(attrs)["cmx_plane"][1:-1]
        parts = loops[(a, plane_of)]
        total = Agg()
        for _label, agg in parts:
            total.links += agg.links
            total.bandwidth += agg.bandwidth
            total.link_bws |= agg.link_bws
        inside[a].extend(f"{plane_of} inside: " + lbl.replace("\n", " ") for lbl, _agg in parts)
        scope = dict(attrs)["cmx_scope"][1:-1] if len(parts) == 1 else ""
        tip = f"{plane_of}: within {a}: {total.links:,} links, " \
              f"{format_bandwidth(total.bandwidth)} in all"
        edges[i] = (a, b, edge_attrs(m, plane_of, total, "", tip, scope, lo, hi)[1:])
    for box in _all_boxes(top_boxes, clusters.values()):
        if box.id in inside:
            box.attrs = [(k, quote("\n".join([*box_lines[box.id], *inside[box.id]]))
                          if k == "label" else v) for k, v in box.attrs]

    _merge_tiers(m, top_boxes, clusters.values(), box_lines, edges)
    top = sorted((c for c in clusters.values() if c.parent is None and c.id[8:] in
                  used_clusters), key=lambda c: c.order)
    planes_drawn = [p for p in m.planes if any(k[2] == p for k in aggs)]
    return {"clusters": top, "boxes": top_boxes, "edges": edges, "planes": planes_drawn}


def _fold_single_box_clusters(clusters: dict[str, Cluster], used: set[str], top: list[Box],
                              lines: dict[str, list[str]]) -> None:
    """A cluster holding one box and nothing else (GB200's ``swtray[*]`` around its
    ``chip[*]``) is drawn as that box, the cluster's label its first line: an edge entering
    such a cluster from above ran through its title."""
    for key in sorted(used, key=lambda k: -clusters[k].order):   # innermost first
        c = clusters[key]
        if len(c.boxes) != 1 or c.clusters:
            continue
        (box,) = c.boxes
        title = dict(c.attrs)["label"][1:-1].replace("\\n", "\n")
        lines[box.id] = [title, *lines[box.id]]
        box.attrs = [(k, quote("\n".join(lines[box.id])) if k == "label" else v)
                     for k, v in box.attrs]
        used.discard(key)
        if c.parent is None:
            top.append(box)
        else:
            parent = clusters[c.parent]
            parent.clusters.remove(c)
            parent.boxes.append(box)


def _all_boxes(top: list[Box], clusters: Iterable[Cluster]) -> Iterator[Box]:
    yield from top
    for c in clusters:
        yield from c.boxes


def _merge_tiers(m: Machine, top: list[Box], clusters: Iterable[Cluster],
                 lines: dict[str, list[str]], edges: list[tuple[str, str, Attrs]]) -> None:
    """Draw the boxes of one split switch array (``l2[0][*]``, ``l2[1][*]``, ...) as one
    HTML-table node, its template, with one cell (port ``p<first index>``) per box in index
    order; edges to a box go to its cell (``headport`` ``pK:n``, ``tailport`` ``pK:s``: edges
    run tail above head).  dot keeps the cells of
    one node in order, where sibling boxes it reorders whatever the ordering hints."""
    for boxes in (top, *(c.boxes for c in clusters)):
        tiers: dict[str, list[tuple[int, Box]]] = defaultdict(list)
        for box in boxes:
            if box.id in m.split:
                template, first = m.split[box.id]
                tiers[template].append((first, box))
        port: dict[str, tuple[str, str]] = {}
        for template, members in tiers.items():
            if len(members) < 2:
                continue
            members.sort(key=lambda fb: fb[0])
            cells = "".join(
                f'<td port="p{first}" bgcolor="{FILL["switch"]}">'
                + "<br/>".join(html_text(line) for line in lines[box.id]) + "</td>"
                for first, box in members)
            kinds = m.types_label(p for p in m.template if m.template[p] == template)
            title = html_text(f"{last_segment(template)}: {kinds}, one box per first index")
            # the title under the cells: edges come in from above
            label = ('<<table border="1" style="rounded" color="#888888" cellborder="1" '
                     f'cellspacing="4" cellpadding="6"><tr>{cells}</tr>'
                     f'<tr><td colspan="{len(members)}" border="0">{title}</td></tr></table>>')
            tip = f"{template}: {m.template_count[template]} {TIMES} {kinds} (switch)"
            tier = Box(template, [("label", label), ("shape", quote("plain")),
                                  ("fillcolor", quote("transparent")),
                                  ("tooltip", quote(tip))], members[0][1].order)
            at = boxes.index(members[0][1])
            for _first, box in members:
                boxes.remove(box)
            boxes.insert(at, tier)
            port.update({box.id: (template, f"p{first}") for first, box in members})
        edges[:] = [to_ports(port, e, ":s", ":n") for e in edges]
