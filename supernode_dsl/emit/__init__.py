"""Stage 5, emit: outputs for other tools, written atomically and deterministically.

* :mod:`~supernode_dsl.emit.base`: the :class:`Emitter` plugin interface and
  :func:`available_emitters` (built-ins plus the ``supernode_dsl.emitters`` entry points);
  ``cmx emit FORMAT FILE -o PATH`` runs one.
* :mod:`~supernode_dsl.emit.graphs`: networkx node-link JSON and GraphML.
* :mod:`~supernode_dsl.emit.jsontext`: deterministic JSON for reports and plans.
* :mod:`~supernode_dsl.emit.templates`: the one strict jinja2 environment over ``codegen/``.
* :mod:`~supernode_dsl.emit.files`: :func:`write_atomic`.
"""

from supernode_dsl.emit.base import EmitContext, Emitter, available_emitters, emit_error
from supernode_dsl.emit.files import write_atomic
from supernode_dsl.emit.graphs import graphml_text, node_link_text
from supernode_dsl.emit.jsontext import document_json, info_json

__all__ = [
    "EmitContext",
    "Emitter",
    "available_emitters",
    "document_json",
    "emit_error",
    "graphml_text",
    "info_json",
    "node_link_text",
    "write_atomic",
]
