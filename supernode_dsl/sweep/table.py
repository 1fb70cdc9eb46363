"""A sweep's outputs: the finished-points store (resume), the table (CSV and JSON; and
:func:`read_table`, the reader of ``table.json`` for the report) and the Pareto front of
decode tokens/s per NPU against TPOT."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernode_dsl.diagnostics import CmxError, Diagnostic, SourceText, Span
from supernode_dsl.files import read_text, write_atomic
from supernode_dsl.plan.document.codec import JsonPath, format_path
from supernode_dsl.plan.document.locate import locate, parse_json
from supernode_dsl.sweep.point import METRICS, PointResult, point_groups

__all__ = [
    "LATENCIES",
    "PointStore",
    "SweepTable",
    "load_table",
    "pareto_front",
    "point_key",
    "read_table",
    "sources_digest",
    "table_csv",
    "table_file",
    "table_json",
]

#: The latencies a Pareto front can be drawn against.
LATENCIES = ("tpot_ms", "ttft_ms")


@dataclass(frozen=True)
class SweepTable:
    """A sweep's table: the axes (names, in grid order), the fixed ``defines``, the
    deployment, the latency of the front, the digest of the topology's sources
    (:func:`sources_digest`), every point's result in grid order, the front and the axes
    it is taken per."""

    axes: tuple[str, ...]
    defines: tuple[tuple[str, str], ...]
    deployment: str | None
    pareto_y: str
    sources: str
    results: tuple[PointResult, ...]
    front: tuple[int, ...]
    #: the axes whose values split the points into groups, each with its own front
    #: (:func:`pareto_front`); empty: one front over every point
    pareto_per: tuple[str, ...] = ()


def sources_digest(files: Iterable[str], salt: bytes = b"") -> str:
    """SHA-256 of ``salt`` then the contents of the topology's source files
    (``Model.files``), in order: the sweep's table records it (no salt) so a report can tell
    a sweep of other sources; with the deployment as salt it is the sweep's identity."""
    h = hashlib.sha256(salt)
    for name in files:
        h.update(Path(name).read_bytes())
    return h.hexdigest()


def table_file(path: str | Path) -> Path:
    """The ``table.json`` meant by ``path``: the file in the sweep folder ``path``, or
    ``path`` itself."""
    path = Path(path)
    return path / "table.json" if path.is_dir() else path


