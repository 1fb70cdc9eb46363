"""The ``cmx`` command line: check, compile, info, query.

Exit status: 0 success, 1 the input has errors (diagnostics on stderr), 2 bad command-line
usage.  Outputs are written atomically.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import networkx as nx

from supernode_dsl import compile_file, compile_string
from supernode_dsl import schema as S
from supernode_dsl.diagnostics import CmxError, Diagnostic, DiagnosticWarning, Span, render
from supernode_dsl.elaborate import Limits, Model
from supernode_dsl.emit.graphs import graphml_text, node_link_text
from supernode_dsl.emit.jsontext import document_json, info_json
from supernode_dsl.files import (
    FileTree,
    Output,
    OutputConflict,
    check_outputs,
    read_text,
    write_outputs,
)
from supernode_dsl.graph import PatternError, build_graph, select

if TYPE_CHECKING:  # the emitters and queries are imported by the commands that run them
    from supernode_dsl.emit import EmitContext, Emitter
    from supernode_dsl.graph import Summary
    from supernode_dsl.plan.document import PlanDocument

__all__ = ["console", "main"]

F = TypeVar("F", bound=Callable[..., Any])


#: Codes that are mistakes on the command line, not in the input: exit status 2.
_USAGE_CODES = frozenset({"E015"})


def _fail(diags: Sequence[Diagnostic], status: int | None = None) -> NoReturn:
    """Print ``diags`` and an error count, and exit: 2 when every error is a usage error
    (``-D``, format names), else 1 (or ``status``)."""
    for d in diags:
        click.echo(render(d), err=True)
    errors = [d for d in diags if d.severity.value == "error"]
    n = len(errors)
    click.echo(f"cmx: {n} error{'s' if n != 1 else ''}", err=True)
    sys.exit(_status(errors) if status is None else status)


def _status(errors: Sequence[Diagnostic]) -> int:
    """2 when every error is a usage error, else 1."""
    return 2 if errors and all(d.code in _USAGE_CODES for d in errors) else 1


@contextmanager
def _progress(what: str) -> Iterator[None]:
    """A spinner on stderr saying ``what`` is under way, shown once the work has taken a
    second, and only when stderr is a terminal (nothing in pipes, logs or tests)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    status = Console(stderr=True).status(what)
    lock = threading.Lock()
    done = False

    def show() -> None:
        with lock:
            if not done:
                status.start()

    timer = threading.Timer(1.0, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            done = True
            status.stop()


def _defines(raw: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    bad: list[Diagnostic] = []
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            bad.append(Diagnostic("E015", f"-D {item!r}: write -D name=value"))
        else:
            out[name.strip()] = value.strip()
    if bad:
        _fail(bad, status=2)
    return out


def _compile_options(f: F) -> F:
    f = click.option("-D", "--define", "defines", multiple=True, metavar="NAME=VALUE",
                     help="Override a global parameter, e.g. -D nodes=36.")(f)
    f = click.option("--max-instances", type=click.IntRange(min=1),
                     default=Limits().max_instances, show_default=True,
                     help="Refuse files that would create more instances.")(f)
    f = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))(f)
    return f


def _model(file: Path, defines: tuple[str, ...], max_instances: int) -> Model:
    try:
        with _progress(f"compiling {file}"):
            model = compile_file(file, _defines(defines), Limits(max_instances=max_instances))
    except CmxError as err:
        _fail(err.diagnostics)
    for w in model.warnings:
        click.echo(render(w), err=True)
    return model


def _graph(model: Model) -> nx.Graph:
    try:
        with _progress(f"building the graph of {model.num_instances:,} instances"):
            return build_graph(model)
    except CmxError as err:
        _fail(err.diagnostics)


#: The graph formats of ``cmx compile`` and their extensions.
_GRAPH_SUFFIXES = {"node-link": ".json", "graphml": ".graphml"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="supernode-dsl", prog_name="cmx")
def cli() -> None:
    """cmx: compile .cmx descriptions of AI supernodes into graphs, and query them."""


@cli.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("-D", "--define", "defines", multiple=True, metavar="NAME=VALUE",
              help="Override a global parameter, e.g. -D nodes=36.")
