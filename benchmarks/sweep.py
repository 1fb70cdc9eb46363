#!/usr/bin/env python
"""Sweep benchmark: ``cmx sweep`` of the shipped DeepSeek-R1 deployment over 256 points,
on local processes and on a local Ray instance, the tables compared byte for byte.

Grid (``AXES``): decode batch per NPU 12..192 step 12 (16 values) x MTP acceptance 0, 0.5,
0.7, 0.9 x prompt length 1K, 2K, 4K, 8K = 256 points; the largest batches at 8K prompts do
not fit the NPU's memory (E023 rows), the rest plan.

Each backend is one fresh ``cmx sweep`` process into an empty folder (``run.py``'s
``run_once``: wall clock around spawn .. reap, and the CPU time of the process and of the
children it reaped, which includes the local backend's worker processes but not Ray's
workers, children of Ray's daemons).  Then ``table.csv``, ``table.json`` and ``pareto.svg``
of the two folders are compared byte for byte.  Before that, in this process, a few points
are planned with :func:`~supernode_dsl.sweep.point.evaluate_point` and timed stage by stage
(compile, graph, plan): the per-point cost a cluster divides among its cores.

Results go to ``benchmarks/sweep.json``.

Usage::

    nice -n 10 python benchmarks/sweep.py              # both backends, 2 local workers
    python benchmarks/sweep.py --backends local        # one backend
    python benchmarks/sweep.py --keep /tmp/sw          # keep the sweeps in /tmp/sw/BACKEND
    python benchmarks/sweep.py --axes "-p decode_batch_per_npu=16:96:16"   # another grid
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PLAN_TOPO, ROOT, cmx_command, git_rev, machine, run_once

AXES = ("-p decode_batch_per_npu=12:192:12 -p mtp_accept=0,0.5,0.7,0.9 "
        "-p prompt_len=1024,2048,4096,8192")
OUTPUTS = ("table.csv", "table.json", "pareto.svg")


def stage_times(points: list[dict[str, str]]) -> dict[str, Any]:
    """Plan ``points`` here, one after another, and time compile, graph and plan of each
    (after one uncounted warm-up point: imports and lazy tables)."""
    from supernode_dsl import build_graph, compile_file
    from supernode_dsl.plan import PlanRequest, plan_deployment

    def one(defines: dict[str, str]) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        model = compile_file(PLAN_TOPO, defines)
        t1 = time.perf_counter()
        g = build_graph(model)
        t2 = time.perf_counter()
        plan_deployment(model, g, PlanRequest())
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    one(points[0])
    runs = [one(p) for p in points]
    compile_s, graph_s, plan_s = (statistics.median(r[i] for r in runs) for i in range(3))
    return {"points": len(points), "compile_s_median": compile_s, "graph_s_median": graph_s,
            "plan_s_median": plan_s, "total_s_median": compile_s + graph_s + plan_s}


def run_backend(backend: str, axes: str, jobs: int, out: Path) -> dict[str, Any]:
    """One ``cmx sweep`` into the empty folder ``out``: wall, CPU, points/s, its summary."""
    argv = [*cmx_command(), "sweep", str(PLAN_TOPO), *shlex.split(axes), "-o", str(out)]
    argv += ["--jobs", str(jobs)] if backend == "local" else ["--backend", "ray"]
    load = os.getloadavg()[0]
    run, stdout = run_once(argv)
    points = int(stdout.split()[0])
    return {"backend": backend, "argv": argv[len(cmx_command()):], "points": points,
            "wall_s": run.wall_s, "points_per_s": points / run.wall_s,
            "cpu_s_reaped": run.user_s + run.sys_s, "maxrss_mib": run.maxrss_kib / 1024,
            "load_before": load, "load_after": os.getloadavg()[0],
            "summary": stdout.splitlines()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--axes", default=AXES, help="the -p arguments of the sweep")
    ap.add_argument("--jobs", type=int, default=2, help="local worker processes")
    ap.add_argument("--backends", default="local,ray")
    ap.add_argument("--stage-points", type=int, default=3,
                    help="points planned in-process for the per-stage times (0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "sweep.json")
    ap.add_argument("--keep", type=Path, help="write the sweeps into DIR/BACKEND and keep "
                    "them (default: a temporary folder)")
    args = ap.parse_args()
    backends = args.backends.split(",")
    result: dict[str, Any] = {"machine": machine(), "commit": git_rev(), "axes": args.axes,
                              "jobs": args.jobs}
    if args.stage_points:
        sample = [{"decode_batch_per_npu": str(b)} for b in (32, 64, 96, 128, 160)]
        result["per_point"] = stage_times(sample[:args.stage_points])
    with tempfile.TemporaryDirectory(prefix="cmx-sweep-bench-") as tmp:
        work = args.keep or Path(tmp)
        if any((work / b).exists() for b in backends):
            raise SystemExit(f"{work}: remove the earlier sweeps first (points are resumed)")
        runs = [run_backend(b, args.axes, args.jobs, work / b) for b in backends]
        result["runs"] = runs
        if len(backends) > 1:
            result["identical"] = {
                name: all((work / backends[0] / name).read_bytes()
                          == (work / b / name).read_bytes() for b in backends[1:])
                for name in OUTPUTS}
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print("| backend | points | wall s | points/s | CPU s (reaped) | load |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['backend']} | {r['points']} | {r['wall_s']:.1f} | "
              f"{r['points_per_s']:.2f} | {r['cpu_s_reaped']:.1f} | "
              f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
    print(json.dumps({k: result[k] for k in ("per_point", "identical") if k in result}))
    if not all(result.get("identical", {}).values()):
        raise SystemExit("the backends' tables differ")


if __name__ == "__main__":
    main()
