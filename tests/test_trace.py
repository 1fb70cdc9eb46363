"""The ``chrome-trace`` emitter: a Chrome / Perfetto trace of the planned microbatch pipeline.

Most checks use the tiny plan with synthetic pipelines (two roles, two device kinds each,
non-overlapping events per stream); the CLI checks run ``python -m supernode_dsl`` as a subprocess.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from browser import DevToolsPipe

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit.trace import ChromeTraceEmitter, chrome_trace
from supernode_dsl.plan import PlanDocument, PlanRequest, plan_deployment
from supernode_dsl.plan.document.codec import load
from supernode_dsl.plan.document.role import Pipeline

ROOT = Path(__file__).resolve().parent.parent
TINY = "tests/fixtures/plan/tiny.cmx"


def _event(name: str, stream: str, mb: int, layer: int, start: float, dur: float
           ) -> dict[str, Any]:
    return {"name": name, "stream": stream, "microbatch": mb, "layer": layer,
            "start_us": start, "dur_us": dur}


def _schedule(kind: str, streams: tuple[str, str], scale: float) -> dict[str, Any]:
    """Two microbatches over two streams; deliberately listed out of start order."""
    a, b = streams
    events = [
        _event("moe", b, 0, 3, 10.0 * scale, 5.0 * scale),
        _event("attention", a, 0, 3, 0.0, 10.0 * scale),
        _event("attention", a, 1, 3, 10.0 * scale, 10.0 * scale),
        _event("moe", b, 1, 3, 20.0 * scale, 5.0 * scale),
        _event("lm_head", a, 0, -1, 25.0 * scale, 2.5),
    ]
    return {"device_kind": kind, "step_us": 30.0 * scale, "events": events}


def _pipeline(streams: tuple[str, str], scale: float) -> dict[str, Any]:
    return {
        "microbatches": 2,
        "split": {streams[0]: {"aic": 16, "aiv": 32}, streams[1]: {"aic": 8, "aiv": 16}},
        "step_us": 30.0 * scale, "no_overlap_us": 32.0 * scale, "speedup": 1.07,
        "candidates": [{"microbatches": 1, "split": {}, "step_us": 32.0 * scale}],
        "schedule": [_schedule("routed-expert die", streams, scale),
                     _schedule("shared-expert die", streams, scale * 0.5)],
    }


@functools.cache
def _tiny() -> PlanDocument:
    model = cmx.compile_file(ROOT / TINY)
    return plan_deployment(model, cmx.build_graph(model), PlanRequest())


def _plan(**pipelines: dict[str, Any] | None) -> PlanDocument:
    """The tiny plan with made-up pipelines (what the trace reads) and source."""
    tiny = _tiny()
    made = {"prefill": _pipeline(("cube", "vector"), 100.0),
            "decode": _pipeline(("attention", "moe"), 1.0), **pipelines}
    roles = {name: replace(role, pipeline=None if made[name] is None
                           else load(Pipeline, made[name]))
             for name, role in tiny.roles.items()}
    return replace(tiny, roles=roles,
                   source=replace(tiny.source, file="topologies/x.cmx", deployment="XOnY"))


def _trace(plan: PlanDocument | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(chrome_trace(plan or _plan()))
    return doc


def _complete(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def _names(doc: dict[str, Any], kind: str) -> dict[tuple[int, int], str]:
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] == kind}


def test_the_object_form_with_every_schedule_event() -> None:
    doc = _trace()
    assert set(doc) == {"traceEvents", "displayTimeUnit", "otherData"}
    assert doc["displayTimeUnit"] == "ms"
    events = _complete(doc)
    assert len(events) == 2 * 2 * 5
    for e in events:
        assert {"ph", "ts", "dur", "pid", "tid", "name", "cat", "args"} <= set(e)
        assert isinstance(e["ts"], float) and isinstance(e["dur"], float) and e["dur"] >= 0
        assert e["cat"] in ("decode", "prefill")
        assert set(e["args"]) == {"layer", "microbatch"}
    assert {e["args"]["layer"] for e in events} == {3, -1}
    assert any(e["ts"] == 1000.0 and e["dur"] == 500.0 for e in events)  # prefill, us as is


def test_events_per_thread_are_sorted_and_do_not_overlap() -> None:
    threads: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for e in _complete(_trace()):
        threads[e["pid"], e["tid"]].append(e)
    assert len(threads) == 4 * 2
    for events in threads.values():
        starts = [e["ts"] for e in events]
        assert starts == sorted(starts)
        for before, after in pairwise(events):
            assert before["ts"] + before["dur"] <= after["ts"]


def test_pids_and_tids_follow_roles_by_name_then_first_appearance() -> None:
    doc = _trace()
    assert _names(doc, "process_name") == {
        (1, 0): "decode · routed-expert die", (2, 0): "decode · shared-expert die",
        (3, 0): "prefill · routed-expert die", (4, 0): "prefill · shared-expert die"}
    threads = _names(doc, "thread_name")
    assert threads == {(p, 1): ("moe" if p <= 2 else "vector") for p in (1, 2, 3, 4)} | {
        (p, 2): ("attention" if p <= 2 else "cube") for p in (1, 2, 3, 4)}
    sort = {(e["name"], e["pid"], e["tid"]): e["args"]["sort_index"]
            for e in doc["traceEvents"] if e["name"].endswith("_sort_index")}
    assert sort[("process_sort_index", 3, 0)] == 3 and sort[("thread_sort_index", 3, 2)] == 2
    for e in _complete(doc):
        assert (e["pid"], e["tid"]) in threads
        assert e["cat"] == ("decode" if e["pid"] <= 2 else "prefill")


def test_other_data_summarises_each_role() -> None:
    other = _trace()["otherData"]
    assert other["generator"] == "supernode-dsl"
    assert other["file"] == "topologies/x.cmx" and other["deployment"] == "XOnY"
    assert other["roles"]["decode"] == {
        "microbatches": 2, "split": {"attention": {"aic": 16, "aiv": 32},
                                     "moe": {"aic": 8, "aiv": 16}},
        "step_us": 30.0, "speedup": 1.07}
    assert set(other["roles"]) == {"decode", "prefill"}


def test_deterministic_and_independent_of_role_order() -> None:
    plan = _plan()
    text = chrome_trace(plan)
    assert text == chrome_trace(copy.deepcopy(plan)) and text.endswith("]}\n")
    reordered = replace(plan, roles=dict(reversed(list(plan.roles.items()))))
    assert list(reordered.roles) != list(plan.roles)
    assert chrome_trace(reordered) == text


def test_roles_without_a_pipeline_contribute_nothing() -> None:
    doc = _trace(_plan(prefill=None))
    assert {e["cat"] for e in _complete(doc)} == {"decode"}
    assert set(doc["otherData"]["roles"]) == {"decode"}


def test_no_pipeline_is_an_e026() -> None:
    with pytest.raises(CmxError) as exc:
        chrome_trace(_plan(prefill=None, decode=None))
    assert exc.value.codes == ["E026"] and "no pipeline schedule" in str(exc.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("start_us", None, "None is not of type 'number'"),
    ("dur_us", -1.0, "-1.0 is less than the minimum of 0"),
    ("layer", 1.5, "1.5 is not of type 'integer'"),
    ("stream", 3, "3 is not of type 'string'"),
])
def test_malformed_events_are_e024_naming_the_event(field: str, value: Any,
                                                    message: str) -> None:
    """A plan's events are checked when it is read, before any emitter sees it."""
    plan = _tiny().to_json()
    plan["roles"]["decode"]["pipeline"]["schedule"][0]["events"][2][field] = value
    with pytest.raises(CmxError) as exc:
        PlanDocument.from_json(plan, "plan.json")
    assert exc.value.codes == ["E024"]
    text = str(exc.value)
    assert "plan.json: roles.decode.pipeline.schedule[0].events[2]" in text
    assert message in text


