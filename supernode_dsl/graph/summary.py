"""The summary of a compiled topology: what ``cmx info`` prints and the report's first section.

:func:`summarize` gathers it once, as plain values in SI units; :meth:`Summary.to_json` is the
``cmx info --json`` object (documented field by field in ``docs/graph-contract.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from supernode_dsl import schema as S
from supernode_dsl.contracts import narrow
from supernode_dsl.elaborate import Model, Value
from supernode_dsl.graph.analysis import plane_summary

__all__ = ["PlaneInfo", "Summary", "summarize"]

#: A global parameter's value as the summary holds it: a whole number is an int.
ParamValue = float | int | str | bool


@dataclass(frozen=True)
class PlaneInfo:
    """One declared plane: ``links`` (parallel links counted), ``bisection_bandwidth`` (B/s,
    one direction, as :func:`~supernode_dsl.graph.bisection_bandwidth`) and its
    ``description``."""

    name: str
    links: int
    bisection_bandwidth: float
    description: str


@dataclass(frozen=True)
class Summary:
    """Counts, planes and parameters of a compiled topology.

    ``instances`` counts the root too; ``link_bundles`` is the number of graph edges;
    ``by_category`` and ``by_type`` are sorted by name; ``planes`` are in declaration order
    (empty when :func:`summarize` was asked for ``bandwidth=False``); ``params`` are the
    global parameters after ``-D`` overrides, in declaration order, SI base units.
    """

    name: str
    root_type: str
    instances: int
    link_bundles: int
    by_category: tuple[tuple[str, int], ...]
    by_type: tuple[tuple[str, int], ...]
    planes: tuple[PlaneInfo, ...]
    params: tuple[tuple[str, ParamValue], ...]
    schema_version: str

    def to_json(self) -> dict[str, Any]:
        """The ``cmx info --json`` object (serialise with sorted keys)."""
        return {
            "name": self.name,
            "root_type": self.root_type,
            "instances": self.instances,
            "counts": {"by_category": dict(self.by_category), "by_type": dict(self.by_type)},
            "planes": {p.name: {"links": p.links,
                                "bisection_bandwidth_Bps": p.bisection_bandwidth,
                                "description": p.description} for p in self.planes},
            "params": dict(self.params),
            "schema_version": self.schema_version,
        }


def _param_value(v: Value) -> ParamValue:
    value = getattr(v, "value", v)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    checked: ParamValue = narrow(value, (float, int, str, bool), "a parameter's value")
    return checked


def summarize(model: Model, g: nx.Graph, *, bandwidth: bool = True) -> Summary:
    """The summary of ``model`` and its graph ``g`` (``build_graph(model)``).

    With ``bandwidth`` (the default) every plane of ``g`` is listed with its links and
    bisection bandwidth (one max-flow per plane, :func:`~supernode_dsl.graph.plane_summary`);
    ``bandwidth=False`` skips that work and leaves ``planes`` empty.  Deterministic.
    """
    descriptions = g.graph.get(S.GRAPH_PLANES, {})
    planes = tuple(
        PlaneInfo(p, int(v["links"]), float(v["bisection_bandwidth"]),
                  str(descriptions.get(p, "")))
        for p, v in (plane_summary(g) if bandwidth else {}).items())
    return Summary(
        name=model.root_name,
        root_type=model.root.type_name,
        instances=model.num_instances,
        link_bundles=g.number_of_edges(),
        by_category=tuple(model.count_by_category().items()),
        by_type=tuple(model.count_by_type().items()),
        planes=planes,
        params=tuple((k, _param_value(v)) for k, v in model.params),
        schema_version=S.SCHEMA_VERSION,
    )
