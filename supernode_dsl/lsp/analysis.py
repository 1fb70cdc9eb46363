"""One document checked as ``cmx check`` checks a file: parse, elaborate, build the graph.

:func:`analyse` runs the stages on an editor's text (unsaved buffers given as an overlay,
imports resolved relative to the document's own path) and keeps what each stage produced, so
hover and definition still work on a file whose graph check failed, and every diagnostic,
warnings included, is shown.  No pygls here: the server converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from supernode_dsl.diagnostics import CmxError, Diagnostic, DiagnosticSink, SourceText, Span
from supernode_dsl.elaborate import Model, elaborate
from supernode_dsl.graph import build_graph
from supernode_dsl.parse import Program, ast, parse_program, parse_text

__all__ = ["Analysis", "analyse", "import_site", "source_path"]


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the stages made of one document: the program (None after a parse, read or
    import error), the model (None after an elaboration error) and every diagnostic of the
    stages that ran, in report order."""

    path: Path
    text: str
    program: Program | None
    model: Model | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def main(self) -> ast.FileAST | None:
        """The document's own syntax tree, when it parsed."""
        return self.program.main if self.program else None


def analyse(path: Path, text: str, overlay: Mapping[Path, str] | None = None,
            defines: Mapping[str, str] | None = None) -> Analysis:
    """Check the document at ``path`` whose current text is ``text``; ``overlay`` holds the
    texts of other open documents, read instead of their files on disk; ``defines`` are
    ``cmx lsp -D`` overrides, each applied to the documents that declare (or import) that
    global parameter and ignored by the others (an editor opens files of many machines)."""
    path = path.resolve()
    buffers = {**(overlay or {}), path: text}
    program: Program | None = None
    model: Model | None = None
    diagnostics: list[Diagnostic] = []
    try:
        program = parse_program(path, overlay=buffers)
        declared = {p.name for f in program.files for p in f.params}
        model = elaborate(program, {k: v for k, v in (defines or {}).items()
                                    if k in declared})
        diagnostics.extend(model.warnings)
        build_graph(model)
    except CmxError as err:
        diagnostics.extend(d for d in err.diagnostics if d not in diagnostics)
    except RecursionError:  # as `cmx` itself reports it (cli.main)
        diagnostics.append(Diagnostic("E014", "the input is nested too deeply"))
    return Analysis(path, text, program, model, tuple(diagnostics))


def source_path(name: str) -> Path | None:
    """The file a source buffer named ``name`` was read from (parse names imports relative
    to the working directory), or None for a buffer that is no file (``<-D n=1>``)."""
    if name.startswith("<"):
        return None
    path = Path(name)
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


def _imports(file: ast.FileAST) -> list[tuple[ast.Import, Path]]:
    """The imports of a parsed file with the files they name."""
    here = source_path(file.path)
    if here is None:
        return []
    return [(imp, (here.parent / imp.path).resolve()) for imp in file.imports]


def import_site(analysis: Analysis, target: Path) -> Span | None:
    """The import statement of the document through which ``target`` was read, directly or
    through other imports (the document's first import when the program did not parse and
    only direct imports are known), to show a diagnostic of that file in the document; None
    when the document has no import."""
    main = analysis.main
    if main is None:
        sink = DiagnosticSink()
        main = parse_text(SourceText(str(analysis.path), analysis.text), sink)
        if main is None:
            return None
    files = analysis.program.files if analysis.program else ()
    by_path = {p: f for f in files if (p := source_path(f.path)) is not None}
    for imp, first in _imports(main):
        seen: set[Path] = set()
        todo = [first]
        while todo:
            p = todo.pop()
            if p == target:
                return imp.span
            if p in seen or p not in by_path:
                continue
            seen.add(p)
            todo.extend(q for _, q in _imports(by_path[p]))
    return main.imports[0].span if main.imports else None
