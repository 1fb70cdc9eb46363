"""The pygls server: LSP messages in, :mod:`~supernode_dsl.lsp.analysis` and
:mod:`~supernode_dsl.lsp.symbols` answers out.

Diagnostics are published on open and, 0.2 s after the last keystroke, on change; the stages
run in one worker thread so the server keeps reading messages meanwhile (a hover waits for
the analysis of the text it is asked about).  A diagnostic located in an imported file is
shown on the import statement that brings that file in, with the real location as related
information.  Positions are converted with pygls's codec (UTF-16 by default), lines and
columns of spans are 1-based code points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from supernode_dsl import __version__
from supernode_dsl.diagnostics import Diagnostic, Severity, Span
from supernode_dsl.lsp.analysis import Analysis, analyse, import_site, source_path
from supernode_dsl.lsp.complete import complete
from supernode_dsl.lsp.symbols import Symbol, hover_markdown, symbol_at

__all__ = ["CmxLanguageServer", "serve"]

#: Seconds of quiet after a change before the document is checked again.
DEBOUNCE_S = 0.2

_SEVERITY = {Severity.ERROR: T.DiagnosticSeverity.Error,
             Severity.WARNING: T.DiagnosticSeverity.Warning,
             Severity.NOTE: T.DiagnosticSeverity.Information}

_KINDS = {"keyword": T.CompletionItemKind.Keyword, "type": T.CompletionItemKind.Class,
          "parameter": T.CompletionItemKind.Variable, "plane": T.CompletionItemKind.EnumMember,
          "attribute": T.CompletionItemKind.Property}


class CmxLanguageServer(LanguageServer):
    """The ``cmx lsp`` server: one analysis per open document, the latest kept."""

    def __init__(self, defines: Mapping[str, str] | None = None) -> None:
        super().__init__("cmx", __version__)
        self.defines = dict(defines or {})   # `cmx lsp -D`: global parameter overrides
        self.latest: dict[str, Analysis] = {}
        self.parsed: dict[str, Analysis] = {}  # the latest analysis whose program parsed
        self.pending: dict[str, asyncio.Task[Analysis]] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmx-analysis")

    def schedule(self, uri: str, delay: float) -> None:
        """Check ``uri`` after ``delay`` seconds, replacing a check not yet started."""
        old = self.pending.get(uri)
        if old is not None and not old.done():
            old.cancel()
        self.pending[uri] = asyncio.ensure_future(self._check(uri, delay))

    async def _check(self, uri: str, delay: float) -> Analysis:
        if delay:
            await asyncio.sleep(delay)
        doc = self.workspace.get_text_document(uri)
        path = Path(to_fs_path(uri) or uri)
        overlay = {Path(p): d.source for u, d in self.workspace.text_documents.items()
                   if u != uri and (p := to_fs_path(u))}
        result = await asyncio.get_running_loop().run_in_executor(
            self.worker, analyse, path, doc.source, overlay, self.defines)
        self.latest[uri] = result
        if result.program is not None:
            self.parsed[uri] = result
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(
            uri=uri, version=doc.version,
            diagnostics=[self.diagnostic(d, result) for d in result.diagnostics]))
        return result

    async def analysis(self, uri: str) -> Analysis | None:
        """The analysis of the document's current text (waiting for a pending check)."""
        task = self.pending.get(uri)
        if task is not None and not task.done():
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                return await self.analysis(uri)
        return self.latest.get(uri)

    async def symbol(self, params: T.HoverParams | T.DefinitionParams
                     ) -> tuple[Symbol, Analysis] | None:
        """The symbol at a request's position in the document's current text, if any."""
        uri = params.text_document.uri
        result = await self.analysis(uri)
        if result is None:
            return None
        line, col, _ = _position(self, uri, params.position)
        sym = symbol_at(result, line, col)
        return (sym, result) if sym else None

    # ---- conversions -----------------------------------------------------------------------
    def range(self, span: Span) -> T.Range:
        """An LSP range (0-based, in the client's position encoding) of a span."""
        lines = span.source.text.splitlines()
        codec = self.workspace.position_codec
        start = codec.position_to_client_units(lines, T.Position(
            line=span.line - 1, character=span.col - 1))
        end = codec.position_to_client_units(lines, T.Position(
            line=span.end_line - 1, character=span.end_col - 1))
        return T.Range(start=start, end=end)

    def location(self, span: Span) -> T.Location | None:
        """The location of a span in a file, or None for a buffer that is no file."""
        path = source_path(span.file)
        uri = from_fs_path(str(path)) if path else None
        return T.Location(uri=uri, range=self.range(span)) if uri else None

    def diagnostic(self, diag: Diagnostic, analysis: Analysis) -> T.Diagnostic:
        """An LSP diagnostic in the analysed document: at its span when the span is in the
        document, else at the import that leads to its file (or the first line)."""
        related = [T.DiagnosticRelatedInformation(location=loc, message=text)
                   for text, span in diag.notes
                   if span is not None and (loc := self.location(span))]
        message = diag.message + "".join(f"\nnote: {text}" for text, span in diag.notes
                                         if span is None)
        span = diag.span
        target = source_path(span.file) if span else None
        if span is not None and target == analysis.path:
            where = self.range(span)
        else:
            site = import_site(analysis, target) if target else None
            where = self.range(site) if site else T.Range(start=T.Position(line=0, character=0),
                                                   end=T.Position(line=0, character=0))
            if span is not None:
                message = f"{span.file}:{span.line}:{span.col}: {message}"
                if (loc := self.location(span)) is not None:
                    related.insert(0, T.DiagnosticRelatedInformation(location=loc,
                                                                         message=diag.message))
        return T.Diagnostic(range=where, message=message, severity=_SEVERITY[diag.severity],
                            code=diag.code, source="cmx", related_information=related or None)


