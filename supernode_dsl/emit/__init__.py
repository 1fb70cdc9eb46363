"""Stage 5, emit: graph dumps (networkx node-link JSON, GraphML) and atomic file output.

Every writer builds its whole output in memory first and then replaces the target file
atomically, so a failure never leaves a half-written or truncated file behind.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx

__all__ = ["document_json", "graphml_text", "info_json", "node_link_text", "write_atomic"]


def write_atomic(path: str | Path, data: str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def node_link_text(g: nx.Graph) -> str:
    """The graph as networkx node-link JSON (``edges="links"``), deterministic bytes."""
    data = nx.node_link_data(g, edges="links")
    return json.dumps(data, sort_keys=True, indent=1) + "\n"


def graphml_text(g: nx.Graph) -> str:
    """The graph as GraphML; graph-level dicts (planes) are stored as JSON strings."""
    h = g.copy()
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


def _compact(value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {_compact(value[k], indent + 1)}'
                 for k in sorted(value)]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return json.dumps(value, separators=(", ", ": "))
        items = [f"{pad} {_compact(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def document_json(data: dict[str, Any]) -> str:
    """Deterministic, reviewable JSON: sorted keys, one line per list of plain values."""
    return _compact(data, 0) + "\n"


def info_json(data: dict[str, Any]) -> str:
    """Deterministic JSON text for a report dictionary."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"

