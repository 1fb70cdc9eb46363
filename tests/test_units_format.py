"""``format_quantity`` (hover values, diagrams): the text it writes is a quantity the language
reads back, in the unit a person would pick."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernode_dsl.diagnostics import DiagnosticSink, SourceText
from supernode_dsl.elaborate.evaluate import evaluate
from supernode_dsl.parse import parse_text
from supernode_dsl.units import (
    BANDWIDTH,
    BYTES,
    DIMENSIONLESS,
    FREQUENCY,
    OPS_RATE,
    POWER,
    TIME,
    Quantity,
    format_quantity,
)

DIMS = [BANDWIDTH, BYTES, DIMENSIONLESS, FREQUENCY, OPS_RATE, POWER, TIME]


def _read(text: str) -> Quantity:
    tree = parse_text(SourceText("<t>", f"param x = {text}\n"), DiagnosticSink())
    assert tree is not None, text
    value = evaluate(tree.params[0].value, lambda name, span: Quantity(0.0))
    assert isinstance(value, Quantity)
    return value


@pytest.mark.parametrize(("value", "dim", "text"), [
    (2.8e10, BANDWIDTH, "28 GB/s"), (160e9 / 7, BANDWIDTH, "22.8571 GB/s"),
    (6e-7, TIME, "600 ns"), (0.0, TIME, "0 s"), (64e9, BYTES, "64 GB"),
    (1.5e15, OPS_RATE, "1.5 PFLOPS"), (48.0, DIMENSIONLESS, "48"), (2.4e9, FREQUENCY, "2.4 GHz"),
])
def test_the_unit_a_person_would_write(value: float, dim: object, text: str) -> None:
    assert format_quantity(Quantity(value, dim)) == text  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-13, max_value=1e19), st.sampled_from(DIMS))
def test_the_text_reads_back_as_the_same_quantity(value: float, dim: object) -> None:
    q = Quantity(value, dim)  # type: ignore[arg-type]
    back = _read(format_quantity(q, digits=12))
    assert back.dim == q.dim
    assert math.isclose(back.value, q.value, rel_tol=1e-9)