@click.option("--max-instances", type=click.IntRange(min=1), default=Limits().max_instances,
              show_default=True, help="Refuse files that would create more instances.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: on stdout, an array of one object per file with "
                                      "every diagnostic (code, severity, span, message, "
                                      "notes).")
def check(files: tuple[Path, ...], defines: tuple[str, ...], max_instances: int,
          fmt: str) -> None:
    """Check FILES ('-' reads standard input): every error, or a one-line summary each.

    Exit status 1 when any file has an error."""
    overrides = _defines(defines)
    errors: list[Diagnostic] = []
    results: list[dict[str, Any]] = []
    for file in files:
        diags: list[Diagnostic] = []
        summary = None
        try:
            if str(file) == "-":
                model = compile_string(sys.stdin.read(), overrides, name="<stdin>",
                                       limits=Limits(max_instances=max_instances))
            else:
                model = compile_file(file, overrides, Limits(max_instances=max_instances))
            diags += model.warnings
            g = build_graph(model)
            summary = (model.num_instances, g.number_of_edges(), len(model.planes))
        except CmxError as err:
            diags += err.diagnostics
        errors += [d for d in diags if d.severity.value == "error"]
        if fmt == "json":
            results.append(_check_json(str(file), summary, diags))
            continue
        for d in diags:
            click.echo(render(d), err=True)
        if summary is not None:
            instances, edges, planes = summary
            click.echo(f"{file}: ok: {instances:,} instances, "
                       f"{edges:,} link bundle{'s' * (edges != 1)} on "
                       f"{planes} plane{'s' * (planes != 1)}")
    if fmt == "json":
        click.echo(info_json(results), nl=False)
    if errors:
        if fmt == "text":
            n = len(errors)
            click.echo(f"cmx: {n} error{'s' if n != 1 else ''}", err=True)
        sys.exit(_status(errors))


def _span_json(span: Span | None) -> dict[str, Any] | None:
    if span is None:
        return None
    return {"file": span.file, "line": span.line, "col": span.col,
            "end_line": span.end_line, "end_col": span.end_col}


def _check_json(file: str, summary: tuple[int, int, int] | None,
                diags: Sequence[Diagnostic]) -> dict[str, Any]:
    """``cmx check --format json`` for one file: ok, counts, and every diagnostic."""
    out: dict[str, Any] = {
        "file": file,
        "ok": summary is not None and not any(d.severity.value == "error" for d in diags),
        "diagnostics": [{"code": d.code, "severity": d.severity.value,
                         "span": _span_json(d.span), "message": d.message,
                         "notes": [{"message": m, "span": _span_json(sp)}
                                   for m, sp in d.notes]} for d in diags],
    }
    if summary is not None:
        out.update(zip(("instances", "link_bundles", "planes"), summary, strict=True))
    return out


@cli.command("compile")
@_compile_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file ('-' for standard output).")
@click.option("--format", "fmt", type=click.Choice(list(_GRAPH_SUFFIXES)),
              help="Graph format (default: from the extension of -o; node-link for -o -).")
def compile_cmd(file: Path, defines: tuple[str, ...], max_instances: int, output: Path,
                fmt: str | None) -> None:
    """Compile FILE to a graph file: OUT.json is networkx node-link JSON, OUT.graphml is
    GraphML."""
    fmt = _graph_format(output, fmt)
    _check_outputs([output], [file])
    model = _model(file, defines, max_instances)
    g = _graph(model)
    _write(model, [(output, node_link_text(g) if fmt == "node-link" else graphml_text(g))])


def _suffix_conflict(output: Path, fmt: str, suffix: str, known: Sequence[str]) -> None:
    """A usage error (exit 2) when ``output``'s extension is one of the ``known`` suffixes
    of other formats but not ``fmt``'s ``suffix`` (``.yml`` and ``.yaml`` are one)."""
    if str(output) == "-" or not suffix:  # a format that declares no extension: any
        return
    got = _same_yaml(output.suffix.lower())
    if got and got != _same_yaml(suffix) and got in {_same_yaml(k) for k in known}:
        raise click.UsageError(f"-o {output}: the extension '{output.suffix}' is not "
                               f"{fmt}'s ('{suffix}')")


