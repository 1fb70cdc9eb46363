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
    same attribute dicts; in-process CPU times of the import, the load and the build."""
    t0 = time.process_time()
    import networkx as nx

    t1 = time.process_time()
    with path.open("rb") as f:
        graph, node_keys, nodes, edge_keys, edges = pickle.load(f)
    t2 = time.process_time()
    g = nx.Graph(**graph)
    g.add_nodes_from((row[0], dict(zip(node_keys, row[1:], strict=True))) for row in nodes)
    g.add_edges_from((row[0], row[1], dict(zip(edge_keys, row[2:], strict=True)))
                     for row in edges)
    t3 = time.process_time()
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


Summary = dict[str, Any]  # Case.summary(): what the results file keeps of a case


def _wall(c: Summary) -> float:
    return float(c["wall_s"]["median"])


def _cpu(c: Summary) -> float:
    return float(c["cpu_s_median"])


def _rss(c: Summary) -> float:
    return float(c["maxrss_mib"]["median"])


def growth(cases: list[Summary], base: Summary) -> dict[str, Any]:
    """Per command: log-log exponents against instances over the sizes >= FIT_FROM of wall
    time, CPU time and peak RSS (the import baseline's subtracted, except for the floor),
    and the CPU time per instance at the largest size.  On a loaded machine read the CPU
    columns."""
    instances = {c["supernodes"]: c["instances"] for c in cases if c["group"] == "check"}
    out: dict[str, Any] = {}
    for command in COMMANDS:
        pts = sorted((c["supernodes"], c) for c in cases
                     if c["group"] == command and c["supernodes"] >= FIT_FROM)
        if len(pts) < 2:
            continue
        xs = [instances[n] for n, _ in pts]
        # the floor imports networkx only: its own figures, nothing subtracted
        b = {"wall_s": {"median": 0.0}, "cpu_s_median": 0.0, "maxrss_mib": {"median": 0.0}
             } if command == "floor" else base
        out[command] = {
            "sizes": [n for n, _ in pts],
            "wall_exponent": loglog_exponent(xs, [_wall(c) - _wall(b) for _, c in pts]),
            "cpu_exponent": loglog_exponent(xs, [_cpu(c) - _cpu(b) for _, c in pts]),
            "rss_exponent": loglog_exponent(xs, [_rss(c) - _rss(b) for _, c in pts]),
            "cpu_vs_instances": linear_fit(xs, [_cpu(c) for _, c in pts]),
            "cpu_us_per_instance_largest": 1e6 * _cpu(pts[-1][1]) / xs[-1],
        }
    return out


def floor_ratios(cases: list[Summary]) -> list[dict[str, Any]]:
    """CPU-time, wall-time and peak-RSS ratio of every command to the floor, per size."""
    by = {(c["group"], c["supernodes"]): c for c in cases}
    rows = []
    for n in sorted({c["supernodes"] for c in cases}):
        floor = by.get(("floor", n))
        if floor is None:
            continue
        row: dict[str, Any] = {"supernodes": n, "floor_cpu_s": _cpu(floor),
                               "floor_wall_s": _wall(floor), "floor_build_s": floor["build_s"]}
        for command in COMMANDS[:-1]:
            if (c := by.get((command, n))) is not None:
                row[f"{command}_cpu_x"] = _cpu(c) / _cpu(floor)
                row[f"{command}_wall_x"] = _wall(c) / _wall(floor)
                row[f"{command}_rss_x"] = _rss(c) / _rss(floor)
        rows.append(row)
    return rows


def target(cases: list[Summary]) -> dict[str, Any] | None:
    """The target (info at 432 supernodes under 60 s and 8 GiB) against wall and CPU time."""
    info = [c for c in cases if c["group"] == "info" and c["supernodes"] == TARGET["size"]]
    if not info:
        return None
    wall, cpu, rss = _wall(info[0]), _cpu(info[0]), _rss(info[0]) / 1024
    return {**TARGET, "measured_wall_s": wall, "measured_cpu_s": cpu, "measured_rss_gib": rss,
            "met_cpu": cpu < TARGET["wall_s"] and rss < TARGET["rss_gib"],
            "met_wall": wall < TARGET["wall_s"] and rss < TARGET["rss_gib"]}


def _f(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def report(cases: list[Summary], base: Summary, growth_: dict[str, Any],
           ratios: list[dict[str, Any]]) -> str:
    """Markdown tables of the runs, the growth exponents and the floor ratios."""
    lines = [f"import supernode_dsl.cli: {_f(_wall(base))} s wall, {_f(_cpu(base))} s CPU", "",
             "| case | runs | wall s (median) | CPU s (median) | peak RSS MiB | instances | "
             "link bundles | load before / after |", "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        lines.append(f"| {c['name']} | {c['runs']} | {_f(_wall(c))} | {_f(_cpu(c))} | "
                     f"{_rss(c):,.0f} | {c.get('instances', ''):,} | "
                     f"{c.get('link_bundles', ''):,} | "
                     f"{c['load_before']:.1f} / {c['load_after']:.1f} |"
                     if "instances" in c else
                     f"| {c['name']} | {c['runs']} | {_f(_wall(c))} | {_f(_cpu(c))} | "
                     f"{_rss(c):,.0f} | | | {c['load_before']:.1f} / {c['load_after']:.1f} |")
    lines += ["", f"Growth over the sizes >= {FIT_FROM} supernodes (log-log slope against "
              "instances; the import baseline subtracted, except for the floor):", "",
              "| command | sizes | CPU exponent | wall exponent | RSS exponent | "
              "CPU us per instance at the largest |", "|---|---|---|---|---|---|"]
    lines += [f"| {c} | {', '.join(map(str, g['sizes']))} | {g['cpu_exponent']:.3f} | "
              f"{g['wall_exponent']:.3f} | {g['rss_exponent']:.3f} | "
              f"{g['cpu_us_per_instance_largest']:.1f} |" for c, g in growth_.items()]
    lines += ["", "Against the floor (ratio of CPU time / wall time / peak RSS):", "",
              "| supernodes | floor CPU s | floor build s (in-process) | "
              + " | ".join(COMMANDS[:-1]) + " |", "|---|---|---|---|---|---|---|"]
    for r in ratios:
        cells = [f"{r[f'{c}_cpu_x']:.2f} / {r[f'{c}_wall_x']:.2f} / {r[f'{c}_rss_x']:.2f}"
                 if f"{c}_cpu_x" in r else "-" for c in COMMANDS[:-1]]
        lines.append(f"| {r['supernodes']} | {_f(r['floor_cpu_s'])} | "
                     f"{_f(r['floor_build_s'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    """Add the growth, floor ratios and target to a results document; print the tables."""
    cases, base = result["cases"], result["import_baseline"]
    result.update(growth=growth(cases, base), floor_ratios=floor_ratios(cases),
                  target=target(cases))
    print(report(cases, base, result["growth"], result["floor_ratios"]))
    if (t := result["target"]) is not None:
        print(f"\ntarget: info at {t['size']} supernodes: {t['measured_cpu_s']:.1f} s CPU, "
              f"{t['measured_wall_s']:.1f} s wall (< {t['wall_s']:.0f}), "
              f"{t['measured_rss_gib']:.2f} GiB (< {t['rss_gib']:.0f})")
    return result


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
    ap.add_argument("--analyse", type=Path, metavar="JSON",
                    help="only recompute the tables and fits of a results file, in place")
    args = ap.parse_args()
    if args.analyse:
        done = analyse(json.loads(args.analyse.read_text()))
        args.analyse.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
        return
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
    result = analyse({
        "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_rev(), "machine": machine(), "nice": args.nice,
        "import_baseline": base.summary(), "cases": [c.summary() for c in cases],
    })
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
