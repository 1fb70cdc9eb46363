"""Stage 4, plan: compiled topology + deployment -> plan document (schema 1.2).

Entry point: :func:`plan_deployment`.  It reads the ``model`` and ``deployment``
declarations, allocates the topology's devices to the roles, places every expert of every MoE
layer (or re-plans from a previous plan, moving few expert weights), checks memory, and
returns a :class:`~supernode_dsl.plan.document.PlanDocument` whose ``to_json()`` validates
against ``plan.schema.json`` (:func:`validate_plan` checks that and every invariant the
schema cannot state).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from supernode_dsl.contracts import check_instance, check_text, describe
from supernode_dsl.diagnostics import ArgumentError, CmxError, Diagnostic, DiagnosticSink
from supernode_dsl.elaborate import Model, Spec
from supernode_dsl.graph.analysis import planes_fixed
from supernode_dsl.graph.gcpause import gc_paused
from supernode_dsl.plan.build import PlacedRole, deployment_summary, role_memory, role_plan
from supernode_dsl.plan.devices import Device, RoleAllocation, allocate, device_table, ep_unit
from supernode_dsl.plan.document import (
    SCHEMA_ID,
    SCHEMA_VERSION,
    DeviceRow,
    PlanDocument,
    Source,
)
from supernode_dsl.plan.document.codec import dump, load
from supernode_dsl.plan.document.fingerprint import plan_fingerprint
from supernode_dsl.plan.document.role import CalibrationUse, ExpertPlacement, RolePlan
from supernode_dsl.plan.loads import check_loads
from supernode_dsl.plan.serving.calibrate import (
    Calibration,
    Coverage,
    apply_fitted,
    coverage,
    read_calibration,
    relative_band,
)
from supernode_dsl.plan.serving.estimate import RoleContext
from supernode_dsl.plan.serving.hardware import DeviceFacts, device_facts
from supernode_dsl.plan.serving.ops import distinct_devices
from supernode_dsl.plan.serving.params import Workload, read_workload
from supernode_dsl.plan.serving.paths import instance_paths
from supernode_dsl.plan.serving.plan import serve_role
from supernode_dsl.plan.serving.roles import pool_cpus, pool_route, serving_block
from supernode_dsl.plan.spec import DeploymentSpec, read_deployment
from supernode_dsl.plan.validate import plan_schema, validate_plan

__all__ = ["SCHEMA_ID", "PlanDocument", "PlanRequest", "deployment_spec", "loads_shape",
           "plan_deployment", "plan_schema", "role_contexts", "validate_plan"]


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: which deployment, with which loads, from which previous plan.

    ``loads`` is [MoE layers x routed experts], an array (or nested lists) of integers or
    floats in ``[0, MAX_LOAD]`` with some load in every layer (None: equally loaded
    experts);
    ``previous`` is a plan of the same deployment for migration-aware re-planning (the
    caller checks that it was made for this file: see
    :func:`~supernode_dsl.plan.document.fingerprint.check_plan_for`);
    ``source`` fills the plan's ``source`` block (``file``, ``defines``, ``expert_loads``,
    ``previous``: the file names of the inputs);
    ``perfect_balance`` is whether the serving estimate assumes equally loaded devices: None
    means the deployment's ``balance.perfect`` without ``loads``, and False with them (given
    loads are used unless the caller says otherwise).
    """

    deployment: str | None = None
    loads: np.ndarray | Sequence[Sequence[float]] | None = None
    previous: PlanDocument | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    perfect_balance: bool | None = None


def loads_shape(model: Model, deployment: str | None = None) -> tuple[int, int]:
    """(MoE layers, routed experts) of the model of ``deployment`` (the file's only one when
    None): the shape of its expert loads.  Raises CmxError like :func:`plan_deployment`."""
    dep, _ = deployment_spec(model, deployment)
    return len(dep.model.moe_layers), dep.model.routed_experts


