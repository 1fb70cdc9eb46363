"""The node view (``-O view=node``): one ``node`` instance in detail.

Every instance inside the chosen node is drawn (containers as clusters, sibling groups as
dashed clusters); links leaving it end at collapsed boxes of the outside, keyed as in the
supernode view; a bundle of more than 8 links that joins every member of one sibling group
to every member of another, or each member of one to its own member of another (``npu[k] ↔
nic[k]``), is drawn as one edge between the two groups; a full mesh inside one group of 4 or more
members is said in the group's title; a group whose members have only leaf children (8
NPUs of 2 dies) is one HTML-table node (:func:`_table`), which keeps them in index order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from supernode_dsl.contracts import present
from supernode_dsl.emit.base import emit_error
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
from supernode_dsl.schema import EDGE_PLANE, NODE_PARENT

__all__ = ["node_view"]

_COLLAPSE_MIN = 9    # bundles of more edges than this between two groups are merged
_MESH_MIN = 4        # a full mesh of this many members or more is said in the group title
_ROW = 4             # a tabled sibling group of more members is drawn in rows (8 NPUs: 2 x 4)


def _pick_node(m: Machine, which: str) -> str:
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


def _first_leaf(m: Machine, path: str) -> str:
    """The first instance without children at or below ``path``."""
    while m.children.get(path):
        path = m.children[path][0]
    return path


def _matched(m: Machine, bundle: list[tuple[str, str, Mapping[str, Any]]], group_a: list[str],
             group_b: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """``npu[k] ↔ nic[k]`` and the matched member pairs when a bundle of at least
    _COLLAPSE_MIN links joins each member of one sibling group (or what is inside it) to one
    member of another, every member once (a one-to-one wiring, drawn as one edge between the
    groups); ('', []) otherwise."""
    if group_a == group_b or len(group_a) < 2 or len(bundle) < _COLLAPSE_MIN:
        return "", []
    within = {x: a for a in group_a for x in m.descendants(a)}
    within_b = {x: b for b in group_b for x in m.descendants(b)}
    pairs = {(within.get(u), within_b.get(v)) for u, v, _d in bundle}
    tails, heads = {a for a, _b in pairs}, {b for _a, b in pairs}
    if tails != set(group_a) or heads != set(group_b) or len(pairs) != len(group_a):
        return "", []
    matched = sorted(((a, b) for a, b in pairs if a and b), key=lambda ab: m.order[ab[0]])
    a_name, b_name = m.array(group_a[0]), m.array(group_b[0])
    if all(m.indices(a) == m.indices(b) for a, b in matched):
        return f"{a_name}[k] ↔ {b_name}[k]", matched
    return f"each {a_name} ↔ one {b_name}", matched


def node_view(m: Machine, which: str, plane: str | None) -> dict[str, Any]:
    """One node instance (``which``: an ordinal among the ``node`` instances or a path) in
    detail, its links out of it collapsed to outside boxes; only ``plane``'s links if given.
    E026 for a node that does not exist."""
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
        return (str(m.g.nodes[child].get(NODE_PARENT, "")), last_segment(m.template[child]))

    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in m.descendants(top):
        if p != top:
            groups[(str(m.g.nodes[p].get(NODE_PARENT, "")), last_segment(m.template[p]))].append(p)

    group_cluster: dict[tuple[str, str], str] = {}
    inst_cluster: dict[str, str] = {}
    cell_port: dict[str, tuple[str, str]] = {}   # leaf in a table -> (table node, port)
    group_obj: dict[tuple[str, str], Cluster] = {}

    def build(path: str, depth: int) -> Cluster:
        cat = m.cat(path)
        label = f"{path if depth == 0 else last_segment(path)}: {m.typ(path)}"
        c = Cluster(f"cluster:{path}", [
            ("label", quote(label)), ("style", quote("rounded,filled")),
            ("fillcolor", quote(FILL.get(cat, "#FFFFFF"))), ("color", quote("#555555")),
            ("tooltip", quote(f"{path} ({cat})"))], m.order[path], None)
        inst_cluster[path] = c.id
        kids = m.children.get(path, [])
        seen: list[str] = []
        for k in kids:
            seg = last_segment(m.template[k])
            if seg not in seen:
                seen.append(seg)
        for seg in seen:
            members = groups[(path, seg)]
            target = c
            if len(members) > 1:
                # npu[0..7], chip[0..1][0..1]
                span = m.array(members[0]) + "".join(
                    f"[{i}..{j}]" for i, j in zip(m.indices(members[0]), m.indices(members[-1]),
                                                  strict=True))
                g_cluster = Cluster(f"cluster:{path}.{seg}", [
                    ("label", quote(f"{span}: {len(members)} {TIMES} {m.types_label(members)}")),
                    ("style", quote("dashed,rounded")), ("color", quote("#888888")),
                    ("fontsize", quote("11"))], m.order[members[0]], c.id)
                group_cluster[(path, seg)] = g_cluster.id
                group_obj[(path, seg)] = g_cluster
                c.clusters.append(g_cluster)
                target = g_cluster
            if _tabled(m, members):
                # one HTML-table node, cells in index order (dot reorders sibling clusters)
                box, ports = _table(m, f"table:{path}.{seg}", members)
                target.boxes.append(box)
                cell_port.update(ports)
                continue
            if len(members) > 1:
                # side by side in index order (instances with children: their first leaves)
                target.ranks.append([_first_leaf(m, x) for x in members])
            for x in members:
                if m.children.get(x):
                    target.clusters.append(build(x, depth + 1))
                else:
                    xcat = m.cat(x)
                    label_x = (last_segment(x) if len(members) > 1
                               else f"{last_segment(x)}\n{m.typ(x)}")
                    target.boxes.append(Box(x, [
                        ("label", quote(label_x)), ("shape", quote("box")),
                        ("fillcolor", quote(FILL.get(xcat, "#FFFFFF"))),
                        ("tooltip", quote(f"{x}: {m.typ(x)} ({xcat})"))], m.order[x]))
        return c

    main = build(top, 0)
    if not m.children.get(top):
        main.boxes.append(Box(top, [("label", quote(m.typ(top))), ("shape", quote("box"))],
                               m.order[top]))

    internal: dict[tuple[str, tuple[str, str], tuple[str, str]], list[tuple[str, str,
                                                                         Mapping[str, Any]]]]
    internal = defaultdict(list)
    external: dict[tuple[str, str, str], Agg] = defaultdict(Agg)
    in_cells: set[str] = set()   # planes of links said in table cells
    for u, v, d in m.g.edges(data=True):
        p = str(d.get(EDGE_PLANE, ""))
        if plane is not None and p != plane:
            continue
        ui, vi = u in inside, v in inside
        if not ui and not vi:
            continue
        if _same_cell(m, cell_port, u, v):
            in_cells.add(p)   # said in the cell
            continue
        if ui and vi:
            lca = present(m.lca(u, v), "the common ancestor of two instances")
            ga, gb = group_of(u, lca), group_of(v, lca)
            if (m.order[u], u) > (m.order[v], v):
                u, v, ga, gb = v, u, gb, ga
            internal[(p, ga, gb)].append((u, v, d))
        else:
            if vi:
                u, v = v, u
            external[(u, sn_box[v], p)].add(d, u, v)

    ext_boxes: dict[str, Box] = {}
    ext_peers: dict[str, set[str]] = defaultdict(set)
    for (_u, key, _p), agg in external.items():
        ext_peers[key] |= agg.heads
    for key in sorted(ext_peers, key=lambda k: (min(m.order[x] for x in ext_peers[k]), k)):
        peers = sorted(ext_peers[key], key=m.order.__getitem__)
        cat = m.cat(peers[0])
        n = len(peers)
        lines = [key, f"{n} {TIMES} {m.types_label(peers)}" if n > 1 else m.types_label(peers)]
        ext_boxes[key] = Box(f"outside:{key}", [
            ("label", quote("\n".join(lines))), ("shape", quote("box3d" if n > 1 else "box")),
            ("style", quote("filled,dashed")), ("fillcolor", quote(FILL.get(cat, "#FFFFFF"))),
            ("tooltip", quote(f"outside {top}: {key} ({n} linked)"))],
            min(m.order[x] for x in peers))

    items: list[tuple[tuple[int, int, int, str, str], str, str, str, Agg, str, Attrs]] = []
    guides: list[tuple[str, str]] = []
    for (p, ga, gb), bundle in internal.items():
        agg = Agg()
        for u, v, d in bundle:
            agg.add(d, u, v)
        g_obj = group_obj.get(ga) if ga == gb else None
        if g_obj is not None and _full_mesh(m, bundle, groups[ga]):
            # said in the group's title: 28 arcs of one mesh only hid each other's labels
            mesh = f"{p} full mesh, every pair: " + edge_label(agg, 1, "").replace("\n", " ")
            g_obj.attrs = [(k, quote(f"{v[1:-1]}; {mesh}") if k == "label" else v)
                           for k, v in g_obj.attrs]
            in_cells.add(p)
            continue
        tails, heads_ = agg.tails, agg.heads
        complete = (ga != gb and len(bundle) >= _COLLAPSE_MIN
                    and len(bundle) == len(tails) * len(heads_))
        t_rep, h_rep = (min(ends, key=m.order.__getitem__) for ends in (tails, heads_))
        what, matched = ((f"every {m.array(t_rep)} ↔ every {m.array(h_rep)}", [])
                         if complete else _matched(m, bundle, groups[ga], groups[gb]))
        # invisible member-to-member edges keep a matched pair's members in the same order
        # (dot orders sibling clusters by their edges; without them it reversed the NPUs)
        guides.extend((_first_leaf(m, a), _first_leaf(m, b)) for a, b in matched
                      if _first_leaf(m, a) not in cell_port)   # a table keeps its order
        if what:
            extra: Attrs = []
            for side, grp in (("ltail", ga), ("lhead", gb)):
                cid = group_cluster.get(grp)
                if cid is None:
                    members = groups[grp]
                    cid = inst_cluster.get(members[0]) if len(members) == 1 else None
                if cid is not None:
                    extra.append((side, quote(cid)))
            pairs = 1 if complete else len(groups[ga])
            label = f"{what}\n{edge_label(agg, pairs, m.array(groups[ga][0]))}"
            items.append(((m.order[t_rep], m.order[h_rep], m.planes.index(p), t_rep, h_rep),
                          t_rep, h_rep, p, agg, label, extra))
            continue
        for u, v, d in bundle:
            one = Agg()
            one.add(d, u, v)
            items.append(((m.order[u], m.order[v], m.planes.index(p), u, v), u, v, p, one,
                          edge_label(one, 1, ""), []))
    for (u, key, p), agg in external.items():
        target = ext_boxes[key]
        items.append(((m.order[u], target.order, m.planes.index(p), u, key), u, target.id, p,
                      agg, edge_label(agg, 1, ""), []))
    items.sort(key=lambda it: it[0])
    totals = [it[4].bandwidth for it in items if it[4].bandwidth > 0]
    lo, hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    edges: list[tuple[str, str, Attrs]] = []
    for _k, u, v, p, agg, label, extra in items:
        names = {k for k, _v in extra}
        if m.children.get(u) and u in inst_cluster and "ltail" not in names:
            extra = [*extra, ("ltail", quote(inst_cluster[u]))]
        if m.children.get(v) and v in inst_cluster and "lhead" not in names:
            extra = [*extra, ("lhead", quote(inst_cluster[v]))]
        # (a link to a tabled member itself ends at its cell, not at its first child)
        u, v = (_first_leaf(m, u) if u in inside and u not in cell_port else u,
                _first_leaf(m, v) if v in inside and v not in cell_port else v)
        tip = f"{p}: {u} -- {v}: {agg.links:,} links, {format_bandwidth(agg.bandwidth)}"
        edges.append((u, v, edge_attrs(m, p, agg, label, tip, "", lo, hi) + extra))
    edges.extend((a, b, [("style", quote("invis"))]) for a, b in guides)
    edges = [to_ports(cell_port, e) for e in edges]
    planes_drawn = [p for p in m.planes if p in in_cells or any(it[3] == p for it in items)]
    return {"clusters": [main], "boxes": list(ext_boxes.values()), "edges": edges,
            "planes": planes_drawn, "node": top}



def _full_mesh(m: Machine, bundle: list[tuple[str, str, Mapping[str, Any]]],
               members: list[str]) -> bool:
    """A bundle inside one sibling group of _MESH_MIN or more ``members`` joining every pair
    of them (or what is inside them), each pair once (UB-Mesh's 8 NPUs, CloudMatrix384's 4
    CPUs)."""
    n = len(members)
    if n < _MESH_MIN or len(bundle) != n * (n - 1) // 2:
        return False
    owner = {x: a for a in members for x in m.descendants(a)}
    pairs = {frozenset((owner.get(u), owner.get(v))) for u, v, _d in bundle}
    return len(pairs) == len(bundle) and all(len(pr) == 2 and None not in pr for pr in pairs)


def _tabled(m: Machine, members: list[str]) -> bool:
    """A sibling group drawn as one HTML-table node: two or more members, each with children
    that have none (8 NPUs of 2 dies each)."""
    return len(members) > 1 and all(
        m.children.get(x) and not any(m.children.get(c) for c in m.children[x])
        for x in members)


def _rows(members: list[str]) -> list[list[str]]:
    """``members`` cut into rows: one row up to _ROW, else two equal rows up to 4 * _ROW,
    else rows of 2 * _ROW (index order, row by row)."""
    n = len(members)
    width = n if n <= _ROW else -(-n // 2) if n <= 4 * _ROW else 2 * _ROW
    return [members[i:i + width] for i in range(0, n, width)]


def _cell(m: Machine, x: str, port: dict[str, tuple[str, str]], table: str) -> str:
    """One member's cell (a port for the member itself): its name and type, a port cell per
    child, and one line per plane for the links between its children (not drawn as edges)."""
    kids = m.children[x]
    for k in (x, *kids):
        port[k] = (table, f"c{len(port)}")
    inner: dict[str, Agg] = defaultdict(Agg)
    for k in kids:
        for n, d in m.g[k].items():
            if n in kids and (m.order[k], k) < (m.order[n], n):
                inner[str(d.get(EDGE_PLANE, ""))].add(d, k, n)
    span = len(kids)
    rows = [f'<tr><td colspan="{span}">{html_text(f"{last_segment(x)}: {m.typ(x)}")}</td></tr>',
            "<tr>" + "".join(
                f'<td port="{port[k][1]}" border="1" bgcolor="{FILL.get(m.cat(k), "#FFFFFF")}"'
                f">{html_text(last_segment(k))}</td>" for k in kids) + "</tr>"]
    for plane in m.planes:
        if plane in inner:
            text = f"{plane} inside: " + edge_label(inner[plane], 1, "").replace("\n", " ")
            rows.append(f'<tr><td colspan="{span}"><font point-size="9" '
                        f'color="{m.colour[plane]}">{html_text(text)}</font></td></tr>')
    return (f'<td port="{port[x][1]}" bgcolor="{FILL.get(m.cat(x), "#FFFFFF")}" border="1">'
            '<table border="0" cellborder="0" cellspacing="3" cellpadding="3">'
            + "".join(rows) + "</table></td>")


def _table(m: Machine, table: str, members: list[str]) -> tuple[Box, dict[str, tuple[str, str]]]:
    """The HTML-table node of a tabled sibling group (rows of :func:`_rows`, index order)
    and the port of every member and of every child of every member."""
    port: dict[str, tuple[str, str]] = {}
    rows = "".join("<tr>" + "".join(_cell(m, x, port, table) for x in row) + "</tr>"
                   for row in _rows(members))
    label = f'<<table border="0" cellborder="0" cellspacing="6">{rows}</table>>'
    tip = f"{members[0]} .. {members[-1]}: {len(members)} {TIMES} {m.types_label(members)}"
    return Box(table, [("label", label), ("shape", quote("plain")),
                       ("fillcolor", quote("transparent")), ("tooltip", quote(tip))],
               m.order[members[0]]), port


def _same_cell(m: Machine, port: dict[str, tuple[str, str]], u: str, v: str) -> bool:
    """Both ends children of one tabled member (a link said in its cell)."""
    return u in port and v in port and m.g.nodes[u].get(NODE_PARENT) == m.g.nodes[v].get(
        NODE_PARENT)

