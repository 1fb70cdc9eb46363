#!/usr/bin/env python
"""Start-up benchmark: ``cmx check`` against the import floor, and the whole ``cmx plan``.

The floor is defined by what ``cmx check`` truly imports: the harness first runs
``cmx check topologies/cloudmatrix384.cmx`` once in a child that reports the third-party
top-level packages present in ``sys.modules`` afterwards (everything that is neither in the
standard library nor ``supernode_dsl``).  The floor is then
``python -c "import <those packages>"``: the least any program that reads the file with
these libraries pays before doing any work.  The ratio ``cmx check / floor`` is what is left
for the compiler's own modules and the work itself (parse, elaborate, build the graph).
For comparison the harness also times ``python -c "import networkx, lark, numpy"``, the
floor the issue first proposed.

Cases, interleaved round-robin so that load drifting during the runs hits all alike, each a
fresh process (``benchmarks/run.py``'s ``run_once``: wall clock around spawn .. reap, CPU
time and peak RSS of that child from ``os.wait4``):

* ``python -c pass``;
* the floor (the discovered packages);
* ``python -c "import networkx, lark, numpy"``;
* ``cmx check topologies/cloudmatrix384.cmx``;
* ``cmx plan topologies/deepseek-r1-cloudmatrix384.cmx -o FILE`` (target: under 1.5 s);
* the plan's own floor: every third-party module ``cmx plan`` imports (numpy, scipy's
  optimize and sparse graph routines, jsonschema besides the check's), imported in the same
  order by ``importlib`` in one process: what any program that plans with these libraries
  pays before its own work.

Bytecode: every child runs with Python's bytecode cache on (``PYTHONDONTWRITEBYTECODE``
unset, ``PYTHONPYCACHEPREFIX`` a temporary directory), after one uncounted warm-up run of
every case has filled it: an installed package has its ``.pyc`` files (pip compiles them at
install, as it did for click, lark and networkx), so neither side pays for compiling source.
With ``PYTHONDONTWRITEBYTECODE=1`` in the environment (as on the shared machine) and no cache,
``cmx check`` would compile its ~30 own modules from source on every run (~0.15 s) while the
floor's site-packages keep their ``.pyc``: ``--no-bytecode-cache`` measures that condition.

The ratio is reported two ways: the ratio of the medians, and the median of the per-round
ratios (each round runs the floor and ``cmx check`` back to back, so a load burst shifts both).
Results go to ``benchmarks/startup.json``.

Usage::

    python benchmarks/startup.py              # 10 rounds
    python benchmarks/startup.py --repeat 20
    python benchmarks/startup.py --no-bytecode-cache   # the environment's bytecode setting
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import CM384, PLAN_TOPO, ROOT, Case, cmx_command, git_rev, machine, measure_interleaved

CHECK_TARGET = 1.5  # cmx check / floor
PLAN_TARGET_S = 1.5

_IMPORTED = """
import json, sys
from supernode_dsl.cli import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    if stop.code:
        raise
def third(name):
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and not top.startswith("_") \
        and top != "supernode_dsl" and getattr(sys.modules.get(name), "__file__", None)
