"""The one jinja2 environment for text formats: templates live under ``codegen/``, one
folder per target; undefined variables are errors (StrictUndefined), not empty strings.

HTML templates (``*.html``, ``*.html.j2``) are autoescaped: every value is HTML-escaped
unless it is :class:`markupsafe.Markup`, which the code that builds HTML or SVG returns.
Every other template (DOT, YAML, Slurm configuration, ns-3) is rendered as is."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

__all__ = ["codegen_path", "environment", "render"]

_PKG_DIR = Path(__file__).resolve().parent.parent


def codegen_path() -> Path:
    """The template folder: inside the installed package, else the repository's codegen/."""
    for base in (_PKG_DIR, _PKG_DIR.parent):
        candidate = base / "codegen"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("codegen/ not found: the supernode-dsl installation is incomplete")


@functools.cache
def environment() -> jinja2.Environment:
    """The strict, deterministic jinja2 environment (built once per process)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(codegen_path())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"),
                                            default_for_string=False, default=False),
    )


def render(template: str, **context: object) -> str:
    """Render ``template`` (a path under codegen/, e.g. ``dot/supernode.dot.j2``)."""
    return environment().get_template(template).render(**context)