def test_the_emitter_is_registered_and_needs_a_plan() -> None:
    assert available_emitters()["chrome-trace"] is ChromeTraceEmitter
    assert ChromeTraceEmitter.suffix == ".json"
    model = cmx.compile_file(ROOT / TINY)
    g = cmx.build_graph(model)
    with pytest.raises(CmxError) as exc:
        ChromeTraceEmitter().emit(EmitContext(model, g))
    assert exc.value.codes == ["E026"] and "--plan" in str(exc.value)
    assert ChromeTraceEmitter().emit(EmitContext(model, g, _plan())) == chrome_trace(_plan())


# ---- the command line ------------------------------------------------------------------------

def _cmx(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_cmx_emit_chrome_trace(tmp_path: Path) -> None:
    plan, out = tmp_path / "plan.json", tmp_path / "out.json"
    plan.write_text(json.dumps(_tiny().to_json()), encoding="utf-8")
    r = _cmx("emit", "chrome-trace", TINY, "--plan", str(plan), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8") == chrome_trace(_tiny())


def test_cmx_emit_chrome_trace_without_pipelines_writes_nothing(tmp_path: Path) -> None:
    """A 1.0 plan (no serving blocks, no fingerprint) still loads, and has no pipeline."""
    plan, out = tmp_path / "plan.json", tmp_path / "out.json"
    doc = _tiny().to_json()
    del doc["serving"], doc["fingerprint"]
    doc["schema_version"] = "1.0"
    for role in doc["roles"].values():
        for key in ("pipeline", "kv", "estimate"):
            del role[key]
    plan.write_text(json.dumps(doc), encoding="utf-8")
    r = _cmx("emit", "chrome-trace", TINY, "--plan", str(plan), "-o", str(out))
    assert r.returncode == 1 and "error[E026]" in r.stderr and "pipeline" in r.stderr
    assert not out.exists()


def _planner_writes_pipelines() -> bool:
    """Whether the planner of this checkout puts a ``pipeline`` block into some role."""
    model = cmx.compile_file(ROOT / TINY)
    doc = plan_deployment(model, cmx.build_graph(model), PlanRequest())
    return any(role.pipeline is not None for role in doc.roles.values())


def test_cmx_plan_trace(tmp_path: Path) -> None:
    """With a pipeline planner both files are written and agree; without one, --trace is an
    E026 and neither file is written."""
    plan, trace = tmp_path / "plan.json", tmp_path / "trace.json"
    r = _cmx("plan", TINY, "-o", str(plan), "--trace", str(trace))
    if _planner_writes_pipelines():
        assert r.returncode == 0, r.stderr
        doc = PlanDocument.from_text(plan.read_text(encoding="utf-8"), str(plan))
        assert trace.read_text(encoding="utf-8") == chrome_trace(doc)
    else:
        assert r.returncode == 1 and "error[E026]" in r.stderr, r.stderr
        assert "no pipeline schedule" in r.stderr
        assert not plan.exists() and not trace.exists()


def test_cmx_plan_trace_failed_plan_writes_nothing(tmp_path: Path) -> None:
    plan, trace = tmp_path / "plan.json", tmp_path / "trace.json"
    r = _cmx("plan", TINY, "--deployment", "NoSuchDeployment", "-o", str(plan),
             "--trace", str(trace))
    assert r.returncode == 1 and "error[E" in r.stderr
    assert not plan.exists() and not trace.exists()


def test_chromium_devtools_reads_the_trace_as_written(tmp_path: Path) -> None:
    """The trace of the shipped CloudMatrix384 plan, handed to the trace engine of
    Chromium's DevTools (the Performance panel's parser, which took over from
    chrome://tracing), comes back with every process, every named stream and every event,
    and no warning."""
    trace = tmp_path / "pipeline.json"
    subprocess.run([sys.executable, "-m", "supernode_dsl", "plan",
                    "topologies/deepseek-r1-cloudmatrix384.cmx", "-o", str(tmp_path / "p.json"),
                    "--trace", str(trace)], check=True, cwd=ROOT, capture_output=True)
    doc = json.loads(trace.read_text())
    expected: dict[tuple[int, int], int] = defaultdict(int)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            expected[(e["pid"], e["tid"])] += 1
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    with DevToolsPipe(tmp_path / "profile") as browser:
        browser.navigate("devtools://devtools/bundled/inspector.html")
        if not browser.evaluate(_HAS_ENGINE):
            pytest.skip("this Chromium's DevTools has no models/trace module")
        parsed = browser.evaluate(_PARSE.replace("TRACE", json.dumps(doc)))
    threads = {(pid, tid): (name, count) for pid, tid, name, count in parsed["threads"]}
    assert threads == {k: (names[k], n) for k, n in expected.items()}
    assert parsed["warnings"] == []
    step = max(e["ts"] + e["dur"] for e in doc["traceEvents"] if e["ph"] == "X")
    assert parsed["max"] == pytest.approx(step, abs=1e-3)


_ENGINE = "devtools://devtools/bundled/models/trace/trace.js"
_HAS_ENGINE = f"import('{_ENGINE}').then(() => true, () => false)"
_PARSE = """(async () => {
  const T = await import('ENGINE');
  const model = T.TraceModel.Model.createWithAllHandlers();
  await model.parse((TRACE).traceEvents, {metadata: {}, isFreshRecording: false});
  const data = model.parsedTrace(0).data;
  const threads = [];
  for (const [pid, p] of data.Renderer.processes)
    for (const [tid, t] of p.threads) threads.push([pid, tid, t.name, t.entries.length]);
  return {threads, warnings: Object.keys(data.Warnings.perWarning || {}),
          max: data.Meta.traceBounds.max};
})()""".replace("ENGINE", _ENGINE)
