"""``cmx report`` (the ``report`` emitter): one self-contained HTML page about a compiled
topology and its deployment.

Entry point: :func:`report_html`.  The page (template ``codegen/report/report.html.j2``,
rendered with HTML autoescape: every SVG chart is built as :class:`markupsafe.Markup` by the
function that draws it, every other value is escaped) has six sections (seven with a
sweep), one module each:

1. summary: root instance, instance counts by category and type, global parameters;
2. topology diagrams: the Graphviz supernode view, the view of the first node and one view
   per plane, inlined as SVG (when the ``dot`` program is missing the section says so and
   everything else still renders);
3. bandwidth: links and bisection bandwidth per plane, and the lowest-latency path between
   representative endpoints (two endpoints of one node, the first endpoints of two nodes);
4. deployment, when a plan is given: per role the expert-load heatmap (MoE layers x routed
   dies, die load / mean), max/mean per MoE layer as a line chart, and the memory budget of a
   die as a stacked bar against its capacity;
5. pipeline timeline (plan schema 1.1): per role a Gantt chart of one step, one lane per
   (device kind, stream), one rect per scheduled op coloured by op name, the whole step and
   a zoom on the first three MoE layers, with the microbatch count, core split, speed-up
   over no overlap and the candidates the planner tried;
6. performance estimate (plan schema 1.1): per role the headline figures (TPOT or TTFT,
   tokens/s per NPU and per TFLOPS, ...), op times of representative layers as stacked bars,
   all layers as a table (identical consecutive layers as one row) and the KV block; then
   the deployment's serving block (workload, role split, KV transfer, P/D mapping, cache
   pool and the effect of prefix reuse).

7. design-space sweep, only when a ``cmx sweep`` table is given (``ReportInputs.sweep``): its
   axes, the Pareto plot (the sweep's own drawing, :func:`supernode_dsl.sweep.plot.pareto_svg`)
   and the front as a table.

Without a deployment, or with a plan from before the serving planner (schema 1.0), sections
5 and 6 hold a short note instead.

The page works offline: inline CSS and SVG, no script, no remote reference (the SVG
namespace URLs Graphviz writes are removed; HTML5 does not need them).  Output is
deterministic: the same inputs give the same bytes (no timestamps, no absolute paths: files
are named by their base name only).

Modules: :mod:`~.summary`, :mod:`~.diagrams`, :mod:`~.bandwidth`, :mod:`~.deployment`,
:mod:`~.pipeline`, :mod:`~.performance` and :mod:`~.sweep` (sections 1 to 7),
:mod:`~.common` (inputs, number formatting, op colours and chart helpers shared by the
sections), :mod:`~.page` (the whole page) and :mod:`~.emitter` (the ``report`` emitter).
"""

from supernode_dsl.emit.report.common import (
    OP_COLOURS,
    ReportInputs,
    declared_deployments,
    nice_ticks,
    op_colour,
)
from supernode_dsl.emit.report.deployment import MEMORY_TERMS, check_loads, die_loads
from supernode_dsl.emit.report.diagrams import inline_svg
from supernode_dsl.emit.report.emitter import EMITTERS, ReportEmitter
from supernode_dsl.emit.report.page import report_context, report_html
from supernode_dsl.emit.report.performance import (
    headline,
    layer_bars_svg,
    layer_groups,
    representatives,
)
from supernode_dsl.emit.report.pipeline import (
    TimelineLane,
    best_per_microbatches,
    timeline_lanes,
    timeline_svg,
    zoom_layers,
    zoom_window,
)

__all__ = [
    "EMITTERS",
    "MEMORY_TERMS",
    "OP_COLOURS",
    "ReportEmitter",
    "ReportInputs",
    "TimelineLane",
    "best_per_microbatches",
    "check_loads",
    "declared_deployments",
    "die_loads",
    "headline",
    "inline_svg",
    "layer_bars_svg",
    "layer_groups",
    "nice_ticks",
    "op_colour",
    "report_context",
    "report_html",
    "representatives",
    "timeline_lanes",
    "timeline_svg",
    "zoom_layers",
    "zoom_window",
]
