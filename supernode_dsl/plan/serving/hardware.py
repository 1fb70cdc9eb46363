"""What the cost model knows about a device and the paths between devices, read from the
compiled graph: peaks per number format, HBM bandwidth, cores, measured efficiencies, and for
every pair of devices the plane, bandwidth and latency the traffic between them gets.

Nothing here is a built-in constant: a device's facts are its graph attributes (set in the
``.cmx`` part libraries, each with its source, and inherited between a package and its dies
by the rule of :mod:`supernode_dsl.graph.devices`) and a path's figures come from the
graph's links.  An efficiency that a part does not declare is 1 (the peak), and the estimate
lists it among its assumptions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.graph.analysis import shortest_path
from supernode_dsl.graph.devices import device_attrs

__all__ = ["DeviceFacts", "Route", "device_facts", "efficiency_curve", "interpolate",
           "plane_route", "route"]

#: Number formats of equal width a peak may be read from when the exact one is not declared
#: (an INT8 model on a part that declares FP8, and the reverse).
_SAME_WIDTH: Mapping[str, tuple[str, ...]] = {
    "int8": ("fp8",), "fp8": ("int8",), "bf16": ("fp16",), "fp16": ("bf16",),
}


@dataclass(frozen=True)
class DeviceFacts:
    """One EP device (a die, or an accelerator without dies).

    ``peak`` maps a number format to operations per second; ``cores`` the core families
    (``aic``, ``aiv``, ``sm``) to counts; ``efficiency`` the declared ``efficiency.*`` values;
    ``overhead`` the declared ``overhead.*`` times in seconds (``op``: every operator);
    ``overlap`` how two microbatches share the device (one of ``schema.OVERLAP_MODES``; ``""``
    when the part does not say).
    """

    type_name: str
    peak: Mapping[str, float]
    hbm: float
    hbm_bw: float
    cores: Mapping[str, int]
    efficiency: Mapping[str, float]
    overhead: Mapping[str, float] = field(default_factory=dict)
    overlap: str = ""
    forward: str = ""     # "node": high-throughput all-to-all forwards inside the node

    @property
    def overlap_mode(self) -> str:
        """How two microbatches share the device: the declared ``overlap``, else
        ``comm_overlap`` (the cautious one: no two microbatches compute at once, and it needs
        no core counts)."""
        return self.overlap or "comm_overlap"

    def peak_of(self, fmt: str) -> float:
        """Operations per second in ``fmt`` (or an equal-width format); 0 if none declared."""
        for name in (fmt, *_SAME_WIDTH.get(fmt, ())):
            if self.peak.get(name):
                return self.peak[name]
        return 0.0

    def eff(self, name: str) -> float:
        """The declared ``efficiency.<name>``, or 1 when the part does not declare it."""
        return self.efficiency.get(name, 1.0)

    @cached_property
    def _curves(self) -> dict[str, tuple[tuple[float, float], ...]]:
        names = {key.rsplit(".", 1)[0] for key in self.efficiency if "." in key}
        return {name: efficiency_curve(self.efficiency, name) for name in names}

    def curve(self, name: str) -> tuple[tuple[float, float], ...]:
        """The points of the efficiency table ``name`` (``efficiency.<name>.m<M> = value``
        entries, one per measured shape), sorted by shape; () if the part declares none."""
        return self._curves.get(name, ())

    def eff_at(self, name: str, size: float) -> float:
        """Efficiency ``name`` at shape ``size`` (matrix rows of a GEMM, keys of an
        attention): the part's table interpolated linearly in log(size) and held at its end
        points outside them; the scalar ``efficiency.<name>`` when no table is declared,
        else 1."""
        points = self.curve(name)
        if not points:
            return self.eff(name)
        return interpolate(points, size)

    @property
    def matrix_cores(self) -> tuple[str, int]:
        """The core family a pipeline splits between its streams, and its size: the first
        declared family (Ascend: ``aic``; GPUs: ``sm``); ('', 1) if none is declared."""
        for name, count in self.cores.items():
            return name, count
        return "", 1


def efficiency_curve(efficiency: Mapping[str, float], name: str
                     ) -> tuple[tuple[float, float], ...]:
    """The table ``name`` of ``efficiency`` entries ``<name>.<axis letter><size>`` (the
    form a part declares a shape-dependent efficiency in: ``efficiency.gemm.m1024 = 0.62``)
    as (size, value) points sorted by size."""
    prefix = name + "."
    points = []
    for key, value in efficiency.items():
        point = key[len(prefix):] if key.startswith(prefix) else ""
        if len(point) > 1 and point[0].isalpha() and point[1:].isdigit():
            points.append((float(point[1:]), value))
    return tuple(sorted(points))


def interpolate(points: Sequence[tuple[float, float]], size: float) -> float:
    """``points`` (sorted by size) interpolated at ``size``, linearly in log(size), held at
    the end points."""
    if size <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if size <= x1:
            t = math.log(size / x0) / math.log(x1 / x0)
            return y0 + t * (y1 - y0)
    return points[-1][1]


def _families(data: Mapping[str, object], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        if key.startswith(prefix) and isinstance(value, (int, float)):
            out[key[len(prefix):]] = float(value)
    return out


def device_facts(g: nx.Graph, path: str) -> DeviceFacts:
    """The facts of device ``path``, with what it inherits from its package or its dies by
    the rule of :func:`supernode_dsl.graph.devices.device_attrs`."""
    data = device_attrs(g, path)
    overlap = data.get("overlap")
    cores = {k: int(v) for k, v in _families(data, "cores.").items()}
    return DeviceFacts(
        type_name=str(data.get(S.NODE_TYPE, "")),
        peak=_families(data, "compute."),
        hbm=float(data.get("hbm", 0.0)),
        hbm_bw=float(data.get("hbm_bw", 0.0)),
        cores=cores,
        efficiency=_families(data, "efficiency."),
        overhead=_families(data, "overhead."),
        overlap=overlap if isinstance(overlap, str) else "",
        forward=str(data.get("a2a_forward", "")),
    )


@dataclass(frozen=True)
class Route:
    """How traffic from one device reaches another: the plane, the bandwidth the pair gets
    (B/s, the max-flow between the two on that plane), the declared efficiency of the plane at
    the sender, and the path latency (s)."""

    plane: str
    bandwidth: float
    efficiency: float
    latency: float

    @property
    def effective_bandwidth(self) -> float:
        """Bandwidth real transfers reach: ``bandwidth x efficiency``."""
        return self.bandwidth * self.efficiency


def route(g: nx.Graph, a: str, b: str, facts: DeviceFacts,
          relays: tuple[str, ...] = ()) -> Route | None:
    """The best route from ``a`` to ``b``.

    First every plane of ``a`` that joins the two on its own (the one with the highest
    effective max-flow bandwidth wins).  If none does, as between two GPUs on different rails
    of a rail-optimised fabric, traffic crosses planes at a relay: one of ``relays`` (devices
    beside ``b``, tried in order) reached on one plane, then ``b`` on another.  The two legs
    give the route: the smaller bandwidth and efficiency, the latencies added.  None if no
    route is found.
    """
    direct = _direct(g, a, b, facts)
    if direct is not None:
        return direct
    for relay in relays:
        first = _direct(g, a, relay, facts)
        second = _direct(g, relay, b, facts) if first is not None else None
        if first is not None and second is not None:
            return Route(first.plane, min(first.bandwidth, second.bandwidth),
                         min(first.efficiency, second.efficiency),
                         first.latency + second.latency)
    return None


def _direct(g: nx.Graph, a: str, b: str, facts: DeviceFacts) -> Route | None:
    candidates = sorted({d[S.EDGE_PLANE] for _, _, d in g.edges(a, data=True)})
    best: Route | None = None
    for plane in candidates:
        r = plane_route(g, a, b, plane, facts)
        if r is not None and (best is None or r.effective_bandwidth > best.effective_bandwidth):
            best = r
    return best


def plane_route(g: nx.Graph, a: str, b: str, plane: str, facts: DeviceFacts) -> Route | None:
    """The route from ``a`` to ``b`` on ``plane`` alone; None if the plane does not join
    them."""
    found = shortest_path(g, plane, a, b)
    if found is None or found.max_flow_bandwidth <= 0:
        return None
    return Route(plane, found.max_flow_bandwidth, facts.eff(plane), found.latency)
