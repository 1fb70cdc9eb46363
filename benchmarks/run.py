#!/usr/bin/env python
"""Benchmark harness for the ``cmx`` command line.

Every case runs as a separate process, N times.  For each run the harness records the
wall-clock time (``time.perf_counter`` around spawn .. reap) and the child's peak resident set
size, taken from ``os.wait4`` (the rusage of exactly that child, ``ru_maxrss``, KiB on Linux).
It reports median / min / max, writes ``benchmarks/results.json`` and prints markdown tables.

Cases:

* ``baseline``: ``python -c pass`` and ``python -c "import supernode_dsl.cli"`` against
  ``cmx check topologies/cloudmatrix384.cmx`` (the target: ``check`` costs well under a
  second beyond interpreter start-up and imports).
* ``cm384``: ``cmx check`` / ``cmx info`` / ``cmx compile -o FILE`` of cloudmatrix384.cmx.
* ``scale``: ``cmx check`` and ``cmx info`` of cloudmatrix384-cluster.cmx with
  ``-D supernodes=N`` for N in 1, 4, 16, 64, 128 (the target: ``info`` at 128 in under 30 s
  and 4 GiB, time linear in size), with a least-squares fit of time against size.
* ``plan``: ``cmx plan topologies/deepseek-r1-cloudmatrix384.cmx -o FILE`` (DeepSeek-R1 on
  CloudMatrix384, both roles, 58 MoE layers) with equal loads and with a skewed loads file
  that the harness writes deterministically (``numpy.random.default_rng(0)``,
  ``lognormal(0, 1.2)`` of shape [58, 256], times 1000 rounded to integer token counts, saved
  as SGLang ``{"logical_count": ...}`` JSON in a temporary directory); and, in one fresh
  child process, the planning step alone (``plan_deployment(model, graph,
  PlanRequest(loads=...))`` after compiling once, median of ``--repeat`` calls) against the
  target of under 2 s.

Usage::

    python benchmarks/run.py                      # everything, default repeats
    python benchmarks/run.py --repeat 5 --repeat-large 3
    python benchmarks/run.py --only baseline      # one group (baseline, cm384, scale, plan)
    python benchmarks/run.py --sizes 1,4,16       # a shorter scale series

The machine is shared: take the medians, and read ``load_before`` / ``load_after`` in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOPO = ROOT / "topologies"
CM384 = TOPO / "cloudmatrix384.cmx"
CLUSTER = TOPO / "cloudmatrix384-cluster.cmx"
PLAN_TOPO = TOPO / "deepseek-r1-cloudmatrix384.cmx"
PLAN_SHAPE = (58, 256)  # DeepSeek-R1: MoE layers x routed experts
PLAN_TARGET_S = 2.0
DEFAULT_SIZES = (1, 4, 16, 64, 128)
LARGE = 64  # sizes from here on use --repeat-large


def cmx_command() -> list[str]:
    """The installed ``cmx`` entry point next to this interpreter, else ``python -m``."""
    here = Path(sys.executable).parent / "cmx"
    if here.exists():
        return [str(here)]
    found = shutil.which("cmx")
    if found:
        return [found]
    return [sys.executable, "-m", "supernode_dsl"]


@dataclass
class Run:
    wall_s: float
    maxrss_kib: int
    user_s: float
    sys_s: float
    returncode: int


@dataclass
class Case:
    name: str
    group: str
    argv: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    stdout: str = ""

    def summary(self) -> dict[str, Any]:
        walls = [r.wall_s for r in self.runs]
        rss = [r.maxrss_kib for r in self.runs]
        return {
            "name": self.name,
            "group": self.group,
            "argv": [_rel(a) for a in self.argv],
            "runs": len(self.runs),
            "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls),
                       "all": walls},
            "cpu_s_median": statistics.median(r.user_s + r.sys_s for r in self.runs),
            "user_s_median": statistics.median(r.user_s for r in self.runs),
            "sys_s_median": statistics.median(r.sys_s for r in self.runs),
            "maxrss_mib": {"median": statistics.median(rss) / 1024, "min": min(rss) / 1024,
                           "max": max(rss) / 1024},
            **self.meta,
        }


def _rel(arg: str) -> str:
    try:
        return str(Path(arg).relative_to(ROOT))
    except ValueError:
        return arg


def run_once(argv: list[str]) -> tuple[Run, str]:
    """Spawn ``argv``, wait for it with wait4, return timing + rusage and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=ROOT, env={**os.environ, "COLUMNS": "120"})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)}\n"
                         f"{stderr[-2000:]}")
    return Run(wall, usage.ru_maxrss, usage.ru_utime, usage.ru_stime, proc.returncode), stdout


