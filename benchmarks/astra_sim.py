#!/usr/bin/env python
"""ASTRA-sim runs behind docs/validation.md's section "The plan's step in ASTRA-sim".

Two tables, each printed as Markdown and stored in ``benchmarks/astra-sim.json``:

``alltoall``: one all-to-all of ``--size`` bytes per rank over ``n`` ranks (8 .. 320) on a
Switch of CloudMatrix384's UB (196 GB/s per die, 943 ns per hop, system.json endpoint delay
10 ns), in four representations, with ASTRA-sim's wall time and simulated time next to the
formula ``(n-1)/n * size / B + 2 hops * latency + endpoint delay``:

* ``ring (sub-group)``: the group is n of 2n NPUs, so ASTRA-sim runs it as a ring over the
  group (``CommunicatorGroup.cc:45-70``) with 4 dataset splits, one in flight, congestion
  unaware: what ``chakra-et`` wrote before it simulated one instance;
* ``direct, unaware``: the group is every NPU (system.json's ``direct``), unaware back end;
* ``direct, aware, 4 splits`` and ``direct, aware, 1 split``: the same on the
  congestion-aware back end; the last is what ``chakra-et`` writes now.

``step``: ``cmx simulate``'s comparison (``supernode_dsl.simulate.simulate_step``) for the
decode step of both shipped deployments, first 3 layers (dense), first 4 (one MoE layer)
and the whole step, and a 4-layer CloudMatrix384 prefill slice, each with its wall time.

Usage (the kit's binaries; ``CMX_CONSUMERS`` as for the tests)::

    python benchmarks/astra_sim.py alltoall [--ring-max 144]   # ~1 min; ring 320: +minutes
    python benchmarks/astra_sim.py step [--quick]              # whole steps: ~10 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import supernode_dsl as cmx
from supernode_dsl.emit import EmitContext
from supernode_dsl.emit.chakra.wire import ALL_TO_ALL, TraceNode, trace_bytes
from supernode_dsl.emit.yamltext import yaml_text
from supernode_dsl.plan import PlanRequest, plan_deployment
from supernode_dsl.simulate import run_astra_sim, simulate_step

ROOT = Path(__file__).resolve().parent.parent
KIT = Path(os.environ.get("CMX_CONSUMERS", ROOT.parent / "shared" / "consumers"))
OUT = Path(__file__).resolve().parent / "astra-sim.json"
UB_GBPS, UB_LATENCY_NS, ENDPOINT_NS = 196.0, 943.155, 10
DEPLOYMENTS = {"CloudMatrix384": ROOT / "topologies" / "deepseek-r1-cloudmatrix384.cmx",
               "H800": ROOT / "topologies" / "deepseek-v3-h800.cmx"}


def _binary(back_end: str) -> Path:
    return KIT / "astra-sim" / "bin" / f"AstraSim_Analytical_Congestion_{back_end}"


def _bundle(folder: Path, npus: int, group: int, size: int, splits: int) -> None:
    """One all-to-all of ``size`` bytes in a group of the first ``group`` of ``npus`` NPUs on
    one UB Switch."""
    folder.mkdir()
    gib = UB_GBPS * 1e9 / 2**30
    (folder / "network.yml").write_text(yaml_text(
        {"topology": ["Switch"], "npus_count": [npus], "bandwidth": [round(gib, 6)],
         "latency": [UB_LATENCY_NS]}, []))
    (folder / "system.json").write_text(json.dumps({
        "scheduling-policy": "LIFO", "endpoint-delay": ENDPOINT_NS,
        "active-chunks-per-dimension": 1, "preferred-dataset-splits": splits,
        **{f"{c}-implementation": ["ring"] for c in ("all-reduce", "all-gather",
                                                    "reduce-scatter")},
        "all-to-all-implementation": ["direct"], "collective-optimization": "localBWAware",
        "local-reduction-delay": 1, "boost-mode": 0, "roofline-enabled": 0}))
    (folder / "remote_memory.json").write_text('{"memory-type": "NO_MEMORY_EXPANSION"}\n')
    (folder / "comm_group.json").write_text(json.dumps({"1": list(range(group))}))
    node = TraceNode(1, "all_to_all", (), comm_type=ALL_TO_ALL, comm_size=size, group="1")
    for npu in range(npus):
        (folder / f"workload.{npu}.et").write_bytes(trace_bytes([node] if npu < group else []))


#: (name, back end, NPUs per group member (2: the group is half the network), splits)
CASES = (("ring (sub-group)", "Unaware", 2, 4), ("direct, unaware", "Unaware", 1, 4),
         ("direct, aware, 4 splits", "Aware", 1, 4), ("direct, aware, 1 split", "Aware", 1, 1))


def alltoall(size: int, ranks: list[int], ring_max: int) -> list[dict[str, Any]]:
    """The all-to-all table's rows."""
    rows = []
    for n in ranks:
        formula = (n - 1) / n * size / (UB_GBPS * 1e9) * 1e9 + 2 * UB_LATENCY_NS + ENDPOINT_NS
        for name, back_end, spread, splits in CASES:
            if spread > 1 and n > ring_max:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                _bundle(Path(tmp) / "b", n * spread, n, size, splits)
                start = time.perf_counter()
                result = run_astra_sim(_binary(back_end), Path(tmp) / "b", n * spread)
                wall = time.perf_counter() - start
            rows.append({"ranks": n, "case": name, "wall_s": round(wall, 2),
                         "simulated_us": result.step_ns / 1e3, "formula_us": formula / 1e3})
            print(f"| {n} | {name} | {wall:.2f} | {result.step_ns / 1e3:,.2f} | "
                  f"{formula / 1e3:,.2f} | {result.step_ns / formula:.2f}x |", flush=True)
    return rows


