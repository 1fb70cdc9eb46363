"""A front end like the CLI: ``cmx lsp``, a Language Server Protocol server over stdio.

It checks each open document as ``cmx check`` does (parse, elaborate, build the graph) on the
editor's unsaved text, imports resolved relative to the document, and answers hover (a
name's kind, its value in units, an instance array's instance count), go to definition
(across imports), and completion (keywords, types, parameters, planes, attributes).
:mod:`analysis` runs the stages, :mod:`symbols` resolves names, :mod:`complete` proposes
completions, :mod:`server` speaks LSP through pygls (an optional dependency, the ``lsp``
extra: only this sub-package imports it).
"""

from __future__ import annotations
