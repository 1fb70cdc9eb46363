"""Deterministic JSON text for reports and plans (sorted keys)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["document_json", "info_json"]


# Encoders made once: ``json.dumps`` with any non-default argument builds a new encoder per
# call, which is most of the time of writing a plan (tens of thousands of values).
_VALUE = json.JSONEncoder()
_FLAT_LIST = json.JSONEncoder(separators=(", ", ": "))


def _compact(value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad} {_VALUE.encode(k)}: {_compact(value[k], indent + 1)}"
                 for k in sorted(value)]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return _FLAT_LIST.encode(value)
        items = [f"{pad} {_compact(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return _VALUE.encode(value)


def document_json(data: dict[str, Any]) -> str:
    """Deterministic, reviewable JSON: sorted keys, one line per list of plain values."""
    return _compact(data, 0) + "\n"


def info_json(data: dict[str, Any] | list[Any]) -> str:
    """Deterministic JSON text for a report dictionary."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"
