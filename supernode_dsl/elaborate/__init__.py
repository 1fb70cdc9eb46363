"""Stage 2, elaborate: :class:`~supernode_dsl.parse.Program` -> :class:`Model`.

Entry point: :func:`elaborate`.  Names are resolved, parameters evaluated (with ``-D``
overrides), units converted to SI and checked against the attribute vocabulary, arrays sized,
link patterns expanded.  Every mistake of the stage is reported together as a
:class:`~supernode_dsl.diagnostics.CmxError`.
"""

from __future__ import annotations

from collections.abc import Mapping

from supernode_dsl.contracts import check_defines, check_instance, check_limits
from supernode_dsl.elaborate.elaborator import Elaborator, Limits
from supernode_dsl.elaborate.evaluate import Value
from supernode_dsl.elaborate.model import (
    ChildArray,
    Instance,
    LinkBundle,
    Model,
    Plane,
    Spec,
    Template,
)
from supernode_dsl.parse import Program

__all__ = [
    "ChildArray",
    "Instance",
    "Limits",
    "LinkBundle",
    "Model",
    "Plane",
    "Spec",
    "Template",
    "Value",
    "elaborate",
]


def elaborate(
    program: Program,
    defines: Mapping[str, str] | None = None,
    limits: Limits | None = None,
) -> Model:
    """Elaborate a parsed program into an immutable :class:`Model`.

    ``defines`` maps global parameter names to expression text (the CLI's ``-D``).  Raises
    :class:`~supernode_dsl.diagnostics.CmxError` with every diagnostic of the stage, and
    :class:`~supernode_dsl.diagnostics.ArgumentError` (E028) when ``program`` is not a
    :class:`~supernode_dsl.parse.Program`, ``defines`` not a mapping of ``str`` to ``str``
    or ``limits`` not a :class:`Limits` of positive integers.
    """
    where = "elaborate"
    program = check_instance(program, Program, where, "program")
    return Elaborator(program, check_limits(limits, where, Limits)).run(
        check_defines(defines, where))
