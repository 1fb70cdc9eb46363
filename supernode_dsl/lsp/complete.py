"""Completion candidates for the text before the cursor: keywords, types, parameters, planes
and attribute names, chosen by what the line so far says (after ``link`` a plane, after
``:`` a type, at the start of a statement a keyword or an attribute).  No pygls here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from supernode_dsl.lsp.symbols import Declarations
from supernode_dsl.parse import Program
from supernode_dsl.parse import ast as A
from supernode_dsl.schema import (
    CATEGORIES,
    DEPLOYMENT_ATTRS,
    LINK_ATTRS,
    MODEL_ATTRS,
    SPEC_CATEGORIES,
    known_attribute_names,
)

__all__ = ["KEYWORDS", "Candidate", "complete"]

#: The statement keywords of the language (categories are offered beside them).
KEYWORDS = ("import", "param", "plane", "instance", "link", "true", "false")

_AFTER_LINK = re.compile(r"^\s*link\s+\w*$")
_AFTER_COLON = re.compile(r":\s*\w*$")
_STATEMENT_START = re.compile(r"^\s*[\w.]*$")
_IN_LINK_BLOCK = re.compile(r"^\s*link\b.*\{[^}]*$")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One completion: the text, its kind (keyword, type, parameter, plane, attribute) and a
    one-line detail."""

    label: str
    kind: str
    detail: str


def complete(program: Program | None, line: int, before: str) -> list[Candidate]:
    """Candidates at 1-based ``line`` where the line's text before the cursor is ``before``;
    ``program`` is the document's latest parse that succeeded (names of a file that does not
    parse right now still complete), None if it never parsed."""
    decls = Declarations.of(program) if program else Declarations({}, {}, {})
    owner = _enclosing_type(program, line)
    if _AFTER_LINK.search(before):
        return [Candidate(n, "plane", p.description) for n, p in sorted(decls.planes.items())]
    if _AFTER_COLON.search(before):
        return _types(decls, instantiable=True)
    if _IN_LINK_BLOCK.search(before):
        return [*_attributes(LINK_ATTRS), *_params(decls, owner)]
    if _STATEMENT_START.search(before):
        return [*_keywords(owner), *_statement_attributes(owner), *_params(decls, owner),
                *_types(decls, instantiable=False)]
    return [*_params(decls, owner), *_types(decls, instantiable=False),
            Candidate("true", "keyword", ""), Candidate("false", "keyword", "")]


def _enclosing_type(program: Program | None, line: int) -> A.TypeDecl | None:
    if program is None:
        return None
    return next((t for t in program.main.types if t.span.line <= line <= t.span.end_line), None)


def _keywords(owner: A.TypeDecl | None) -> list[Candidate]:
    words = ("param", "link") if owner else (*KEYWORDS[:4], *CATEGORIES, *SPEC_CATEGORIES)
    return [Candidate(w, "keyword", "category" if w in CATEGORIES + SPEC_CATEGORIES else "")
            for w in words]


def _statement_attributes(owner: A.TypeDecl | None) -> list[Candidate]:
    if owner is None:
        return []
    if owner.category == "model":
        return _attributes(MODEL_ATTRS)
    if owner.category == "deployment":
        return _attributes(DEPLOYMENT_ATTRS)
    return [Candidate(n, "attribute", "") for n in known_attribute_names()]


def _attributes(vocabulary: Mapping[str, object]) -> list[Candidate]:
    return [Candidate(n, "attribute", "") for n in vocabulary]


def _params(decls: Declarations, owner: A.TypeDecl | None) -> list[Candidate]:
    local = [Candidate(p.name, "parameter", f"parameter of {owner.name}")
             for p in owner.params] if owner else []
    return local + [Candidate(n, "parameter", "global parameter")
                    for n in sorted(decls.params) if not any(c.label == n for c in local)]


def _types(decls: Declarations, instantiable: bool) -> list[Candidate]:
    return [Candidate(n, "type", t.category) for n, t in sorted(decls.types.items())
            if not instantiable or t.category not in SPEC_CATEGORIES]
