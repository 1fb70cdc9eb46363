"""The plan as a typed, validated document: round trip, located E024 diagnostics for any JSON
that is not a valid plan of the file, fingerprints, and the migration of older plans."""

from __future__ import annotations

import functools
import json
import random
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.cli import cli
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.plan import PlanRequest, plan_deployment
from supernode_dsl.plan.document import PlanDocument, PlanOrigin
from supernode_dsl.plan.document.fingerprint import check_plan_for, topology_fingerprint
from supernode_dsl.plan.document.locate import locate

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
TINY_11 = ROOT / "tests" / "fixtures" / "plan" / "tiny-1.1.plan.json"
CM384 = ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx"
H800 = ROOT / "topologies" / "deepseek-v3-h800.cmx"
#: Every command that reads a plan: the seven plan-reading formats (the report among them)
#: and the report command.
COMMANDS = [["emit", f] for f in ("sglang-expert-location", "sglang-rank-cost",
                                  "vllm-ascend-expert-map", "hccl-rank-table",
                                  "astra-comm-group", "chrome-trace", "report")] + [["report"]]
LOCATED = re.compile(r"plan\.json:\d+:\d+: error\[E024\]: ")
PROPS = settings(max_examples=40, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.cache
def _tiny() -> tuple[cmx.Model, Any, PlanDocument]:
    model = cmx.compile_file(TINY)
    g = cmx.build_graph(model)
    return model, g, plan_deployment(model, g, PlanRequest(source={"file": str(TINY)}))


def _paths(value: Any, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into a JSON value (the root excluded)."""
    children: list[tuple[str | int, Any]] = list(value.items()) if isinstance(value, dict) \
        else list(enumerate(value)) if isinstance(value, list) else []
    out = []
    for k, v in children:
        out.append((*at, k))
        out += _paths(v, (*at, k))
    return out


@functools.cache
def _tiny_paths() -> list[tuple[str | int, ...]]:
    return _paths(_tiny()[2].to_json())


def _cli(args: list[str], plan: str, tmp: Path) -> tuple[int, str]:
    """Run ``cmx ARGS TINY --plan plan.json -o out`` in this process."""
    path = tmp / "plan.json"
    path.write_text(plan, encoding="utf-8")
    result = CliRunner().invoke(cli, [*args, str(TINY), "--plan", str(path),
                                      "-o", str(tmp / "out")])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _refused(code: int, output: str) -> None:
    assert code == 1, output
    assert LOCATED.search(output), output
    assert "Traceback" not in output


# ---- the document ----------------------------------------------------------------------------

def test_round_trip_of_the_tiny_plan() -> None:
    doc = _tiny()[2]
    assert PlanDocument.from_json(doc.to_json(), "plan.json") == doc
    again = PlanDocument.from_json(json.loads(json.dumps(doc.to_json())), "plan.json")
    assert again == doc and again.to_json() == doc.to_json()


def test_a_plan_is_checked_by_the_fingerprint_it_records() -> None:
    model, g, doc = _tiny()
    assert doc.fingerprint is not None
    assert doc.fingerprint.topology == topology_fingerprint(g)
    origin = PlanOrigin("plan.json")
    check_plan_for(doc, model, g, origin, str(TINY))
    other = cmx.compile_file(TINY, {"nodes": "3"})
    with pytest.raises(CmxError) as exc:
        check_plan_for(doc, other, cmx.build_graph(other), origin, str(TINY))
    assert "fingerprint.topology" in str(exc.value) and "-D" in str(exc.value)
    batch = cmx.compile_file(TINY, {"decode_batch": "8"})
    with pytest.raises(CmxError) as exc:
        check_plan_for(doc, batch, cmx.build_graph(batch), origin, str(TINY))
    assert "fingerprint.deployment" in str(exc.value)


def test_the_fingerprint_does_not_depend_on_the_hash_seed() -> None:
    code = ("import supernode_dsl as cmx;"
            "from supernode_dsl.plan.document.fingerprint import topology_fingerprint;"
            f"print(topology_fingerprint(cmx.build_graph(cmx.compile_file({str(TINY)!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONHASHSEED": "77"}, check=True).stdout
    assert out == topology_fingerprint(_tiny()[1]) + "\n"


def test_an_h800_plan_is_refused_for_the_cloudmatrix_file() -> None:
    h800 = cmx.compile_file(H800)
    doc = plan_deployment(h800, cmx.build_graph(h800))
    cm = cmx.compile_file(CM384)
    with pytest.raises(CmxError) as exc:
        check_plan_for(doc, cm, cmx.build_graph(cm), PlanOrigin("h800.json"), str(CM384))
    message = str(exc.value)
    assert exc.value.codes == ["E024"]
    assert "'DeepSeekV3OnH800' on topology 'cluster'" in message
    assert "'DeepSeekR1OnCloudMatrix384' on topology 'cm384'" in message


def test_a_1_1_plan_still_loads_and_is_checked_by_names(tmp_path: Path) -> None:
    text = TINY_11.read_text(encoding="utf-8")
    doc = PlanDocument.from_text(text, "tiny-1.1.plan.json")
    assert doc.schema_version == "1.1" and doc.fingerprint is None
    model, g, new = _tiny()
    check_plan_for(doc, model, g, PlanOrigin("tiny-1.1.plan.json"), str(TINY))
    assert doc.roles["decode"].expert_placement == new.roles["decode"].expert_placement
    code, out = _cli(["emit", "sglang-expert-location"], text, tmp_path)
    assert code == 0, out
    moved = json.loads(text)
    moved["devices"][0]["path"] = "pod.node[9].npu[0].die[0]"
    moved["roles"]["decode"]["instance_devices"][0][0] = "pod.node[9].npu[0].die[0]"
    with pytest.raises(CmxError):
        PlanDocument.from_json(moved, "x.json")  # the invariants catch the renamed device
    renamed = replace(doc, source=replace(doc.source, topology="other"))
    with pytest.raises(CmxError) as exc:
        check_plan_for(renamed, model, g, PlanOrigin("p.json"), str(TINY))
    assert "source.topology" in str(exc.value) and "'pod'" in str(exc.value)


def test_a_problem_is_located_at_its_value() -> None:
    plan = _tiny()[2].to_json()
    plan["roles"]["decode"]["expert_placement"]["phy2log"][3] = 7
    text = json.dumps(plan, indent=1, sort_keys=True)
    with pytest.raises(CmxError) as exc:
        PlanDocument.from_text(text, "plan.json")
    (diag,) = exc.value.diagnostics[:1]
    assert diag.span is not None
    line = text.splitlines()[diag.span.line - 1]
    assert line[diag.span.col - 1:].rstrip(",") == "7"
    assert "roles.decode.expert_placement.phy2log[3]" in diag.message


def test_the_locator_finds_nested_values() -> None:
    text = '{"a": [1, {"b" : [true, "x"]}],\n "c": {"d": null}}'
    assert locate(text, ("a", 1, "b", 1)) == (1, 25, 3)
    assert locate(text, ("c", "d")) == (2, 13, 4)
    assert locate(text, ("c", "missing")) == (2, 7, 11)
    assert locate("not json", ("a",)) == (1, 1, 1)


# ---- any JSON that is not a valid plan -------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
_PLAN_KEYS = ["schema_version", "generator", "source", "model", "devices", "roles", "serving",
              "fingerprint", "$schema"]


@PROPS
@given(value=_JSON | st.dictionaries(st.sampled_from(_PLAN_KEYS), _JSON),
       command=st.sampled_from(COMMANDS))
def test_arbitrary_json_is_a_located_e024(value: Any, command: list[str],
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    _refused(*_cli(command, json.dumps(value), tmp_path_factory.mktemp("p")))


def _set(doc: Any, path: tuple[str | int, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()
_REPLACEMENTS = st.sampled_from([_DELETE, None, "x", [], {}, True, -1, 1e30, -1e30, 10**20])


@PROPS
@given(data=st.data(), command=st.sampled_from(COMMANDS))
def test_a_mutated_plan_is_refused_or_read_never_a_traceback(
        data: st.DataObject, command: list[str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Delete a key, change a type, put a number out of range or shuffle a phy2log row at a
    random path: the command either accepts the plan (a mutation may leave it valid) or
    refuses it with a located E024; nothing else."""
    plan = _tiny()[2].to_json()
    path = data.draw(st.sampled_from(_tiny_paths()))
    if data.draw(st.booleans()) and "phy2log" in path[:-1]:
        row = plan["roles"][path[1]]["expert_placement"]["phy2log"][0]
        random.Random(data.draw(st.integers(0, 1000))).shuffle(row)
    else:
        _set(plan, path, data.draw(_REPLACEMENTS))
    code, out = _cli(command, json.dumps(plan, indent=1), tmp_path_factory.mktemp("p"))
    assert code in (0, 1), out
    if code == 1:
        _refused(code, out)


# ---- through a subprocess --------------------------------------------------------------------

@pytest.mark.parametrize(("command", "plan"), [
    (["emit", "sglang-expert-location"], '{"roles": {}}'),
    (["emit", "hccl-rank-table"], "[]"),
    (["report"], '{"schema_version": "1.2", "roles": 3}'),
])
def test_cli_refuses_a_bad_plan_without_a_traceback(command: list[str], plan: str,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(plan, encoding="utf-8")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "supernode_dsl", *command, str(TINY), "--plan",
                        str(path), "-o", str(out)], capture_output=True, text=True, timeout=120)
    _refused(r.returncode, r.stderr)
    assert not out.exists()