def measure(case: Case, repeat: int) -> Case:
    for i in range(repeat):
        run, stdout = run_once(case.argv)
        case.runs.append(run)
        case.stdout = stdout
        print(f"  {case.name:<34} run {i + 1}/{repeat}: {run.wall_s:7.3f} s "
              f"{run.maxrss_kib / 1024:8.1f} MiB", file=sys.stderr, flush=True)
    return case


def measure_interleaved(cases: list[Case], repeat: int) -> list[Case]:
    """Round-robin over ``cases`` so that load drifting during the runs hits all of them."""
    for i in range(repeat):
        for case in cases:
            run, stdout = run_once(case.argv)
            case.runs.append(run)
            case.stdout = stdout
            print(f"  {case.name:<34} run {i + 1}/{repeat}: {run.wall_s:7.3f} s "
                  f"{run.maxrss_kib / 1024:8.1f} MiB", file=sys.stderr, flush=True)
    return cases


_NUM = r"([\d,]+)"


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def parse_check(stdout: str) -> dict[str, int]:
    m = re.search(rf"ok: {_NUM} instances, {_NUM} link bundles on (\d+) planes", stdout)
    if not m:
        return {}
    return {"instances": _int(m[1]), "link_bundles": _int(m[2]), "planes": int(m[3])}


def parse_info_text(stdout: str) -> dict[str, Any]:
    """Counts from the tables ``cmx info`` prints (header, category table, planes table)."""
    out: dict[str, Any] = {}
    m = re.search(rf"\): {_NUM} instances", stdout)
    if m:
        out["instances"] = _int(m[1])
    m = re.search(rf"│\s*die\s*│\s*{_NUM}\s*│", stdout)
    if m:
        out["dies"] = _int(m[1])
    planes = re.findall(rf"│\s*([\w-]+)\s*│\s*{_NUM}\s*│\s*([\d,.]+)\s*│", stdout)
    if planes:
        out["links"] = sum(_int(n) for _, n, _ in planes)
        out["bisection_GBps"] = {p: float(b.replace(",", "")) for p, _, b in planes}
    return out


# --------------------------------------------------------------------------------------------
# statistics


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = a + b x, with R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept": a, "slope": b, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def loglog_exponent(xs: list[float], ys: list[float]) -> float:
    """Slope of log y against log x: 1.0 is linear, 2.0 quadratic."""
    return linear_fit([math.log(x) for x in xs], [math.log(y) for y in ys])["slope"]


