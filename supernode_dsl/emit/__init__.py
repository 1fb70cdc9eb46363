"""Stage 5, emit: outputs for other tools, written atomically and deterministically.

* :mod:`~supernode_dsl.emit.base`: the :class:`Emitter` plugin interface and
  :func:`available_emitters` (the built-ins of :mod:`~supernode_dsl.emit.builtin` plus the
  ``supernode_dsl.emitters`` entry points); ``cmx emit FORMAT FILE -o PATH`` runs one.
* :mod:`~supernode_dsl.emit.options`: the :class:`Option` declarations of ``-O`` options.
* :mod:`~supernode_dsl.emit.graphviz` (drawings) and :mod:`~supernode_dsl.emit.report` (the
  HTML report), packages split by view and by section.
* :mod:`~supernode_dsl.emit.graphs`: networkx node-link JSON and GraphML.
* :mod:`~supernode_dsl.emit.jsontext`: deterministic JSON for reports and plans.
* :mod:`~supernode_dsl.emit.templates`: the one strict jinja2 environment over ``codegen/``.
* :func:`write_atomic` and :class:`FileTree` (an output of several files, which ``emit`` may
  return) are from :mod:`supernode_dsl.files`, the one writer of every command's outputs.
* :mod:`~supernode_dsl.emit.chakra`: Chakra execution traces of one serving step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supernode_dsl.files import FileTree, write_atomic
from supernode_dsl.lazy import lazy_exports

if TYPE_CHECKING:
    from supernode_dsl.emit.base import EmitContext, Emitter, available_emitters, emit_error
    from supernode_dsl.emit.graphs import graphml_text, node_link_text
    from supernode_dsl.emit.jsontext import document_json, info_json
    from supernode_dsl.emit.options import (
        Option,
        OptionError,
        choice_option,
        int_option,
        ipv4_option,
        names_option,
        optional_text_option,
        text_option,
    )

# name -> the module defining it: imported on first use, so that importing one emitter
# module (or the JSON writers, as `cmx check` does) does not import the others
_LAZY = {
    **dict.fromkeys(("EmitContext", "Emitter", "available_emitters", "emit_error"), "base"),
    **dict.fromkeys(("graphml_text", "node_link_text"), "graphs"),
    **dict.fromkeys(("document_json", "info_json"), "jsontext"),
    **dict.fromkeys(("Option", "OptionError", "choice_option", "int_option", "ipv4_option",
                     "names_option", "optional_text_option", "text_option"), "options"),
}
__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "EmitContext",
    "Emitter",
    "FileTree",
    "Option",
    "OptionError",
    "available_emitters",
    "choice_option",
    "document_json",
    "emit_error",
    "graphml_text",
    "info_json",
    "int_option",
    "ipv4_option",
    "names_option",
    "node_link_text",
    "optional_text_option",
    "text_option",
    "write_atomic",
]
