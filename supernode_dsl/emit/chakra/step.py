"""One serving step of a plan's role as per-rank Chakra execution traces.

Entry point: :func:`step_workload`.  Every EP device of every instance of the role is one
rank (one ASTRA-sim NPU); its trace replays the role's planned microbatch pipeline
(``pipeline.schedule`` of its device kind: shared-expert devices use the second schedule
when the plan has two) event by event:

* a compute event becomes a compute node lasting the planned ``dur_us`` (whole
  microseconds, ASTRA-sim's unit: each node gets ``round(end) - round(start)`` so the
  rounding does not add up along a stream).  The first compute stream runs on ASTRA-sim's
  GPU resource, the others on its CPU-op resource, which ASTRA-sim runs beside it
  (``HardwareResource``: one op in flight per resource), as the plan's streams run
  side by side on their share of the cores;
* a communication event (``dispatch``, ``combine``, and prefill's attention collectives
  ``all_gather`` / ``all_to_all``) becomes a collective: dispatch and combine an
  all-to-all in the rank's instance group, the attention collectives in its attention TP
  group (``pd_mapping.prefill_tp`` consecutive ranks).  Its size is the larger of the bytes
  the rank sends and receives, the measure the estimate charges
  (:meth:`~supernode_dsl.plan.serving.ops.CommPaths.seconds`), counted by the estimate's
  own functions (:func:`~supernode_dsl.plan.serving.ops.moe_messages`, the attention
  kind's ``tp_messages``) at each rank's load: its routed slots' share of the layer's
  expert load (``expert_loads`` of the plan's source, else equal loads) over the mean, or
  the mean itself where the deployment declares ``balance.perfect`` (as the estimate); the
  largest of the group's ranks sizes the collective on all of them (ASTRA-sim needs one
  size per collective: see :func:`_one_size_per_collective`).

Each node depends on the previous event of its microbatch and the previous event of its
stream, so ASTRA-sim runs the plan's order but takes the communication times from its own
network model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from supernode_dsl.contracts import present
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit.base import emit_error
from supernode_dsl.emit.chakra.wire import ALL_GATHER, ALL_TO_ALL, TraceNode
from supernode_dsl.plan.document import PlanDocument
from supernode_dsl.plan.document.role import DeviceSchedule, RolePlan, ScheduleEvent
from supernode_dsl.plan.loads import read_loads
from supernode_dsl.plan.placement import Placement, SlotLayout, die_loads
from supernode_dsl.plan.serving.ops import moe_messages
from supernode_dsl.plan.spec import DeploymentSpec, ModelArch, RoleSpec

__all__ = ["COMM_OPS", "StepWorkload", "step_workload"]

#: The plan's communication events and the Chakra collective each becomes.
COMM_OPS: Mapping[str, int] = {"dispatch": ALL_TO_ALL, "combine": ALL_TO_ALL,
                               "all_gather": ALL_GATHER, "all_to_all": ALL_TO_ALL}
_MOE_COMM = ("dispatch", "combine")


@dataclass(frozen=True)
class StepWorkload:
    """The traces of one step: ``traces[npu]`` the nodes of NPU ``npu`` (empty for NPUs
    outside the role), ``groups`` the communicator groups they name (comm_group.json: key
    -> NPU ids), and ``estimate_us`` the plan's time for the same events (the role's
    ``pipeline.step_us`` when every layer is included)."""

    role: str
    traces: tuple[tuple[TraceNode, ...], ...]
    groups: Mapping[str, tuple[int, ...]]
    estimate_us: float
    layers: int


@dataclass(frozen=True)
class _Rank:
    """What a rank's trace needs: its schedule, its load per MoE layer (over the mean),
    whether it is a shared-expert device, and its groups."""

    schedule: DeviceSchedule
    load: Sequence[float]
    shared: bool
    ep_group: str
    tp_group: str


def step_workload(plan: PlanDocument, dep: DeploymentSpec, role: str,
                  instance_npus: Mapping[int, Sequence[int]], npus: int, layers: int = 0,
                  perfect_balance: bool = False) -> StepWorkload:
    """The workload of one step of ``role``: ``instance_npus[i][rank]`` is the NPU id of
    rank ``rank`` of the role's instance ``i`` (0-based; the instances simulated, in the
    order their groups are numbered), ``npus`` the number of NPUs of the network;
    ``layers`` > 0 keeps only the events of transformer layers ``0..layers-1`` (no MTP
    module, no output head); ``perfect_balance`` (the deployment's ``balance.perfect``, as
    the estimate reads it) gives every rank the mean load.  E026 for a role the plan lacks
    or a plan without estimate."""
    body = plan.roles.get(role)
    if body is None:
        raise emit_error(f"the plan has no role '{role}' (roles: {', '.join(plan.roles)})")
    if body.pipeline is None or body.estimate is None:
        raise emit_error(f"the plan's {role} role has no pipeline or estimate: re-plan it "
                         "with this version of cmx")
    spec = next(r for r in dep.roles if r.name == role)
    keep = _keep(layers)
    mapping = plan.serving.pd_mapping if plan.serving else None
    tp = mapping.prefill_tp if role == "prefill" and mapping else 1
    ranks, groups = _ranks(body, instance_npus, None if perfect_balance else
                           _loads(plan, body), tp)
    tokens = _tokens_per_microbatch(plan, body)
    kept = {s.device_kind: [e for e in s.events if keep(e)] for s in body.pipeline.schedule}
    traces: list[tuple[TraceNode, ...]] = [()] * npus
    for i, ids in instance_npus.items():
        for position, npu in enumerate(ids):
            rank = ranks[(i, position)]
            traces[npu] = _trace(rank, kept[rank.schedule.device_kind], dep.model, spec,
                                 tokens, tp)
    traces = _one_size_per_collective(traces)
    end = max((e.start_us + e.dur_us for s in body.pipeline.schedule for e in s.events
               if keep(e)), default=0.0)
    return StepWorkload(role, tuple(traces), groups, end, layers)


def _one_size_per_collective(traces: list[tuple[TraceNode, ...]]
                             ) -> list[tuple[TraceNode, ...]]:
    """Every rank's collective sized as the group's largest: ASTRA-sim matches the
    messages of a collective by size, and a group whose ranks give different sizes never
    finishes (its ranks print no ``finished`` line).  The busiest rank bounds the
    collective's time, as in the estimate."""
    largest: dict[tuple[str, str], int] = {}
    for nodes in traces:
        for n in nodes:
            if n.is_comm:
                key = (n.group, n.name)
                largest[key] = max(largest.get(key, 0), n.comm_size)
    return [tuple(replace(n, comm_size=largest[(n.group, n.name)]) if n.is_comm else n
                  for n in nodes) for nodes in traces]


