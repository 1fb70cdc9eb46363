#!/usr/bin/env python
"""Scale benchmark of the three-tier scale-out file, 1 .. 432 CloudMatrix384 supernodes.

For each ``-D supernodes=N`` of ``topologies/cloudmatrix384-scaleout.cmx`` every command runs
as a separate process (``run.py``'s ``run_once``: wall time around spawn .. reap, CPU time and
peak RSS of exactly that child from ``os.wait4``):

* ``cmx check``  parse, elaborate, build the graph with its whole-graph checks
* ``cmx info``   the same, plus the bisection of every plane (scipy max-flow) and the tables
* ``cmx compile`` the same as check, plus writing node-link JSON (sizes up to
  ``--compile-max``: at 432 supernodes the file would be ~1.8 GB and the process ~20 GiB)

From ``--large-from`` supernodes on only ``--large-commands`` run (default ``check`` and
``info``: on a shared 2-core machine each large command takes minutes).
* ``cmx query cut --plane rdma``  max-flow between the two halves of the supernodes
* ``floor``     a fresh ``python`` that imports networkx and builds the *same* networkx graph
  (every node and edge with the same attribute dicts) from an edge list written
  beforehand by an untimed child (pickled rows of plain values; the child reports the load and
  the build apart): what building the graph costs with no language at all.

and ``python -c "import supernode_dsl.cli"`` once per run as the import baseline.  It prints
markdown tables, the log-log growth exponent of each command (time and peak RSS against
instances, over the sizes >= 16 supernodes, import baseline subtracted from the time) and the
ratio of each command to the floor, and writes ``benchmarks/scale-results.json``.

The machine is shared: the script lowers its own priority (``--nice``, default 10, inherited
by the children) and records the load average before and after every case.

Usage::

    python benchmarks/scale.py                           # 1,4,16,64,144,432
    python benchmarks/scale.py --sizes 1,4,16 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # the harness of run.py, shared
    ROOT,
    Case,
    cmx_command,
    git_rev,
    linear_fit,
    loglog_exponent,
    machine,
    parse_check,
    run_once,
    table,
)

SCALEOUT = ROOT / "topologies" / "cloudmatrix384-scaleout.cmx"
DEFAULT_SIZES = (1, 4, 16, 64, 144, 432)
COMMANDS = ("check", "info", "compile", "cut", "floor")
FIT_FROM = 16  # supernodes: below this the fixed start-up cost dominates
TARGET = {"size": 432, "wall_s": 60.0, "rss_gib": 8.0}


# --------------------------------------------------------------------------------------------
# the floor: the same networkx graph from an edge list


def write_edge_list(n: int, path: Path) -> None:
    """Compile ``supernodes=n`` and pickle its graph attributes, attribute names and node and
    edge rows (plain tuples; runs in an untimed child, so the floor imports no cmx code)."""
    from supernode_dsl import build_graph, compile_file, schema

    g = build_graph(compile_file(SCALEOUT, defines={"supernodes": str(n)}))
    node_keys = (schema.NODE_CATEGORY, schema.NODE_TYPE, schema.NODE_PATH, schema.NODE_PARENT,
                 schema.NODE_INDEX, schema.NODE_ARRAY, schema.NODE_INDICES)
    edge_keys = (schema.EDGE_PLANE, schema.EDGE_BANDWIDTH, schema.EDGE_LINK_BANDWIDTH,
                 schema.EDGE_LATENCY, schema.EDGE_COUNT)
    nodes = [(name, *(d[k] for k in node_keys)) for name, d in g.nodes(data=True)]
    edges = [(u, v, *(d[k] for k in edge_keys)) for u, v, d in g.edges(data=True)]
    with path.open("wb") as f:
        pickle.dump((g.graph, node_keys, nodes, edge_keys, edges), f,
                    protocol=pickle.HIGHEST_PROTOCOL)


def build_floor(path: Path) -> dict[str, Any]:
    """Build the networkx graph of an edge list written by :func:`write_edge_list`, with the
    same attribute dicts; in-process times of the import, the load and the build."""
    t0 = time.perf_counter()
    import networkx as nx

    t1 = time.perf_counter()
    with path.open("rb") as f:
        graph, node_keys, nodes, edge_keys, edges = pickle.load(f)
    t2 = time.perf_counter()
    g = nx.Graph(**graph)
    g.add_nodes_from((row[0], dict(zip(node_keys, row[1:], strict=True))) for row in nodes)
    g.add_edges_from((row[0], row[1], dict(zip(edge_keys, row[2:], strict=True)))
                     for row in edges)
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "load_s": t2 - t1, "build_s": t3 - t2,
            "nodes": g.number_of_nodes(), "edges": g.number_of_edges()}


# --------------------------------------------------------------------------------------------
# cases


def argv_for(command: str, n: int, out: Path, edges: Path) -> list[str]:
    cmx = cmx_command()
    d = ["-D", f"supernodes={n}"]
    if command == "compile":
        return [*cmx, "compile", *d, str(SCALEOUT), "-o", str(out)]
    if command == "cut":
        if n == 1:
            a, b = "fabric.sn[0].node[0:24]", "fabric.sn[0].node[24:48]"
        else:
            a, b = f"fabric.sn[0:{n // 2}]", f"fabric.sn[{n // 2}:{n}]"
        return [*cmx, "query", "cut", *d, "--plane", "rdma", str(SCALEOUT), a, b]
    if command == "floor":
        return [sys.executable, __file__, "--floor", str(edges)]
    return [*cmx, command, *d, str(SCALEOUT)]


def measure_size(n: int, repeat: int, commands: tuple[str, ...], tmp: Path) -> list[Case]:
    """``commands`` at ``supernodes=n``, ``repeat`` times each."""
    edges, out = tmp / f"edges-{n}.pickle", tmp / f"graph-{n}.json"
    if "floor" in commands:
        run_once([sys.executable, __file__, "--write-edges", str(n), str(edges)])
    cases = []
    for command in (c for c in COMMANDS if c in commands):
        case = Case(f"{command} supernodes={n}", command, argv_for(command, n, out, edges),
                    {"supernodes": n, "load_before": os.getloadavg()[0]})
        for i in range(repeat):
            run, stdout = run_once(case.argv)
            case.runs.append(run)
            case.stdout = stdout
            print(f"  {case.name:<28} run {i + 1}/{repeat}: {run.wall_s:8.3f} s "
                  f"{run.maxrss_kib / 1024:8.1f} MiB  load {os.getloadavg()[0]:.2f}",
                  file=sys.stderr, flush=True)
        case.meta["load_after"] = os.getloadavg()[0]
        if command == "check":
            case.meta.update(parse_check(stdout))
        if command == "floor":
            case.meta.update(json.loads(stdout))
        if command == "compile":
            case.meta["output_bytes"] = out.stat().st_size
            out.unlink()
        cases.append(case)
    edges.unlink(missing_ok=True)
    return cases


# --------------------------------------------------------------------------------------------
# analysis


def _median_wall(c: Case) -> float:
    return statistics.median(r.wall_s for r in c.runs)


def _median_rss_mib(c: Case) -> float:
    return statistics.median(r.maxrss_kib for r in c.runs) / 1024


def growth(cases: list[Case], instances: dict[int, int], base_s: float) -> dict[str, Any]:
    """Per command: log-log exponents of time (import baseline subtracted) and peak RSS
    against instances over the sizes >= FIT_FROM, and a linear fit of time."""
    out: dict[str, Any] = {}
    for command in COMMANDS:
        pts = sorted((c.meta["supernodes"], _median_wall(c), _median_rss_mib(c))
                     for c in cases if c.group == command)
        big = [(instances[n], w, r) for n, w, r in pts if n >= FIT_FROM and w > base_s]
        if len(big) < 2:
            continue
        xs = [x for x, _, _ in big]
        out[command] = {
            "sizes": [n for n, _, _ in pts if n >= FIT_FROM],
            "time_exponent": loglog_exponent(xs, [w - base_s for _, w, _ in big]),
            "time_exponent_raw": loglog_exponent(xs, [w for _, w, _ in big]),
            "rss_exponent": loglog_exponent(xs, [r for _, _, r in big]),
            "time_vs_instances": linear_fit(xs, [w for _, w, _ in big]),
            "us_per_instance_largest": 1e6 * big[-1][1] / big[-1][0],
        }
    return out


def floor_ratios(cases: list[Case]) -> list[dict[str, Any]]:
    """Wall-time and peak-RSS ratio of every command to the floor, per size."""
    by = {(c.group, c.meta["supernodes"]): c for c in cases}
    rows = []
    for n in sorted({c.meta["supernodes"] for c in cases}):
        floor = by.get(("floor", n))
        if floor is None:
            continue
        row: dict[str, Any] = {"supernodes": n, "floor_s": _median_wall(floor),
                               "floor_build_s": floor.meta["build_s"]}
        for command in COMMANDS[:-1]:
            if (c := by.get((command, n))) is not None:
                row[f"{command}_x"] = _median_wall(c) / _median_wall(floor)
                row[f"{command}_rss_x"] = _median_rss_mib(c) / _median_rss_mib(floor)
        rows.append(row)
    return rows


def report(cases: list[Case], growth_: dict[str, Any], ratios: list[dict[str, Any]],
           instances: dict[int, int], bundles: dict[int, int]) -> str:
    lines = ["### Runs", "", table(cases, ["load_before", "load_after"]), "",
             "### Sizes", "", "| supernodes | NPUs | instances | link bundles |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {384 * n:,} | {instances[n]:,} | {bundles[n]:,} |" for n in instances]
    lines += ["", "### Growth (sizes >= 16 supernodes)", "",
              "| command | time exponent (import subtracted) | time exponent (raw) | "
              "RSS exponent | us per instance at the largest |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {g['time_exponent']:.3f} | {g['time_exponent_raw']:.3f} | "
              f"{g['rss_exponent']:.3f} | {g['us_per_instance_largest']:.1f} |"
              for c, g in growth_.items()]
    lines += ["", "### Against the floor (wall ratio, peak-RSS ratio)", "",
              "| supernodes | floor s | floor build s | " + " | ".join(
                  f"{c} x" for c in COMMANDS[:-1]) + " |", "|---|---|---|---|---|---|---|"]
    for r in ratios:
        cells = [f"{r[f'{c}_x']:.2f} ({r[f'{c}_rss_x']:.2f})" if f"{c}_x" in r else "-"
                 for c in COMMANDS[:-1]]
        lines.append(f"| {r['supernodes']} | {r['floor_s']:.2f} | {r['floor_build_s']:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def target(cases: list[Case]) -> dict[str, Any] | None:
    info = [c for c in cases if c.group == "info" and c.meta["supernodes"] == TARGET["size"]]
    if not info:
        return None
    wall, rss = _median_wall(info[0]), _median_rss_mib(info[0]) / 1024
    return {**TARGET, "measured_wall_s": wall, "measured_rss_gib": rss,
            "met": wall < TARGET["wall_s"] and rss < TARGET["rss_gib"]}


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    ap.add_argument("--repeat", type=int, default=3, help="runs per case below 64 supernodes")
    ap.add_argument("--repeat-large", type=int, default=1, help="runs per case from 64 on")
    ap.add_argument("--compile-max", type=int, default=64,
                    help="largest size for `cmx compile` (default 64)")
    ap.add_argument("--large-from", type=int, default=144,
                    help="sizes from here on run only --large-commands (default 144)")
    ap.add_argument("--large-commands", default="check,info",
                    help="commands at the large sizes (default check,info)")
    ap.add_argument("--nice", type=int, default=10, help="niceness increment (default 10)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "scale-results.json")
    ap.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--write-edges", nargs=2, metavar=("N", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        print(json.dumps(build_floor(args.floor)))
        return
    if args.write_edges:
        write_edge_list(int(args.write_edges[0]), Path(args.write_edges[1]))
        return
    os.nice(args.nice)
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    base = Case("import supernode_dsl.cli", "baseline",
                [sys.executable, "-c", "import supernode_dsl.cli"])
    for _ in range(5):
        base.runs.append(run_once(base.argv)[0])
    base_s = _median_wall(base)
    cases: list[Case] = []
    large = tuple(args.large_commands.split(","))
    with tempfile.TemporaryDirectory(prefix="cmx-scale-") as tmp:
        for n in sizes:
            commands = large if n >= args.large_from else tuple(
                c for c in COMMANDS if c != "compile" or n <= args.compile_max)
            cases += measure_size(n, args.repeat if n < 64 else args.repeat_large, commands,
                                  Path(tmp))
            partial = {"started": started, "partial": True,
                       "cases": [c.summary() for c in cases]}
            args.out.write_text(json.dumps(partial, indent=1, sort_keys=True) + "\n")
    checks = {c.meta["supernodes"]: c for c in cases if c.group == "check"}
    instances = {n: c.meta["instances"] for n, c in sorted(checks.items())}
    bundles = {n: c.meta["link_bundles"] for n, c in sorted(checks.items())}
    growth_ = growth(cases, instances, base_s)
    ratios = floor_ratios(cases)
    result = {
        "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_rev(), "machine": machine(), "nice": args.nice,
        "import_baseline": base.summary(), "target": target(cases),
        "cases": [c.summary() for c in cases], "growth": growth_, "floor_ratios": ratios,
    }
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"import supernode_dsl.cli: {base_s:.3f} s (median of 5)\n")
    print(report(cases, growth_, ratios, instances, bundles))
    if result["target"]:
        t = result["target"]
        print(f"\ntarget: info at {t['size']} supernodes {t['measured_wall_s']:.1f} s "
              f"(< {t['wall_s']:.0f}), {t['measured_rss_gib']:.2f} GiB (< {t['rss_gib']:.0f}): "
              f"{'met' if t['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
