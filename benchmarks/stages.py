#!/usr/bin/env python
"""Per-stage breakdown of ``cmx info`` on the scale series, measured in-process.

For each ``-D supernodes=N`` of topologies/cloudmatrix384-cluster.cmx a fresh child process
(this script with ``--one N``) imports the package and times, with ``time.perf_counter``:

* ``import``     ``import supernode_dsl.cli`` (networkx, scipy, lark, click, ...)
* ``parse``      ``parse_program(path)``
* ``elaborate``  ``elaborate(program, {"supernodes": N})``
* ``build_graph````build_graph(model)`` (networkx graph + whole-graph checks)
* ``all_plane_arrays`` the edge scan of ``plane_summary``: ``all_plane_arrays(g)``, one pass
  over the graph's edges that buckets them by plane and builds every plane's arrays
* ``max_flow``   the rest of ``plane_summary``: ``bisection_bandwidth(g, plane, arrays)`` for
  each plane (endpoint selection + CSR matrix + scipy ``maximum_flow``)
* ``counts``     ``model.count_by_category()`` / ``count_by_type()`` (the rest of ``info``)

and the resident set size (VmRSS) after each stage and the process's high-water mark (VmHWM)
from /proc/self/status.  ``--tracemalloc`` adds the Python-heap peak of each stage (slower:
the times are then not comparable).  ``--profile N`` runs the pipeline for one size under
cProfile and prints the top entries.

Usage::

    python benchmarks/stages.py                       # sizes 1,4,16,64,128; 3 runs each
    python benchmarks/stages.py --sizes 16,64 --repeat 5
    python benchmarks/stages.py --profile 128 --top 20 > benchmarks/profile-128.txt

Writes benchmarks/stages.json (not with --profile) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "topologies" / "cloudmatrix384-cluster.cmx"
STAGES = ("import", "parse", "elaborate", "build_graph", "all_plane_arrays", "max_flow",
          "counts")


def _status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def pipeline(n: int, use_tracemalloc: bool = False) -> dict[str, Any]:
    """Run every stage once for ``supernodes=n``; time, RSS and (optionally) heap peak."""
    tm = None
    if use_tracemalloc:
        import tracemalloc as tm

        tm.start()
    times: dict[str, float] = {}
    rss: dict[str, float] = {}
    hwm: dict[str, float] = {}
    heap: dict[str, float] = {}
    can_reset = _reset_hwm()

    def mark(stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        times[stage] = times.get(stage, 0.0) + (t1 - t0)
        rss[stage] = _status_kib("VmRSS") / 1024
        if can_reset:
            hwm[stage] = max(hwm.get(stage, 0.0), _status_kib("VmHWM") / 1024)
        if tm is not None:
            heap[stage] = max(heap.get(stage, 0.0), tm.get_traced_memory()[1] / 2**20)
            tm.reset_peak()
        if can_reset:
            _reset_hwm()
        return time.perf_counter()

    t = time.perf_counter()
    import supernode_dsl.cli  # noqa: F401  (the CLI's import cost, as in `cmx info`)
    from supernode_dsl import elaborate, parse_program
    from supernode_dsl.graph import build_graph
    from supernode_dsl.graph.analysis import all_plane_arrays, bisection_bandwidth

    t = mark("import", t)
    program = parse_program(CLUSTER)
    t = mark("parse", t)
    model = elaborate(program, {"supernodes": str(n)})
    t = mark("elaborate", t)
    g = build_graph(model)
    t = mark("build_graph", t)
    per_plane: dict[str, dict[str, float]] = {}
    by_plane = all_plane_arrays(g)
    t = mark("all_plane_arrays", t)
    for plane, arrays in by_plane.items():
        bw = bisection_bandwidth(g, plane, arrays)
        t2 = time.perf_counter()
        per_plane[plane] = {"nodes": len(arrays.nodes), "edges": len(arrays.src),
                            "links": arrays.links, "bisection_GBps": bw / 1e9,
                            "max_flow_s": t2 - t}
        t = mark("max_flow", t)
    model.count_by_category()
    model.count_by_type()
    mark("counts", t)
    if tm is not None:
        tm.stop()
    return {
        "supernodes": n,
        "instances": model.num_instances,
        "link_bundles": g.number_of_edges(),
        "graph_nodes": g.number_of_nodes(),
        "times_s": times,
        "total_s": sum(times.values()),
        "rss_mib_after": rss,
        "vmhwm_mib": max(hwm.values()) if hwm else _status_kib("VmHWM") / 1024,
        "stage_peak_rss_mib": hwm or None,
        "heap_peak_mib": heap or None,
        "planes": per_plane,
    }


def profile(n: int, top: int, out: Path | None) -> None:
    import cProfile
    import pstats

    import supernode_dsl.cli  # noqa: F401  (imports are not what we profile)
    from supernode_dsl import elaborate, parse_program
    from supernode_dsl.graph import build_graph, plane_summary

    prof = cProfile.Profile()
    prof.enable()
    model = elaborate(parse_program(CLUSTER), {"supernodes": str(n)})
    g = build_graph(model)
    plane_summary(g)
    model.count_by_category()
    model.count_by_type()
    prof.disable()
    if out:
        prof.dump_stats(out)
    for key in ("tottime", "cumulative"):
        print(f"\n### cProfile, supernodes={n}, top {top} by {key}\n\n```")
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        print("```")


def child(n: int, use_tracemalloc: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", str(n)]
    if use_tracemalloc:
        cmd.append("--tracemalloc")
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"stage run failed for supernodes={n}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def _exponent(xs: list[float], ys: list[float]) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4,16,64,128")
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per size")
    ap.add_argument("--repeat-large", type=int, default=3, help="runs for sizes >= 64")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also record each stage's Python-heap peak (slows the run)")
    ap.add_argument("--profile", type=int, metavar="N", help="cProfile the pipeline at N")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--profile-out", type=Path, help="also dump the raw profile here")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "stages.json")
    args = ap.parse_args()

    if args.one is not None:
        json.dump(pipeline(args.one, args.tracemalloc), sys.stdout)
        return
    if args.profile is not None:
        profile(args.profile, args.top, args.profile_out)
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        reps = args.repeat_large if n >= 64 else args.repeat
        runs = []
        for i in range(reps):
            runs.append(child(n, args.tracemalloc))
            print(f"  supernodes={n} run {i + 1}/{reps}: {runs[-1]['total_s']:.2f} s",
                  file=sys.stderr, flush=True)
        med = {s: statistics.median(r["times_s"].get(s, 0.0) for r in runs) for s in STAGES}
        rows.append({
            "supernodes": n,
            "instances": runs[0]["instances"],
            "link_bundles": runs[0]["link_bundles"],
            "runs": reps,
            "median_s": med,
            "min_s": {s: min(r["times_s"].get(s, 0.0) for r in runs) for s in STAGES},
            "total_median_s": statistics.median(r["total_s"] for r in runs),
            "vmhwm_mib_median": statistics.median(r["vmhwm_mib"] for r in runs),
            "rss_mib_after": runs[0]["rss_mib_after"],
            "stage_peak_rss_mib": runs[0]["stage_peak_rss_mib"],
            "heap_peak_mib": runs[0]["heap_peak_mib"],
            "planes": runs[0]["planes"],
        })
    load_after = os.getloadavg()

    # Per-stage growth: exponent of median stage time vs instances over sizes >= largest/16.
    big = [r for r in rows if r["instances"] >= rows[-1]["instances"] / 16] if rows else []
    exponents = {s: _exponent([r["instances"] for r in big], [r["median_s"][s] for r in big])
                 for s in STAGES if s != "import"} if len(big) >= 2 else {}

    doc = {"command": " ".join(["python", "benchmarks/stages.py", *sys.argv[1:]]),
           "python": sys.version.split()[0], "cpus": os.cpu_count(),
           "load_before": load_before, "load_after": load_after,
           "tracemalloc": args.tracemalloc, "rows": rows, "exponents": exponents}
    args.output.write_text(json.dumps(doc, indent=2) + "\n")

    print(f"\nload average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}"
          + ("  (tracemalloc on: times inflated)" if args.tracemalloc else "") + "\n")
    print("### Median seconds per stage\n")
    head = ["supernodes", "instances", "link bundles", *STAGES, "total", "VmHWM MiB"]
    print("| " + " | ".join(head) + " |\n|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        cells = [str(r["supernodes"]), f"{r['instances']:,}", f"{r['link_bundles']:,}",
                 *(f"{r['median_s'][s]:.3f}" for s in STAGES), f"{r['total_median_s']:.2f}",
                 f"{r['vmhwm_mib_median']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    print("\n### Microseconds per instance, per stage (median time / instances)\n")
    head2 = ["supernodes", *(s for s in STAGES if s not in ("import", "parse"))]
    print("| " + " | ".join(head2) + " |\n|" + "|".join("---" for _ in head2) + "|")
    for r in rows:
        cells = [str(r["supernodes"]), *(f"{1e6 * r['median_s'][s] / r['instances']:.1f}"
                                         for s in head2[1:])]
        print("| " + " | ".join(cells) + " |")
    print("\n### RSS (MiB) after each stage, first run\n")
    print("| " + " | ".join(["supernodes", *STAGES]) + " |\n|"
          + "|".join("---" for _ in range(len(STAGES) + 1)) + "|")
    for r in rows:
        print("| " + " | ".join([str(r["supernodes"]),
                                 *(f"{r['rss_mib_after'].get(s, 0):.0f}" for s in STAGES)]) + " |")
    if rows and rows[0]["stage_peak_rss_mib"]:
        print("\n### Peak RSS (MiB) within each stage (VmHWM, reset per stage via "
              "/proc/self/clear_refs), first run\n")
        print("| " + " | ".join(["supernodes", *STAGES]) + " |\n|"
              + "|".join("---" for _ in range(len(STAGES) + 1)) + "|")
        for r in rows:
            h = r["stage_peak_rss_mib"]
            print("| " + " | ".join([str(r["supernodes"]),
                                     *(f"{h.get(s, 0):.0f}" for s in STAGES)]) + " |")
    if args.tracemalloc:
        print("\n### Python-heap peak (MiB) within each stage (tracemalloc), first run\n")
        print("| " + " | ".join(["supernodes", *STAGES[1:]]) + " |\n|"
              + "|".join("---" for _ in STAGES) + "|")
        for r in rows:
            h = r["heap_peak_mib"] or {}
            print("| " + " | ".join([str(r["supernodes"]),
                                     *(f"{h.get(s, 0):.0f}" for s in STAGES[1:])]) + " |")
    if exponents:
        print(f"\n### Growth exponent per stage (log-log slope over supernodes "
              f"{', '.join(str(r['supernodes']) for r in big)}; 1 = linear)\n")
        print("| " + " | ".join(exponents) + " |\n|" + "|".join("---" for _ in exponents) + "|")
        print("| " + " | ".join("" if v is None else f"{v:.2f}" for v in exponents.values())
              + " |")
    last = rows[-1] if rows else None
    if last:
        print(f"\n### Per plane at supernodes={last['supernodes']} (first run)\n")
        print("| plane | nodes | link bundles | links | bisection GB/s | max-flow s |\n"
              "|---|---|---|---|---|---|")
        for p, d in last["planes"].items():
            print(f"| {p} | {d['nodes']:,} | {d['edges']:,} | {d['links']:,} | "
                  f"{d['bisection_GBps']:,.1f} | {d['max_flow_s']:.3f} |")
    print(f"\nwrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
