"""Section 1, summary: root instance, instance counts by category and type, global
parameters."""

from __future__ import annotations

from typing import Any

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.elaborate import Model

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
    return {
        "name": model.root_name,
        "root_type": model.root.type_name,
        "instances": f"{model.num_instances:,}",
        "links": f"{g.number_of_edges():,}",
        "by_category": [(k, f"{v:,}") for k, v in model.count_by_category().items()],
        "by_type": [(k, f"{v:,}") for k, v in model.count_by_type().items()],
        "params": [(k, _param_text(v)) for k, v in model.params],
        "schema_version": S.SCHEMA_VERSION,
    }