def _choose(model: Model, wanted: str | None) -> tuple[Spec, dict[str, Spec]]:
    models = {s.name: s for s in model.specs if s.category == "model"}
    deployments = [s for s in model.specs if s.category == "deployment"]
    names = ", ".join(s.name for s in deployments) or "none"
    if wanted is not None:
        hit = next((s for s in deployments if s.name == wanted), None)
        if hit is None:
            raise CmxError([Diagnostic("E025", f"no deployment '{wanted}' (declared: {names})")])
        return hit, models
    if len(deployments) != 1:
        why = "declares no deployment" if not deployments else \
            f"declares several deployments ({names}); choose one with --deployment"
        raise CmxError([Diagnostic("E025", f"the file {why}")])
    return deployments[0], models


def _devices(table: list[list[Device]],
             allocations: list[RoleAllocation]) -> tuple[DeviceRow, ...]:
    owner: dict[str, tuple[str | None, int | None, int | None]] = {}
    for alloc in allocations:
        for i, inst in enumerate(alloc.instances):
            for position, d in enumerate(inst):
                owner[d.path] = (alloc.role.name, i, position)
    rows = []
    for acc in table:
        for d in acc:
            role_name, number, rank = owner.get(d.path, (None, None, None))
            rows.append(DeviceRow(d.path, d.npu, d.node, d.rack, role_name, number, rank))
    return tuple(rows)


def deployment_spec(model: Model, name: str | None = None
                    ) -> tuple[DeploymentSpec, Workload]:
    """The deployment ``name`` of ``model`` and its serving parameters, as the planner reads
    them (the only deployment when ``name`` is None).  Raises
    :class:`~supernode_dsl.diagnostics.CmxError` (E025 and the deployment's own errors)."""
    dep, workload, _ = _read_spec(model, name, calibrated=False)
    return dep, workload


def _read_spec(model: Model, name: str | None, calibrated: bool
               ) -> tuple[DeploymentSpec, Workload, Calibration | None]:
    """The deployment, its serving parameters and (when ``calibrated``) the calibration it
    names, with every error of the three reported together."""
    spec, models = _choose(model, name)
    sink = DiagnosticSink()
    dep = read_deployment(spec, models, sink)
    workload = read_workload(spec, sink)
    calibration = _calibration(model, spec, sink) if calibrated else None
    sink.raise_if_errors()
    if dep is None or workload is None:  # read_* return None only after an error
        raise RuntimeError("no deployment and no error")
    return dep, workload, calibration


def _loads(dep: DeploymentSpec, req: PlanRequest) -> np.ndarray:
    arch = dep.model
    shape = (len(arch.moe_layers), arch.routed_experts)
    if req.loads is None:
        return np.ones(shape)
    name = req.source.get("expert_loads")
    return check_loads(req.loads, name if isinstance(name, str) else None, shape)


def _check_request(model: Any, g: Any, request: Any) -> PlanRequest:
    """The request, after checking the types of ``plan_deployment``'s arguments."""
    where = "plan_deployment"
    check_instance(model, Model, where, "model")
    check_instance(g, nx.Graph, where, "graph")
    req = PlanRequest() if request is None else \
        check_instance(request, PlanRequest, where, "request")
    if req.deployment is not None:
        check_text(req.deployment, where, "request.deployment")
    if req.previous is not None:
        check_instance(req.previous, PlanDocument, where, "request.previous")
    if req.perfect_balance is not None and not isinstance(req.perfect_balance, bool):
        raise ArgumentError(f"{where}: request.perfect_balance must be True, False or None, "
                            f"not {describe(req.perfect_balance)}")
    if not isinstance(req.source, Mapping) or not set(req.source) <= _SOURCE_KEYS:
        raise ArgumentError(f"{where}: request.source must be a mapping with keys among "
                            f"{', '.join(sorted(_SOURCE_KEYS))}, not {describe(req.source)}")
    return req


_SOURCE_KEYS = frozenset({"file", "defines", "expert_loads", "previous"})


def _previous_role(previous: PlanDocument | None, role: str,
                   shape: tuple[int, int]) -> ExpertPlacement | None:
    if previous is None:
        return None
    entry = previous.roles.get(role)
    if entry is None:
        return None
    placement = entry.expert_placement
    got = (len(placement.phy2log), placement.num_physical)
    if got != shape:
        raise CmxError([Diagnostic("E024", f"the previous plan's {role} placement is "
                                   f"{list(got)}, this deployment's {list(shape)}")])
    return placement


