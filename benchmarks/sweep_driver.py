#!/usr/bin/env python
"""The serial part of a Ray sweep: the driver's CPU time per point, measured with trivial
points so that nothing but the driver's own work is left.

N tasks that return a :class:`~supernode_dsl.sweep.point.PointResult` at once are submitted
to a local Ray instance and collected as ``cmx sweep``'s Ray backend does (one ``ray.wait``
per poll interval, :data:`supernode_dsl.sweep.backends.POLL_S` seconds, and one line
appended to a :class:`~supernode_dsl.sweep.table.PointStore` per point), after warming up
the workers.  The driver's CPU time over N is what a cluster cannot parallelise; a real point
costs about 1.1 s of a core (``benchmarks/sweep.py``), so one driver keeps about
1.1 s / (that time) cores busy.  Results go to ``benchmarks/sweep-driver.json``.

Usage::

    nice -n 10 python benchmarks/sweep_driver.py            # 2000 points
    python benchmarks/sweep_driver.py --points 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, git_rev, machine

from supernode_dsl.sweep.point import PointResult
from supernode_dsl.sweep.table import PointStore


def _trivial(i: int, defines: dict[str, str]) -> PointResult:
    return PointResult(defines, {"decode_tokens_per_s_per_npu": float(i), "tpot_ms": 1.0},
                       None)


def measure(points: int, poll_s: float) -> dict[str, Any]:
    """Driver wall and CPU time for ``points`` trivial points on a local Ray instance."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_trivial)
        ray.get([task.remote(0, {}) for _ in range(50)])  # the workers started and warm
        with tempfile.TemporaryDirectory() as tmp:
            store = PointStore(Path(tmp) / "points.jsonl")
            cpu0, wall0 = time.process_time(), time.perf_counter()
            refs = {task.remote(i, {"decode_batch_per_npu": str(i)}): i for i in range(points)}
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s)
                for ref in ready:
                    store.add(str(refs[ref]), ray.get(ref))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        ray.shutdown()
    return {"points": points, "wall_s": wall, "driver_cpu_s": cpu,
            "driver_cpu_ms_per_point": 1e3 * cpu / points, "points_per_s": points / wall}


def main() -> None:
    from supernode_dsl.sweep.backends import POLL_S

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "sweep-driver.json")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    result = {"machine": machine(), "commit": git_rev(), "load_before": load,
              **measure(args.points, POLL_S), "load_after": os.getloadavg()[0]}
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
