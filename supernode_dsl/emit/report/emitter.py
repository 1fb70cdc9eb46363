"""The ``report`` emitter: ``cmx emit report FILE [--plan P] -o r.html`` (and ``cmx report``,
which runs it) writes the page of :func:`~supernode_dsl.emit.report.page.report_html`."""

from __future__ import annotations

from typing import Any, ClassVar

from supernode_dsl.emit.base import EmitContext, Emitter
from supernode_dsl.emit.options import Option, choice_option, optional_text_option
from supernode_dsl.emit.report.common import ReportInputs, declared_deployments
from supernode_dsl.emit.report.page import report_html

__all__ = ["EMITTERS", "ReportEmitter"]

DEPLOYMENT = optional_text_option(
    "deployment", "without --plan: the deployment to plan when the file declares several")
EXPERT_LOADS = optional_text_option(
    "expert_loads", "measured loads [MoE layers x routed experts] for the heatmaps and, "
    "without --plan, the planner: SGLang {\"logical_count\": ...} JSON, .npy or .csv "
    "(default: equal loads)")
DIAGRAMS = choice_option("diagrams", "yes = the Graphviz drawings, no = leave them out",
                         ("yes", "no"))


class ReportEmitter(Emitter):
    """One self-contained HTML page of the topology and its deployment.

    The deployment sections show the ``--plan`` given, else a plan made here of the
    file's deployment (``-O deployment=NAME`` when it declares several; none when it
    declares none); ``-O expert_loads=PATH`` draws the heatmaps with measured loads.
    E021 when the loads do not fit the plan."""

    name = "report"
    description = ("self-contained HTML report: summary, diagrams, bandwidth, deployment, "
                   "pipeline timeline, performance")
    options: ClassVar[tuple[Option[Any], ...]] = (DEPLOYMENT, EXPERT_LOADS, DIAGRAMS)
    suffix = ".html"

    def emit(self, ctx: EmitContext) -> str:
        from supernode_dsl.plan import PlanRequest, plan_deployment
        from supernode_dsl.plan.loads import read_loads

        loads_path = ctx.value(EXPERT_LOADS)
        loads = read_loads(loads_path) if loads_path else None
        plan = ctx.plan
        deployment = ctx.value(DEPLOYMENT)
        if plan is None and (deployment is not None or declared_deployments(ctx.model)):
            plan = plan_deployment(ctx.model, ctx.graph,
                                   PlanRequest(deployment=deployment, loads=loads))
        return report_html(ctx.model, ctx.graph, ReportInputs(
            source=ctx.source, plan=plan, loads=loads, plan_name=ctx.plan_file or None,
            loads_name=loads_path or None, diagrams=ctx.value(DIAGRAMS) == "yes"))


EMITTERS: tuple[type[Emitter], ...] = (ReportEmitter,)