def plan_deployment(model: Model, g: nx.Graph, request: PlanRequest | None = None
                    ) -> PlanDocument:
    """Plan the deployment of ``model`` on its compiled graph ``g``.

    The document holds its values as ``to_json()`` writes them (rounded), so a plan made
    here equals the same plan read back from its file.  Raises
    :class:`~supernode_dsl.diagnostics.CmxError`: E025 (no or ambiguous deployment), E022
    (roles do not fit the topology), E021 (loads of the wrong shape), E023 (a device's
    memory is exceeded, with the terms and the overflow), E024 (a previous plan whose
    placement has another shape); and :class:`~supernode_dsl.diagnostics.ArgumentError`
    (E028) when ``model`` is not a ``Model``, ``g`` not a ``networkx.Graph``, ``request``
    not a :class:`PlanRequest` (or None) or one of its fields of the wrong type.  Loads
    pass :func:`~supernode_dsl.plan.loads.check_loads`, the check ``cmx plan`` applies to
    a loads file (E021).
    """
    req = _check_request(model, g, request)
    # the planner reads g's planes for many routes and never changes g; it allocates many
    # small objects and no reference cycles, so the cyclic collector is paused
    with planes_fixed(g), gc_paused():
        return _plan(model, g, req)


def _plan(model: Model, g: nx.Graph, req: PlanRequest) -> PlanDocument:
    """:func:`plan_deployment` on checked arguments."""
    dep, workload, calibration = _read_spec(model, req.deployment, calibrated=True)
    sink = DiagnosticSink()
    perfect = req.perfect_balance if req.perfect_balance is not None else \
        (workload.perfect_balance and req.loads is None)
    workload = dataclasses.replace(workload, perfect_balance=perfect)
    table = device_table(g, dep.nodes_per_rack, ep_unit(g, dep))
    allocations = allocate(dep, table, sink)
    sink.raise_if_errors()
    loads = _loads(dep, req)
    roles: dict[str, RolePlan] = {}
    contexts: dict[str, RoleContext] = {}
    cpus = pool_cpus(g, allocations)
    pool = pool_route(g, workload, allocations, cpus)
    for alloc in allocations:
        shape = (loads.shape[0], alloc.role.physical_slots)
        prev = _previous_role(req.previous, alloc.role.name, shape)
        placed = role_plan(dep.model, alloc, loads, prev)
        imbalance = np.asarray(placed.balance.max_over_mean_per_layer, dtype=float)
        ctx = _context(g, dep, workload, alloc, imbalance, sink, calibration)
        if ctx is not None and alloc.role.name == "prefill":
            ctx = dataclasses.replace(ctx, pool=pool)
        if ctx is not None:
            roles[alloc.role.name] = _serve(ctx, alloc, placed, sink)
            contexts[alloc.role.name] = ctx
    sink.raise_if_errors()
    serving = serving_block(g, workload, allocations, roles, contexts,
                            dep.model.kv_bytes_per_token_layer * dep.model.layers, len(table),
                            cpus)
    doc = PlanDocument(
        schema_id=SCHEMA_ID,
        schema_version=SCHEMA_VERSION,
        generator="supernode-dsl",
        source=_source(req.source, dep.name, model.root_name),
        model=deployment_summary(dep),
        devices=_devices(table, allocations),
        roles=roles,
        serving=serving,
        fingerprint=plan_fingerprint(model, g, dep.name),
    )
    return _as_written(doc)


def _as_written(doc: PlanDocument) -> PlanDocument:
    """``doc`` with its values as its JSON holds them (rounded by ``to_json``)."""
    return load(PlanDocument, dump(doc))


def _source(given: Mapping[str, Any], deployment: str, topology: str) -> Source:
    src = {"file": "", "defines": {}, "expert_loads": None, "previous": None, **given}
    return Source(file=src["file"], defines=dict(src["defines"]), deployment=deployment,
                  topology=topology, expert_loads=src["expert_loads"],
                  previous=src["previous"])


