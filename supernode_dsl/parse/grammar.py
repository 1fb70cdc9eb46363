"""Locating and loading the lark grammar (shipped in the wheel, or from the source tree)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

from lark import Lark, Token

__all__ = ["get_parser", "grammar_path"]

_PKG_DIR = Path(__file__).resolve().parent.parent


def grammar_path() -> Path:
    """Path of ``cmx.lark``: inside the installed package, else the repository's grammars/."""
    for base in (_PKG_DIR, _PKG_DIR.parent):
        candidate = base / "grammars" / "cmx.lark"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("cmx.lark not found: the supernode-dsl installation is incomplete")


class _DropNewlinesInBrackets:
    """Post-lexer: a line break inside (...) or [...] does not end a statement."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth:
                continue
            yield tok


def _cache_file(start: str) -> str | bool:
    """Where lark keeps the analysed grammar for rule ``start``: a file in the user's own
    cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``, ``supernode-dsl/``, mode 0700),
    not lark's default in the shared temporary directory, since lark unpickles it; False
    (no cache) when that directory cannot be made.  lark checks the grammar, the options
    and its version against the file and rebuilds it when they differ."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "supernode-dsl"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    return str(base / f"cmx-{start}.lark-cache")


@functools.cache
def get_parser(start: str = "start", cache: bool = True) -> Lark:
    """The LALR(1) parser for .cmx starting at the grammar rule ``start``, built once per
    process and rule (the analysed grammar is cached by lark between processes, which
    halves the build; ``cache=False`` builds it afresh, with the ``grammar`` attribute that
    a cached parser lacks, for tools that generate text from the grammar): ``start`` for a
    file, ``ref`` for one instance reference (the query
    selectors of :mod:`supernode_dsl.graph.select`, one line: no post-lexer, so a line
    break is an error)."""
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        start=start,
        parser="lalr",
        lexer="contextual",
        postlex=_DropNewlinesInBrackets() if start == "start" else None,
        propagate_positions=True,
        maybe_placeholders=False,
        strict=False,
        cache=_cache_file(start) if cache else False,
    )