def scaling(cases: list[Case], base_import_s: float | None) -> dict[str, Any]:
    """Fit wall time, CPU time and peak RSS of one command against instances and bundles."""
    pts = sorted((c for c in cases if c.meta.get("instances")),
                 key=lambda c: c.meta["instances"])
    if len(pts) < 3:
        return {}
    inst = [c.meta["instances"] for c in pts]
    bundles = [c.meta.get("link_bundles", 0) for c in pts]
    wall = [statistics.median(r.wall_s for r in c.runs) for c in pts]
    cpu = [statistics.median(r.user_s + r.sys_s for r in c.runs) for c in pts]
    rss = [statistics.median(r.maxrss_kib for r in c.runs) / 1024 for c in pts]
    out: dict[str, Any] = {
        "time_vs_instances": linear_fit(inst, wall),
        "cpu_vs_instances": linear_fit(inst, cpu),
        "rss_mib_vs_instances": linear_fit(inst, rss),
    }
    if all(bundles):
        out["time_vs_link_bundles"] = linear_fit(bundles, wall)
    # Exponent over the sizes where fixed start-up costs no longer dominate (>= 1/16 of the
    # largest), with the import baseline subtracted.
    base = base_import_s or 0.0
    big = [(i, w - base, c - base) for i, w, c in zip(inst, wall, cpu, strict=True)
           if i >= inst[-1] / 16]
    if len(big) >= 2 and all(w > 0 and c > 0 for _, w, c in big):
        out["loglog_exponent_largest"] = loglog_exponent([i for i, _, _ in big],
                                                         [w for _, w, _ in big])
        out["loglog_exponent_largest_cpu"] = loglog_exponent([i for i, _, _ in big],
                                                             [c for _, _, c in big])
        out["loglog_points"] = len(big)
    out["steps"] = [
        {"from": a.meta["supernodes"], "to": b.meta["supernodes"],
         "size_ratio": nb / na, "time_ratio": wb / wa, "cpu_ratio": cb / ca,
         "marginal_us_per_instance": 1e6 * (wb - wa) / (nb - na),
         "marginal_cpu_us_per_instance": 1e6 * (cb - ca) / (nb - na),
         "marginal_us_per_link_bundle": (1e6 * (wb - wa) / (bb - ba) if bb > ba else None)}
        for a, b, na, nb, wa, wb, ca, cb, ba, bb in zip(
            pts, pts[1:], inst, inst[1:], wall, wall[1:], cpu, cpu[1:], bundles, bundles[1:],
            strict=False)
    ]
    out["points"] = [
        {"supernodes": c.meta["supernodes"], "instances": n, "wall_s": w, "cpu_s": u,
         "maxrss_mib": r, "us_per_instance": 1e6 * w / n,
         "us_per_link_bundle": 1e6 * w / b if b else None}
        for c, n, b, w, u, r in zip(pts, inst, bundles, wall, cpu, rss, strict=True)
    ]
    return out


# --------------------------------------------------------------------------------------------
# plan


def write_skewed_loads(path: Path) -> None:
    """Deterministic skewed expert loads as SGLang JSON: lognormal(0, 1.2), seed 0."""
    import numpy as np

    rng = np.random.default_rng(0)
    counts = np.rint(1000 * rng.lognormal(0.0, 1.2, size=PLAN_SHAPE)).astype(np.int64)
    path.write_text(json.dumps({"logical_count": counts.tolist()}) + "\n")


def plan_inprocess(loads_path: str, repeat: int) -> dict[str, Any]:
    """In this process: compile the plan topology once, then time ``plan_deployment`` alone
    ``repeat`` times (``loads_path`` empty: equal loads).  Run as a child (``--plan-child``)."""
    t0 = time.perf_counter()
    import supernode_dsl.cli  # noqa: F401
    from supernode_dsl import elaborate, parse_program
    from supernode_dsl.graph import build_graph
    from supernode_dsl.plan import PlanRequest, plan_deployment, validate_plan
    from supernode_dsl.plan.loads import read_loads

    t1 = time.perf_counter()
    model = elaborate(parse_program(PLAN_TOPO), {})
    g = build_graph(model)
    t2 = time.perf_counter()
    loads = read_loads(loads_path) if loads_path else None
    times = []
    doc: dict[str, Any] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        doc = plan_deployment(model, g, PlanRequest(loads=loads)).to_json()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    problems = validate_plan(doc)
    validate_s = time.perf_counter() - start
    if problems:
        raise SystemExit(f"plan fails its own checks: {problems[0]}")
    return {
        "loads": "skewed" if loads_path else "equal",
        "import_s": t1 - t0,
        "compile_s": t2 - t1,
        "runs": repeat,
        "plan_s": {"median": statistics.median(times), "min": min(times), "max": max(times),
                   "all": times},
        "validate_s": validate_s,
        "under_target": statistics.median(times) < PLAN_TARGET_S,
        "roles": {name: {"ep": r["ep"], "instances": r["instances"],
                         "slots_per_device": r["expert_placement"]["slots_per_device"],
                         "mean_max_over_mean": r["balance"]["mean_max_over_mean"],
                         "max_over_mean": r["balance"]["max_over_mean"]}
                  for name, r in doc["roles"].items()},
    }