def _same_yaml(suffix: str) -> str:
    return ".yaml" if suffix == ".yml" else suffix


def _graph_format(output: Path, fmt: str | None) -> str:
    """The graph format of ``cmx compile``: ``--format``, else the extension of ``-o``."""
    if fmt is None:
        by_suffix = {v: k for k, v in _GRAPH_SUFFIXES.items()}
        if str(output) == "-":
            return "node-link"
        fmt = by_suffix.get(output.suffix.lower())
        if fmt is None:
            raise click.UsageError(f"-o {output}: cannot tell the graph format from the "
                                   "extension; write OUT.json or OUT.graphml, or give --format")
    _suffix_conflict(output, fmt, _GRAPH_SUFFIXES[fmt], list(_GRAPH_SUFFIXES.values()))
    return fmt


@cli.command()
@_compile_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(file: Path, defines: tuple[str, ...], max_instances: int, as_json: bool) -> None:
    """Counts by category and type, and links and bisection bandwidth per plane."""
    from supernode_dsl.graph import summarize

    model = _model(file, defines, max_instances)
    g = _graph(model)
    with _progress("computing bisection bandwidths (max-flow per plane)"):
        summary = summarize(model, g)
    if as_json:
        click.echo(info_json(summary.to_json()), nl=False)
        return
    _print_info(summary)
    _print_params(file, _defines(defines))


def _print_params(file: Path, overrides: Mapping[str, str]) -> None:
    """The file's global parameters: what ``-D NAME=VALUE`` may change, the declared
    default, the value given with -D and the comment that explains it."""
    from rich.console import Console
    from rich.table import Table

    from supernode_dsl.parse import parse_program
    from supernode_dsl.parse.docs import param_docs

    docs = param_docs(parse_program(file))
    if not docs:
        return
    t = Table("-D name", "default", "given", "meaning",
              title="parameters (override with -D NAME=VALUE)")
    for d in docs:
        t.add_row(d.name, d.default, overrides.get(d.name, ""), d.meaning)
    Console().print(t)


def _print_info(summary: Summary) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{summary.name}[/] ({summary.root_type}): "
                  f"{summary.instances:,} instances")
    t = Table("category", "count", title="instances by category")
    for k, v in summary.by_category:
        t.add_row(k, f"{v:,}")
    console.print(t)
    t = Table("type", "count", title="instances by type")
    for k, v in summary.by_type:
        t.add_row(k, f"{v:,}")
    console.print(t)
    t = Table("plane", "links", "bisection (GB/s, one way)", "description", title="planes")
    for p in summary.planes:
        t.add_row(p.name, f"{p.links:,}", f"{p.bisection_bandwidth / 1e9:,.1f}", p.description)
    console.print(t)


def _read_plan(path: Path, model: Model, g: nx.Graph, file: Path) -> PlanDocument:
    """The plan in ``path``, checked (E024, located) and made for ``file``'s topology and
    deployment."""
    from supernode_dsl.plan.document import PlanDocument, PlanOrigin
    from supernode_dsl.plan.document.fingerprint import check_plan_for

    try:
        text = read_text(path, "E024").text
        doc = PlanDocument.from_text(text, str(path))
        check_plan_for(doc, model, g, PlanOrigin(str(path), text), str(file))
    except CmxError as err:
        _fail(err.diagnostics)
    return doc


def _deployment_options(f: F) -> F:
    """``--expert-loads`` and ``--deployment``, shared by ``plan`` and ``report``."""
    f = click.option("--deployment",
                     help="The deployment to plan when the file declares several.")(f)
    f = click.option("--expert-loads", "loads_path",
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="Measured loads [MoE layers x routed experts]: SGLang "
                          "{\"logical_count\": ...} JSON, .npy or .csv.  Default: equal "
                          "loads.")(f)
    return f


@cli.command("plan")
@_compile_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Plan file to write ('-' for standard output).")
@_deployment_options
@click.option("--previous", "previous_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A previous plan: re-plan moving as few expert weights as possible.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the planned microbatch pipeline as a Chrome/Perfetto trace.")
@click.option("--balance", type=click.Choice(["perfect", "placement"]),
              help="What the estimate assumes of the expert load: perfectly balanced devices, "
                   "or the placement's balance on the loads (default: the placement's with "
                   "--expert-loads, else the deployment's balance.perfect).")
