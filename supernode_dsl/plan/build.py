"""Assembling a plan document: devices, expert placement, balance, memory, migration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from supernode_dsl.diagnostics import DiagnosticSink
from supernode_dsl.plan.devices import Device, RoleAllocation
from supernode_dsl.plan.document import ModelSummary
from supernode_dsl.plan.document.role import (
    Balance,
    ExpertPlacement,
    Memory,
    Migration,
    OtherWeights,
)
from supernode_dsl.plan.memory import memory_budget, non_expert_params
from supernode_dsl.plan.placement import (
    Placement,
    SlotLayout,
    greedy_counts,
    imbalance,
    lower_bound,
    moved_slots,
    place_experts,
    replan_experts,
)
from supernode_dsl.plan.spec import DeploymentSpec, ModelArch, RoleSpec

__all__ = ["PlacedRole", "role_memory", "role_plan", "shared_positions"]


@dataclass(frozen=True)
class PlacedRole:
    """A role's experts placed: the plan's ``expert_placement``, ``balance`` and
    ``migration`` blocks, before the serving plan adds memory, KV, pipeline and estimate."""

    placement: ExpertPlacement
    balance: Balance
    migration: Migration | None


def shared_positions(role: RoleSpec) -> list[int]:
    """EP ranks of the dedicated shared-expert devices, spread evenly over the instance."""
    n = role.shared_devices
    return [(k * role.ep) // n for k in range(n)] if n else []


def _split(role: RoleSpec, devices: Sequence[Device]) -> tuple[list[Device], list[Device]]:
    """An instance's devices split into routed-expert devices and dedicated shared ones."""
    shared_at = set(shared_positions(role))
    routed = [d for k, d in enumerate(devices) if k not in shared_at]
    return routed, [d for k, d in enumerate(devices) if k in shared_at]


def _layout(arch: ModelArch, role: RoleSpec, routed: Sequence[Device],
            locality: bool) -> SlotLayout:
    first: dict[int, int] = {}
    die_node = tuple(first.setdefault(d.node_index, len(first)) for d in routed)
    return SlotLayout(num_dies=len(routed), slots_per_die=role.routed_slots,
                      die_node=die_node, num_groups=arch.expert_groups,
                      prefer_node_locality=locality)


def _hierarchical(devices: Sequence[Device]) -> bool:
    """More than one node and no die-level hierarchy: keep traffic inside nodes (H800)."""
    return len({d.node for d in devices}) > 1 and all(d.path == d.npu for d in devices)


def role_plan(arch: ModelArch, alloc: RoleAllocation, loads: np.ndarray,
              previous: ExpertPlacement | None) -> PlacedRole:
    """The plan of one role: placement (fresh or migration-aware), balance, migration."""
    role = alloc.role
    devices = alloc.instances[0]
    routed, shared = _split(role, devices)
    layout = _layout(arch, role, routed, _hierarchical(devices))
    placement, migration = _placement(loads, layout, previous, arch)
    per_layer = imbalance(loads, placement, layout)
    slots = tuple(tuple(d.path for d in _split(role, inst)[0] for _ in range(role.routed_slots))
                  for inst in alloc.instances)
    shared_paths = [d.path for d in shared] if shared else \
        ([d.path for d in devices] if role.shared_slots else [])
    expert_placement = ExpertPlacement(
        num_logical=arch.routed_experts,
        num_physical=layout.num_dies * layout.slots_per_die,
        slots_per_device=role.routed_slots,
        moe_layers=tuple(arch.moe_layers),
        phy2log=tuple(tuple(r) for r in placement.phy2log.tolist()),
        logcnt=tuple(tuple(r) for r in placement.logcnt.tolist()),
        slot_device=slots[0],
        instance_slot_devices=slots,
        shared_devices=tuple(shared_paths),
    )
    balance = Balance(
        max_over_mean_per_layer=tuple(float(x) for x in per_layer),
        max_over_mean=float(per_layer.max()),
        mean_max_over_mean=float(per_layer.mean()),
        lower_bound_max_over_mean=_bound_ratio(loads, layout),
    )
    return PlacedRole(expert_placement, balance, migration)


