"""A sweep's outputs: the finished-points store (resume), the table (CSV and JSON) and the
Pareto front of decode tokens/s per NPU against TPOT."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supernode_dsl.files import write_atomic
from supernode_dsl.sweep.point import METRICS, PointResult

__all__ = ["PointStore", "pareto_front", "point_key", "table_csv", "table_json"]


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


def table_json(axes: list[str], results: list[PointResult], front: list[int]) -> str:
    """The table as JSON: the axes, one row per point in grid order, the Pareto front."""
    doc = {"axes": axes, "metrics": list(METRICS),
           "points": [_row(axes, i, r) for i, r in enumerate(results)],
           "pareto_front": front}
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


def pareto_front(results: list[PointResult], y: str = "tpot_ms") -> list[int]:
    """Indices (grid order) of the points no other point beats on both decode tokens/s per
    NPU (higher is better) and ``y`` (``tpot_ms`` or ``ttft_ms``, lower is better); equal
    points are all kept.

    One sort and one pass (O(n log n), so the front of a cluster-sized sweep is not the
    driver's bottleneck): going down in tokens/s, a point is on the front when its latency
    is below that of every point with more tokens/s and not above that of any point with
    the same tokens/s."""
    pts = sorted((-r.metrics["decode_tokens_per_s_per_npu"], r.metrics[y], i)
                 for i, r in enumerate(results)
                 if r.metrics and r.metrics["decode_tokens_per_s_per_npu"] is not None
                 and r.metrics[y] is not None)
    front = []
    best = math.inf  # the lowest latency among points with more tokens/s
    for _, group in itertools.groupby(pts, key=lambda p: p[0]):
        same = list(group)  # sorted by latency: the first is the group's lowest
        lowest = same[0][1]
        if lowest < best:
            front += [i for _, lat, i in same if lat == lowest]
            best = lowest
    return sorted(front)
