"""Stage 1, parse: .cmx text -> :class:`Program` (typed ASTs of a file and all its imports).

Entry point: :func:`parse_program`.  Syntax errors, unreadable files and import cycles are
reported as diagnostics (E001, E011, E009); the stage raises :class:`CmxError` with all of
them at its end.  Imports are resolved relative to the importing file and each file is parsed
once, however often it is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lark.exceptions import UnexpectedInput

from supernode_dsl.contracts import check_path, check_text
from supernode_dsl.diagnostics import ArgumentError, DiagnosticSink, SourceText, Span
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


def parse_text(source: SourceText, sink: DiagnosticSink) -> ast.FileAST | None:
    """Parse one buffer; on a syntax error record an E001 diagnostic and return None."""
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = get_parser().parse(text)
        result: ast.FileAST = AstBuilder(source).transform(tree)
    except UnexpectedInput as err:
        sink.diagnostics.append(syntax_diagnostic(err, source))
        return None
    except RecursionError:
        sink.error("E001", "expression nested too deeply", Span(source, 1, 1, 1, 2))
        return None
    return result


def _read(path: Path, sink: DiagnosticSink, at: Span | None,
          shown: str | None = None) -> SourceText | None:
    name = shown or str(path)
    try:
        data = path.read_bytes()
    except ValueError as err:  # a NUL byte in the path
        sink.error("E011", f"cannot read '{name}': {err}", at)
        return None
    except OSError as err:
        sink.error("E011", f"cannot read '{name}': {err.strerror or err}", at)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        sink.error("E011", f"'{name}' is not UTF-8 text (bad byte at offset {err.start})", at)
        return None
    return SourceText(str(path), text)


class _Loader:
    def __init__(self, sink: DiagnosticSink) -> None:
        self.sink = sink
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
        source = _read(target, self.sink, imp.span, _display_name(target))
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
) -> Program:
    """Parse a .cmx file (or ``text``) and, recursively, every file it imports.

    Exactly one of ``path`` and ``text`` is given.  Imports in ``text`` are resolved relative
    to the current directory.  Raises :class:`~supernode_dsl.diagnostics.CmxError` listing
    every syntax, read and import error found, and its subclass
    :class:`~supernode_dsl.diagnostics.ArgumentError` (E028) for a ``path`` that is not a
    ``str`` or ``os.PathLike``, a ``text`` or ``name`` that is not a ``str``, or neither or
    both of ``path`` and ``text``.
    """
    where = "parse_program"
    if (path is None) == (text is None):
        raise ArgumentError(f"{where}: give a path or text=..., exactly one of them")
    sink = DiagnosticSink()
    loader = _Loader(sink)
    if text is not None:
        name = check_text(name, where, "name")
        if "\0" in name:
            raise ArgumentError(f"{where}: name {name!r} holds a NUL character")
        key = (Path.cwd() / f"<{name}>").resolve()
        main = loader.load(SourceText(name, check_text(text, where, "text")), key)
    else:
        file = check_path(path, where)
        source = _read(file, sink, None)
        main = loader.load(SourceText(str(path), source.text), file.resolve()) \
            if source else None
    sink.raise_if_errors()
    if main is None:  # a stage without errors has read its main file
        raise RuntimeError("parse_program: no main file and no error")
    return Program(main=main, files=tuple(loader.order))