def step(quick: bool) -> list[dict[str, Any]]:
    """The step table's rows."""
    rows = []
    cases = [(d, "decode", layers) for d in DEPLOYMENTS for layers in (3, 4, 0)]
    cases.append(("CloudMatrix384", "prefill", 4))
    for name, path in DEPLOYMENTS.items():
        model = cmx.compile_file(path)
        graph = cmx.build_graph(model)
        plan = plan_deployment(model, graph, PlanRequest())
        for _, role, layers in [c for c in cases if c[0] == name]:
            if quick and layers == 0:
                continue
            ctx = EmitContext(model, graph, plan, str(path.relative_to(ROOT)),
                              {"role": role, "layers": str(layers)})
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = simulate_step(ctx, _binary("Aware"), timeout=3600)
            wall = time.perf_counter() - start
            rows.append({"deployment": name, **c.to_json(), "wall_s": round(wall, 1)})
            what = "whole step" if layers == 0 else f"layers 0-{layers - 1}"
            diff = (c.simulated_us / c.estimate_us - 1) * 100
            print(f"| {name} {role}, {what} | {c.npus} | {c.simulated_us:,.1f} | "
                  f"{c.estimate_us:,.1f} | {diff:+.1f} % | {wall:.0f} |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="table", required=True)
    a = sub.add_parser("alltoall")
    a.add_argument("--size", type=int, default=2 << 20, help="bytes per rank (2 MiB)")
    a.add_argument("--ranks", default="8,16,32,64,144,320")
    a.add_argument("--ring-max", type=int, default=144, help="largest sub-group ring to run")
    s = sub.add_parser("step")
    s.add_argument("--quick", action="store_true", help="slices only, no whole step")
    args = parser.parse_args()
    if args.table == "alltoall":
        print("| ranks | representation | wall s | ASTRA-sim us | formula us | ratio |\n"
              "|---|---|---|---|---|---|")
        rows = alltoall(args.size, [int(x) for x in args.ranks.split(",")], args.ring_max)
    else:
        print("| case | NPUs | ASTRA-sim us | estimate us | difference | wall s |\n"
              "|---|---|---|---|---|---|")
        rows = step(args.quick)
    stored = json.loads(OUT.read_text()) if OUT.exists() else {}
    stored[args.table] = rows
    OUT.write_text(json.dumps(stored, indent=1) + "\n")
    print(f"-> {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