mods = [m for m in sys.modules if third(m)]
print(json.dumps([sorted({m.split(".")[0] for m in mods}), mods]), file=sys.stderr)
"""

#: Imports each module named on the command line, in that order (a command's floor).
_IMPORT_ALL = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"


def imported_by(*args: str) -> tuple[list[str], list[str]]:
    """The third-party packages that ``cmx ARGS`` imports: (top-level names, every module
    in the order of import)."""
    done = subprocess.run([sys.executable, "-c", _IMPORTED, *args], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    tops, mods = json.loads(done.stderr.strip().splitlines()[-1])
    return tops, mods


def _ratio(check: Case, floor: Case) -> dict[str, float]:
    walls = [c.wall_s / f.wall_s for c, f in zip(check.runs, floor.runs, strict=True)]
    cpus = [(c.user_s + c.sys_s) / (f.user_s + f.sys_s)
            for c, f in zip(check.runs, floor.runs, strict=True)]
    return {
        "ratio_of_medians_wall": statistics.median(r.wall_s for r in check.runs)
        / statistics.median(r.wall_s for r in floor.runs),
        "median_round_ratio_wall": statistics.median(walls),
        "median_round_ratio_cpu": statistics.median(cpus),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=10, help="rounds (default 10)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("startup.json"))
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="leave the environment's bytecode settings as they are")
    args = ap.parse_args()
    load_before = os.getloadavg()
    py, cmx = sys.executable, cmx_command()
    with tempfile.TemporaryDirectory() as tmp:
        plan_argv = ["plan", str(PLAN_TOPO), "-o", str(Path(tmp) / "plan.json")]
        packages, _ = imported_by("check", str(CM384))
        plan_packages, plan_modules = imported_by(*plan_argv)
        bytecode = "as in the environment"
        if not args.no_bytecode_cache:  # the children inherit this process's environment
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            bytecode = "cached (PYTHONPYCACHEPREFIX, filled by one uncounted run of each case)"
        cases = [
            Case("python -c pass", "startup", [py, "-c", "pass"]),
            Case(f"floor: import {', '.join(packages)}", "startup",
                 [py, "-c", f"import {', '.join(packages)}"]),
            Case("import networkx, lark, numpy", "startup",
                 [py, "-c", "import networkx, lark, numpy"]),
            Case("cmx check cloudmatrix384.cmx", "startup", [*cmx, "check", str(CM384)]),
            Case("cmx plan deepseek-r1-cloudmatrix384.cmx", "startup", [*cmx, *plan_argv]),
            Case(f"plan's floor: its {len(plan_modules)} third-party modules", "startup",
                 [py, "-c", _IMPORT_ALL, *plan_modules]),
        ]
        measure_interleaved([Case(f"warm-up: {c.name}", "startup", c.argv) for c in cases], 1)
        measure_interleaved(cases, args.repeat)
    _, floor, nln, check, plan, plan_floor = cases
    result: dict[str, Any] = {
        "machine": machine(),
        "commit": git_rev(),
        "floor_packages": packages,
        "bytecode": bytecode,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cases": [c.summary() for c in cases],
        "check_vs_floor": {**_ratio(check, floor), "target": CHECK_TARGET},
        "check_vs_networkx_lark_numpy": _ratio(check, nln),
        "plan_wall_s_median": statistics.median(r.wall_s for r in plan.runs),
        "plan_cpu_s_median": statistics.median(r.user_s + r.sys_s for r in plan.runs),
        "plan_target_s": PLAN_TARGET_S,
        "plan_floor_packages": plan_packages,
        "plan_floor_wall_s_median": statistics.median(r.wall_s for r in plan_floor.runs),
        "plan_vs_its_floor": _ratio(plan, plan_floor),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"plan's floor: the modules of {', '.join(plan_packages)}")
    print(f"floor: import {', '.join(packages)}; bytecode {bytecode}; load average "
          f"{load_before[0]:.1f} before, {result['load_after'][0]:.1f} after")
    print("| case | median s | min s | max s | CPU s (median) | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for c in cases:
        s = c.summary()
        print(f"| {c.name} | {s['wall_s']['median']:.3f} | {s['wall_s']['min']:.3f} | "
              f"{s['wall_s']['max']:.3f} | {s['cpu_s_median']:.3f} | "
              f"{s['maxrss_mib']['median']:.0f} |")
    r = result["check_vs_floor"]
    print(f"cmx check / floor: {r['ratio_of_medians_wall']:.2f} (ratio of medians), "
          f"{r['median_round_ratio_wall']:.2f} (median of rounds, wall), "
          f"{r['median_round_ratio_cpu']:.2f} (CPU); target {CHECK_TARGET}")
    print(f"cmx plan: {result['plan_wall_s_median']:.3f} s wall, "
          f"{result['plan_cpu_s_median']:.3f} s CPU (median); target {PLAN_TARGET_S} s; "
          f"its import floor {result['plan_floor_wall_s_median']:.3f} s wall, plan / floor "
          f"{result['plan_vs_its_floor']['ratio_of_medians_wall']:.2f}")


if __name__ == "__main__":
    main()
