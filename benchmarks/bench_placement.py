#!/usr/bin/env python
"""Expert placement: our planner (``supernode_dsl.plan.placement``) against EPLB.

EPLB is DeepSeek's expert-parallel load balancer, re-implemented in ``benchmarks/eplb.py``.
Both place the 256 routed experts of DeepSeek-R1 (58 MoE layers, 8 expert groups) into the
routed expert slots of four deployment roles:

=================  =========================  =====  ===========  ===========================
role               devices                    slots  nodes        EPLB policy
=================  =========================  =====  ===========  ===========================
cm384-prefill      32 dies (EP32)             9/die  2 x 16 dies  hierarchical (8 % 2 == 0)
cm384-decode       288 routed dies (EP320)    1/die  20 nodes     global (8 % 20 != 0)
h800-prefill       32 GPUs                    9/GPU  4 x 8 GPUs   hierarchical (8 % 4 == 0)
h800-decode        144 GPUs                   2/GPU  18 x 8 GPUs  global (8 % 18 != 0)
=================  =========================  =====  ===========  ===========================

CloudMatrix decode: 320 dies on 20 nodes of 16 dies; 32 of them hold the shared expert and are
left out.  Which dies those are is not published; like the planner (``plan/build.py``) we take
EP ranks 0, 10, ..., 310, so the 288 routed dies sit 14 to 15 per node.  Node membership only
matters to a locality-aware placement.

Loads (synthetic, deterministic: seed ``s`` uses ``numpy.random.default_rng(s)``): for every
layer, a Zipf law with exponent U(1.0, 1.4) or a lognormal with sigma U(1.0, 1.5) (family
chosen per layer with probability 1/2) over the 256 experts, randomly permuted, scaled to the
role's routed tokens per step (tokens x top-8) and rounded to integer counts.

Metrics, for each role:

* balance: max / mean die load per layer (each replica of an expert takes an equal share of
  its tokens), averaged over layers and seeds, and the worst layer; ``excess`` = max/mean - 1,
  and the ratio of our excess to EPLB's (< 1: we are better).
* EPLB's duplicate replicas: slots whose expert already has a replica on the same device.
* drift: the loads are multiplied by lognormal(0, 0.3) noise ("noise") or 10 % of the experts
  swap hotness pairwise ("swap"); we report the imbalance of the stale placement, of EPLB and
  ours recomputed from scratch and of ``replan_experts(previous)``, and the bytes each moves:
  moved slots x 44,040,192 B (one INT8 expert: 3 x 7168 x 2048 parameters), summed over the
  58 layers, mean per seed.  "EPLB relabelled" is EPLB's new plan with its dies (and the
  slots inside each die) renumbered to match the previous plan as well as possible (an
  assignment problem; same die loads), to separate real moves from mere relabelling.
* planning time for 58 layers (median of repeats, in-process, ``time.perf_counter``).

Usage::

    python benchmarks/bench_placement.py              # 20 seeds
    python benchmarks/bench_placement.py --seeds 5
    python benchmarks/bench_placement.py --quick      # 3 seeds, 1 timing repeat

Prints markdown tables and writes ``benchmarks/placement-results.json``.  If the planner
cannot be imported, only the EPLB columns are produced.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import eplb  # noqa: E402

LAYERS = 58
EXPERTS = 256
GROUPS = 8
TOP_K = 8
EXPERT_BYTES = 3 * 7168 * 2048  # one INT8 expert: 44,040,192 B
OUT = HERE / "placement-results.json"


# --------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    num_dies: int
    slots_per_die: int
    die_node: tuple[int, ...]
    tokens: int  # tokens per step over the whole role (before top-k)

    @property
    def num_slots(self) -> int:
        return self.num_dies * self.slots_per_die

    @property
    def num_nodes(self) -> int:
        return max(self.die_node) + 1


def _cm384_decode_nodes() -> tuple[int, ...]:
    # 320 dies, 16 per node (20 nodes); the 32 shared-expert dies are spread evenly over the
    # instance, at EP ranks 0, 10, 20, ..., 310 (the planner's own convention,
    # supernode_dsl/plan/build.py), leaving 288 routed dies, 14 to 15 per node.
    shared = {(k * 320) // 32 for k in range(32)}
    nodes = tuple(d // 16 for d in range(320) if d not in shared)
    assert len(nodes) == 288 and max(nodes) == 19
    return nodes


ROLES = (
    Role("cm384-prefill", "CloudMatrix384 prefill, 32 dies x 9", 32, 9,
         tuple(d // 16 for d in range(32)), tokens=32 * 4096),
    Role("cm384-decode", "CloudMatrix384 decode, 288 dies x 1", 288, 1,
         _cm384_decode_nodes(), tokens=320 * 96),
    Role("h800-prefill", "H800 prefill, 32 GPUs x 9", 32, 9,
         tuple(g // 8 for g in range(32)), tokens=32 * 4096),
    Role("h800-decode", "H800 decode, 144 GPUs x 2", 144, 2,
         tuple(g // 8 for g in range(144)), tokens=144 * 96),
)


# --------------------------------------------------------------------------- loads


def synthetic_loads(rng: np.random.Generator, tokens: int) -> np.ndarray:
    """[LAYERS, EXPERTS] integer token counts, skewed, permuted per layer."""
    out = np.empty((LAYERS, EXPERTS))
    ranks = np.arange(1, EXPERTS + 1, dtype=np.float64)
    for layer in range(LAYERS):
        if rng.random() < 0.5:
            p = ranks ** -rng.uniform(1.0, 1.4)
        else:
            p = np.exp(rng.uniform(1.0, 1.5) * rng.standard_normal(EXPERTS))
        p = rng.permutation(p / p.sum())
        out[layer] = np.rint(p * tokens * TOP_K)
    return out


def drift_noise(rng: np.random.Generator, loads: np.ndarray) -> np.ndarray:
    return np.rint(loads * rng.lognormal(0.0, 0.3, size=loads.shape))


def drift_swap(rng: np.random.Generator, loads: np.ndarray, frac: float = 0.10) -> np.ndarray:
    """In every layer, ``frac`` of the experts (an even number) swap loads pairwise."""
    out = loads.copy()
    k = round(frac * EXPERTS / 2) * 2
    for layer in range(LAYERS):
        chosen = rng.choice(EXPERTS, size=k, replace=False)
        a, b = chosen[: k // 2], chosen[k // 2 :]
        out[layer, a], out[layer, b] = loads[layer, b], loads[layer, a]
    return out


# --------------------------------------------------------------------------- metrics


def die_loads(loads: np.ndarray, phy2log: np.ndarray, slots_per_die: int) -> np.ndarray:
    """[L, dies]: each replica of an expert carries load / replica count."""
    return eplb.gpu_loads(loads, phy2log, phy2log.shape[1] // slots_per_die)


def imbalance(loads: np.ndarray, phy2log: np.ndarray, slots_per_die: int) -> np.ndarray:
    d = die_loads(loads, phy2log, slots_per_die)
    return d.max(1) / d.mean(1)


def moved_slots_plain(prev: np.ndarray, new: np.ndarray) -> int:
    return int((np.asarray(prev) != np.asarray(new)).sum())


def align_to(prev: np.ndarray, new: np.ndarray, slots_per_die: int) -> np.ndarray:
    """Relabel the dies (and slots inside a die) of ``new`` to copy as little as possible
    from ``prev``: the die loads are unchanged.  Used to show how much of a from-scratch
    plan's migration is mere relabelling.  Handles duplicates (EPLB can have them)."""
    from scipy.optimize import linear_sum_assignment

    layers, num_slots = new.shape
    dies = num_slots // slots_per_die
    out = np.empty_like(new)
    for layer in range(layers):
        pn = new[layer].reshape(dies, slots_per_die)
        po = prev[layer].reshape(dies, slots_per_die)
        cn = np.zeros((dies, EXPERTS), np.int64)
        co = np.zeros((dies, EXPERTS), np.int64)
        np.add.at(cn, (np.repeat(np.arange(dies), slots_per_die), pn.ravel()), 1)
        np.add.at(co, (np.repeat(np.arange(dies), slots_per_die), po.ravel()), 1)
        shared = np.minimum(cn[:, None, :], co[None, :, :]).sum(-1)  # [new die, old die]
        rows, cols = linear_sum_assignment(-shared)
        res = out[layer].reshape(dies, slots_per_die)
        for r, c in zip(rows, cols, strict=True):
            todo = list(pn[r])
            slot_val = [-1] * slots_per_die
            for k, e in enumerate(po[c]):  # keep experts in their old slot where possible
                if e in todo:
                    todo.remove(e)
                    slot_val[k] = e
            for k in range(slots_per_die):
                if slot_val[k] == -1:
                    slot_val[k] = todo.pop()
            res[c] = slot_val
    return out


