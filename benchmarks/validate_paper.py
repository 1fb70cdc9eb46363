#!/usr/bin/env python
"""The performance estimate against CloudMatrix-Infer's published headline numbers.

Runs ``cmx plan`` (as a separate process, the way a user would) on the shipped DeepSeek-R1
deployment for each headline configuration of the paper (Zuo et al., arXiv 2506.12708 v2;
shared reference cloudmatrix384.md §5), reads the plan's ``estimate`` blocks and prints the
markdown table of docs/validation.md: the paper's figure, the estimate, and the ratio.  It
also prints the per-layer breakdown of the decode and prefill estimates and the H800
deployment's estimate (no published target: a plausibility check).

Usage::

    python benchmarks/validate_paper.py            # the tables of docs/validation.md
    python benchmarks/validate_paper.py --json out.json
    python benchmarks/validate_paper.py --sensitivity   # one die fact changed at a time,
                                                        # and the overhead each figure needs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CM384 = "topologies/deepseek-r1-cloudmatrix384.cmx"
H800 = "topologies/deepseek-v3-h800.cmx"

#: (row, defines, role, estimate key, paper figure, unit)
ROWS: list[tuple[str, list[str], str, str, float, str]] = [
    ("Prefill, 4K prompt, 16K tokens/NPU, perfect balance", [], "prefill",
     "tokens_per_s_per_npu", 6688, "tokens/s per NPU"),
    ("Prefill, tokens/s per TFLOPS", [], "prefill", "tokens_per_s_per_tflops", 4.45, ""),
    ("Decode, batch 96/NPU, 4K KV, MTP 70%", [], "decode", "tokens_per_s_per_npu", 1943,
     "tokens/s per NPU"),
    ("Decode, batch 96/NPU: TPOT", [], "decode", "tpot_ms", 49.4, "ms"),
    ("Decode, tokens/s per TFLOPS", [], "decode", "tokens_per_s_per_tflops", 1.29, ""),
    ("Decode under TPOT 15 ms: batch", ["-D", "tpot_slo_ms=15", "-D", "decode_batch_per_npu=0"],
     "decode", "batch_per_npu", 8, "requests per NPU"),
    ("Decode under TPOT 15 ms: throughput", ["-D", "tpot_slo_ms=15", "-D",
                                             "decode_batch_per_npu=0"],
     "decode", "tokens_per_s_per_npu", 538, "tokens/s per NPU"),
    ("Decode at the paper's batch 8/NPU: TPOT", ["-D", "decode_batch_per_npu=8"],
     "decode", "tpot_ms", 8 / 538 * 1e3, "ms (8 / 538 tokens/s)"),
]


def plan(file: str, defines: list[str]) -> dict[str, Any]:
    """The plan ``cmx plan`` writes for ``file`` with ``defines``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan.json"
        cmd = [sys.executable, "-m", "supernode_dsl.cli", "plan", file, *defines, "-o", str(out)]
        subprocess.run(cmd, check=True, cwd=ROOT)
        doc: dict[str, Any] = json.loads(out.read_text())
        return doc


def command(defines: list[str], file: str = CM384) -> str:
    """The command line that reproduces a row."""
    return " ".join(["cmx plan", file, *defines, "-o plan.json"])


def _fmt(x: float) -> str:
    return f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"


