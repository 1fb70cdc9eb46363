#!/usr/bin/env python
"""Is a held-out miss the fit's choice?  A profile of the shipped calibration.

The calibration of ``topologies/calibration/cloudmatrix-infer.cmx`` fits seven free
parameters to sixteen operator- and layer-level measurements, all of the layer-level ones at
batch 96 per NPU.  Where two parameters trade against each other at batch 96 (a fixed time
per kernel against a small-M efficiency, say), the fit may pick one of many equally good
points, and the held-out figures at other batches (the TPOT at batch 8, the batch under a
15 ms target) would then depend on that choice, not on the measurements.

This script tests it: for each profiled parameter it pins the parameter at points across its
declared bounds (by narrowing the bounds in a copy of the topology tree), refits every other
parameter with ``cmx calibrate``, and reports the largest residual of the refit beside the
held-out figures ``cmx plan`` then gives.  The held-out figures are only read, never fitted:
no row is chosen by them.  Points whose largest residual stays near the shipped fit's are
as well supported by the measurements as the shipped fit; the spread of their held-out
figures is what the calibration cannot decide.

Usage::

    python benchmarks/calibration_profile.py                 # the table of docs/validation.md
    python benchmarks/calibration_profile.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CM384 = "deepseek-r1-cloudmatrix384.cmx"
CALIBRATION = "calibration/cloudmatrix-infer.cmx"
FITTED = "calibration/cloudmatrix-infer.fitted.cmx"

#: (parameter, the points it is pinned at, in the unit the .cmx writes it in).  The points
#: span each parameter's declared bounds; 0.05-0.80 and 0-20 us in the shipped file.
PROFILE: list[tuple[str, list[str]]] = [
    ("overhead.gemm", ["0 us", "3 us", "8 us", "20 us"]),
    ("efficiency.gemm.m64", ["0.10", "0.29", "0.45"]),
]

#: The held-out figures read at each point: (label, defines, estimate key).
HELD_OUT: list[tuple[str, list[str], str]] = [
    ("TPOT b96 (ms)", [], "tpot_ms"),
    ("TPOT b8 (ms)", ["-D", "decode_batch_per_npu=8"], "tpot_ms"),
    ("batch under 15 ms", ["-D", "tpot_slo_ms=15", "-D", "decode_batch_per_npu=0"],
     "batch_per_npu"),
]
#: The paper's figures for those rows (shared reference cloudmatrix384.md §5).
PAPER: dict[str, float] = {"TPOT b96 (ms)": 49.4, "TPOT b8 (ms)": 8 / 538 * 1e3,
                           "batch under 15 ms": 8}


def _run(args: list[str], cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "supernode_dsl.cli", *args], check=True, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def pin(text: str, attr: str, value: str) -> str:
    """``text`` (a calibration declaration) with ``attr``'s bounds narrowed to ``value``
    (the upper bound a hair above it: the fit needs low < high) and its start there."""
    number, _, unit = value.partition(" ")
    high = f"{float(number) * (1 + 1e-6) + 1e-9:.9g}" + (f" {unit}" if unit else "")
    for key, v in (("low", value), ("high", high), ("start", value)):
        pattern = rf"^(\s*{key}\.{re.escape(attr)}\s*=).*$"
        text, n = re.subn(pattern, rf"\g<1> {v}", text, flags=re.M)
        if n != 1:
            raise SystemExit(f"{CALIBRATION}: no single {key}.{attr} line")
    return text


def residuals(fitted: str) -> dict[str, float]:
    """The recorded estimate / measurement of every measurement of a fitted file."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^\s*residual\.(\w+)\s*=\s*([\d.eE+-]+)",
                                                   fitted, flags=re.M)}


def fitted_values(fitted: str) -> dict[str, str]:
    """The fitted values of a fitted file, as written."""
    return {m[1]: m[2].strip() for m in re.finditer(r"^\s*fitted\.([\w.]+)\s*=\s*(.+)$",
                                                    fitted, flags=re.M)}


def point(attr: str | None, value: str | None) -> dict[str, Any]:
    """Refit with ``attr`` pinned at ``value`` (None: the shipped fit, not refitted) in a
    scratch copy of ``topologies/`` and read the held-out figures from ``cmx plan``."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "topologies"
        shutil.copytree(ROOT / "topologies", tree)
        if attr is not None and value is not None:
            cal = tree / CALIBRATION
            cal.write_text(pin(cal.read_text(), attr, value))
            _run(["calibrate", CALIBRATION, "-o", FITTED], tree)
        fitted = (tree / FITTED).read_text()
        row: dict[str, Any] = {"pinned": attr, "value": value,
                               "fitted": fitted_values(fitted)}
        res = residuals(fitted)
        row["worst_residual"] = max(res, key=lambda k: abs(res[k] - 1))
        row["band"] = abs(res[row["worst_residual"]] - 1)
        for label, defines, key in HELD_OUT:
            out = Path(tmp) / "plan.json"
            _run(["plan", CM384, *defines, "-o", str(out)], tree)
            row[label] = json.loads(out.read_text())["roles"]["decode"]["estimate"][key]
        return row


def profile() -> list[dict[str, Any]]:
    """The shipped fit, then every pinned point (two processes at a time)."""
    jobs: list[tuple[str | None, str | None]] = [(None, None)]
    jobs += [(attr, v) for attr, values in PROFILE for v in values]
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(point, *zip(*jobs, strict=True)))


def _num(written: str) -> str:
    """A fitted value as the table shows it: times to 0.01 us, efficiencies to 0.001."""
    number, _, unit = written.partition(" ")
    return f"{float(number):.2f} {unit}" if unit else f"{float(number):.3f}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown table of docs/validation.md ("Is the split the fit's choice?")."""
    labels = [label for label, _, _ in HELD_OUT]
    out = ["| fit | `overhead.gemm` | `efficiency.gemm.m64` | `overhead.vector` | largest "
           "residual | " + " | ".join(labels) + " |",
           "|---|---|---|---|---|" + "---|" * len(labels),
           "| paper | | | | | " + " | ".join(_figure(PAPER[k]) for k in labels) + " |"]
    for r in rows:
        name = "shipped" if r["pinned"] is None else f"`{r['pinned']}` pinned at {r['value']}"
        f = r["fitted"]
        out.append(f"| {name} | {_num(f['overhead.gemm'])} | "
                   f"{_num(f['efficiency.gemm.m64'])} | {_num(f['overhead.vector'])} | "
                   f"{r['band']:.1%} ({r['worst_residual']}) | "
                   + " | ".join(_figure(r[k]) for k in labels) + " |")
    return out


def _figure(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = profile()
    print("\n".join(table(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
