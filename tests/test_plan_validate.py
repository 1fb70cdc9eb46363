"""The plan checker's fast path changes no verdict: on mutated plans it reports exactly the
schema errors (paths and messages) of jsonschema's own Draft 2020-12 validator."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode_dsl.plan import plan_schema
from supernode_dsl.plan.validate import _schema_problems

ROOT = Path(__file__).resolve().parent.parent
PLAN = json.loads((ROOT / "tests" / "golden" / "plan" / "tiny.plan.json").read_text())


def _paths(value: Any, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every JSON path in ``value`` (the root excluded)."""
    out: list[tuple[str | int, ...]] = [at] if at else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


PATHS = _paths(PLAN)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3),
                    st.sampled_from([-1.5, 0.0, 2.5, float("inf")]), st.just([]), st.just({}))


def _mutate(doc: Any, path: tuple[str | int, ...], how: str, value: Any) -> Any:
    out = copy.deepcopy(doc)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "drop" and isinstance(parent, dict):
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent["unexpected_key"] = value
    else:
        parent[last] = value
    return out


def _reference(doc: Any) -> list[tuple[tuple[Any, ...], str]]:
    errors = sorted(jsonschema.Draft202012Validator(plan_schema()).iter_errors(doc),
                    key=lambda e: list(map(str, e.path)))
    return [(tuple(e.path), e.message) for e in errors[:20]]


def test_the_unmutated_plan_is_valid() -> None:
    assert _schema_problems(PLAN) == [] == _reference(PLAN)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "drop", "extra"]),
                          SCALARS), min_size=1, max_size=3))
def test_fast_checker_reports_what_jsonschema_reports(
        edits: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
    doc = PLAN
    for path, how, value in edits:
        try:
            doc = _mutate(doc, path, how, value)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
            continue
    got = [(p.path, p.message) for p in _schema_problems(doc)]
    assert got == _reference(doc)