def plan_cmd(file: Path, defines: tuple[str, ...], max_instances: int, output: Path,
             loads_path: Path | None, previous_path: Path | None,
             deployment: str | None, trace_path: Path | None, balance: str | None) -> None:
    """Plan a deployment of FILE: expert placement per role, balance, memory.

    With --trace, also write the planned microbatch pipeline as a Chrome/Perfetto trace;
    on any error neither file is written.
    """
    from supernode_dsl.emit.plansummary import migration_summary, plan_summary
    from supernode_dsl.emit.trace import chrome_trace
    from supernode_dsl.plan import PlanRequest, plan_deployment, validate_plan
    from supernode_dsl.plan.loads import read_loads

    _check_outputs([output, trace_path], [file, loads_path, previous_path])
    model = _model(file, defines, max_instances)
    g = _graph(model)
    previous = _read_plan(previous_path, model, g, file) if previous_path else None
    try:
        loads = read_loads(loads_path) if loads_path else None
        with _progress("planning: expert placement, memory and the serving estimate"):
            doc = plan_deployment(model, g, PlanRequest(
                deployment=deployment, loads=loads, previous=previous,
                perfect_balance=None if balance is None else balance == "perfect",
                source={"file": str(file), "defines": dict(sorted(_defines(defines).items())),
                        "expert_loads": str(loads_path) if loads_path else None,
                        "previous": str(previous_path) if previous_path else None}))
    except CmxError as err:
        _fail(err.diagnostics)
    data = doc.to_json()
    problems = validate_plan(data)
    if problems:
        click.echo("cmx: internal error: the plan fails its own checks:", err=True)
        for p in problems:
            click.echo(f"  {p}", err=True)
        sys.exit(2)
    try:
        trace = chrome_trace(doc) if trace_path is not None else None
    except CmxError as err:
        _fail(err.diagnostics)
    outputs: list[tuple[Path, str | bytes]] = [(output, document_json(data))]
    if trace_path is not None and trace is not None:
        outputs.append((trace_path, trace))
    moved = migration_summary(doc, previous) if previous is not None else []
    summary = "".join(f"{line}\n" for line in plan_summary(doc) + moved)
    to_stderr = str(output) == "-" or str(trace_path) == "-"
    if not to_stderr:  # written with the files: a full standard output changes none of them
        outputs.append((Path("-"), summary))
    _write(model, outputs, [loads_path, previous_path])
    if to_stderr:
        click.echo(summary, err=True, nl=False)


@cli.group("loads")
def loads_group() -> None:
    """Expert loads for `cmx plan --expert-loads`."""


@loads_group.command("synth")
@_compile_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Loads file to write (SGLang {\"logical_count\": ...} JSON).")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--sigma", type=click.FloatRange(min=0.0), default=1.2, show_default=True,
              help="Skew: the sigma of the lognormal token counts.")
@click.option("--deployment", help="The deployment whose model sets the shape.")
def loads_synth(file: Path, defines: tuple[str, ...], max_instances: int, output: Path,
                seed: int, sigma: float, deployment: str | None) -> None:
    """Write SYNTHETIC, skewed expert loads [MoE layers x routed experts] for the model of
    FILE's deployment: lognormal token counts, deterministic for a seed, labelled as
    synthetic in the file.  For trying `cmx plan --expert-loads` and `--previous`; they
    are not measurements."""
    from supernode_dsl.plan import loads_shape
    from supernode_dsl.plan.loads import synthetic_loads, synthetic_loads_json

    _check_outputs([output], [file])
    model = _model(file, defines, max_instances)
    try:
        layers, experts = loads_shape(model, deployment)
    except CmxError as err:
        _fail(err.diagnostics)
    counts = synthetic_loads(layers, experts, seed, sigma)
    _write(model, [(output, synthetic_loads_json(counts, seed, sigma))])
    click.echo(f"{output}: SYNTHETIC loads, {layers} MoE layers x {experts} experts "
               f"(seed {seed}, lognormal sigma {sigma})", err=True)


