"""The ``cmx sweep`` command's work: read the axes, check the first point's file here
(located errors, exit 1), run the sweep with a progress bar, print the front."""

from __future__ import annotations

from pathlib import Path

import click

from supernode_dsl.elaborate import Limits
from supernode_dsl.sweep import (
    BackendError,
    GridError,
    SweepSpec,
    parse_axis,
    run_sweep,
)
from supernode_dsl.sweep.grid import grid_points

__all__ = ["sweep_main"]


def sweep_main(file: Path, defines: dict[str, str], axes_text: tuple[str, ...],
               deployment: str | None, output: Path, backend: str, address: str | None,
               jobs: int | None, pareto_y: str, limits: Limits,
               pareto_per: tuple[str, ...] = ()) -> None:
    """Run ``cmx sweep``; raises :class:`CmxError` when the file (with the first point's
    values) does not compile, :class:`click.UsageError` for bad axes, a ``--pareto-per``
    that is not an axis, or a bad backend."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from supernode_dsl import compile_file

    try:
        axes = tuple(parse_axis(a) for a in axes_text)
        first = {**defines, **grid_points(axes)[0]}
    except GridError as err:
        raise click.UsageError(f"-p {err}") from err
    model = compile_file(file, first, limits)
    spec = SweepSpec(file=file, axes=axes, output=output,
                     defines=tuple(sorted(defines.items())), deployment=deployment,
                     backend="ray" if backend == "ray" else "local", workers=jobs,
                     address=address, pareto_y="ttft_ms" if pareto_y == "ttft_ms"
                     else "tpot_ms", pareto_per=tuple(dict.fromkeys(pareto_per)))
    with Progress("sweep", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("points", total=None)
        try:
            result = run_sweep(spec, model.files,
                               lambda done, total: bar.update(task, completed=done,
                                                              total=total))
        except (BackendError, GridError) as err:   # GridError: a --pareto-per not swept
            raise click.UsageError(str(err)) from err
    failed = sum(1 for r in result.results if r.error)
    click.echo(f"{len(result.results)} points ({result.computed} computed, "
               f"{len(result.results) - result.computed} already done, {failed} not "
               f"plannable); Pareto front{_per(spec.pareto_per)} of {len(result.front)}: "
               f"{', '.join(str(i) for i in result.front)}")
    for f in result.files:
        click.echo(f"wrote {f}")


def _per(axes: tuple[str, ...]) -> str:
    return f" per {', '.join(axes)}" if axes else ""
