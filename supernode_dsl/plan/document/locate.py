"""Where a JSON path lies in a JSON text: the line and column of the value it names; and
reading JSON text with every failure located (:func:`parse_json`).

:func:`locate` walks only along the path: siblings are skipped with the C decoder, so
finding one value in a megabyte plan costs about one parse.  A path that runs past the
text's values (a missing key) resolves to the deepest value that exists.
"""

from __future__ import annotations

import json
import re
from typing import Any

from supernode_dsl.diagnostics import CmxError, Diagnostic, SourceText, Span
from supernode_dsl.plan.document.codec import JsonPath

__all__ = ["MAX_INT_DIGITS", "locate", "parse_json"]

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


#: The most digits a JSON integer may have: far more than any count, size or rank of a
#: plan or a loads file, far fewer than Python's own limit (4300, a ValueError).
MAX_INT_DIGITS = 30


class _LongInteger(ValueError):
    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _LongInteger(text)
    return int(text)


def _span(source: SourceText, offset: int, length: int = 1) -> Span:
    line, col = _line_col(source.text, offset)
    return Span(source, line, col, line, col + max(1, min(length, 40)))


def parse_json(source: SourceText, code: str) -> Any:
    """The JSON value of ``source``; :class:`CmxError` with ``code`` at the line and
    column of a syntax error, of an integer longer than :data:`MAX_INT_DIGITS` digits, or
    at the start for a document nested too deeply."""
    try:
        return json.loads(source.text, parse_int=_parse_int)
    except json.JSONDecodeError as err:
        span = Span(source, err.lineno, err.colno, err.lineno, err.colno + 1)
        raise CmxError([Diagnostic(code, f"not valid JSON: {err.msg}", span)]) from None
    except _LongInteger as err:
        found = re.search(rf"-?\d{{{MAX_INT_DIGITS + 1},}}", source.text)
        at = found.start() if found else 0
        raise CmxError([Diagnostic(code, f"an integer of {len(err.digits.lstrip('-')):,} "
                                   f"digits; at most {MAX_INT_DIGITS} are read",
                                   _span(source, at, len(err.digits)))]) from None
    except RecursionError:
        raise CmxError([Diagnostic(code, "the JSON is nested too deeply",
                                   _span(source, 0))]) from None
