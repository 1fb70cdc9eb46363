"""The Python API's contracts (docs/api.md): wrong argument types are ArgumentError (E028),
bad loads are E021 and bad plan JSON E024, through the API exactly as through the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import ArgumentError, CmxError
from supernode_dsl.plan import PlanRequest, plan_deployment
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.loads import MAX_LOAD, check_loads, read_loads

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
SHAPE = (4, 16)  # tiny.cmx: MoE layers x routed experts


@pytest.fixture(scope="module")
def tiny() -> tuple[cmx.Model, Any]:
    model = cmx.compile_file(TINY)
    return model, cmx.build_graph(model)


WRONG_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("compile_file(None)", lambda: cmx.compile_file(None)),  # type: ignore[arg-type]
    ("compile_file(list)", lambda: cmx.compile_file(["a.cmx"])),  # type: ignore[arg-type]
    ("compile_file(bytes)", lambda: cmx.compile_file(b"a.cmx")),  # type: ignore[arg-type]
    ("compile_file('')", lambda: cmx.compile_file("")),
    ("defines str", lambda: cmx.compile_file(TINY, "nodes=2")),  # type: ignore[arg-type]
    ("defines list", lambda: cmx.compile_file(TINY, ["nodes=2"])),  # type: ignore[arg-type]
    ("define None", lambda: cmx.compile_file(TINY, {"nodes": None})),  # type: ignore[dict-item]
    ("define name int", lambda: cmx.compile_file(TINY, {2: "2"})),  # type: ignore[dict-item]
    ("limits dict", lambda: cmx.compile_file(TINY, None, {"max_instances": 3})),  # type: ignore[arg-type]
    ("limits negative", lambda: cmx.compile_file(TINY, None, cmx.Limits(max_instances=-1))),
    ("limits str", lambda: cmx.compile_file(TINY, None, cmx.Limits(max_instances="9"))),  # type: ignore[arg-type]
    ("compile_string(None)", lambda: cmx.compile_string(None)),  # type: ignore[arg-type]
    ("compile_string(bytes)", lambda: cmx.compile_string(b"plane x")),  # type: ignore[arg-type]
    ("compile_string name", lambda: cmx.compile_string("", name=None)),  # type: ignore[arg-type]
    ("parse_program()", lambda: cmx.parse_program()),
    ("parse_program both", lambda: cmx.parse_program(TINY, text="")),
    ("elaborate(str)", lambda: cmx.elaborate("x")),  # type: ignore[arg-type]
    ("build_graph(None)", lambda: cmx.build_graph(None)),  # type: ignore[arg-type]
    ("load_graph(3)", lambda: cmx.load_graph(3)),  # type: ignore[arg-type]
    ("from_text(None)", lambda: PlanDocument.from_text(None, "p.json")),  # type: ignore[arg-type]
    ("from_json origin", lambda: PlanDocument.from_json({}, 3)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("what", "call"), WRONG_CALLS, ids=[w for w, _ in WRONG_CALLS])
def test_a_wrong_argument_is_an_argument_error(what: str, call: Callable[[], object]) -> None:
    with pytest.raises(ArgumentError) as err:
        call()
    assert err.value.codes == ["E028"]
    assert isinstance(err.value, CmxError | TypeError | ValueError)
    assert "error[E028]" in str(err.value)


@pytest.mark.parametrize("request_", [
    {"loads": None}, PlanRequest(deployment=3), PlanRequest(previous={}),  # type: ignore[arg-type]
    PlanRequest(source=[]), PlanRequest(source={"bogus": 1}),  # type: ignore[arg-type]
])
def test_plan_deployment_checks_its_request(tiny: tuple[cmx.Model, Any], request_: Any) -> None:
    model, g = tiny
    with pytest.raises(ArgumentError):
        plan_deployment(model, g, request_)


def test_plan_deployment_checks_model_and_graph(tiny: tuple[cmx.Model, Any]) -> None:
    model, g = tiny
    for args in ((None, g), (model, None), (model, "g"), (g, model)):
        with pytest.raises(ArgumentError):
            plan_deployment(*args)


BAD_LOADS: list[tuple[str, Any, str]] = [
    ("zeros", np.zeros(SHAPE), "no load at all"),
    ("nan", np.full(SHAPE, np.nan), "not finite"),
    ("inf", np.full(SHAPE, np.inf), "not finite"),
    ("negative", -np.ones(SHAPE), "negative"),
    ("1.7e308", np.full(SHAPE, 1.7e308), "above the largest load"),
    ("wrong shape", np.ones((4, 15)), "shape [4, 15]"),
    ("1-D", np.ones(16), "shape [16]"),
    ("strings", np.full(SHAPE, "1"), "strings"),
    ("objects", np.full(SHAPE, None, dtype=object), "Python objects"),
    ("booleans", np.ones(SHAPE, dtype=bool), "booleans"),
    ("complex", np.ones(SHAPE, dtype=complex), "complex"),
    ("datetimes", np.zeros(SHAPE, dtype="datetime64[s]"), "datetimes"),
    ("a dict", {"logical_count": [[1.0]]}, "not dict"),
    ("ragged", [[1.0, 2.0], [1.0]], "2-D array of numbers"),
]


@pytest.mark.parametrize(("what", "loads", "message"), BAD_LOADS, ids=[w for w, _, _ in BAD_LOADS])
def test_bad_loads_are_e021_through_the_api(tiny: tuple[cmx.Model, Any], what: str,
                                            loads: Any, message: str) -> None:
    """The one check (``check_loads``) refuses what ``cmx plan --expert-loads`` refuses."""
    model, g = tiny
    with pytest.raises(CmxError) as err:
        plan_deployment(model, g, PlanRequest(loads=loads))
    assert err.value.codes == ["E021"]
    assert message in str(err.value)


def test_good_loads_pass_as_arrays_and_lists(tiny: tuple[cmx.Model, Any]) -> None:
    model, g = tiny
    ints = np.arange(1, 65).reshape(SHAPE)
    a = plan_deployment(model, g, PlanRequest(loads=ints))
    b = plan_deployment(model, g, PlanRequest(loads=ints.astype(float).tolist()))
    assert a.to_json() == b.to_json()
    assert check_loads(np.full(SHAPE, MAX_LOAD)).max() == MAX_LOAD


def _npy_cases(tmp: Path) -> dict[str, str]:
    """File name -> the words its E021 message must hold."""
    np.save(tmp / "str.npy", np.full(SHAPE, "a"))
    np.save(tmp / "bytes.npy", np.full(SHAPE, b"a"))
    np.save(tmp / "struct.npy", np.zeros(SHAPE, dtype=[("a", "f8"), ("b", "i4")]))
    np.save(tmp / "dt.npy", np.zeros(SHAPE, dtype="datetime64[s]"))
    np.save(tmp / "obj.npy", np.full(SHAPE, None, dtype=object), allow_pickle=True)
    np.savez(tmp / "z.npz", a=np.ones(SHAPE))
    (tmp / "z.npz").rename(tmp / "npz.npy")
    np.save(tmp / "huge.npy", np.full(SHAPE, 1.7e308))
    np.save(tmp / "ok.npy", np.ones(SHAPE))
    (tmp / "trunc.npy").write_bytes((tmp / "ok.npy").read_bytes()[:-8])
    (tmp / "text.npy").write_text("1,2\n")
    big = (tmp / "ok.npy").read_bytes().replace(b"(4, 16)", b"(4000000000000, 16)")
    (tmp / "bighead.npy").write_bytes(big)
    return {"str.npy": "strings", "bytes.npy": "bytes", "struct.npy": "structured",
            "dt.npy": "datetimes", "obj.npy": "Python objects", "npz.npy": ".npz archive",
            "huge.npy": "above the largest load", "trunc.npy": "504 bytes of data",
            "text.npy": "not an .npy file", "bighead.npy": "bytes of data"}


def test_npy_loads_are_refused_by_their_header(tmp_path: Path) -> None:
    for name, words in _npy_cases(tmp_path).items():
        with pytest.raises(CmxError) as err:
            read_loads(tmp_path / name)
        assert err.value.codes == ["E021"], name
        assert words in str(err.value) and name in str(err.value), str(err.value)


@pytest.mark.parametrize(("name", "text", "where", "words"), [
    ("a.json", '{"logical_count": [[1, ' + "1" * 5001 + "]]}", (1, 24), "5,001 digits"),
    ("a.json", '{"logical_count": [[1, 2],\n [NaN, 1]]}', (2, 3), "not finite"),
    ("a.json", '{"logical_count": [[1, "2"]]}', (1, 24), "expected a number"),
    ("a.json", '{"logical_count": [[0, 0], [1, 2]]}', (1, 20), "no load at all"),
    ("a.json", "[" * 100_000, (1, 1), "nested too deeply"),
    ("a.csv", "1,2\n3,-4\n", (2, 1), "negative"),
    ("a.csv", "1,2\n3,x\n", (2, 3), "'x' is not a number"),
])
def test_text_loads_are_located(tmp_path: Path, name: str, text: str,
                                where: tuple[int, int], words: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(CmxError) as err:
        read_loads(tmp_path / name)
    (d,) = err.value.diagnostics
    assert d.code == "E021" and d.span is not None and words in d.message
    assert (d.span.line, d.span.col) == where


@pytest.mark.parametrize(("text", "words"), [
    ('{"schema_version": ' + "1" * 5001 + "}", "5,001 digits"),
    ("null", "not null"),
    ("[]", "not list"),
    ('{"schema_version": "1.2"}', "is a required property"),
    ("[" * 100_000, "nested too deeply"),
])
def test_plan_text_that_is_not_a_plan_is_e024(text: str, words: str) -> None:
    with pytest.raises(CmxError) as err:
        PlanDocument.from_text(text, "p.json")
    assert set(err.value.codes) == {"E024"} and words in str(err.value)
    assert all(d.span is not None for d in err.value.diagnostics)

