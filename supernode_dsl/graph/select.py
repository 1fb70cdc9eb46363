"""Selecting instances by path pattern: ``cm384.node[0:24]``, ``node[*].npu[3]``, ``l2[2][*]``.

A pattern is a dotted path whose indices may be a number, ``*`` (any) or ``lo:hi`` (lo..hi-1).
The root name may be left out.
"""

from __future__ import annotations

import re

import networkx as nx

from supernode_dsl import schema as S

__all__ = ["PatternError", "select"]

_SEG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\]]*\])*)")
_IDX = re.compile(r"\[([^\]]*)\]")

_Spec = tuple[str, tuple[tuple[int, int] | None, ...]]


class PatternError(ValueError):
    """A malformed pattern."""


def _parse(pattern: str) -> list[_Spec]:
    out: list[_Spec] = []
    for part in pattern.split("."):
        m = _SEG.fullmatch(part.strip())
        if m is None:
            raise PatternError(f"'{part}' is not a name with optional [index] parts")
        specs: list[tuple[int, int] | None] = []
        for raw in _IDX.findall(m.group(2)):
            raw = raw.strip()
            try:
                if raw == "*":
                    specs.append(None)
                elif ":" in raw:
                    lo, hi = raw.split(":", 1)
                    specs.append((int(lo), int(hi)))
                else:
                    specs.append((int(raw), int(raw) + 1))
            except ValueError:
                raise PatternError(f"bad index '[{raw}]': use a number, '*' or 'lo:hi'") from None
        out.append((m.group(1), tuple(specs)))
    return out


def _split_path(path: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(m.group(1), tuple(int(i) for i in _IDX.findall(m.group(2))))
            for m in _SEG.finditer(path)]


def _matches(specs: list[_Spec], path: str) -> bool:
    segs = _split_path(path)
    if len(segs) != len(specs):
        return False
    for (name, idx), (pname, pidx) in zip(segs, specs, strict=True):
        if name != pname or len(idx) != len(pidx):
            return False
        for i, rng in zip(idx, pidx, strict=True):
            if rng is not None and not rng[0] <= i < rng[1]:
                return False
    return True


def select(g: nx.Graph, pattern: str) -> list[str]:
    """Instance paths matching ``pattern``, in instance order (root name optional)."""
    specs = _parse(pattern)
    root = g.graph.get(S.GRAPH_NAME, "")
    if specs and specs[0][0] != root:
        specs = [(root, ()), *specs]
    depth = len(specs)
    return [n for n in g.nodes if n.count(".") + 1 >= depth and _matches(specs, n)]
