"""Stage 1, parse: .cmx text -> :class:`Program` (typed ASTs of a file and all its imports).

Entry point: :func:`parse_program`.  Syntax errors, unreadable files and import cycles are
reported as diagnostics (E001, E011, E009); the stage raises :class:`CmxError` with all of
them at its end.  Imports are resolved relative to the importing file and each file is parsed
once, however often it is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from supernode_dsl.contracts import check_path, check_text
from supernode_dsl.diagnostics import ArgumentError, CmxError, DiagnosticSink, SourceText, Span
from supernode_dsl.files import max_input_bytes, read_text
from supernode_dsl.parse import ast
from supernode_dsl.parse.errors import syntax_diagnostic
from supernode_dsl.parse.grammar import get_parser
from supernode_dsl.parse.transform import AstBuilder

__all__ = ["Program", "ast", "parse_program", "parse_text"]


@dataclass(frozen=True, slots=True)
class Program:
    """The parsed main file and every file it imports, imports first (dependency order)."""

    main: ast.FileAST
    files: tuple[ast.FileAST, ...]


#: The deepest nesting of the parse tree (an expression's operators and parentheses, a
#: chain of ``+`` or ``**``) a file may have: far above any real file, and low enough that
#: the recursive stages after the parser stay clear of Python's recursion limit.
MAX_NESTING = 100


def parse_text(source: SourceText, sink: DiagnosticSink) -> ast.FileAST | None:
    """Parse one buffer; on a syntax error record an E001 diagnostic, on nesting deeper than
    :data:`MAX_NESTING` an E014, and return None."""
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = get_parser().parse(text)
    except UnexpectedInput as err:
        sink.diagnostics.append(syntax_diagnostic(err, source))
        return None
    if (deep := _too_deep(tree)) is not None:
        meta = deep.meta
        sink.error("E014", f"this expression is nested or chained more than {MAX_NESTING} "
                   "levels deep; split it with parameters",
                   Span(source, meta.line, meta.column, meta.end_line, meta.end_column))
        return None
    result: ast.FileAST = AstBuilder(source).transform(tree)
    return result


def _too_deep(tree: Tree[Token]) -> Tree[Token] | None:
    """The first node found deeper than :data:`MAX_NESTING` (where the nesting passes the
    limit), or None."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return node
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return None


def _read(path: Path, sink: DiagnosticSink, at: Span | None,
          shown: str | None = None, overlay: Mapping[Path, str] | None = None
          ) -> SourceText | None:
    """``path``'s text: from ``overlay`` (an editor's unsaved buffer) if it holds it, else
    through the one reader (regular files only, size-limited), its mistakes (E011, E030,
    E031) going to ``sink``."""
    if overlay and path.resolve() in overlay:
        return SourceText(str(path), overlay[path.resolve()])
    try:
        return read_text(path, "E011", at, shown=shown, limit=max_input_bytes(source=True))
    except CmxError as err:
        sink.diagnostics.extend(err.diagnostics)
        return None


class _Loader:
    def __init__(self, sink: DiagnosticSink, overlay: Mapping[Path, str]) -> None:
        self.sink = sink
        self.overlay = overlay
        self.done: dict[Path, ast.FileAST | None] = {}
        self.order: list[ast.FileAST] = []
        self.stack: list[Path] = []

    def load(self, source: SourceText, key: Path) -> ast.FileAST | None:
        self.stack.append(key)
        tree = parse_text(source, self.sink)
        if tree is not None:
            for imp in tree.imports:
                self._import(key.parent, imp)
            self.order.append(tree)
        self.stack.pop()
        self.done[key] = tree
        return tree

    def _import(self, base: Path, imp: ast.Import) -> None:
        try:
            target = (base / imp.path).resolve()
        except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
            self.sink.error("E011", f"cannot read '{imp.path}': {err}", imp.span)
            return
        if target in self.stack:
            chain = " -> ".join(p.name for p in [*self.stack[self.stack.index(target):], target])
            self.sink.error("E009", f"import cycle: {chain}", imp.span)
            return
        if target in self.done:
            return
        source = _read(target, self.sink, imp.span, _display_name(target), self.overlay)
        if source is None:
            self.done[target] = None
            return
        display = SourceText(_display_name(target), source.text)
        self.load(display, target)


def _display_name(path: Path) -> str:
    """A path relative to the working directory when possible (diagnostics stay short)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_program(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    name: str = "<string>",
    overlay: Mapping[Path, str] | Mapping[str, str] | None = None,
) -> Program:
    """Parse a .cmx file (or ``text``) and, recursively, every file it imports.

    Exactly one of ``path`` and ``text`` is given.  Imports in ``text`` are resolved relative
    to the current directory.  ``overlay`` maps file paths to texts read instead of those
    files (an editor's unsaved buffers; the main file's too).  Raises
    :class:`~supernode_dsl.diagnostics.CmxError` listing every syntax, read and import error
    found, and its subclass :class:`~supernode_dsl.diagnostics.ArgumentError` (E028) for a
    ``path`` that is not a ``str`` or ``os.PathLike``, a ``text`` or ``name`` that is not a
    ``str``, or neither or both of ``path`` and ``text``.
    """
    where = "parse_program"
    if (path is None) == (text is None):
        raise ArgumentError(f"{where}: give a path or text=..., exactly one of them")
    sink = DiagnosticSink()
    loader = _Loader(sink, {Path(k).resolve(): v for k, v in (overlay or {}).items()})
    if text is not None:
        name = check_text(name, where, "name")
        if "\0" in name:
            raise ArgumentError(f"{where}: name {name!r} holds a NUL character")
        key = (Path.cwd() / f"<{name}>").resolve()
        main = loader.load(SourceText(name, check_text(text, where, "text")), key)
    else:
        file = check_path(path, where)
        source = _read(file, sink, None, overlay=loader.overlay)
        main = loader.load(SourceText(str(path), source.text), file.resolve()) \
            if source else None
    sink.raise_if_errors()
    if main is None:  # a stage without errors has read its main file
        raise RuntimeError("parse_program: no main file and no error")
    return Program(main=main, files=tuple(loader.order))