def _context(g: nx.Graph, dep: DeploymentSpec, workload: Workload, alloc: RoleAllocation,
             imbalance: np.ndarray, sink: DiagnosticSink,
             calibration: Calibration | None = None) -> RoleContext | None:
    """What the cost model needs of a role, with ``calibration``'s fitted values applied
    to its devices when they are of the calibrated part; None (and E022) if its devices
    cannot talk."""
    devices = alloc.instances[0]
    facts = device_facts(g, devices[0].path)
    use: CalibrationUse | None = None
    cover: Coverage | None = None
    if calibration is not None and calibration.fitted and calibration.part == facts.type_name:
        facts = apply_fitted(facts, dict(calibration.fitted))
        use = CalibrationUse(name=calibration.name, band=relative_band(calibration),
                             fitted=dict(calibration.fitted))
        cover = coverage(calibration, dep.name)
    try:
        paths = instance_paths(g, devices, facts,
                               lambda n: distinct_devices(dep.model, n, 1))
    except ValueError as err:
        sink.error("E022", f"{alloc.role.name}: {err}", alloc.role.span)
        return None
    per_npu = sum(1 for d in devices if d.npu == devices[0].npu)
    if not _comm_cores_fit(workload, alloc, facts, sink):
        return None
    return RoleContext(dep.model, alloc.role, workload, facts, paths, imbalance, per_npu, use,
                       cover)


def _comm_cores_fit(workload: Workload, alloc: RoleAllocation, facts: DeviceFacts,
                    sink: DiagnosticSink) -> bool:
    """Whether ``<role>.comm_cores`` (if declared) leaves the computation at least one core
    of the device's first family, on a part whose microbatches overlap as
    ``comm_overlap`` (a ``core_split`` part splits its cores between its streams by the
    planner's search); E022 at the attribute if not."""
    role = alloc.role.name
    comm = workload.comm_cores(role)
    if not comm:
        return True
    family, total = facts.matrix_cores
    why = ""
    if facts.overlap_mode != "comm_overlap":
        why = (f"applies to parts that overlap microbatches as comm_overlap; "
               f"{facts.type_name} declares '{facts.overlap}'")
    elif not family:
        why = f"needs the cores of {facts.type_name}, which declares no cores.*"
    elif comm >= total:
        why = f"is {comm}: {facts.type_name} has {total} {family} core(s), and the " \
            "computation needs one"
    if why:
        sink.error("E022", f"'{role}.comm_cores' {why}", alloc.role.span_of("comm_cores"))
    return not why


def _calibration(model: Model, spec: Spec, sink: DiagnosticSink) -> Calibration | None:
    """The calibration the deployment ``spec`` names (``calibration = "..."``); E025 if
    no such declaration exists."""
    name = spec.get("calibration")
    if not isinstance(name, str):
        return None
    found = next((s for s in model.specs if s.category == "calibration" and s.name == name),
                 None)
    if found is None:
        sink.error("E025", f"no calibration '{name}' is declared", spec.span_of("calibration"))
        return None
    return read_calibration(found, sink)


def role_contexts(model: Model, g: nx.Graph, deployment: str | None = None
                  ) -> dict[str, RoleContext]:
    """The cost model's view of every role of the deployment, with equally loaded experts
    and no calibration applied (what ``cmx calibrate`` fits against).  Raises CmxError as
    :func:`plan_deployment`."""
    dep, workload = deployment_spec(model, deployment)
    sink = DiagnosticSink()
    table = device_table(g, dep.nodes_per_rack, ep_unit(g, dep))
    allocations = allocate(dep, table, sink)
    sink.raise_if_errors()
    out = {}
    for alloc in allocations:
        ctx = _context(g, dep, workload, alloc, np.ones(1), sink)
        if ctx is not None:
            out[alloc.role.name] = ctx
    sink.raise_if_errors()
    return out


def _serve(ctx: RoleContext, alloc: RoleAllocation, placed: PlacedRole,
           sink: DiagnosticSink) -> RolePlan:
    """The role's plan: its placement and the serving blocks (memory at the served batch,
    KV, pipeline, estimate)."""
    capacity = min(d.hbm for d in alloc.instances[0])
    served = serve_role(ctx, capacity)
    role = alloc.role
    return RolePlan(
        instances=role.instances, npus_per_instance=role.npus, ep=role.ep,
        instance_devices=tuple(tuple(d.path for d in inst) for inst in alloc.instances),
        expert_placement=placed.placement, balance=placed.balance,
        memory=role_memory(ctx.arch, served.role, capacity, sink),
        migration=placed.migration, kv=served.kv, pipeline=served.pipeline,
        estimate=served.estimate)
