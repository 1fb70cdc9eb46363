"""The device table: every expert-parallel device of the topology with its NPU, node and rack,
and the allocation of devices to the roles and instances of a deployment.

An EP device is at the deployment's EP unit (:func:`ep_unit`): a die of an accelerator built
of dies (Ascend 910C: 2 per NPU), or the accelerator itself (H800; a B200 package, whose
NVLink attaches to the package, not its dies).  Its facts, the HBM here, follow the one rule
of :mod:`supernode_dsl.graph.devices`.  Devices are taken in instance order; each role
instance takes ``npus`` consecutive accelerators, roles in the order the deployment first
names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.diagnostics import CmxError, Diagnostic, DiagnosticSink
from supernode_dsl.graph.devices import attachments, device_attrs, has_dies, package_dies
from supernode_dsl.graph.instances import ancestor
from supernode_dsl.plan.spec import DeploymentSpec, RoleSpec

__all__ = ["Device", "RoleAllocation", "allocate", "device_table", "ep_unit"]


@dataclass(frozen=True)
class Device:
    """One EP device: graph path, its accelerator, node and rack, and its HBM in bytes."""

    path: str
    npu: str
    node: str
    node_index: int
    rack: int | None
    hbm: float


@dataclass(frozen=True)
class RoleAllocation:
    """The devices of each instance of a role, in EP rank order."""

    role: RoleSpec
    instances: tuple[tuple[Device, ...], ...]


def ep_unit(g: nx.Graph, deployment: DeploymentSpec) -> str:
    """The deployment's EP unit: its ``ep_unit``, else the level the scale-up plane attaches
    to (when no plane leaves a package: the dies if the accelerators have them).

    E022 at ``ep_unit`` when it contradicts the topology: dies asked for where no
    accelerator has any, or a level that no plane links to another package (its devices'
    tokens could reach no other device).
    """
    ranked = attachments(g)
    wanted = deployment.ep_unit
    if not wanted:
        if ranked:
            return ranked[0].level
        return "die" if has_dies(g) else "accelerator"
    why = ""
    if wanted == "die" and not has_dies(g):
        why = "no accelerator of the topology has dies"
    elif ranked and wanted not in {a.level for a in ranked}:
        other = "accelerator" if wanted == "die" else "die"
        why = (f"no plane links a{'n' if wanted == 'accelerator' else ''} {wanted} to another "
               f"package: the scale-up plane '{ranked[0].plane}' attaches to the {other}s "
               f"(use ep_unit = \"{other}\", or leave it out)")
    if why:
        raise CmxError([Diagnostic("E022", f"ep_unit = \"{wanted}\", but {why}",
                                   deployment.ep_unit_span or deployment.span)])
    return wanted


def device_table(g: nx.Graph, nodes_per_rack: int = 0,
                 unit: str = "die") -> list[list[Device]]:
    """EP devices grouped per accelerator, accelerators in instance order; with ``unit =
    "die"`` the dies of an accelerator that has them, else the accelerator itself."""
    dies = package_dies(g)
    node_order: dict[str, int] = {}
    out: list[list[Device]] = []
    for acc, own in dies.items():
        node = ancestor(g, acc, "node") or acc
        node_index = node_order.setdefault(node, len(node_order))
        rack_path = ancestor(g, acc, "rack")
        rack = (node_index // nodes_per_rack if nodes_per_rack else None) if rack_path is None \
            else g.nodes[rack_path][S.NODE_INDEX]
        units = own if unit == "die" and own else (acc,)
        out.append([Device(u, acc, node, node_index, rack,
                           float(device_attrs(g, u, dies).get("hbm", 0.0))) for u in units])
    return out


def allocate(deployment: DeploymentSpec, table: list[list[Device]],
             sink: DiagnosticSink) -> list[RoleAllocation]:
    """Give each role instance its accelerators; report shortages and EP mismatches (E022)."""
    need = sum(r.instances * r.npus for r in deployment.roles)
    if need > len(table):
        sink.error("E022", f"the deployment needs {need} accelerators but the topology has "
                   f"{len(table)}", deployment.span)
        return []
    cursor = 0
    out: list[RoleAllocation] = []
    for role in deployment.roles:
        instances = []
        for _ in range(role.instances):
            devices = tuple(d for acc in table[cursor:cursor + role.npus] for d in acc)
            cursor += role.npus
            instances.append(devices)
        if instances and len(instances[0]) != role.ep:
            sink.error("E022", f"{role.name}: {role.npus} accelerators have "
                       f"{len(instances[0])} EP devices, but {role.name}.ep = {role.ep}",
                       role.span)
            continue
        out.append(RoleAllocation(role, tuple(instances)))
    return out
