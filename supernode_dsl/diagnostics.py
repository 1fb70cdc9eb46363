"""Diagnostics: every user mistake becomes a located, coded message, never a traceback.

A :class:`Diagnostic` carries a stable code (``E001`` ...), a message, and a :class:`Span`
into a source file.  It renders as::

    file.cmx:12:9: error[E004]: attribute 'bw' needs a bandwidth, not a time (ns)
       12 |     link ub a <-> b { bw = 5 ns }
          |                            ^^^^

Stages collect diagnostics in a :class:`DiagnosticSink` and, at the end of the stage, call
:meth:`DiagnosticSink.raise_if_errors`, so a user sees every error of a stage at once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "CODES",
    "ArgumentError",
    "CmxError",
    "Diagnostic",
    "DiagnosticSink",
    "DiagnosticWarning",
    "Severity",
    "SourceText",
    "Span",
    "render",
]


#: Every diagnostic code with a one-line title.  The codes are stable: tools and tests may
#: match on them.  ``docs/diagnostics.md`` explains each one with an example.
CODES: dict[str, str] = {
    "E001": "syntax error",
    "E002": "unknown name",
    "E003": "missing unit",
    "E004": "wrong unit",
    "E005": "bad count or index",
    "E006": "switch port budget exceeded",
    "E007": "pattern matches nothing",
    "E008": "duplicate name",
    "E009": "import cycle",
    "E010": "over a size limit",
    "E011": "cannot read file",
    "E012": "bad link",
    "E013": "index out of range",
    "E014": "bad expression",
    "E015": "bad command-line definition",
    "E016": "more than one root instance",
    "E017": "recursive type",
    "E018": "inconsistent index variable",
    "E019": "missing required attribute",
    "E020": "bad query",
    "E021": "bad expert-loads file",
    "E022": "deployment does not fit the topology",
    "E023": "device memory exceeded",
    "E024": "bad plan file",
    "E025": "no deployment to plan",
    "E026": "cannot emit",
    "E027": "assertion failed",
    "E028": "bad argument to a Python API function",
    "E029": "simulation failed",
    "E030": "input file too large",
    "E031": "not a regular file",
    "E032": "cannot write output",
    "E038": "bad sweep table",
    "W001": "parameter used where an index variable looks meant",
    "W002": "pair matched from both ends of a link pattern",
    "W003": "degenerate cut query",
    "W004": "all-to-all simulated on a back end that does not share links",
    "W006": "sweep of other sources",
}


class Severity(enum.Enum):
    """How serious a diagnostic is; only errors stop compilation."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class SourceText:
    """One source buffer: a file's text (or a command-line definition) and its display name."""

    name: str
    text: str

    def line(self, lineno: int) -> str:
        """Return line ``lineno`` (1-based) without its line break, or '' if out of range."""
        lines = self.text.splitlines()
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source buffer; lines and columns are 1-based, ``end_col`` exclusive."""

    source: SourceText
    line: int
    col: int
    end_line: int
    end_col: int

    @property
    def file(self) -> str:
        """Display name of the source buffer."""
        return self.source.name


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A message about the user's input, with a stable code and an optional location."""

    code: str
    message: str
    span: Span | None = None
    severity: Severity = Severity.ERROR
    notes: tuple[tuple[str, Span | None], ...] = ()

    def render(self) -> str:
        """Format as ``file:line:col: error[CODE]: message`` plus source line and carets."""
        return render(self)


def _caret_block(span: Span) -> list[str]:
    text = span.source.line(span.line)
    width = len(str(span.line))
    if span.end_line == span.line:
        length = max(1, span.end_col - span.col)
    else:
        length = max(1, len(text) - span.col + 1)
    pad = " " * width
    gutter = f" {span.line} | "
    caret = f" {pad} | " + " " * (span.col - 1) + "^" * length
    return [gutter + text, caret.rstrip()]


def render(diag: Diagnostic) -> str:
    """Render one diagnostic, with its notes, as the text shown to a user."""
    head = f"{diag.severity.value}[{diag.code}]: {diag.message}"
    lines: list[str] = []
    if diag.span is None:
        lines.append(f"cmx: {head}")
    else:
        s = diag.span
        lines.append(f"{s.file}:{s.line}:{s.col}: {head}")
        lines.extend(_caret_block(s))
    for text, nspan in diag.notes:
        if nspan is None:
            lines.append(f"  = note: {text}")
        else:
            lines.append(f"{nspan.file}:{nspan.line}:{nspan.col}: note: {text}")
            lines.extend(_caret_block(nspan))
    return "\n".join(lines)


class DiagnosticWarning(UserWarning):
    """A warning diagnostic issued through :mod:`warnings` (by an emitter); ``cmx`` prints
    it rendered (``cmx: warning[CODE]: message``)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(render(diagnostic))
        self.diagnostic = diagnostic


class CmxError(Exception):
    """Raised when a stage ends with errors; carries every diagnostic of that stage."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    @property
    def codes(self) -> list[str]:
        """The codes of the diagnostics, in report order."""
        return [d.code for d in self.diagnostics]


class ArgumentError(CmxError, TypeError, ValueError):
    """A Python API function was called with an argument of the wrong type or value (E028).

    It is a :class:`CmxError` (so ``except CmxError`` catches every refusal of the API) and
    also a ``TypeError`` and a ``ValueError``, the exceptions plain Python code expects of a
    bad argument.
    """

    def __init__(self, message: str) -> None:
        super().__init__([Diagnostic("E028", message)])


def _known(code: str) -> None:
    if code not in CODES:  # a programming error of this package, not of its user
        raise KeyError(f"diagnostic code {code!r} is not in CODES")


@dataclass
class DiagnosticSink:
    """Collects the diagnostics of one stage; errors are raised together at the stage end."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    limit: int = 200

    def error(
        self,
        code: str,
        message: str,
        span: Span | None = None,
        notes: tuple[tuple[str, Span | None], ...] = (),
    ) -> None:
        """Record an error (deduplicated on code, message and location)."""
        _known(code)
        diag = Diagnostic(code, message, span, Severity.ERROR, notes)
        if diag not in self.diagnostics and len(self.diagnostics) < self.limit:
            self.diagnostics.append(diag)

    def warning(self, code: str, message: str, span: Span | None = None,
                notes: tuple[tuple[str, Span | None], ...] = ()) -> None:
        """Record a warning: reported, but compilation goes on."""
        _known(code)
        diag = Diagnostic(code, message, span, Severity.WARNING, notes)
        if diag not in self.diagnostics and len(self.diagnostics) < self.limit:
            self.diagnostics.append(diag)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """The warnings recorded so far."""
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)

    @property
    def has_errors(self) -> bool:
        """True once any error was recorded."""
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    def raise_if_errors(self) -> None:
        """End of a stage: raise :class:`CmxError` with all diagnostics if any is an error."""
        if self.has_errors:
            raise CmxError(self.diagnostics)