def role_memory(arch: ModelArch, role: RoleSpec, capacity: float,
                sink: DiagnosticSink) -> Memory:
    """The memory budget of a device of ``role`` (at the batch it serves); an overflow is
    reported to ``sink`` (E023) at the attribute behind its largest term."""
    memory = memory_budget(arch, role, capacity)
    if memory["free"] < 0:
        _report_memory(role, memory, sink)
    parts = OtherWeights(**{k: float(v) for k, v in non_expert_params(arch).items()})
    return Memory(**{k: float(v) for k, v in memory.items()}, other_weights_by_part=parts)


def _bound_ratio(loads: np.ndarray, layout: SlotLayout) -> float:
    """A proven lower bound on the worst layer's max/mean die load.

    Per layer the bound is max(mean die load, smallest possible largest replica).  The
    greedy replica rule attains the second exactly, so it finds the layer where the bound is
    highest; that layer's bound is then certified with the MILP of :func:`lower_bound`
    (one HiGHS solve per role instead of one per layer).
    """
    slots = layout.num_dies * layout.slots_per_die
    counts = greedy_counts(loads, np.full(loads.shape[0], slots), cap=layout.num_dies)
    mean = loads.sum(axis=1) / layout.num_dies
    worst = int(np.argmax((loads / counts).max(axis=1) / mean))
    return float(lower_bound(loads[worst], layout) / mean[worst])


def _placement(loads: np.ndarray, layout: SlotLayout, previous: ExpertPlacement | None,
               arch: ModelArch) -> tuple[Placement, Migration | None]:
    fresh = place_experts(loads, layout)
    if previous is None:
        return fresh, None
    prev = np.asarray(previous.phy2log, dtype=np.int64)
    placement = replan_experts(loads, layout, prev)
    moved = moved_slots(prev, placement.phy2log)
    scratch = moved_slots(prev, fresh.phy2log)
    return placement, Migration(
        moved_experts=int(moved),
        moved_bytes=int(moved * arch.expert_bytes),
        from_scratch_moved_experts=int(scratch),
        from_scratch_max_over_mean=float(imbalance(loads, fresh, layout).max()),
    )


#: The role attributes that drive each memory term, most specific first: an overflow is
#: reported at the first one the deployment sets.
_TERM_CAUSE: dict[str, tuple[str, ...]] = {
    "expert_weights": ("routed_slots",),
    "kv_cache": ("batch_per_npu", "tokens_per_npu", "sequences_per_device", "context_len"),
    "dispatch_buffer": ("batch_per_npu", "batch_per_device"),
    "combine_buffer": ("batch_per_npu", "batch_per_device"),
    "reserve": ("hbm_reserve",),
    "other_weights": ("npus",),
}


def _cause(role: RoleSpec, term: str) -> str:
    declared = dict(role.spans)
    return next((a for a in _TERM_CAUSE[term] if a in declared), _TERM_CAUSE[term][-1])


def _report_memory(role: RoleSpec, memory: Mapping[str, float], sink: DiagnosticSink) -> None:
    terms = {k: v for k, v in memory.items() if k in _TERM_CAUSE and v}
    parts = ", ".join(f"{k.replace('_', ' ')} {v / 1e9:.2f} GB" for k, v in terms.items())
    largest = max(terms, key=lambda k: terms[k])
    sink.error("E023", f"{role.name}: a device needs {memory['total'] / 1e9:.2f} GB but has "
               f"{memory['capacity'] / 1e9:.2f} GB ({-memory['free'] / 1e9:.2f} GB over; "
               f"{parts}; the largest term is the {largest.replace('_', ' ')})",
               role.span_of(_cause(role, largest)))


def deployment_summary(dep: DeploymentSpec) -> ModelSummary:
    """The model facts a plan reader needs."""
    a = dep.model
    return ModelSummary(name=a.name, layers=a.layers, moe_layers=tuple(a.moe_layers),
                        routed_experts=a.routed_experts, shared_experts=a.shared_experts,
                        top_k=a.top_k, expert_groups=a.expert_groups,
                        expert_bytes=int(a.expert_bytes))
