"""The whole page: :func:`report_context` gathers the six sections (seven with a sweep),
:func:`report_html` renders them with ``codegen/report/report.html.j2``."""

from __future__ import annotations

from typing import Any

import networkx as nx

from supernode_dsl.elaborate import Model
from supernode_dsl.emit.report.bandwidth import bandwidth_section
from supernode_dsl.emit.report.common import ReportInputs, base_name
from supernode_dsl.emit.report.deployment import check_loads, deployment_section
from supernode_dsl.emit.report.diagrams import diagrams_section
from supernode_dsl.emit.report.performance import performance_section
from supernode_dsl.emit.report.pipeline import pipeline_section
from supernode_dsl.emit.report.summary import summary_section
from supernode_dsl.emit.report.sweep import sweep_section
from supernode_dsl.emit.templates import render

__all__ = [
    "report_context",
    "report_html",
]


def report_context(model: Model, g: nx.Graph, inputs: ReportInputs) -> dict[str, Any]:
    """Everything the template renders, as plain data (strings already formatted)."""
    summary = summary_section(model, g)
    bandwidth = bandwidth_section(g)
    planes = [p["name"] for p in bandwidth["planes"]]
    return {
        "title": f"{model.root_name}: {model.root.type_name}",
        "source": base_name(inputs.source) or "",
        "summary": summary,
        "diagrams": diagrams_section(g, planes, inputs.diagrams),
        "bandwidth": bandwidth,
        "deployment": deployment_section(inputs.plan, inputs),
        "pipeline": pipeline_section(inputs.plan),
        "performance": performance_section(inputs.plan),
        "sweep": sweep_section(inputs.sweep, base_name(inputs.sweep_name)),
    }


def report_html(model: Model, g: nx.Graph, inputs: ReportInputs) -> str:
    """The whole report page (UTF-8 text).  Deterministic: same model, graph and inputs, same
    text.  Raises E021 :class:`~supernode_dsl.diagnostics.CmxError` when ``inputs.loads`` does
    not match the plan's shape."""
    if inputs.plan is not None and inputs.loads is not None:
        check_loads(inputs.plan, inputs.loads)
    return render("report/report.html.j2", **report_context(model, g, inputs))