@cli.command("emit")
@click.argument("fmt", metavar="FORMAT", required=False)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--list", "list_formats", is_flag=True, help="List the formats and exit.")
@click.option("-D", "--define", "defines", multiple=True, metavar="NAME=VALUE",
              help="Override a global parameter, e.g. -D nodes=36.")
@click.option("--max-instances", type=click.IntRange(min=1), default=Limits().max_instances,
              show_default=True, help="Refuse files that would create more instances.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A plan from `cmx plan`, for formats that need one.")
@click.option("-O", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A format's own option (see --list).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file ('-' for standard output), or directory for formats of "
                   "several files.")
def emit_cmd(fmt: str | None, file: Path | None, list_formats: bool, defines: tuple[str, ...],
             max_instances: int, plan_path: Path | None, options: tuple[str, ...],
             output: Path | None) -> None:
    """Write FILE in FORMAT for another tool (simulators, runtimes, schedulers, drawings)."""
    from supernode_dsl.emit import EmitContext, available_emitters

    emitters = available_emitters()
    if list_formats:
        for name, cls in emitters.items():
            extra = "".join(f"\n      {o.describe()}" for o in cls.options)
            click.echo(f"  {name:<22} {cls.description}{extra}")
        return
    if fmt is None or file is None or output is None:
        raise click.UsageError("give FORMAT, FILE and -o PATH (or --list)")
    if fmt not in emitters:
        _fail([Diagnostic("E026", f"unknown format '{fmt}' (formats: "
                          f"{', '.join(emitters)}; see cmx emit --list)")], status=2)
    cls = emitters[fmt]
    _suffix_conflict(output, fmt, cls.suffix, [e.suffix for e in emitters.values() if e.suffix])
    opts = _emit_options(cls, options)
    _check_outputs([output], [file, plan_path])
    model = _model(file, defines, max_instances)
    g = _graph(model)
    plan = _read_plan(plan_path, model, g, file) if plan_path else None
    _run_emitter(cls(), EmitContext(model, g, plan, str(file), opts,
                                    plan_file=str(plan_path) if plan_path else ""), output,
                 [plan_path])


def _emit_options(cls: type[Emitter], items: tuple[str, ...]) -> dict[str, str]:
    """The ``-O key=value`` options, checked against ``cls``'s declarations: a usage error
    (exit status 2) naming the option and the values it accepts."""
    from supernode_dsl.emit import OptionError

    opts: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"-O {item!r}: write -O key=value")
        opts[key.strip()] = value.strip()
    try:
        cls.check_options(opts)
    except OptionError as err:
        raise click.UsageError(err.message) from None
    return opts


def _run_emitter(emitter: Emitter, ctx: EmitContext, output: Path,
                 inputs: Sequence[Path | None]) -> None:
    """Run ``emitter``, print its warnings and write its output (``inputs``: the input
    files besides ``ctx.model``'s sources); diagnostics exit 1."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _progress(f"writing {emitter.name}"):
                data = emitter.emit(ctx)
        except CmxError as err:
            _fail(err.diagnostics)
    for w in caught:
        shown = isinstance(w.message, DiagnosticWarning)  # already "cmx: warning[CODE]: ..."
        click.echo(str(w.message) if shown else f"cmx: warning: {w.message}", err=True)
    _write(ctx.model, [(output, data)], inputs)


@cli.command("calibrate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Fitted calibration (.cmx) to write ('-' for standard output).")
def calibrate_cmd(file: Path, output: Path) -> None:
    """Fit the free parameters of FILE's calibration to its layer-level measurements."""
    from supernode_dsl.plan.serving.calibrate import calibrate_file

    _check_outputs([output], [file])
    try:
        text = calibrate_file(file)
    except CmxError as err:
        _fail(err.diagnostics)
    _write(None, [(output, text)], [file])


