"""Graph dumps: networkx node-link JSON and GraphML, deterministic bytes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import networkx as nx

__all__ = ["graphml_text", "node_link_text"]


def node_link_text(g: nx.Graph) -> str:
    """The graph as networkx node-link JSON with the ``edges`` key (networkx's default
    from 3.6 on, so ``nx.node_link_graph(json.load(f))`` reads it), deterministic bytes."""
    data = nx.node_link_data(g, edges="edges")
    return json.dumps(data, sort_keys=True, indent=1) + "\n"


def graphml_text(g: nx.Graph) -> str:
    """The graph as GraphML; graph-level dicts (planes) and node tuples (``indices``) are
    stored as JSON strings (GraphML has no list type)."""
    h = g.copy()
    for data in h.nodes.values():
        for k, v in data.items():
            if isinstance(v, tuple):
                data[k] = json.dumps(list(v))
    _widen_mixed_numbers(h.nodes.values())
    _widen_mixed_numbers(d for _, _, d in h.edges(data=True))
    h.graph = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else v)
               for k, v in g.graph.items()}
    buf = io.BytesIO()
    nx.write_graphml(h, buf, encoding="utf-8", prettyprint=True, named_key_ids=True)
    return buf.getvalue().decode("utf-8")


def _widen_mixed_numbers(records: Iterable[dict[str, Any]]) -> None:
    """GraphML declares one type per key: where a key holds both ints and floats, make all
    of them floats (networkx would otherwise declare the key twice)."""
    records = list(records)
    kinds: dict[str, set[type]] = {}
    for rec in records:
        for k, v in rec.items():
            kinds.setdefault(k, set()).add(type(v))
    mixed = {k for k, t in kinds.items() if {int, float} <= t}
    for rec in records:
        for k in mixed & rec.keys():
            rec[k] = float(rec[k])