def _keep(layers: int) -> Callable[[ScheduleEvent], bool]:
    """Which events a workload of ``layers`` layers keeps (0: all)."""
    if layers <= 0:
        return lambda e: True
    return lambda e: 0 <= e.layer < layers


def _loads(plan: PlanDocument, body: RolePlan) -> np.ndarray:
    """The expert loads the plan was made with ([MoE layers x routed experts])."""
    p = body.expert_placement
    path = plan.source.expert_loads
    if path is None:
        return np.ones((len(p.moe_layers), p.num_logical))
    try:
        return read_loads(Path(path))
    except CmxError as err:
        raise emit_error(f"cannot read the plan's expert loads '{path}': "
                         f"{err.diagnostics[0].message}") from None


def _ranks(body: RolePlan, instance_npus: Mapping[int, Sequence[int]], loads: np.ndarray | None,
           tp: int) -> tuple[dict[tuple[int, int], _Rank], dict[str, tuple[int, ...]]]:
    """Every rank's schedule, load (over the mean; the mean without ``loads``) and groups,
    and the groups (instance groups first, keys from 1 as ASTRA-sim requires, then the
    attention TP groups)."""
    p = body.expert_placement
    schedules = present(body.pipeline, "the role's pipeline").schedule
    shared = set(p.shared_devices) if len(schedules) > 1 else set()
    layout = SlotLayout(p.num_physical // p.slots_per_device, p.slots_per_device,
                        (0,) * (p.num_physical // p.slots_per_device))
    relative = np.ones((len(p.moe_layers), layout.num_dies))
    if loads is not None:
        per_die = die_loads(loads, Placement(np.asarray(p.phy2log), np.asarray(p.logcnt)),
                            layout)
        mean = per_die.mean(axis=1, keepdims=True)
        relative = np.divide(per_die, mean, out=relative, where=mean > 0)
    groups: dict[str, tuple[int, ...]] = {}
    ep_key: dict[int, str] = {}
    for i, ids in instance_npus.items():
        ep_key[i] = str(len(groups) + 1)
        groups[ep_key[i]] = tuple(sorted(ids))
    ranks: dict[tuple[int, int], _Rank] = {}
    for i, ids in instance_npus.items():
        devices = body.instance_devices[i]
        slots = p.instance_slot_devices[i]
        die_of = {slots[k * p.slots_per_device]: k for k in range(layout.num_dies)}
        tp_keys = []
        if tp > 1:
            for start in range(0, len(ids), tp):
                tp_keys.append(str(len(groups) + 1))
                groups[tp_keys[-1]] = tuple(sorted(ids[start:start + tp]))
        for position, dev in enumerate(devices):
            is_shared = dev in shared
            load = relative[:, die_of[dev]] if dev in die_of else np.ones(relative.shape[0])
            ranks[(i, position)] = _Rank(schedules[1] if is_shared else schedules[0],
                                         tuple(float(x) for x in load), is_shared, ep_key[i],
                                         tp_keys[position // tp] if tp_keys else "")
    return ranks, groups


def _tokens_per_microbatch(plan: PlanDocument, body: RolePlan) -> float:
    """The tokens a device attends per microbatch, as the estimate counts them."""
    est = present(body.estimate, "the role's estimate")
    pipe = present(body.pipeline, "the role's pipeline")
    if est.tokens_per_device_per_step is not None:
        return est.tokens_per_device_per_step / pipe.microbatches
    first = body.instance_devices[0]
    npu_of = {d.path: d.npu for d in plan.devices}
    per_npu = sum(1 for d in first if npu_of.get(d) == npu_of.get(first[0]))
    prompts = est.prompts_per_device or 0.0
    tokens = (est.tokens_per_npu or 0) / per_npu - prompts * (est.prefix_reused_tokens or 0)
    return tokens / pipe.microbatches


def _trace(rank: _Rank, events: Sequence[ScheduleEvent], arch: ModelArch, role: RoleSpec,
           tokens: float, tp: int) -> tuple[TraceNode, ...]:
    """The nodes of one rank, in the order the plan starts its events."""
    ordered = sorted(events, key=lambda e: e.start_us)  # stable: the plan's order on ties
    compute = [s for s in dict.fromkeys(e.stream for e in ordered if e.name not in COMM_OPS)]
    last_mb: dict[int, int] = {}
    last_stream: dict[str, int] = {}
    tp_seen: dict[tuple[int, int], int] = {}
    nodes: list[TraceNode] = []
    for e in ordered:
        nid = len(nodes) + 1
        # the step's own ops (layer -1: the head, once per step) wait for every microbatch
        waits = last_mb.values() if e.layer < 0 else (last_mb.get(e.microbatch),)
        deps = tuple(sorted({d for d in (*waits, last_stream.get(e.stream)) if d is not None}))
        if e.name in COMM_OPS:
            if e.name in _MOE_COMM:
                size, group = _moe_bytes(e, rank, arch, role, tokens), rank.ep_group
            else:
                k = tp_seen.get((e.layer, e.microbatch), 0)
                tp_seen[(e.layer, e.microbatch)] = k + 1
                m = arch.attention.tp_messages(tokens, tp)[min(k, 1)]
                size, group = max(m.send, m.recv), rank.tp_group
            nodes.append(TraceNode(nid, f"{e.name}.{k}.L{e.layer}.mb{e.microbatch}"
                                   if e.name not in _MOE_COMM else
                                   f"{e.name}.L{e.layer}.mb{e.microbatch}", deps,
                                   comm_type=COMM_OPS[e.name], comm_size=round(size),
                                   group=group))
        else:
            dur = round(e.start_us + e.dur_us) - round(e.start_us)
            nodes.append(TraceNode(nid, f"{e.name}.L{e.layer}.mb{e.microbatch}", deps,
                                   duration_us=dur, cpu=e.stream != compute[0]))
        last_mb[e.microbatch] = last_stream[e.stream] = nid
    return tuple(nodes)


def _moe_bytes(e: ScheduleEvent, rank: _Rank, arch: ModelArch, role: RoleSpec,
               tokens: float) -> float:
    """Bytes of a dispatch or combine of ``rank``: the larger of what it sends and
    receives, at its own load of the layer (the MTP module: the last MoE layer's)."""
    row = arch.moe_index(min(e.layer, arch.layers - 1))
    load = rank.load[min(max(row, 0), len(rank.load) - 1)]
    m = moe_messages(arch, role.ep, role.routed_devices, role.routed_slots,
                     role.shared_devices, tokens, load)
    recv = m.shared_recv if rank.shared else m.recv
    per_token = arch.dispatch_bytes() if e.name == "dispatch" else arch.combine_bytes()
    return max(m.send, recv) * per_token