def duplicates(phy2log: np.ndarray, slots_per_die: int) -> int:
    return eplb.duplicate_replicas(phy2log, phy2log.shape[1] // slots_per_die)


def check_placement(phy2log: np.ndarray, logcnt: np.ndarray, num_slots: int) -> None:
    assert phy2log.shape == (LAYERS, num_slots), phy2log.shape
    assert logcnt.shape == (LAYERS, EXPERTS), logcnt.shape
    for layer in range(LAYERS):
        cnt = np.bincount(phy2log[layer], minlength=EXPERTS)
        assert cnt.shape[0] == EXPERTS and (cnt >= 1).all(), "an expert has no replica"
        assert (cnt == logcnt[layer]).all(), "logcnt disagrees with phy2log"


# --------------------------------------------------------------------------- planners


def run_eplb(role: Role, loads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    phy2log, _, logcnt = eplb.rebalance_experts(
        loads, role.num_slots, GROUPS, role.num_nodes, role.num_dies
    )
    return phy2log, logcnt


class Ours:
    """Thin adapter over ``supernode_dsl.plan.placement`` (names looked up leniently)."""

    def __init__(self) -> None:
        import supernode_dsl.plan.placement as mod

        self.mod = mod
        self.SlotLayout = mod.SlotLayout
        self.place = mod.place_experts
        self.replan = getattr(mod, "replan_experts", None)
        self.moved = getattr(mod, "moved_slots", None)
        self.imbalance_fn = getattr(mod, "imbalance", None)
        self.lower_bound_fn = getattr(mod, "lower_bound", None)

    def layout(self, role: Role, locality: bool = False) -> Any:
        return self.SlotLayout(role.num_dies, role.slots_per_die, die_node=role.die_node,
                               num_groups=GROUPS, prefer_node_locality=locality)

    @staticmethod
    def arrays(p: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(p.phy2log, dtype=np.int64), np.asarray(p.logcnt, dtype=np.int64)

    def moved_slots(self, prev: np.ndarray, new: np.ndarray) -> int:
        if self.moved is None:
            return moved_slots_plain(prev, new)
        return int(self.moved(prev, new))


def load_planner(wait_s: float, poll_s: float = 20.0) -> tuple[Ours | None, str]:
    deadline = time.monotonic() + wait_s
    last = ""
    while True:
        try:
            return Ours(), ""
        except Exception as err:  # the module may be half-written
            last = f"{type(err).__name__}: {err}"
            for name in list(sys.modules):
                if name.startswith("supernode_dsl.plan.placement"):
                    del sys.modules[name]
        if time.monotonic() >= deadline:
            return None, last
        print(f"planner not importable yet ({last}); retrying", file=sys.stderr)
        time.sleep(poll_s)


# --------------------------------------------------------------------------- benchmark


def _stats(x: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(x, dtype=np.float64)
    return {"mean": float(a.mean()), "worst": float(a.max()), "p50": float(np.median(a))}


def _time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_role(role: Role, ours: Ours | None, seeds: list[int], repeat: int) -> dict[str, Any]:
    res: dict[str, Any] = {
        "label": role.label, "num_dies": role.num_dies, "slots_per_die": role.slots_per_die,
        "num_nodes": role.num_nodes, "tokens_per_step": role.tokens,
        "eplb_policy": "hierarchical" if GROUPS % role.num_nodes == 0 else "global",
    }
    imb: dict[str, list[np.ndarray]] = {k: [] for k in
                                        ("eplb", "ours", "ours_locality", "lower_bound")}
    dup = {"eplb": 0, "ours": 0}
    dup_layers = 0
    metric_gap = 0.0
    drift: dict[str, dict[str, list[float]]] = {}
    layout = ours.layout(role) if ours else None
    layout_loc = ours.layout(role, locality=True) if ours else None

    for seed in seeds:
        rng = np.random.default_rng(seed)
        loads = synthetic_loads(rng, role.tokens)
        e_p2l, e_cnt = run_eplb(role, loads)
        check_placement(e_p2l, e_cnt, role.num_slots)
        imb["eplb"].append(imbalance(loads, e_p2l, role.slots_per_die))
        d = duplicates(e_p2l, role.slots_per_die)
        dup["eplb"] += d
        dup_layers += sum(duplicates(e_p2l[i : i + 1], role.slots_per_die) > 0
                          for i in range(LAYERS))
        o_p2l = None
        if ours:
            o_p2l, o_cnt = ours.arrays(ours.place(loads, layout))
            check_placement(o_p2l, o_cnt, role.num_slots)
            mine = imbalance(loads, o_p2l, role.slots_per_die)
            imb["ours"].append(mine)
            dup["ours"] += duplicates(o_p2l, role.slots_per_die)
            if ours.imbalance_fn is not None:  # cross-check the metric definitions
                theirs = np.asarray(ours.imbalance_fn(loads, ours.place(loads, layout), layout))
                metric_gap = max(metric_gap, float(np.abs(theirs - mine).max()))
            if role.num_nodes > 1:
                l_p2l, l_cnt = ours.arrays(ours.place(loads, layout_loc))
                check_placement(l_p2l, l_cnt, role.num_slots)
                imb["ours_locality"].append(imbalance(loads, l_p2l, role.slots_per_die))
            if ours.lower_bound_fn is not None:  # per layer, as max/mean
                mean = loads.sum(1) / role.num_dies
                imb["lower_bound"].append(np.array(
                    [ours.lower_bound_fn(row, layout) for row in loads]) / mean)

        for scen, fn in (("noise", drift_noise), ("swap", drift_swap)):
            new = fn(np.random.default_rng([seed, 1 if scen == "noise" else 2]), loads)
            acc = drift.setdefault(scen, {})

            def add(key: str, value: float, acc: dict[str, list[float]] = acc) -> None:
                acc.setdefault(key, []).append(value)

            e_new, _ = run_eplb(role, new)
            add("eplb_stale_imb", float(imbalance(new, e_p2l, role.slots_per_die).mean()))
            add("eplb_imb", float(imbalance(new, e_new, role.slots_per_die).mean()))
            mv = ours.moved_slots(e_p2l, e_new) if ours else moved_slots_plain(e_p2l, e_new)
            add("eplb_moved", mv)
            e_al = align_to(e_p2l, e_new, role.slots_per_die)
            add("eplb_aligned_moved", ours.moved_slots(e_p2l, e_al) if ours
                else moved_slots_plain(e_p2l, e_al))
            if ours and o_p2l is not None:
                s_p2l, _ = ours.arrays(ours.place(new, layout))
                add("ours_stale_imb", float(imbalance(new, o_p2l, role.slots_per_die).mean()))
                add("ours_imb", float(imbalance(new, s_p2l, role.slots_per_die).mean()))
                add("ours_moved", ours.moved_slots(o_p2l, s_p2l))
                if ours.replan is not None:
                    r_p2l, r_cnt = ours.arrays(ours.replan(new, layout, o_p2l, tolerance=0.01))
                    check_placement(r_p2l, r_cnt, role.num_slots)
                    add("replan_imb", float(imbalance(new, r_p2l, role.slots_per_die).mean()))
                    add("replan_moved", ours.moved_slots(o_p2l, r_p2l))

    out_imb = {}
    for k, v in imb.items():
        if v:
            a = np.concatenate(v)
            out_imb[k] = _stats(a)
            out_imb[k]["excess_mean"] = out_imb[k]["mean"] - 1.0
    res["imbalance"] = out_imb
    if "ours" in out_imb:
        res["excess_ratio_ours_to_eplb"] = (
            out_imb["ours"]["excess_mean"] / out_imb["eplb"]["excess_mean"])
        # per-layer comparison: how often are we worse than EPLB?
        e_all, o_all = np.concatenate(imb["eplb"]), np.concatenate(imb["ours"])
        res["layers_ours_worse"] = int((o_all > e_all + 1e-9).sum())
        res["layers_ours_better"] = int((o_all < e_all - 1e-9).sum())
        res["layers_total"] = int(e_all.size)
        res["max_layer_ours_minus_eplb"] = float((o_all - e_all).max())
        res["metric_gap_vs_planner_imbalance"] = metric_gap
    res["duplicates"] = {"eplb_slots": dup["eplb"], "eplb_layers": int(dup_layers),
                         "layers_total": LAYERS * len(seeds)}
    if ours:
        res["duplicates"]["ours_slots"] = dup["ours"]
    res["drift"] = {}
    for scen, acc in drift.items():
        r: dict[str, float] = {}
        for k, v in acc.items():
            r[k] = float(np.mean(v))
            if k.endswith("_moved"):
                r[k.replace("_moved", "_gb")] = float(np.mean(v)) * EXPERT_BYTES / 1e9
                r[k.replace("_moved", "_moved_worst")] = float(np.max(v))
        res["drift"][scen] = r

    # planning time for 58 layers (seed 0 loads)
    rng = np.random.default_rng(seeds[0])
    loads = synthetic_loads(rng, role.tokens)
    new = drift_noise(np.random.default_rng([seeds[0], 1]), loads)
    t = {"eplb": _time(lambda: run_eplb(role, loads), repeat)}
    if ours:
        t["ours"] = _time(lambda: ours.place(loads, layout), repeat)
        prev, _ = ours.arrays(ours.place(loads, layout))
        if ours.replan is not None:
            t["replan"] = _time(lambda: ours.replan(new, layout, prev, tolerance=0.01), repeat)
    res["plan_time_s"] = t
    return res


# --------------------------------------------------------------------------- report


def _f(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _head(base: list[str], ours: list[str], have: bool) -> list[str]:
    """A markdown header and separator: ``role`` plus the EPLB columns, plus ours if run."""
    cols = ["role", *base, *(ours if have else [])]
    return ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]


def tables(results: dict[str, Any]) -> str:
    roles = results["roles"]
    have = results["planner"] is not None
    lines: list[str] = []
    lines.append("Balance: max/mean die load per layer (mean over layers x seeds; worst layer)\n")
    lines += _head(["EPLB mean", "EPLB worst"],
                   ["ours mean", "ours worst", "excess ours / EPLB", "layers ours worse",
                    "ours+locality mean", "lower bound mean"], have)
    for name, r in roles.items():
        i = r["imbalance"]
        row = f"| {name} | {i['eplb']['mean']:.4f} | {i['eplb']['worst']:.4f} |"
        if have:
            loc = i.get("ours_locality", {}).get("mean")
            lb = i.get("lower_bound", {}).get("mean")
            row += (f" {i['ours']['mean']:.4f} | {i['ours']['worst']:.4f} |"
                    f" {r['excess_ratio_ours_to_eplb']:.3f} |"
                    f" {r['layers_ours_worse']}/{r['layers_total']} |"
                    f" {_f(loc, '{:.4f}')} | {_f(lb, '{:.4f}')} |")
        lines.append(row)

    lines.append("\nEPLB duplicate replicas (a device holding two replicas of one expert)\n")
    lines += _head(["duplicate slots", "layers affected"], ["ours: duplicate slots"], have)
    for name, r in roles.items():
        d = r["duplicates"]
        row = f"| {name} | {d['eplb_slots']} | {d['eplb_layers']}/{d['layers_total']} |"
        if have:
            row += f" {d['ours_slots']} |"
        lines.append(row)

    for scen, title in (("noise", "loads x lognormal(0, 0.3)"),
                        ("swap", "10 % of experts swap hotness")):
        lines.append(f"\nDrift, {title}: mean max/mean after the change; GB moved per "
                     "rebalance of 58 layers (mean per seed)\n")
        lines += _head(["EPLB stale", "EPLB new", "EPLB GB", "EPLB relabelled GB"],
                       ["ours stale", "ours new", "ours GB", "replan", "replan GB"], have)
        for name, r in roles.items():
            d = r["drift"][scen]
            row = (f"| {name} | {d['eplb_stale_imb']:.4f} | {d['eplb_imb']:.4f} |"
                   f" {d['eplb_gb']:.1f} | {d['eplb_aligned_gb']:.1f} |")
            if have:
                row += (f" {d['ours_stale_imb']:.4f} | {d['ours_imb']:.4f} |"
                        f" {d['ours_gb']:.1f} | {_f(d.get('replan_imb'), '{:.4f}')} |"
                        f" {_f(d.get('replan_gb'), '{:.1f}')} |")
            lines.append(row)

    lines.append("\nPlanning time for 58 layers (median, ms)\n")
    lines += _head(["EPLB"], ["ours", "replan"], have)
    for name, r in roles.items():
        t = r["plan_time_s"]
        row = f"| {name} | {t['eplb'] * 1e3:.1f} |"
        if have:
            row += (f" {t['ours'] * 1e3:.1f} |"
                    f" {_f(t.get('replan') and t['replan'] * 1e3, '{:.1f}')} |")
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="number of seeds (0..N-1)")
    ap.add_argument("--quick", action="store_true", help="3 seeds, 1 timing repeat")
    ap.add_argument("--repeat", type=int, default=5, help="timing repeats")
    ap.add_argument("--wait", type=float, default=0.0,
                    help="seconds to keep polling for an importable planner")
    ap.add_argument("--eplb-only", action="store_true", help="skip our planner")
    ap.add_argument("--roles", default="", help="comma-separated subset of roles")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    n_seeds = 3 if args.quick else args.seeds
    repeat = 1 if args.quick else args.repeat
    seeds = list(range(n_seeds))

    ours, why = (None, "--eplb-only") if args.eplb_only else load_planner(args.wait)
    if ours is None:
        print(f"planner unavailable ({why}): EPLB columns only", file=sys.stderr)

    roles = [r for r in ROLES if not args.roles or r.name in args.roles.split(",")]
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "command": "python benchmarks/bench_placement.py " + " ".join(argv or sys.argv[1:]),
        "seeds": seeds, "layers": LAYERS, "experts": EXPERTS, "groups": GROUPS,
        "expert_bytes": EXPERT_BYTES, "timing_repeats": repeat,
        "python": platform.python_version(), "numpy": np.__version__,
        "planner": None if ours is None else ours.mod.__name__,
        "planner_unavailable_reason": why or None,
        "roles": {},
    }
    for role in roles:
        print(f"{role.name} ...", file=sys.stderr)
        results["roles"][role.name] = bench_role(role, ours, seeds, repeat)
    results["elapsed_s"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(tables(results))
    print(f"\n({n_seeds} seeds, {results['elapsed_s']:.0f} s; wrote {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