def _position(ls: CmxLanguageServer, uri: str, pos: T.Position) -> tuple[int, int, str]:
    """1-based line and column of an LSP position, and the line's text before it."""
    doc = ls.workspace.get_text_document(uri)
    at = doc.position_codec.position_from_client_units(doc.lines, pos)
    text = doc.lines[at.line].rstrip("\r\n") if at.line < len(doc.lines) else ""
    return at.line + 1, at.character + 1, text[: at.character]


def _server(defines: Mapping[str, str] | None = None) -> CmxLanguageServer:
    ls = CmxLanguageServer(defines)

    @ls.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CmxLanguageServer, params: T.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, 0.0)

    @ls.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CmxLanguageServer, params: T.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, DEBOUNCE_S)

    @ls.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CmxLanguageServer, params: T.DidSaveTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, 0.0)

    @ls.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CmxLanguageServer, params: T.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        for table in (ls.latest, ls.parsed, ls.pending):
            table.pop(uri, None)
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @ls.feature(T.TEXT_DOCUMENT_HOVER)
    async def hover(ls: CmxLanguageServer, params: T.HoverParams) -> T.Hover | None:
        found = await ls.symbol(params)
        if found is None:
            return None
        sym, result = found
        text = hover_markdown(sym, result.model, result.path.parent)
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text),
                       range=ls.range(sym.span))

    @ls.feature(T.TEXT_DOCUMENT_DEFINITION)
    async def definition(ls: CmxLanguageServer,
                         params: T.DefinitionParams) -> T.Location | None:
        found = await ls.symbol(params)
        sym = found[0] if found else None
        return ls.location(sym.declaration) if sym and sym.declaration else None

    @ls.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[":", " "]))
    async def completion(ls: CmxLanguageServer,
                         params: T.CompletionParams) -> T.CompletionList:
        uri = params.text_document.uri
        await ls.analysis(uri)
        good = ls.parsed.get(uri)
        line, _, before = _position(ls, uri, params.position)
        items = [T.CompletionItem(label=c.label, kind=_KINDS[c.kind], detail=c.detail or None)
                 for c in complete(good.program if good else None, line, before)]
        return T.CompletionList(is_incomplete=False, items=items)

    return ls


def serve(defines: Mapping[str, str] | None = None) -> None:
    """Run the server on standard input and output until the client says ``exit``;
    ``defines`` (``cmx lsp -D``) override global parameters in every document that declares
    them."""
    _server(defines).start_io()