def table(plans: dict[tuple[str, ...], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per headline figure: paper, estimate, ratio, command."""
    rows = []
    for name, defines, role, key, paper, unit in ROWS:
        est = plans[tuple(defines)]["roles"][role]["estimate"][key]
        rows.append({"row": name, "unit": unit, "paper": paper, "estimate": est,
                     "ratio": est / paper, "command": command(defines)})
    return rows


def breakdown(doc: dict[str, Any], role: str) -> list[str]:
    """Markdown rows of a role's per-layer breakdown: one dense, one MoE, MTP, head."""
    rows = doc["roles"][role]["estimate"]["per_layer"]
    picks = {}
    for r in rows:
        picks.setdefault(r["kind"], r)
    out = []
    for kind, r in picks.items():
        ops = ", ".join(f"{k} {v:,.1f}" for k, v in r["ops_us"].items())
        count = sum(1 for x in rows if x["kind"] == kind)
        out.append(f"| {kind} (layer {r['layer']}, x{count}) | {r['span_us']:,.1f} | {ops} |")
    return out


def _contexts() -> dict[str, Any]:
    """The cost model's inputs for both roles of the CloudMatrix384 deployment."""
    import numpy as np

    import supernode_dsl as cmx
    from supernode_dsl.diagnostics import DiagnosticSink
    from supernode_dsl.plan.devices import allocate, device_table
    from supernode_dsl.plan.serving.estimate import RoleContext
    from supernode_dsl.plan.serving.hardware import device_facts
    from supernode_dsl.plan.serving.params import read_workload
    from supernode_dsl.plan.serving.paths import instance_paths
    from supernode_dsl.plan.spec import read_deployment

    model = cmx.compile_file(ROOT / CM384)
    g = cmx.build_graph(model)
    specs = {s.name: s for s in model.specs if s.category == "model"}
    spec = next(s for s in model.specs if s.category == "deployment")
    sink = DiagnosticSink()
    dep = read_deployment(spec, specs, sink)
    work = read_workload(spec, sink)
    assert dep is not None
    out = {}
    for alloc in allocate(dep, device_table(g, dep.nodes_per_rack), sink):
        devices = alloc.instances[0]
        facts = device_facts(g, devices[0].path)
        out[alloc.role.name] = RoleContext(dep.model, alloc.role, work, facts,
                                           instance_paths(g, devices, facts),
                                           np.ones(len(dep.model.moe_layers)), 2)
    return out


def sensitivity() -> None:
    """Print the estimates with one fact of the die changed at a time."""
    from dataclasses import replace

    from supernode_dsl.plan.serving.estimate import decode_estimate, prefill_estimate

    ctxs = _contexts()

    def facts(c: Any, peak: dict[str, float] | None = None,
              eff: dict[str, float] | None = None) -> Any:
        f = c.facts
        return replace(c, facts=replace(f, peak={**f.peak, **(peak or {})},
                                        efficiency={**f.efficiency, **(eff or {})}))

    def work(c: Any, **kw: Any) -> Any:
        return replace(c, workload=replace(c.workload, **kw))

    def ll_fixed(c: Any, extra_per_rank: dict[str, float] | None = None) -> Any:
        """Low-latency collectives with their measured fixed time grown by
        ``extra_per_rank`` seconds per rank beyond the measured EP32 (None: no fixed time,
        one path latency as for an undeclared kernel)."""
        if extra_per_rank is None:
            return replace(c, paths=replace(c.paths, collective_overhead=()))
        grown = tuple((k, v + extra_per_rank.get(k, 0.0) * (c.role.ep - 32))
                      for k, v in c.paths.collective_overhead)
        return replace(c, paths=replace(c.paths, collective_overhead=grown))

    # DeepEP-Ascend's low-latency kernels at 128 tokens per rank grow from EP8 to EP32 by
    # (153 - 132) / 24 us (dispatch) and (151 - 126) / 24 us (combine) per rank
    per_rank = {"dispatch_ll": 21e-6 / 24, "combine_ll": 25e-6 / 24}

    variants = [
        ("as shipped", lambda c: c),
        ("INT8 peak = BF16 peak (376 TOPS per die)", lambda c: facts(c, {"int8": 376e12})),
        ("`efficiency.gemm` 0.77 (low end of the measurement)",
         lambda c: facts(c, eff={"gemm": 0.77})),
        ("`efficiency.gemm` 0.83 (high end)", lambda c: facts(c, eff={"gemm": 0.83})),
        ("no MTP (`mtp.accept = 0`)", lambda c: work(c, mtp_accept=0.0)),
        ("decode with one microbatch", lambda c: work(c, decode_microbatches=1)),
        ("prefill with one microbatch (no overlap)",
         lambda c: work(c, prefill_microbatches=1)),
        ("low-latency dispatch/combine without their measured fixed time",
         lambda c: ll_fixed(c)),
        ("low-latency fixed time grown linearly from EP32 to EP320",
         lambda c: ll_fixed(c, per_rank)),
    ]
    print("| variant | prefill tokens/s/NPU | decode@96 tokens/s/NPU | TPOT@96 (ms) | "
          "TPOT@8 (ms) |\n|---|---|---|---|---|")
    for label, change in variants:
        d, p = change(ctxs["decode"]), change(ctxs["prefill"])
        big, _ = decode_estimate(d, 96)
        small, _ = decode_estimate(d, 8)
        pre, _ = prefill_estimate(p, 16384)
        print(f"| {label} | {pre['tokens_per_s_per_npu']:,.0f} | "
              f"{big['tokens_per_s_per_npu']:,.0f} | {big['tpot_ms']:.1f} | "
              f"{small['tpot_ms']:.2f} |")


def _solve(f: Any, want: float, lo: float, hi: float, steps: int) -> float:
    """The x in [lo, hi] where the increasing function ``f`` reaches ``want`` (bisection;
    the lower end of the final interval)."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < want else (lo, mid)
    return lo


def needed_overhead() -> None:
    """For each headline figure, the fixed time per operator (``overhead.op``) that would make
    the estimate equal the paper's: one value for all would mean a launch-type overhead is
    the missing term; different values mean it is not the whole story."""
    from dataclasses import replace

    from supernode_dsl.plan.serving.estimate import decode_estimate, prefill_estimate

    ctxs = _contexts()

    def with_overhead(c: Any, seconds: float) -> Any:
        return replace(c, facts=replace(c.facts, overhead={"op": seconds}))

    targets = [
        ("decode TPOT at batch 96/NPU = 49.4 ms", "decode", 96, "tpot_ms", 49.4),
        ("decode TPOT at batch 8/NPU = 14.87 ms", "decode", 8, "tpot_ms", 8 / 538 * 1e3),
        ("prefill 6,688 tokens/s per NPU (TTFT of the 16K pass)", "prefill", 16384, "ttft_ms",
         16384 / 6688 * 1e3),
    ]
    print("| figure | overhead.op that reproduces it (us per operator) |\n|---|---|")
    for label, role, batch, key, want in targets:
        fn = decode_estimate if role == "decode" else prefill_estimate
        def tpot_or_ttft(x: float, fn: Any = fn, role: str = role, batch: int = batch,
                         key: str = key) -> float:
            return float(fn(with_overhead(ctxs[role], x), batch)[0][key])

        seconds = _solve(tpot_or_ttft, want, 0.0, 0.1, steps=40)
        print(f"| {label} | {seconds * 1e6:,.1f} |")


def imbalance_effect() -> None:
    """Decode TPOT when the busiest die's expert load is ``r`` x the mean in every MoE layer
    (``balance.perfect = false``), and the ``r`` each decode figure would need."""
    from dataclasses import replace

    import numpy as np

    from supernode_dsl.plan.serving.estimate import decode_estimate

    ctx = _contexts()["decode"]

    def tpot(r: float, batch: int) -> float:
        c = replace(ctx, imbalance=np.full(len(ctx.imbalance), r),
                    workload=replace(ctx.workload, perfect_balance=False))
        return float(decode_estimate(c, batch)[0]["tpot_ms"])

    print("| busiest / mean die load | TPOT@96 (ms) | TPOT@8 (ms) |\n|---|---|---|")
    for r in (1.0, 1.125, 1.5, 2.0, 3.0):
        print(f"| {r:g} | {tpot(r, 96):.1f} | {tpot(r, 8):.2f} |")
    for batch, want in ((96, 49.4), (8, 8 / 538 * 1e3)):
        ratio = _solve(lambda r, b=batch: tpot(r, b), want, 1.0, 50.0, steps=30)
        print(f"\nbatch {batch}/NPU: TPOT {want:.2f} ms needs busiest/mean = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--sensitivity", action="store_true",
                        help="print the sensitivity tables instead")
    args = parser.parse_args()
    if args.sensitivity:
        sensitivity()
        print()
        needed_overhead()
        print()
        imbalance_effect()
        return
    plans = {tuple(d): plan(CM384, d) for d in {tuple(r[1]) for r in ROWS}}
    rows = table(plans)
    print("| figure | paper | estimate | estimate / paper | command |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} ({r['unit']}) | {_fmt(r['paper'])} | {_fmt(r['estimate'])} | "
              f"{r['ratio']:.2f} | `{r['command']}` |")
    base = plans[()]
    for role in ("decode", "prefill"):
        est = base["roles"][role]["estimate"]
        pipe = base["roles"][role]["pipeline"]
        print(f"\n{role}: step {est['step_ms']:,.2f} ms; {pipe['microbatches']} microbatch(es), "
              f"split {pipe['split']}, speed-up over no overlap {pipe['speedup']:.3f}")
        print("\n| layer | span (us) | ops (us, summed over microbatches) |\n|---|---|---|")
        print("\n".join(breakdown(base, role)))
    h800 = plan(H800, [])
    print("\nH800 (no published target):")
    for role in ("prefill", "decode"):
        e = h800["roles"][role]["estimate"]
        print(f"  {role}: " + ", ".join(f"{k} {v}" for k, v in e.items() if k != "per_layer"))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