def point_key(sweep_id: str, defines: dict[str, str]) -> str:
    """The identity of one point of one sweep (file contents, deployment, defines)."""
    text = json.dumps([sweep_id, sorted(defines.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class PointStore:
    """``points.jsonl`` in the output folder: one line per finished point, appended (and
    flushed) as each one finishes, so an interrupted sweep resumes where it stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, PointResult] = {}
        if not path.exists():
            return
        text = path.read_text()
        kept = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                self.done[rec["key"]] = PointResult(**rec["result"])
                kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interruption: that point is redone
        if "".join(kept) != text:  # drop the broken line before appending after it
            write_atomic(path, "".join(kept))

    def add(self, key: str, result: PointResult) -> None:
        self.done[key] = result
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "result": result.to_json()}, sort_keys=True) + "\n")
            f.flush()


def _row(axes: list[str], index: int, r: PointResult) -> dict[str, Any]:
    m = r.metrics or {}
    return {"point": index, **{a: r.defines[a] for a in axes},
            **{k: m.get(k) for k in METRICS}, "error": r.error}


def table_json(table: SweepTable) -> str:
    """The table as JSON: the axes, the fixed defines, the deployment, the latency of the
    front, the sources' digest, one row per point in grid order, the Pareto front and the
    axes it is taken per."""
    doc = {"axes": list(table.axes), "metrics": list(METRICS),
           "defines": dict(table.defines), "deployment": table.deployment,
           "pareto_y": table.pareto_y, "sources_sha256": table.sources,
           "points": [_row(list(table.axes), i, r) for i, r in enumerate(table.results)],
           "pareto_front": list(table.front), "pareto_per": list(table.pareto_per)}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def table_csv(axes: list[str], results: Iterable[PointResult], front: list[int]) -> str:
    """The table as CSV, with a ``pareto`` column (1 on the front)."""
    buf = io.StringIO()
    on = set(front)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["point", *axes, *METRICS, "pareto", "error"])
    for i, r in enumerate(results):
        row = _row(axes, i, r)
        w.writerow([i, *(row[a] for a in axes), *("" if row[k] is None else row[k]
                                                  for k in METRICS),
                    int(i in on), row["error"] or ""])
    return buf.getvalue()


def pareto_front(results: list[PointResult], y: str = "tpot_ms",
                 per: tuple[str, ...] = ()) -> list[int]:
    """Indices (grid order) of the points no other point of their group beats on both
    decode tokens/s per NPU (higher is better) and ``y`` (``tpot_ms`` or ``ttft_ms``, lower
    is better); equal points are all kept.  A group is the points with the same values of
    the axes ``per`` (none: every point is one group), so points of different workloads
    (a prompt-length axis) are not compared.

    One sort and one pass per group (O(n log n), so the front of a cluster-sized sweep is
    not the driver's bottleneck)."""
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(point_groups(results, per)):
        groups.setdefault(g, []).append(i)
    return sorted(i for members in groups.values()
                  for i in _front(results, members, y))


def _front(results: list[PointResult], members: list[int], y: str) -> list[int]:
    """The front of the points ``members``: going down in tokens/s, a point is on it when
    its latency is below that of every point with more tokens/s and not above that of any
    point with the same tokens/s."""
    pts = sorted((-m["decode_tokens_per_s_per_npu"], m[y], i) for i in members
                 if (m := results[i].metrics) and m["decode_tokens_per_s_per_npu"] is not None
                 and m[y] is not None)
    front = []
    best = math.inf  # the lowest latency among points with more tokens/s
    for _, group in itertools.groupby(pts, key=lambda p: p[0]):
        same = list(group)  # sorted by latency: the first is the group's lowest
        lowest = same[0][1]
        if lowest < best:
            front += [i for _, lat, i in same if lat == lowest]
            best = lowest
    return front


class _Bad(Exception):
    def __init__(self, path: JsonPath, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def _get(obj: Any, path: JsonPath, key: str, kinds: tuple[type, ...], what: str) -> Any:
    """``obj[key]`` when ``obj`` is an object holding one of ``kinds`` there."""
    if not isinstance(obj, dict):
        raise _Bad(path, "expected an object")
    if key not in obj:
        raise _Bad(path, f"no '{key}'")
    value = obj[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _Bad((*path, key), f"expected {what}")
    return value


def _strings(obj: Any, path: JsonPath, key: str) -> list[str]:
    values = _get(obj, path, key, (list,), "a list of strings")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise _Bad((*path, key, i), "expected a string")
    return [str(v) for v in values]


_NUMBER = (int, float, type(None))


def _point(row: Any, path: JsonPath, axes: list[str]) -> PointResult:
    """One row of ``points``: the axis values (text), the metrics, the error."""
    defines = {a: _get(row, path, a, (str,), "the axis value as text") for a in axes}
    error = _get(row, path, "error", (str, type(None)), "a message or null")
    metrics = {k: _get(row, path, k, (str, type(None)) if k == "bottleneck" else _NUMBER,
                       "text or null" if k == "bottleneck" else "a number or null")
               for k in METRICS}
    return PointResult(defines, None if error is not None else metrics, error)


def _table(doc: Any) -> SweepTable:
    axes = _strings(doc, (), "axes")
    if _strings(doc, (), "metrics") != list(METRICS):
        raise _Bad(("metrics",), f"expected the metrics {', '.join(METRICS)}")
    y = _get(doc, (), "pareto_y", (str,), "tpot_ms or ttft_ms")
    if y not in LATENCIES:
        raise _Bad(("pareto_y",), "expected tpot_ms or ttft_ms")
    defines = _get(doc, (), "defines", (dict,), "an object of -D values")
    for k, v in defines.items():
        if not isinstance(v, str):
            raise _Bad(("defines", k), "expected the value as text")
    rows = _get(doc, (), "points", (list,), "a list of points")
    results = []
    for i, row in enumerate(rows):
        if _get(row, ("points", i), "point", (int,), "the point's index") != i:
            raise _Bad(("points", i, "point"), f"expected {i}: the points in grid order")
        results.append(_point(row, ("points", i), axes))
    per = _strings(doc, (), "pareto_per") if isinstance(doc, dict) and "pareto_per" in doc \
        else []   # tables written before the front could be taken per group
    for i, name in enumerate(per):
        if name not in axes:
            raise _Bad(("pareto_per", i), "expected one of the axes")
    front = _get(doc, (), "pareto_front", (list,), "a list of point indices")
    if front != pareto_front(results, y, tuple(per)):
        raise _Bad(("pareto_front",), "not the Pareto front of the points (edited?)")
    return SweepTable(tuple(axes), tuple(sorted(defines.items())),
                      _get(doc, (), "deployment", (str, type(None)), "a name or null"), y,
                      _get(doc, (), "sources_sha256", (str,), "a SHA-256 digest"),
                      tuple(results), tuple(front), tuple(per))


def read_table(source: SourceText, code: str) -> SweepTable:
    """The sweep table of ``source`` (a ``table.json``); :class:`CmxError` with ``code``
    located at the value that is wrong (not JSON, a missing key, a wrong type, a front that
    is not the points' front)."""
    doc = parse_json(source, code)
    try:
        return _table(doc)
    except _Bad as bad:
        line, col, length = locate(source.text, bad.path)
        span = Span(source, line, col, line, col + min(length, 40))
        raise CmxError([Diagnostic(code, f"{format_path(bad.path)}: {bad.message}", span)]
                       ) from None


def load_table(path: str | Path, code: str = "E038") -> SweepTable:
    """The table of the sweep folder ``path`` (its ``table.json``) or of the ``table.json``
    file ``path``; :class:`CmxError` with ``code`` when it cannot be read or is not a sweep
    table (:func:`read_table`)."""
    return read_table(read_text(table_file(path), code), code)
