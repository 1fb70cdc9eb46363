"""supernode-dsl: the .cmx language and its compiler for AI supernode topologies.

The stages, each a sub-package with one entry function::

    parse_program(path)      -> Program    (supernode_dsl.parse)
    elaborate(program, -D)   -> Model      (supernode_dsl.elaborate)
    build_graph(model)       -> nx.Graph   (supernode_dsl.graph)

and the shortcuts most scripts need::

    >>> import supernode_dsl as cmx
    >>> model = cmx.compile_string('''
    ... plane ub "scale-up"
    ... die D { hbm = 64 GB }
    ... node N {
    ...     die[2]: D
    ...     link ub die[0] <-> die[1] { bw = 28 GB/s }
    ... }
    ... instance n: N
    ... ''')
    >>> model.count_by_category()
    {'die': 2, 'node': 1}
    >>> g = cmx.build_graph(model)
    >>> g.edges["n.die[0]", "n.die[1]"]["bandwidth"]
    28000000000.0

Every user mistake raises :class:`CmxError`, whose ``diagnostics`` carry codes and locations;
an argument of the wrong type or value raises its subclass :class:`ArgumentError` (E028).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import networkx as nx

from supernode_dsl.contracts import check_defines, check_limits, check_path, check_text
from supernode_dsl.diagnostics import ArgumentError, CmxError, Diagnostic
from supernode_dsl.elaborate import Limits, Model, elaborate
from supernode_dsl.graph import build_graph
from supernode_dsl.parse import Program, parse_program

__all__ = [
    "ArgumentError",
    "CmxError",
    "Diagnostic",
    "Limits",
    "Model",
    "Program",
    "build_graph",
    "compile_file",
    "compile_string",
    "elaborate",
    "load_graph",
    "parse_program",
]

__version__ = "0.1.0"


def compile_file(path: str | Path, defines: Mapping[str, str] | None = None,
                 limits: Limits | None = None) -> Model:
    """Parse and elaborate a .cmx file; ``defines`` are ``-D`` overrides (name -> text).

    Raises :class:`CmxError` for every mistake in the files, :class:`ArgumentError` for an
    argument of the wrong type (see docs/api.md).
    """
    where = "compile_file"
    return elaborate(parse_program(check_path(path, where)), check_defines(defines, where),
                     check_limits(limits, where, Limits))


def compile_string(text: str, defines: Mapping[str, str] | None = None, *,
                   name: str = "<string>", limits: Limits | None = None) -> Model:
    """Parse and elaborate .cmx source text (imports resolve from the current directory).

    Raises :class:`CmxError` for every mistake in the text, :class:`ArgumentError` for an
    argument of the wrong type.
    """
    where = "compile_string"
    program = parse_program(text=check_text(text, where, "text"),
                            name=check_text(name, where, "name"))
    return elaborate(program, check_defines(defines, where), check_limits(limits, where, Limits))


def load_graph(path: str | Path, defines: Mapping[str, str] | None = None,
               limits: Limits | None = None) -> nx.Graph:
    """Compile a .cmx file all the way to its graph (raises as :func:`compile_file` and
    :func:`build_graph`)."""
    return build_graph(compile_file(path, defines, limits))
