"""What a file says about its global parameters: the declaration as written and its comment.

The language's comments run from ``#`` to the end of the line.  A parameter's *meaning* is
the comment at the end of its declaration line (``param nodes = 48  # nodes per
supernode``), else the comment lines directly above it; without either it is empty.  The
*default* is the declared expression as written.  ``cmx info`` prints them, so the ``-D``
knobs of a file are visible without reading it.
"""

from __future__ import annotations

from dataclasses import dataclass

from supernode_dsl.parse import Program
from supernode_dsl.parse.ast import ParamDecl

__all__ = ["ParamDoc", "param_docs"]


@dataclass(frozen=True)
class ParamDoc:
    """One global parameter: its name, its default as written, and its meaning."""

    name: str
    default: str
    meaning: str


def _comment_start(line: str) -> int:
    """Where the ``#`` comment of ``line`` starts (``len(line)`` if none; a ``#`` inside a
    string is not a comment)."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return i
    return len(line)


def _doc(decl: ParamDecl) -> ParamDoc:
    src, line = decl.span.source, decl.span.line
    text = src.line(line)
    cut = _comment_start(text)
    code, meaning = text[:cut], text[cut + 1:].strip()
    default = code.split("=", 1)[1].strip() if "=" in code else ""
    if decl.span.end_line > line:  # a declaration over several lines: as written, joined
        rest = [src.line(n)[:_comment_start(src.line(n))].strip()
                for n in range(line + 1, decl.span.end_line + 1)]
        default = " ".join([default, *rest]).strip()
    if not meaning:
        above: list[str] = []
        n = line - 1
        while n >= 1 and src.line(n).lstrip().startswith("#"):
            above.insert(0, src.line(n).lstrip()[1:].strip())
            n -= 1
        meaning = " ".join(a for a in above if a)
    return ParamDoc(decl.name, default, meaning)


def param_docs(program: Program) -> tuple[ParamDoc, ...]:
    """The global parameters of ``program``'s files (imports first), each documented."""
    return tuple(_doc(p) for f in program.files for p in f.params)
