"""Fuzz the planner's inputs: loads files of every format and dtype (and byte-mutated
ones), and plan JSON (mutations of a real small plan) read back and used by every emitter.
Property: only CmxError escapes; what is accepted plans (loads) or emits (plans)."""

from __future__ import annotations

import io
import json
import warnings
from functools import partial
from typing import Any

import numpy as np
from fuzzing import CORPUS, TINY, fuzz, only_cmx_errors, tiny, tiny_plan_text
from hypothesis import given
from hypothesis import strategies as st

from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.plan import PlanRequest, plan_deployment
from supernode_dsl.plan.document import PlanDocument, PlanOrigin
from supernode_dsl.plan.document.fingerprint import check_plan_for
from supernode_dsl.plan.loads import parse_loads

SHAPES = st.sampled_from([(4, 16), (4, 15), (16, 4), (1, 16), (0, 16), (4, 16, 1), (64,), ()])
DTYPES = st.sampled_from(["<f8", ">f8", "<f4", "<f2", "<i8", ">i4", "<u1", "|b1", "<c16",
                          "<U3", "|S2", "<M8[s]", "<m8[s]", "|O", "f8,i4"])
VALUES = st.sampled_from([0.0, 1.0, -1.0, 1e18, 1.7e308, np.nan, np.inf, 3.5, 1e-320])


def _array(dtype: str, shape: tuple[int, ...], fill: float, fortran: bool) -> np.ndarray:
    dt = np.dtype(dtype)
    arr = np.zeros(shape, dtype=dt, order="F" if fortran else "C")
    with np.errstate(over="ignore"):  # 1.7e308 in a float16: inf, as the file would hold
        if dt.kind in "fcO":
            arr[...] = fill
        elif dt.kind in "iub":
            arr[...] = 0 if not np.isfinite(fill) else int(min(abs(fill), 100))
    return arr


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@st.composite
def loads_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes): an array of a drawn dtype, shape and value saved as .npy (or as
    an .npz under an .npy name), JSON or CSV, then maybe with a few bytes changed."""
    arr = _array(draw(DTYPES), draw(SHAPES), draw(VALUES), draw(st.booleans()))
    if draw(st.booleans()) and arr.dtype.kind == "f" and arr.size:
        with np.errstate(over="ignore"):
            arr.flat[draw(st.integers(0, arr.size - 1))] = draw(VALUES)
    fmt = draw(st.sampled_from(["npy", "npz", "json", "json-bare", "csv"]))
    if fmt == "npy":
        name, data = "l.npy", _npy_bytes(arr)
    elif fmt == "npz":
        buf = io.BytesIO()
        np.savez(buf, a=arr)
        name, data = "l.npy", buf.getvalue()
    else:
        rows = arr.tolist() if arr.dtype.kind in "iufb" else [[str(v) for v in np.ravel(arr)]]
        if fmt == "csv":
            lines = [",".join(str(v) for v in (r if isinstance(r, list) else [r]))
                     for r in (rows if isinstance(rows, list) else [rows])]
            name, data = "l.csv", ("\n".join(lines) + "\n").encode()
        else:
            doc: Any = rows if fmt == "json-bare" else {"logical_count": rows}
            name, data = "l.json", json.dumps(doc).encode()
    for _ in range(draw(st.integers(0, 2))):
        if data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return name, data


def _plan_with(name: str, data: bytes) -> None:
    model, g = tiny()
    loads = parse_loads(data, name)
    doc = plan_deployment(model, g, PlanRequest(loads=loads, source={"expert_loads": name}))
    assert doc.roles


@fuzz(60)
@given(loads_file())
def test_loads_files_raise_only_cmx_errors(case: tuple[str, bytes]) -> None:
    only_cmx_errors(lambda: _plan_with(*case))


def test_the_loads_corpus_raises_only_cmx_errors() -> None:
    for path in sorted((CORPUS / "loads").iterdir()):
        assert only_cmx_errors(partial(_plan_with, path.name, path.read_bytes())) is None, path


# ---- plans --------------------------------------------------------------------------------

EXTREME_JSON: list[Any] = [None, True, 0, -1, 2**63, 10**29, 1.7e308, -1e-300, "", "x" * 300,
                           [], {}, [[]], [None], {"": None}, "decode", "cm384.node[0]",
                           [0] * 40, "1.2"]


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]):  # a few items of each array: enough, and fast
            out += _paths(v, (*path, i))
    return out


@st.composite
def plan_mutant(draw: st.DrawFn) -> str:
    """The tiny plan's JSON text with 1-3 values replaced, keys deleted or added."""
    data = json.loads(tiny_plan_text())
    paths = _paths(data)[1:]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            op = draw(st.sampled_from(["replace", "delete", "add"]))
            if op == "replace":
                parent[path[-1]] = draw(st.sampled_from(EXTREME_JSON))
            elif op == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent["extra"] = draw(st.sampled_from(EXTREME_JSON))
            else:
                parent.append(draw(st.sampled_from(EXTREME_JSON)))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed the path
    return json.dumps(data, indent=draw(st.sampled_from([None, 1])))


_FAST_EMITTERS = {n: c for n, c in available_emitters().items()
                  if n not in ("png", "svg", "dot")}  # Graphviz layouts: slow, plan-free


def _emit_all(text: str) -> None:
    model, g = tiny()
    doc = PlanDocument.from_text(text, "p.json")
    check_plan_for(doc, model, g, PlanOrigin("p.json", text), str(TINY))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = EmitContext(model, g, doc, str(TINY), {}, plan_file="p.json")
        for cls in _FAST_EMITTERS.values():
            only_cmx_errors(partial(cls().emit, ctx))


@fuzz(40)
@given(plan_mutant())
def test_plan_mutants_raise_only_cmx_errors(text: str) -> None:
    only_cmx_errors(lambda: _emit_all(text))


def test_the_plan_corpus_raises_only_cmx_errors() -> None:
    for path in sorted((CORPUS / "plans").iterdir()):
        assert only_cmx_errors(partial(_emit_all, path.read_text())) is None, path


def test_the_unmutated_plan_emits_everything() -> None:
    """The property's base case: the real plan passes every check (else the mutants prove
    nothing)."""
    _emit_all(tiny_plan_text())
