"""A small deterministic YAML writer for the plain data the emitters produce (the outputs
are read back with PyYAML in the tests)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["yaml_text"]


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # YAML 1.1 floats need a dot
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return text
    if value is None:
        return "null"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            head = f"{pad}{_yaml_scalar(key)}:"
            nested = isinstance(item, list) and any(isinstance(v, Mapping | list) for v in item)
            if nested or (isinstance(item, Mapping) and item):
                out.append(head)
                out.extend(_yaml_lines(item, indent + 2))
            else:
                out.append(f"{head} {_yaml_inline(item)}")
        return out
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and item:
                sub = _yaml_lines(item, indent + 2)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_yaml_inline(item)}")
        return out
    return [pad + _yaml_inline(value)]


def _yaml_inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_yaml_scalar(k)}: {_yaml_inline(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_inline(v) for v in value) + "]"
    return _yaml_scalar(value)


def yaml_text(data: Any, comments: Sequence[str] = ()) -> str:
    """Block-style YAML for plain data (mappings in insertion order, lists, str, int, float,
    bool, None); lists of scalars are written in flow style.  ``comments`` become ``#``
    lines at the top.  The same data always gives the same text."""
    head = [f"# {line}" if line else "#" for line in comments]
    return "\n".join([*head, *_yaml_lines(data, 0)]) + "\n"
