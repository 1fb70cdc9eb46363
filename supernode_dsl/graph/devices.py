"""Device facts: what a die inherits from its accelerator package and a package from its dies,
and the scale-up plane that decides which of the two levels is a machine's device.

**Devices.** A device is an ``accelerator`` or a ``die``; the dies of an accelerator are its
children of category ``die``, in instance order.  A declared value always wins; what a device
does not declare it may inherit, by one rule for every consumer (the planner's device table
and cost model, the simulator emitters):

* *Extensive* facts add up over the dies of a package: ``hbm``, ``hbm_bw``, ``sram``,
  ``sram_bw``, ``tdp`` and the families ``compute.*`` and ``cores.*``.  A die that does not
  declare one takes its accelerator's value divided by the accelerator's number of dies
  (``cores.*`` rounded down to a whole core); an accelerator that does not declare one takes
  the sum of its dies' values when every one of its dies declares it.
* *Intensive* facts hold for every part of a package: ``clock``, ``overlap`` and the families
  ``efficiency.*`` and ``overhead.*``.  A die that does not declare one takes its
  accelerator's unchanged; an accelerator takes its dies' when they all declare the same
  value.
* Every other attribute (``type``, ``x_*``, ``ports``, ...) is the node's own.

Inheritance goes one level, package to die or dies to package, from the declared values
only, so the rule has no order to depend on.

**Scale-up plane.** A plane's links *leave a package* when one end is an accelerator or lies
inside one and the other end lies outside it.  The planes whose links leave a package are
ranked by their bandwidth per accelerator (the one-way bandwidth of those links, counted at
each package end, summed and divided by the number of accelerators); the first (ties: the
declared plane order) is the **scale-up plane**.  A plane's links are counted apart by the
level their package end is at, the die (a die or inside one) or the accelerator (the package
itself), and a plane reaching both levels ranks once per level; the scale-up plane attaches
at the level of its first entry.  Planes whose links stay inside a package (die-to-die
links) never qualify.  CloudMatrix384: UB (196 GB/s per die) attaches to
the dies; GB200 NVL72: NVLink (900 GB/s) attaches to the B200 package; H800: NVLink attaches
to the GPU, which has no dies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import networkx as nx

from supernode_dsl import schema as S

__all__ = [
    "EXTENSIVE_FACTS",
    "INTENSIVE_FACTS",
    "Attachment",
    "attachments",
    "device_attrs",
    "has_dies",
    "package_dies",
    "scale_up_plane",
]

#: Facts that add up over the dies of a package (a trailing ``.`` names a family).
EXTENSIVE_FACTS: Final = ("hbm", "hbm_bw", "sram", "sram_bw", "tdp", "compute.", "cores.")
#: Facts that hold unchanged for every part of a package.
INTENSIVE_FACTS: Final = ("clock", "overlap", "efficiency.", "overhead.")

_COUNT_FAMILIES: Final = ("cores.",)


def _fact(name: str, facts: tuple[str, ...]) -> bool:
    return any(name == f or (f.endswith(".") and name.startswith(f)) for f in facts)


def package_dies(g: nx.Graph) -> dict[str, tuple[str, ...]]:
    """Every accelerator of ``g`` (in instance order) -> its dies (in instance order)."""
    out: dict[str, list[str]] = {}
    for path, data in g.nodes(data=True):
        cat = data[S.NODE_CATEGORY]
        if cat == "accelerator":
            out.setdefault(path, [])
        elif cat == "die":
            parent = data[S.NODE_PARENT]
            if parent in out:
                out[parent].append(path)
    return {acc: tuple(dies) for acc, dies in out.items()}


def has_dies(g: nx.Graph) -> bool:
    """Whether any accelerator of ``g`` is built of dies."""
    return any(package_dies(g).values())


def _own_facts(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items()
            if _fact(k, EXTENSIVE_FACTS) or _fact(k, INTENSIVE_FACTS)}


def device_attrs(g: nx.Graph, path: str,
                 dies: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """The attributes of device ``path``: its own, plus the facts it inherits by the module's
    rule.  ``dies`` is :func:`package_dies` of ``g``, to pass when asking for many devices."""
    data = g.nodes[path]
    out = dict(data)
    cat = data[S.NODE_CATEGORY]
    if cat not in ("die", "accelerator"):
        return out
    dies = package_dies(g) if dies is None else dies
    parent = data[S.NODE_PARENT]
    if cat == "accelerator":
        inherited = _from_dies([g.nodes[d] for d in dies.get(path, ())])
    elif parent in dies:
        inherited = _from_package(g.nodes[parent], len(dies[parent]))
    else:
        inherited = {}  # a die outside any accelerator
    for key, value in inherited.items():
        out.setdefault(key, value)
    return out


def _from_package(package: Mapping[str, Any], count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in _own_facts(package).items():
        if not _fact(key, EXTENSIVE_FACTS):
            out[key] = value
        elif _fact(key, _COUNT_FAMILIES):
            out[key] = int(value) // count
        else:
            out[key] = float(value) / count
    return out


def _from_dies(dies: list[Mapping[str, Any]]) -> dict[str, Any]:
    if not dies:
        return {}
    own = [_own_facts(d) for d in dies]
    out: dict[str, Any] = {}
    for key in own[0]:
        values = [d[key] for d in own if key in d]
        if len(values) < len(own):
            continue
        if _fact(key, EXTENSIVE_FACTS):
            out[key] = sum(values)
        elif all(v == values[0] for v in values):
            out[key] = values[0]
    return out


@dataclass(frozen=True)
class Attachment:
    """How a plane reaches the accelerators from outside at one level: its bandwidth per
    accelerator (B/s, one direction) on the links whose package end is at ``level`` (``die``:
    a die or inside one; ``accelerator``: the package itself or a part of it outside its
    dies)."""

    plane: str
    level: str
    bandwidth: float


def _package_of(g: nx.Graph) -> dict[str, tuple[str, str]]:
    """Every node inside an accelerator (the accelerator itself included) -> (accelerator,
    the level it is at)."""
    out: dict[str, tuple[str, str]] = {}
    nodes = sorted(g.nodes(data=True), key=lambda nd: nd[1][S.NODE_INDEX])
    for path, data in nodes:  # parents come before their children in instance order
        if data[S.NODE_CATEGORY] == "accelerator":
            out[path] = (path, "accelerator")
        elif data[S.NODE_PARENT] in out:
            acc, level = out[data[S.NODE_PARENT]]
            out[path] = (acc, "die" if data[S.NODE_CATEGORY] == "die" else level)
    return out


def attachments(g: nx.Graph) -> list[Attachment]:
    """Every (plane, level) at which links leave a package, best first: by bandwidth per
    accelerator, ties in the declared plane order, the die before the package (see the
    module docstring)."""
    package = _package_of(g)
    accelerators = sum(1 for p, (acc, _) in package.items() if p == acc)
    total: dict[tuple[str, str], float] = {}
    for u, v, data in g.edges(data=True):
        ends = [package.get(u), package.get(v)]
        if ends[0] is not None and ends[1] is not None and ends[0][0] == ends[1][0]:
            continue  # inside one package
        for end in ends:
            if end is not None:
                key = (data[S.EDGE_PLANE], end[1])
                total[key] = total.get(key, 0.0) + float(data[S.EDGE_BANDWIDTH])
    order = {p: i for i, p in enumerate(g.graph.get(S.GRAPH_PLANES, {}) or {})}
    ranked = sorted(total, key=lambda k: (-total[k], order.get(k[0], len(order)), k[0],
                                          k[1] != "die"))
    return [Attachment(p, level, total[(p, level)] / accelerators) for p, level in ranked]


def scale_up_plane(g: nx.Graph) -> Attachment | None:
    """The scale-up plane of ``g`` and the level it attaches to; None if no plane leaves a
    package."""
    ranked = attachments(g)
    return ranked[0] if ranked else None