@cli.command("simulate")
@_compile_options
@click.option("--plan", "plan_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="A plan from `cmx plan`.")
@click.option("-O", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="chakra-et's options: role=decode|prefill, instance=K, layers=N, "
              "unit=die|accelerator.")
@click.option("--astra-sim", "binary", help="ASTRA-sim analytical binary, e.g. "
              "AstraSim_Analytical_Congestion_Aware (default: $CMX_ASTRA_SIM).")
@click.option("--timeout", type=click.FloatRange(min=1), help="Give up after this many s.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def simulate_cmd(file: Path, defines: tuple[str, ...], max_instances: int, plan_path: Path,
                 options: tuple[str, ...], binary: str | None, timeout: float | None,
                 as_json: bool) -> None:
    """Simulate one serving step of the plan with ASTRA-sim (the `chakra-et` workload) and
    print its time next to the plan's estimate."""
    from supernode_dsl.emit import EmitContext
    from supernode_dsl.emit.chakra import ChakraEtEmitter
    from supernode_dsl.simulate import (
        SimulationError,
        back_end_warning,
        find_binary,
        simulate_step,
    )

    opts = _emit_options(ChakraEtEmitter, options)
    try:
        astra = find_binary(binary)
    except SimulationError as err:
        _fail([Diagnostic("E029", str(err))])
    model = _model(file, defines, max_instances)
    g = _graph(model)
    ctx = EmitContext(model, g, _read_plan(plan_path, model, g, file), str(file), opts,
                      plan_file=str(plan_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the network approximation: cmx emit shows it
        try:
            result = simulate_step(ctx, astra, timeout)
        except SimulationError as err:
            _fail([Diagnostic("E029", str(err))])
        except CmxError as err:
            _fail(err.diagnostics)
    unaware = back_end_warning(result)
    if unaware is not None:
        click.echo(render(unaware), err=True)
    click.echo(info_json(result.to_json()) if as_json else result.line(), nl=not as_json)


@cli.command("report")
@_compile_options
@_deployment_options
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A plan from `cmx plan` to show (default: plan the file's deployment).")
@click.option("--sweep", "sweep_path", type=click.Path(path_type=Path),
              help="A `cmx sweep` output folder (or its table.json): adds its Pareto plot "
                   "and front as section 7.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write ('-' for standard output).")
def report_cmd(file: Path, defines: tuple[str, ...], max_instances: int,
               loads_path: Path | None, plan_path: Path | None, deployment: str | None,
               sweep_path: Path | None, output: Path) -> None:
    """Write one self-contained HTML report of FILE: summary, diagrams, bandwidth, and the
    deployment's expert-load heatmaps and memory budget (from --plan or the file's own),
    and with --sweep the sweep's Pareto plot and front.
    The same page as `cmx emit report` (this command runs that emitter)."""
    from supernode_dsl.emit import EmitContext
    from supernode_dsl.emit.report import ReportEmitter
    from supernode_dsl.sweep.table import table_file

    sweep_table = table_file(sweep_path) if sweep_path else None
    _check_outputs([output], [file, loads_path, plan_path, sweep_table])
    model = _model(file, defines, max_instances)
    g = _graph(model)
    try:
        plan: PlanDocument | None = None
        if plan_path is not None:
            plan = _read_plan(plan_path, model, g, file)
    except CmxError as err:
        _fail(err.diagnostics)
    given = {"deployment": deployment, "expert_loads": str(loads_path) if loads_path else None,
             "sweep": str(sweep_path) if sweep_path else None}
    options = {k: v for k, v in given.items() if v is not None}
    _run_emitter(ReportEmitter(), EmitContext(model, g, plan, str(file), options,
                                              plan_file=str(plan_path) if plan_path else ""),
                 output, [loads_path, plan_path, sweep_table])


def _check_outputs(outputs: Sequence[Path | None], inputs: Sequence[Path | None]) -> None:
    """Before any work: an output that is an input or another output is a usage error
    (exit 2); one that cannot be written (E031, E032) exits 1."""
    try:
        check_outputs([o for o in outputs if o is not None], [i for i in inputs if i])
    except OutputConflict as err:
        raise click.UsageError(str(err)) from None
    except CmxError as err:
        _fail(err.diagnostics)


def _write(model: Model | None, outputs: Sequence[tuple[Path, str | bytes | FileTree]],
           inputs: Sequence[Path | None] = ()) -> None:
    """Write every output of the command or none (:func:`supernode_dsl.files.write_outputs`);
    ``inputs`` are the input files besides ``model``'s sources (when there is a model)."""
    sources = model.files if model is not None else ()
    try:
        write_outputs([Output(path, data) for path, data in outputs],
                      [*sources, *(i for i in inputs if i)])
    except OutputConflict as err:
        raise click.UsageError(str(err)) from None
    except CmxError as err:
        _fail(err.diagnostics)


@cli.group()
def query() -> None:
    """Path and cut bandwidth queries on a compiled topology."""


def _one(g: nx.Graph, pattern: str) -> str:
    try:
        hits = select(g, pattern)
    except PatternError as e:
        _fail([e.diagnostic])
    if len(hits) != 1:
        what = "no instance" if not hits else f"{len(hits)} instances"
        _fail([Diagnostic("E020", f"'{pattern}' matches {what}; give one instance path")])
    return hits[0]


def _planes(g: nx.Graph, plane: str | None) -> list[str]:
    planes = list(g.graph[S.GRAPH_PLANES])
    if plane is None:
        return planes
    if plane not in planes:
        _fail([Diagnostic("E020", f"unknown plane '{plane}' (planes: {', '.join(planes)})")])
    return [plane]


@query.command("path")
@_compile_options
@click.argument("source")
@click.argument("target")
@click.option("--plane", help="Only this plane (default: every plane joining the two).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def query_path(file: Path, defines: tuple[str, ...], max_instances: int, source: str,
               target: str, plane: str | None, as_json: bool) -> None:
    """Latency and bandwidth of the lowest-latency path from SOURCE to TARGET."""
    from supernode_dsl.graph import shortest_path

    g = _graph(_model(file, defines, max_instances))
    a, b = _one(g, source), _one(g, target)
    results = [res for p in _planes(g, plane)
               if (res := shortest_path(g, p, a, b)) is not None]
    if not results:
        _fail([Diagnostic("E020", f"no plane joins {a} and {b}")])
    if as_json:
        rows = [{"plane": r.plane, "hops": list(r.hops), "latency_s": r.latency,
                 "path_bandwidth_Bps": r.bottleneck_bandwidth,
                 "max_flow_bandwidth_Bps": r.max_flow_bandwidth} for r in results]
        click.echo(info_json({"source": a, "target": b, "paths": rows}), nl=False)
        return
    for r in results:
        click.echo(f"plane {r.plane}: {len(r.hops) - 1} hops, "
                   f"latency {r.latency * 1e6:.3f} us, "
                   f"path bandwidth {r.bottleneck_bandwidth / 1e9:,.2f} GB/s, "
                   f"max-flow {r.max_flow_bandwidth / 1e9:,.2f} GB/s")
        click.echo("  " + " -> ".join(r.hops))


@query.command("cut")
@_compile_options
@click.argument("group_a")
@click.argument("group_b")
@click.option("--plane", help="Only this plane (default: every plane).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def query_cut(file: Path, defines: tuple[str, ...], max_instances: int, group_a: str,
              group_b: str, plane: str | None, as_json: bool) -> None:
    """Max-flow bandwidth (one way) from the endpoints under GROUP_A to those under GROUP_B.

    Groups are path patterns: cm384.node[0:24], node[*].npu[0], l2[3][*].
    """
    from supernode_dsl.graph import cut_bandwidth, cut_warnings
    g = _graph(_model(file, defines, max_instances))
    groups = []
    for pattern in (group_a, group_b):
        try:
            hits = select(g, pattern)
        except PatternError as e:
            _fail([e.diagnostic])
        if not hits:
            _fail([Diagnostic("E020", f"'{pattern}' matches no instance")])
        groups.append(hits)
    result = {p: cut_bandwidth(g, p, groups[0], groups[1]) for p in _planes(g, plane)}
    for p in result:
        for w in cut_warnings(g, p, [(group_a, groups[0]), (group_b, groups[1])]):
            click.echo(render(w), err=True)
    if as_json:
        click.echo(info_json({"group_a": group_a, "group_b": group_b,
                              "cut_bandwidth_Bps": result}), nl=False)
        return
    for p, bw in result.items():
        click.echo(f"plane {p}: {bw / 1e9:,.2f} GB/s")


@cli.command("lsp")
@click.option("-D", "--define", "defines", multiple=True, metavar="NAME=VALUE",
              help="Override a global parameter in every document that declares it, as "
                   "`cmx check -D` does.")
def lsp_cmd(defines: tuple[str, ...]) -> None:
    """Run the language server for editors (LSP over standard input and output)."""
    values = _defines(defines)   # a malformed -D is a usage error before the server starts
    try:
        from supernode_dsl.lsp.server import serve
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        click.echo("cmx: error: `cmx lsp` needs pygls: pip install 'supernode-dsl[lsp]'",
                   err=True)
        sys.exit(1)
    serve(values)


@cli.command("sweep")
@_compile_options
@click.option("-p", "--param", "axes", multiple=True, required=True,
              metavar="NAME=V1,V2|LO:HI:STEP", help="A swept parameter (repeat for a grid).")
@click.option("--deployment", help="The deployment to plan when the file declares several.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of points.jsonl (finished points), table.csv, table.json and "
                   "pareto.svg.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Local processes or Ray tasks.")
@click.option("--address", help="Ray cluster (--backend ray): ray://HOST:10001 or auto.")
@click.option("--jobs", type=click.IntRange(min=1), help="Local processes (default: CPUs).")
@click.option("--pareto", "pareto_y", type=click.Choice(["tpot_ms", "ttft_ms"]),
              default="tpot_ms", show_default=True,
              help="Latency of the front against decode tokens/s per NPU.")
@click.option("--pareto-per", "pareto_per", multiple=True, metavar="AXIS",
              help="One front per value of this axis (repeat for several), so points of "
                   "different workloads (prompt_len) are not compared.")
def sweep_cmd(file: Path, defines: tuple[str, ...], max_instances: int, axes: tuple[str, ...],
              deployment: str | None, output: Path, backend: str, address: str | None,
              jobs: int | None, pareto_y: str, pareto_per: tuple[str, ...]) -> None:
    """Plan FILE's deployment at every point of a grid of parameters, in parallel.

    `cmx report FILE --sweep OUTPUT -o report.html` shows the sweep's Pareto plot and front.
    """
    from supernode_dsl.sweep.cli import sweep_main

    try:
        sweep_main(file, _defines(defines), axes, deployment, output, backend, address, jobs,
                   pareto_y, Limits(max_instances=max_instances), pareto_per)
    except CmxError as err:
        _fail(err.diagnostics)


def console() -> None:
    """The process entry point (the ``cmx`` script, ``python -m supernode_dsl``): :func:`main`
    on ``sys.argv``, after telling the cyclic garbage collector that every object made so far
    (the imported modules: they live until the process exits) need not be walked again, and
    once the command is done (its outputs written and closed), that nothing left need be.

    Without this, the full collections of a short command (one while elaborating
    CloudMatrix384, those at interpreter exit) walk every imported module again: 15% of
    ``cmx check``; at the exit of ``cmx plan`` (with scipy, numpy and jsonschema imported)
    0.1 s.  A program that calls :func:`main` itself keeps its collector as it was.
    """
    gc.freeze()
    try:
        main()
    finally:
        gc.freeze()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``cmx`` command line on ``argv`` (default ``sys.argv[1:]``); exits."""
    try:
        try:
            cli.main(args=argv, prog_name="cmx")
        finally:
            if not sys.stdout.closed:  # `cmx lsp` may have closed it
                sys.stdout.flush()  # a full disk or closed pipe is reported here, not at exit
    except RecursionError:
        click.echo("cmx: error[E014]: the input is nested too deeply", err=True)
        sys.exit(1)
    except OSError as err:
        if err.errno not in _STREAM_ERRORS:
            raise
        _stdout_failed(err)


#: The errors of writing to standard output (a full disk, a closed pipe, an I/O error).
_STREAM_ERRORS = {errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EFBIG, errno.EDQUOT}


def _stdout_failed(err: OSError) -> NoReturn:
    """E032 for a failed write to standard output; the stream is pointed at the null device
    so that the interpreter's own flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    click.echo(f"cmx: error[E032]: cannot write standard output: {err.strerror or err}",
               err=True)
    sys.exit(1)


if __name__ == "__main__":
    console()
