"""The grid view (``-O view=grid``): a torus or mesh drawn as the grid it is.

The array drawn is the first one in instance order with two or more dimensions whose
elements are linked to each other (through what they contain): TPU v4's
``host[X][Y][Z]``.  Two of its dimensions (``-O dims=0,1``, the default) are laid out as rows
and columns, the other indices held at 0 (a slice; ``dims=1,2`` draws another plane of the
torus).  Each element is one box at its grid position (Graphviz neato with pinned positions,
so the grid is exact); the links between two elements are one edge per plane, wrap-around
links included; what runs inside an element and what leaves the slice along the other
dimensions is stated in its label, so nothing is left out unsaid.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from supernode_dsl.emit.base import emit_error
from supernode_dsl.emit.graphviz.common import (
    FILL,
    Agg,
    Attrs,
    Box,
    Machine,
    edge_attrs,
    edge_label,
    format_bandwidth,
    last_segment,
    quote,
)
from supernode_dsl.schema import EDGE_PLANE

__all__ = ["grid_view"]

_CHAR_IN = 0.085  # inches per label character (Helvetica 11 pt, generous)
_LINE_IN = 0.2    # inches per label line
_GAP_IN = 1.1     # inches between boxes, room for an edge label


def _linked_array(m: Machine) -> str | None:
    """The template of the first array (in instance order) with two or more dimensions whose
    elements are linked to each other, or None."""
    members: dict[str, list[str]] = defaultdict(list)
    for path in m.order:
        if len(m.indices(path)) >= 2:
            members[m.template[path]].append(path)
    for t, paths in members.items():
        owner = {d: p for p in paths for d in m.descendants(p)}
        if any((a := owner.get(u)) and (b := owner.get(v)) and a != b
               for u, v in m.g.edges()):
            return t
    return None


def _dims(text: str, rank: int) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise emit_error(f"dims={text!r}: give two dimensions, e.g. dims=0,1")
    a, b = (int(p) for p in parts)
    if a == b or max(a, b) >= rank:
        raise emit_error(f"dims={text!r}: the array has dimensions 0..{rank - 1}; give two "
                         "different ones")
    return a, b


def grid_view(m: Machine, dims: str, plane: str | None) -> dict[str, Any]:
    """The boxes and edges of the grid of the first linked multi-dimensional array, its
    dimensions ``dims`` ("0,1") as rows and columns; E026 when there is none."""
    template = _linked_array(m)
    if template is None:
        raise emit_error("view=grid: the topology has no array of two or more dimensions "
                         "whose elements are linked to each other")
    elements = [p for p in m.order if m.template[p] == template]
    rank = len(m.indices(elements[0]))
    row_dim, col_dim = _dims(dims, rank)
    held = [i for i in range(rank) if i not in (row_dim, col_dim)]
    shown = [p for p in elements if all(m.indices(p)[i] == 0 for i in held)]
    owner = {d: p for p in elements for d in m.descendants(p)}
    in_slice = set(shown)
    between: dict[tuple[str, str, str], Agg] = defaultdict(Agg)
    inside: dict[tuple[str, str], Agg] = defaultdict(Agg)
    leaving: dict[tuple[str, str], Agg] = defaultdict(Agg)
    for u, v, d in m.g.edges(data=True):
        p = str(d.get(EDGE_PLANE, ""))
        a, b = owner.get(u), owner.get(v)
        if (plane is not None and p != plane) or a is None or b is None:
            continue
        if a == b:
            if a in in_slice:
                inside[(a, p)].add(d, u, v)
            continue
        if a in in_slice and b in in_slice:
            if m.order[a] > m.order[b]:
                a, b, u, v = b, a, v, u
            between[(a, b, p)].add(d, u, v)
        for end, far in ((a, b), (b, a)):
            if end in in_slice and far not in in_slice:
                leaving[(end, p)].add(d, u, v)
    facts = {p: _facts(m, p, inside, leaving) for p in shown}
    # the same facts for every element are said once, in the title, not in 64 boxes
    common = next(iter(facts.values())) if len(set(map(tuple, facts.values()))) == 1 else []
    lines = {p: [last_segment(p), m.typ(p), *([] if common else facts[p])] for p in shown}
    width = max(len(line) for ls in lines.values() for line in ls) * _CHAR_IN + _GAP_IN
    height = max(len(ls) for ls in lines.values()) * _LINE_IN + _GAP_IN
    boxes = [_box(m, p, lines[p], (m.indices(p)[col_dim] * width, -m.indices(p)[row_dim]
                                   * height)) for p in shown]
    totals = [agg.bandwidth for agg in between.values() if agg.bandwidth > 0]
    lo, hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    edges: list[tuple[str, str, Attrs]] = []
    # one label per dimension for all its edges is said once, in the title
    by_dim: dict[int, set[str]] = defaultdict(set)
    for (a, b, _p), agg in between.items():
        along = [i for i, (x, y) in enumerate(zip(m.indices(a), m.indices(b), strict=True))
                 if x != y]
        by_dim[along[0] if len(along) == 1 else -1].add(edge_label(agg, 1, "").replace("\n", " "))
    same = -1 not in by_dim and all(len(v) == 1 for v in by_dim.values())
    wraps = 0
    for (a, b, p), agg in sorted(between.items(), key=lambda kv: (
            m.order[kv[0][0]], m.order[kv[0][1]], m.planes.index(kv[0][2]))):
        tip = f"{p}: {a} -- {b}: {agg.links:,} links, {format_bandwidth(agg.bandwidth)}"
        attrs = edge_attrs(m, p, agg, "" if same else edge_label(agg, 1, ""), tip, "", lo, hi)
        # a wrap-around (or any non-neighbour) link is dashed
        wrap = sum(abs(i - j) for i, j in zip(m.indices(a), m.indices(b), strict=True)) > 1
        wraps += wrap
        edges.append((a, b, [*attrs, ("style", quote("dashed"))] if wrap else attrs))
    planes = [p for p in m.planes
              if any(k[2] == p for k in between) or any(k[1] == p for k in inside)
              or any(k[1] == p for k in leaving)]
    held_text = ", ".join(f"index {i} = 0" for i in held)
    return {"clusters": [], "boxes": boxes, "edges": edges, "planes": planes,
            "array": template, "dims": (row_dim, col_dim), "held": held_text,
            "each": "; ".join(common),
            "links": "; ".join(f"index {i} neighbours: {next(iter(v))}"
                               for i, v in sorted(by_dim.items())) if same else "",
            "dashed": wraps > 0}


def _facts(m: Machine, path: str, inside: dict[tuple[str, str], Agg],
           leaving: dict[tuple[str, str], Agg]) -> list[str]:
    """What runs inside an element and what leaves the slice from it, one line per plane."""
    out: list[str] = []
    for p in m.planes:
        if (p_in := inside.get((path, p))) is not None:
            out.append(f"{p} inside: " + edge_label(p_in, 1, "").replace("\n", " "))
        if (p_out := leaving.get((path, p))) is not None:
            out.append(f"{p} out of this slice: " + edge_label(p_out, 1, "").replace("\n", " "))
    return out


def _box(m: Machine, path: str, lines: list[str], at: tuple[float, float]) -> Box:
    """One element at its grid position (inches, pinned)."""
    return Box(path, [("label", quote("\n".join(lines))), ("shape", quote("box")),
                      ("fillcolor", quote(FILL.get(m.cat(path), "#FFFFFF"))),
                      ("pos", quote(f"{at[0]:.2f},{at[1]:.2f}!")),
                      ("tooltip", quote(f"{path}: {m.typ(path)}"))], m.order[path])
