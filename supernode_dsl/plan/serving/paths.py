"""The communication routes of an instance, found on the compiled graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import networkx as nx

from supernode_dsl.plan.devices import Device
from supernode_dsl.plan.serving.hardware import DeviceFacts, route
from supernode_dsl.plan.serving.ops import COLLECTIVE_KERNELS, CommPaths

__all__ = ["instance_paths", "relays", "with_collective_facts"]


def relays(source: Device, source_group: Sequence[Device], target: Device,
           target_group: Sequence[Device]) -> tuple[str, ...]:
    """The devices of ``target_group`` on ``target``'s node, the one at ``source``'s position
    among its own node's devices of ``source_group`` first: a rail-optimised fabric joins
    equal positions of different nodes."""
    here = [d for d in source_group if d.node == source.node]
    there = [d for d in target_group if d.node == target.node]
    pos = here.index(source)
    order = there[pos:] + there[:pos] if pos < len(there) else there
    return tuple(d.path for d in order)


def instance_paths(g: nx.Graph, devices: Sequence[Device], facts: DeviceFacts,
                   distinct: Callable[[int], float] | None = None) -> CommPaths:
    """Routes from the instance's first device to the others, by class (same accelerator,
    same node, another node), each class weighted by its share of the other devices: expert
    traffic is spread evenly over the instance's devices.  Raises ValueError naming a device
    no plane reaches.

    When the part forwards inside nodes (``a2a_forward = "node"``), ``distinct(n)`` gives
    the expected distinct units among ``n`` equal ones that a token's experts land on; the
    share of bytes crossing to other nodes is then the distinct remote nodes over the
    distinct remote devices."""
    source = devices[0]
    classes: dict[str, list[Device]] = {}
    for d in devices[1:]:
        key = "accelerator" if d.npu == source.npu else "node" if d.node == source.node \
            else "remote"
        classes.setdefault(key, []).append(d)
    total = len(devices) - 1
    routes = []
    for members in classes.values():
        target = members[0]
        r = route(g, source.path, target.path, facts,
                  relays(source, devices, target, devices))
        if r is None:
            raise ValueError(f"no plane joins {source.path} and {target.path}")
        routes.append((r, len(members) / total))
    keys = list(classes)
    forward = None
    if facts.forward == "node" and distinct is not None and "remote" in keys \
            and "node" in keys:
        nodes = len({d.node for d in devices})
        per_node = len(devices) / nodes
        remote_devices = distinct(len(devices)) * (len(devices) - per_node) / len(devices)
        remote_nodes = distinct(nodes) * (nodes - 1) / nodes
        forward = (keys.index("remote"), keys.index("node"),
                   min(1.0, remote_nodes / remote_devices) if remote_devices else 1.0)
    return CommPaths(tuple(routes), _collective_efficiency(facts, len(devices)),
                     _collective(facts.overhead, False), forward)


def _collective_efficiency(facts: DeviceFacts, ep: int) -> tuple[tuple[str, float], ...]:
    """The part's measured collective efficiencies: its scalars, then its tables by EP
    size read at ``ep`` (a table replaces a scalar of the same name)."""
    values = dict(_collective(facts.efficiency, True))
    tables = dict.fromkeys(key.rsplit(".", 1)[0] for key in facts.efficiency if "." in key)
    for name, _ in _collective(dict.fromkeys(tables, 0.0), True):
        if facts.curve(name):
            values[name] = facts.eff_at(name, ep)
    return tuple(values.items())


def with_collective_facts(paths: CommPaths, facts: DeviceFacts, ep: int) -> CommPaths:
    """``paths`` (of an instance of ``ep`` devices) with its collective kernels' measured
    figures taken from ``facts`` again (after a calibration has set some of them)."""
    return replace(paths, collective_efficiency=_collective_efficiency(facts, ep),
                   collective_overhead=_collective(facts.overhead, False))


def _collective(values: Mapping[str, float], per_plane: bool
                ) -> tuple[tuple[str, float], ...]:
    """The entries of ``values`` that name a collective kernel (``dispatch``,
    ``combine_ll``; with ``per_plane``, behind a plane name: ``ub_dispatch``)."""
    return tuple((k, v) for k, v in values.items()
                 if any(k == n or (per_plane and k.endswith("_" + n))
                        for n in COLLECTIVE_KERNELS))
