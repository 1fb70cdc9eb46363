"""Shared pieces of the fuzz suite (tests/fuzz/, docs/fuzzing.md): example counts, the
property "only CmxError escapes", the tiny deployment and its plan.

The number of examples of every property is ``CMX_FUZZ_EXAMPLES`` (set by ``pytest
--fuzz-examples N``); without it each property runs its small default, derandomized, so the
suite stays fast and stable.  A long run draws fresh random inputs each time (no fixed
seed); a failure prints the ``@reproduce_failure`` line hypothesis needs to replay it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.plan import plan_deployment
from supernode_dsl.plan.document import PlanDocument

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
#: Every shipped .cmx file: the topologies, their libraries and models, the test fixtures.
SHIPPED = sorted(p for d in ("topologies", "tests/fixtures") for p in (ROOT / d).rglob("*.cmx"))
SMALL = cmx.Limits(max_instances=20_000, max_links=200_000)

_DIAGNOSTIC = re.compile(r"^\S.*:\d+:\d+: (error|warning)\[[EW]\d{3}\]: |"
                         r"^cmx: (error|warning)\[[EW]\d{3}\]: ")
F = TypeVar("F", bound=Callable[..., Any])


def examples(default: int) -> int:
    """How many examples a property runs: ``CMX_FUZZ_EXAMPLES`` or ``default``."""
    raw = os.environ.get("CMX_FUZZ_EXAMPLES", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def long_run() -> bool:
    """Whether this is a long run (``--fuzz-examples`` / ``CMX_FUZZ_EXAMPLES`` given)."""
    return examples(0) > 0


#: The longest one example of a long run may take (issue 13: no input runs over 30 s).
LONG_RUN_DEADLINE = timedelta(seconds=30)


def fuzz(default: int) -> Callable[[F], F]:
    """Hypothesis settings of a fuzz property: ``examples(default)`` examples, no example
    database.  The default run is derandomized (the same examples every time: the suite
    does not flake) and has no deadline per example (a compile can take a second on a
    loaded machine); a long run draws fresh examples and fails one that takes over
    :data:`LONG_RUN_DEADLINE`."""
    return settings(max_examples=examples(default),
                    deadline=LONG_RUN_DEADLINE if long_run() else None, database=None,
                    derandomize=not long_run(), suppress_health_check=list(HealthCheck))


def check_error(err: CmxError) -> None:
    """A CmxError carries diagnostics, each rendering with the documented first line.

    (Explicit raises: this helper is not a test module, so under ``python -O`` pytest does
    not rewrite its asserts and Python drops them.)"""
    if not err.diagnostics:
        raise AssertionError("CmxError without diagnostics")
    for d in err.diagnostics:
        if not _DIAGNOSTIC.match(d.render()):
            raise AssertionError(f"badly formed diagnostic: {d.render()!r}")


def only_cmx_errors(call: Callable[[], Any]) -> Any:
    """``call()``; None if it raised a well-formed CmxError; any other exception escapes
    (the property fails)."""
    try:
        return call()
    except CmxError as err:
        check_error(err)
        return None


@functools.cache
def tiny() -> tuple[cmx.Model, Any]:
    """The tiny deployment (4 MoE layers x 16 experts) and its graph."""
    model = cmx.compile_file(TINY)
    return model, cmx.build_graph(model)


@functools.cache
def tiny_plan_text() -> str:
    """The JSON text of the tiny deployment's plan."""
    from supernode_dsl.emit import document_json

    model, g = tiny()
    doc: PlanDocument = plan_deployment(model, g)
    return document_json(doc.to_json())
