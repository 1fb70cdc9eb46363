"""Design-space sweeps: plan and estimate a deployment at every point of a grid of its
``-D`` parameters, in parallel, and compare the points.

Entry: :func:`run_sweep`.  Every point is planned by the plan stage's public entry
(:func:`supernode_dsl.plan.plan_deployment`, through
:func:`~supernode_dsl.sweep.point.evaluate_point`); the sweep knows nothing of how the
estimate is made.  Points run on local processes or as Ray tasks with the same function, so
the table does not depend on the backend; it lists the points in grid order whatever order
they finish in.  Finished points are kept in ``points.jsonl`` in the output folder and are
not redone when the sweep is run again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from supernode_dsl.files import Output, write_outputs
from supernode_dsl.sweep.backends import BackendError, run_local, run_ray
from supernode_dsl.sweep.grid import Axis, GridError, grid_points, parse_axis
from supernode_dsl.sweep.plot import pareto_svg
from supernode_dsl.sweep.point import METRICS, PointResult
from supernode_dsl.sweep.table import (
    PointStore,
    SweepTable,
    load_table,
    pareto_front,
    point_key,
    read_table,
    sources_digest,
    table_csv,
    table_json,
)

__all__ = ["METRICS", "Axis", "BackendError", "GridError", "PointResult", "SweepResult",
           "SweepSpec", "SweepTable", "load_table", "parse_axis", "read_table", "run_sweep",
           "sources_digest"]


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: ``file``'s ``deployment`` over ``axes`` on top of ``defines``; where
    (``backend``, ``workers`` for local processes, ``address`` of a Ray cluster), the
    latency of the Pareto front (``tpot_ms`` or ``ttft_ms``) and the axes it is taken per
    (each combination of their values its own front: one per workload)."""

    file: Path
    axes: tuple[Axis, ...]
    output: Path
    defines: tuple[tuple[str, str], ...] = ()
    deployment: str | None = None
    backend: Literal["local", "ray"] = "local"
    workers: int | None = None
    address: str | None = None
    pareto_y: Literal["tpot_ms", "ttft_ms"] = "tpot_ms"
    pareto_per: tuple[str, ...] = ()   # axes: one front per combination of their values


@dataclass(frozen=True)
class SweepResult:
    """Every point's result in grid order, the Pareto front (indices), how many points
    this run computed (the others were finished before), and the files written."""

    results: tuple[PointResult, ...]
    front: tuple[int, ...]
    computed: int
    files: tuple[Path, ...]


def _sweep_id(spec: SweepSpec, files: tuple[str, ...]) -> str:
    """The sweep's identity: the contents of every source file and the deployment."""
    return sources_digest(files, json.dumps([spec.deployment]).encode())


def _runner(spec: SweepSpec, jobs: list[tuple[int, dict[str, str]]]
            ) -> Iterator[tuple[int, PointResult]]:
    if spec.backend == "ray":
        return run_ray(str(spec.file), spec.deployment, jobs, spec.address)
    return run_local(str(spec.file), spec.deployment, jobs, spec.workers)


def run_sweep(spec: SweepSpec, files: tuple[str, ...],
              progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Plan every point of ``spec`` not already in ``spec.output/points.jsonl`` and write
    ``table.csv``, ``table.json`` (rows, metrics, the Pareto front) and ``pareto.svg``
    there.

    ``files`` are the topology's source files (``Model.files``: the sweep's identity, so a
    changed file invalidates the finished points).  ``progress(done, total)`` is called as
    points finish.  Raises :class:`GridError` (bad axes, a ``pareto_per`` name that is not
    an axis) and :class:`BackendError`.
    """
    names = [a.name for a in spec.axes]
    for name in spec.pareto_per:
        if name not in names:
            raise GridError(f"--pareto-per {name}: not a swept parameter (-p: "
                            f"{', '.join(names)})")
    base = dict(spec.defines)
    points = [{**base, **p} for p in grid_points(spec.axes)]
    sweep_id = _sweep_id(spec, files)
    keys = [point_key(sweep_id, p) for p in points]
    spec.output.mkdir(parents=True, exist_ok=True)
    store = PointStore(spec.output / "points.jsonl")
    todo = [(i, p) for i, (p, k) in enumerate(zip(points, keys, strict=True))
            if k not in store.done]
    done = len(points) - len(todo)
    if progress:
        progress(done, len(points))
    for i, result in _runner(spec, todo):
        store.add(keys[i], result)
        done += 1
        if progress:
            progress(done, len(points))
    results = tuple(store.done[k] for k in keys)
    front = tuple(pareto_front(list(results), spec.pareto_y, spec.pareto_per))
    axes = tuple(a.name for a in spec.axes)
    table = SweepTable(axes, spec.defines, spec.deployment, spec.pareto_y,
                       sources_digest(files), results, front, spec.pareto_per)
    out = (spec.output / "table.csv", spec.output / "table.json", spec.output / "pareto.svg")
    write_outputs([Output(out[0], table_csv(list(axes), results, list(front))),  # all or none
                   Output(out[1], table_json(table)),
                   Output(out[2], pareto_svg(list(results), list(front), spec.pareto_y,
                                             per=spec.pareto_per))])
    return SweepResult(results, front, len(todo), out)
