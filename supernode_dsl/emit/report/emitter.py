"""The ``report`` emitter: ``cmx emit report FILE [--plan P] [-O sweep=DIR] -o r.html`` (and
``cmx report``, which runs it) writes the page of
:func:`~supernode_dsl.emit.report.page.report_html`."""

from __future__ import annotations

import warnings
from pathlib import PurePath
from typing import Any, ClassVar

from supernode_dsl.diagnostics import Diagnostic, DiagnosticWarning, Severity
from supernode_dsl.elaborate import Model
from supernode_dsl.emit.base import EmitContext, Emitter
from supernode_dsl.emit.options import Option, choice_option, optional_text_option
from supernode_dsl.emit.report.common import ReportInputs, declared_deployments
from supernode_dsl.emit.report.page import report_html
from supernode_dsl.sweep.table import SweepTable, load_table, sources_digest

__all__ = ["EMITTERS", "ReportEmitter"]

DEPLOYMENT = optional_text_option(
    "deployment", "without --plan: the deployment to plan when the file declares several")
EXPERT_LOADS = optional_text_option(
    "expert_loads", "measured loads [MoE layers x routed experts] for the heatmaps and, "
    "without --plan, the planner: SGLang {\"logical_count\": ...} JSON, .npy or .csv "
    "(default: equal loads)")
SWEEP = optional_text_option(
    "sweep", "a cmx sweep output folder (or its table.json): its Pareto plot and front in "
    "section 7")
DIAGRAMS = choice_option("diagrams", "yes = the Graphviz drawings, no = leave them out",
                         ("yes", "no"))


class ReportEmitter(Emitter):
    """One self-contained HTML page of the topology and its deployment.

    The deployment sections show the ``--plan`` given, else a plan made here of the
    file's deployment (``-O deployment=NAME`` when it declares several; none when it
    declares none); ``-O expert_loads=PATH`` draws the heatmaps with measured loads;
    ``-O sweep=DIR`` adds the sweep's section.  E021 when the loads do not fit the plan,
    E038 when the sweep's table cannot be read, a W006 warning when the sweep was made of
    other source files than this topology's."""

    name = "report"
    description = ("self-contained HTML report: summary, diagrams, bandwidth, deployment, "
                   "pipeline timeline, performance, a sweep's Pareto front")
    options: ClassVar[tuple[Option[Any], ...]] = (DEPLOYMENT, EXPERT_LOADS, SWEEP, DIAGRAMS)
    suffix = ".html"

    def emit(self, ctx: EmitContext) -> str:
        from supernode_dsl.plan import PlanRequest, plan_deployment
        from supernode_dsl.plan.loads import read_loads

        sweep_path = ctx.value(SWEEP)
        sweep = _read_sweep(sweep_path, ctx.model, ctx.source) if sweep_path else None
        loads_path = ctx.value(EXPERT_LOADS)
        loads = read_loads(loads_path) if loads_path else None
        plan = ctx.plan
        deployment = ctx.value(DEPLOYMENT)
        if plan is None and (deployment is not None or declared_deployments(ctx.model)):
            plan = plan_deployment(ctx.model, ctx.graph,
                                   PlanRequest(deployment=deployment, loads=loads))
        return report_html(ctx.model, ctx.graph, ReportInputs(
            source=ctx.source, plan=plan, loads=loads, plan_name=ctx.plan_file or None,
            loads_name=loads_path or None, diagrams=ctx.value(DIAGRAMS) == "yes",
            sweep=sweep, sweep_name=_sweep_folder(sweep_path) if sweep_path else None))


def _sweep_folder(path: str) -> str:
    """The sweep's folder, the name the page shows, when ``path`` is its ``table.json``."""
    p = PurePath(path)
    return str(p.parent) if p.name == "table.json" and str(p.parent) != "." else path


def _read_sweep(path: str, model: Model, source: str) -> SweepTable:
    """The sweep table at ``path`` (E038); W006 when its sources differ from those of
    ``model``, compiled from ``source`` (edited since the sweep, or another file's sweep)."""
    table = load_table(path)
    if table.sources != sources_digest(model.files):
        warnings.warn(DiagnosticWarning(Diagnostic(
            "W006", f"the sweep in '{path}' was made of other source files than '{source}' "
            "and its imports (edited since the sweep?): section 7 shows that sweep's figures",
            severity=Severity.WARNING)), stacklevel=2)
    return table


EMITTERS: tuple[type[Emitter], ...] = (ReportEmitter,)