def plan_child(loads_path: Path | None, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--plan-child", str(loads_path or ""),
           "--repeat", str(repeat)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"in-process plan timing failed:\n{res.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(res.stdout)
    print(f"  plan_deployment ({out['loads']} loads): median {out['plan_s']['median']:.3f} s "
          f"over {repeat} calls", file=sys.stderr, flush=True)
    return out


# --------------------------------------------------------------------------------------------
# tables


def _fmt_s(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.2f}"


def table(cases: list[Case], extra: list[str] = ()) -> str:
    head = ["case", "runs", "median s", "min s", "max s", "CPU s (median)", "peak RSS MiB",
            *extra]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for c in cases:
        s = c.summary()
        cells = [c.name, str(s["runs"]), _fmt_s(s["wall_s"]["median"]), _fmt_s(s["wall_s"]["min"]),
                 _fmt_s(s["wall_s"]["max"]), _fmt_s(s["user_s_median"] + s["sys_s_median"]),
                 f"{s['maxrss_mib']['median']:.0f}"]
        for k in extra:
            v = c.meta.get(k, "")
            cells.append(f"{v:,}" if isinstance(v, int) else str(v))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def machine() -> dict[str, Any]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_total_gib": round(mem_kib / 1024**2, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def git_rev() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per case (default 5)")
    ap.add_argument("--repeat-baseline", type=int, default=10,
                    help="interleaved runs of each start-up baseline case (default 10)")
    ap.add_argument("--repeat-large", type=int, default=3,
                    help=f"runs per case for supernodes >= {LARGE} (default 3)")
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="supernode counts for the scale series")
    ap.add_argument("--only", choices=["baseline", "cm384", "scale", "plan"], action="append",
                    help="run only this group (repeatable)")
    ap.add_argument("--no-check-series", action="store_true",
                    help="scale series: skip `cmx check`, measure `cmx info` only")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json")
    ap.add_argument("--plan-child", metavar="LOADS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plan_child is not None:
        json.dump(plan_inprocess(args.plan_child, args.repeat), sys.stdout)
        return
    groups = set(args.only or ["baseline", "cm384", "scale", "plan"])
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    cmx = cmx_command()
    py = sys.executable
    load_before = os.getloadavg()
    started = time.time()

    # Warm-up: byte-compile and page in the package once, not counted.
    run_once([py, "-c", "import supernode_dsl.cli"])

    results: dict[str, list[Case]] = {}
    if "baseline" in groups:
        print("baseline", file=sys.stderr)
        results["baseline"] = measure_interleaved([
            Case("python -c pass", "baseline", [py, "-c", "pass"]),
            Case("python -c 'import supernode_dsl.cli'", "baseline",
                 [py, "-c", "import supernode_dsl.cli"]),
            Case("cmx --help", "baseline", [*cmx, "--help"]),
            Case("cmx check cloudmatrix384.cmx", "baseline", [*cmx, "check", str(CM384)]),
        ], args.repeat_baseline)
        results["baseline"][-1].meta.update(parse_check(results["baseline"][-1].stdout))

    if "cm384" in groups:
        print("cloudmatrix384", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            cases = [
                Case("cmx check", "cm384", [*cmx, "check", str(CM384)]),
                Case("cmx info", "cm384", [*cmx, "info", str(CM384)]),
                Case("cmx info --json", "cm384", [*cmx, "info", "--json", str(CM384)]),
                Case("cmx compile (node-link)", "cm384",
                     [*cmx, "compile", str(CM384), "-o", str(Path(tmp) / "g.json")]),
                Case("cmx compile --format graphml", "cm384",
                     [*cmx, "compile", str(CM384), "--format", "graphml",
                      "-o", str(Path(tmp) / "g.graphml")]),
            ]
            for c in cases:
                measure(c, args.repeat)
            size = (Path(tmp) / "g.json").stat().st_size
        cases[0].meta.update(parse_check(cases[0].stdout))
        cases[3].meta["output_bytes"] = size
        results["cm384"] = cases

    info_cases: list[Case] = []
    check_cases: list[Case] = []
    if "scale" in groups:
        print("scale series", file=sys.stderr)
        for n in sizes:
            rep = args.repeat_large if n >= LARGE else args.repeat
            define = ["-D", f"supernodes={n}"]
            meta: dict[str, Any] = {"supernodes": n}
            if not args.no_check_series:
                c = measure(Case(f"check supernodes={n}", "scale-check",
                                 [*cmx, "check", *define, str(CLUSTER)]), rep)
                meta.update(parse_check(c.stdout))
                check_cases.append(c)
            i = measure(Case(f"info supernodes={n}", "scale-info",
                             [*cmx, "info", *define, str(CLUSTER)]), rep)
            meta.update(parse_info_text(i.stdout))
            info_cases.append(i)
            for case in (*check_cases[-1:], i):
                case.meta.update({k: v for k, v in meta.items() if k not in case.meta})
        results["scale-info"] = info_cases
        if check_cases:
            results["scale-check"] = check_cases

    plan_inproc: list[dict[str, Any]] = []
    if "plan" in groups:
        print("plan", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            loads = Path(tmp) / "loads-skewed.json"
            write_skewed_loads(loads)
            cases = [
                Case("cmx plan (equal loads)", "plan",
                     [*cmx, "plan", str(PLAN_TOPO), "-o", str(Path(tmp) / "plan-equal.json")]),
                Case("cmx plan --expert-loads (skewed)", "plan",
                     [*cmx, "plan", str(PLAN_TOPO), "--expert-loads", str(loads),
                      "-o", str(Path(tmp) / "plan-skewed.json")]),
            ]
            for c in cases:
                measure(c, args.repeat)
            cases[0].meta["output_bytes"] = (Path(tmp) / "plan-equal.json").stat().st_size
            cases[1].meta["output_bytes"] = (Path(tmp) / "plan-skewed.json").stat().st_size
            plan_inproc = [plan_child(None, args.repeat), plan_child(loads, args.repeat)]
        results["plan"] = cases

    load_after = os.getloadavg()

    base_import = None
    if "baseline" in results:
        b = {c.name: statistics.median(r.wall_s for r in c.runs) for c in results["baseline"]}
        base_import = b["python -c 'import supernode_dsl.cli'"]
    analysis: dict[str, Any] = {}
    if "baseline" in results:
        b = {c.name: statistics.median(r.wall_s for r in c.runs) for c in results["baseline"]}
        check = b["cmx check cloudmatrix384.cmx"]
        analysis["check_overhead"] = {
            "python_pass_s": b["python -c pass"],
            "import_s": b["python -c 'import supernode_dsl.cli'"],
            "check_s": check,
            "check_minus_python_s": check - b["python -c pass"],
            "check_minus_import_s": check - b["python -c 'import supernode_dsl.cli'"],
        }
        cpu = {c.name: statistics.median(r.user_s + r.sys_s for r in c.runs)
               for c in results["baseline"]}
        analysis["check_overhead_cpu"] = {
            "python_pass_s": cpu["python -c pass"],
            "import_s": cpu["python -c 'import supernode_dsl.cli'"],
            "check_s": cpu["cmx check cloudmatrix384.cmx"],
            "check_minus_import_s": cpu["cmx check cloudmatrix384.cmx"]
            - cpu["python -c 'import supernode_dsl.cli'"],
        }
    if info_cases:
        analysis["scale_info"] = scaling(info_cases, base_import)
        big = [c for c in info_cases if c.meta["supernodes"] == max(sizes)]
        if big:
            s = big[0].summary()
            analysis["target_info_largest"] = {
                "supernodes": big[0].meta["supernodes"],
                "wall_s_median": s["wall_s"]["median"],
                "wall_s_max": s["wall_s"]["max"],
                "maxrss_gib_max": s["maxrss_mib"]["max"] / 1024,
                "under_30s": s["wall_s"]["max"] < 30,
                "under_4gib": s["maxrss_mib"]["max"] / 1024 < 4,
            }
    if check_cases:
        analysis["scale_check"] = scaling(check_cases, base_import)
    if plan_inproc:
        analysis["plan_inprocess"] = {
            "target_s": PLAN_TARGET_S,
            "loads_skewed": "numpy default_rng(0).lognormal(0, 1.2, [58, 256]) x 1000, rounded",
            "cases": plan_inproc,
        }

    doc = {
        "machine": machine(),
        "git_head": git_rev(),
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "cmx": [_rel(a) for a in cmx],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": load_after,
        "results": {g: [c.summary() for c in cs] for g, cs in results.items()},
        "analysis": analysis,
    }
    # Keep groups from an earlier run that this invocation did not re-measure.
    if args.output.exists() and args.only:
        try:
            old = json.loads(args.output.read_text())
            for g, cs in old.get("results", {}).items():
                doc["results"].setdefault(g, cs)
            for k, v in old.get("analysis", {}).items():
                doc["analysis"].setdefault(k, v)
            doc["earlier_runs"] = [
                *old.get("earlier_runs", []),
                {k: old.get(k) for k in ("command", "started", "load_before", "load_after")}]
        except (ValueError, OSError):
            pass
    args.output.write_text(json.dumps(doc, indent=2) + "\n")

    # ---- markdown
    m = doc["machine"]
    print(f"\nMachine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB RAM, "
          f"{m['implementation']} {m['python']}; load average before/after: "
          f"{load_before[0]:.2f} / {load_after[0]:.2f}\n")
    if "baseline" in results:
        print("### Start-up baseline vs `cmx check topologies/cloudmatrix384.cmx`\n")
        print(table(results["baseline"]))
        o = analysis["check_overhead"]
        print(f"\n`cmx check` minus `python -c pass`: {o['check_minus_python_s']:.3f} s; "
              f"minus `import supernode_dsl.cli`: {o['check_minus_import_s']:.3f} s")
        oc = analysis["check_overhead_cpu"]
        print(f"In CPU time (user + sys, medians): import {oc['import_s']:.3f} s, check "
              f"{oc['check_s']:.3f} s, check minus import {oc['check_minus_import_s']:.3f} s\n")
    if "cm384" in results:
        print("### topologies/cloudmatrix384.cmx\n")
        print(table(results["cm384"]))
        print()
    if info_cases:
        print("### Scale series: `cmx info -D supernodes=N "
              "topologies/cloudmatrix384-cluster.cmx`\n")
        print(table(info_cases, ["instances", "dies", "link_bundles", "links"]))
        print()
    if check_cases:
        print("### Scale series: `cmx check -D supernodes=N "
              "topologies/cloudmatrix384-cluster.cmx`\n")
        print(table(check_cases, ["instances", "link_bundles"]))
        print()
    for key, title in (("scale_info", "info"), ("scale_check", "check")):
        sc = analysis.get(key)
        if not sc:
            continue
        f = sc["time_vs_instances"]
        print(f"### Linearity ({title})\n")
        print(f"- least squares: time = {f['intercept']:.3f} s + {1e6 * f['slope']:.2f} us "
              f"x instances (R^2 = {f['r2']:.4f})")
        if "time_vs_link_bundles" in sc:
            fb = sc["time_vs_link_bundles"]
            print(f"- least squares: time = {fb['intercept']:.3f} s + {1e6 * fb['slope']:.2f} us"
                  f" x link bundles (R^2 = {fb['r2']:.4f})")
        fc = sc["cpu_vs_instances"]
        print(f"- least squares, CPU time: {fc['intercept']:.3f} s + {1e6 * fc['slope']:.2f} us"
              f" x instances (R^2 = {fc['r2']:.4f})")
        fr = sc["rss_mib_vs_instances"]
        print(f"- peak RSS = {fr['intercept']:.0f} MiB + {1024 * fr['slope']:.2f} KiB x "
              f"instances (R^2 = {fr['r2']:.4f})")
        if "loglog_exponent_largest" in sc:
            print(f"- log-log exponent over the {sc['loglog_points']} largest sizes "
                  f"(import baseline subtracted): wall {sc['loglog_exponent_largest']:.3f}, "
                  f"CPU {sc['loglog_exponent_largest_cpu']:.3f} (1 = linear, 2 = quadratic)")
        print("\n| step | size ratio | wall ratio | CPU ratio | marginal wall us / instance | "
              "marginal CPU us / instance | marginal wall us / link bundle |\n"
              "|---|---|---|---|---|---|---|")
        for st in sc["steps"]:
            lb = st["marginal_us_per_link_bundle"]
            print(f"| {st['from']} -> {st['to']} | {st['size_ratio']:.2f} | "
                  f"{st['time_ratio']:.2f} | {st['cpu_ratio']:.2f} | "
                  f"{st['marginal_us_per_instance']:.1f} | "
                  f"{st['marginal_cpu_us_per_instance']:.1f} | "
                  f"{'' if lb is None else f'{lb:.2f}'} |")
        print()
    if "plan" in results:
        print("### `cmx plan topologies/deepseek-r1-cloudmatrix384.cmx` (whole process)\n")
        print(table(results["plan"]))
        print()
        print("### Planning step alone: `plan_deployment(model, graph, PlanRequest(loads=...))`"
              "\n")
        print(f"| loads | calls | median s | min s | max s | target < {PLAN_TARGET_S:g} s | "
              "compile once s | validate_plan s | mean max/mean per role |\n"
              "|---|---|---|---|---|---|---|---|---|")
        for r in plan_inproc:
            ps = r["plan_s"]
            bal = ", ".join(f"{k} {v['mean_max_over_mean']:.4f}" for k, v in r["roles"].items())
            print(f"| {r['loads']} | {r['runs']} | {ps['median']:.3f} | {ps['min']:.3f} | "
                  f"{ps['max']:.3f} | {'met' if r['under_target'] else 'MISSED'} | "
                  f"{r['compile_s']:.3f} | {r['validate_s']:.3f} | {bal} |")
        print()
    if "target_info_largest" in analysis:
        t = analysis["target_info_largest"]
        print(f"Target, `cmx info` at supernodes={t['supernodes']}: median "
              f"{t['wall_s_median']:.2f} s (max {t['wall_s_max']:.2f} s; target < 30 s: "
              f"{'met' if t['under_30s'] else 'MISSED'}), peak RSS {t['maxrss_gib_max']:.2f} GiB "
              f"(target < 4 GiB: {'met' if t['under_4gib'] else 'MISSED'})")
    print(f"\nwrote {_rel(str(args.output))}", file=sys.stderr)


if __name__ == "__main__":
    main()
