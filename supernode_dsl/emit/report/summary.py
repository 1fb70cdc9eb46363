"""Section 1, summary: root instance, instance counts by category and type, global
parameters."""

from __future__ import annotations

from typing import Any

import networkx as nx

from supernode_dsl.elaborate import Model
from supernode_dsl.graph import summarize

__all__ = [
    "summary_section",
]


def _param_text(v: object) -> str:
    value = getattr(v, "value", v)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def summary_section(model: Model, g: nx.Graph) -> dict[str, Any]:
    """Section 1: names, counts (formatted) and global parameters."""
    s = summarize(model, g, bandwidth=False)  # the bandwidth section computes the planes
    return {
        "name": s.name,
        "root_type": s.root_type,
        "instances": f"{s.instances:,}",
        "links": f"{s.link_bundles:,}",
        "by_category": [(k, f"{v:,}") for k, v in s.by_category],
        "by_type": [(k, f"{v:,}") for k, v in s.by_type],
        "params": [(k, _param_text(v)) for k, v in s.params],
        "schema_version": s.schema_version,
    }
