"""Where a JSON path lies in a JSON text: the line and column of the value it names.

:func:`locate` walks only along the path: siblings are skipped with the C decoder, so
finding one value in a megabyte plan costs about one parse.  A path that runs past the
text's values (a missing key) resolves to the deepest value that exists.
"""

from __future__ import annotations

import json
import re

from supernode_dsl.plan.document.codec import JsonPath

__all__ = ["locate"]

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _value_end(text: str, at: int) -> int:
    _, end = _DECODER.raw_decode(text, at)
    return end


def _child(text: str, at: int, part: str | int) -> int | None:
    """The offset of member ``part`` of the object or array starting at ``at``."""
    opener = text[at] if at < len(text) else ""
    if opener not in "{[" or (opener == "{") != isinstance(part, str):
        return None
    at, index = _skip(text, at + 1), 0
    while at < len(text) and text[at] not in "}]":
        name: str | int = index
        if opener == "{":
            name, at = _DECODER.raw_decode(text, at)
            at = _skip(text, _skip(text, at) + 1)  # past the colon
        if name == part:
            return at
        at = _skip(text, _value_end(text, at))
        at, index = _skip(text, at + 1) if text[at:at + 1] == "," else at, index + 1
    return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def locate(text: str, path: JsonPath) -> tuple[int, int, int]:
    """(line, column, length on that line) of the value at ``path`` in ``text`` (1-based),
    or of its deepest existing ancestor; (1, 1, 1) when ``text`` is not JSON."""
    try:
        at = _skip(text, 0)
        for part in path:
            nxt = _child(text, at, part)
            if nxt is None:
                break
            at = nxt
        end = _value_end(text, at)
    except (ValueError, IndexError):
        return 1, 1, 1
    line, col = _line_col(text, at)
    stop = text.find("\n", at, end)
    return line, col, max(1, (end if stop < 0 else stop) - at)
