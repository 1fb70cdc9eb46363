"""Deterministic JSON text for reports and plans (sorted keys)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["document_json", "info_json"]


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


def info_json(data: dict[str, Any] | list[Any]) -> str:
    """Deterministic JSON text for a report dictionary."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"
