"""The device table: every expert-parallel device of the topology with its NPU, node and rack,
and the allocation of devices to the roles and instances of a deployment.

An EP device is a die when the accelerator is built of dies (Ascend 910C: 2 per NPU), else
the accelerator itself (H800).  Devices are taken in instance order; each role instance takes
``npus`` consecutive accelerators, roles in the order the deployment first names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.diagnostics import DiagnosticSink
from supernode_dsl.plan.spec import DeploymentSpec, RoleSpec

__all__ = ["Device", "RoleAllocation", "allocate", "ancestor", "device_table"]


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


def ancestor(g: nx.Graph, path: str, category: str) -> str | None:
    """The nearest enclosing instance of ``path`` in ``category``; None if there is none."""
    node = g.nodes[path][S.NODE_PARENT]
    while node:
        data = g.nodes[node]
        if data[S.NODE_CATEGORY] == category:
            return str(node)
        node = data[S.NODE_PARENT]
    return None


def device_table(g: nx.Graph, nodes_per_rack: int = 0) -> list[list[Device]]:
    """EP devices grouped per accelerator, accelerators in instance order."""
    dies: dict[str, list[str]] = {}
    accelerators: list[str] = []
    for path, data in g.nodes(data=True):
        cat = data[S.NODE_CATEGORY]
        if cat == "accelerator":
            accelerators.append(path)
        elif cat == "die":
            dies.setdefault(data[S.NODE_PARENT], []).append(path)
    node_order: dict[str, int] = {}
    out: list[list[Device]] = []
    for acc in accelerators:
        node = ancestor(g, acc, "node") or acc
        node_index = node_order.setdefault(node, len(node_order))
        rack_path = ancestor(g, acc, "rack")
        rack = (node_index // nodes_per_rack if nodes_per_rack else None) if rack_path is None \
            else g.nodes[rack_path][S.NODE_INDEX]
        units = dies.get(acc) or [acc]
        share = float(g.nodes[acc].get("hbm", 0.0)) / len(units)
        out.append([Device(u, acc, node, node_index, rack,
                           float(g.nodes[u].get("hbm", share)) or share) for u in units])
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
