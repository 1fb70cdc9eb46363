"""Friendly messages for syntax errors: lark's exceptions become E001 diagnostics."""

from __future__ import annotations

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from supernode_dsl.diagnostics import Diagnostic, SourceText, Span

__all__ = ["syntax_diagnostic"]

_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "UNIT": "a unit",
    "EQUAL": "'='",
    "COLON": "':'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LINK_OP": "'<->'",
    "_NL": "a line break",
    "SEMICOLON": "';'",
    "COMMA": "','",
    "DOT": "'.'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "COMPARE": "a comparison",
    "WHERE": "'where'",
    "ASSERT": "'assert'",
    "IF": "'if'",
    "ELSE": "'else'",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "$END": "the end of the file",
}


def _describe(tok_type: str, value: str = "") -> str:
    if tok_type in ("NAME", "NUMBER", "UNIT", "STRING") and value:
        return f"'{value}'"
    if tok_type == "_NL":
        return "a line break"
    if tok_type == "$END":
        return "the end of the file"
    return _TERMINAL_NAMES.get(tok_type, f"'{value}'" if value else tok_type.lower())


def _expected(expected: set[str]) -> str:
    names = sorted({_TERMINAL_NAMES.get(e, e.lower().strip("_")) for e in expected})
    if len(names) > 6:
        names = [*names[:6], "..."]
    return ", ".join(names)


def _unclosed_brace(source: SourceText, upto: int | None = None) -> Span | None:
    """The '{' that is never closed (in lines 1..``upto``, default all), ignoring comments
    and strings; None if balanced."""
    stack: list[tuple[int, int]] = []
    for lineno, line in enumerate(source.text.splitlines(), start=1):
        if upto is not None and lineno > upto:
            break
        in_str = False
        for col, ch in enumerate(line, start=1):
            if ch == '"':
                in_str = not in_str
            elif in_str:
                continue
            elif ch == "#":
                break
            elif ch == "{":
                stack.append((lineno, col))
            elif ch == "}" and stack:
                stack.pop()
    if not stack:
        return None
    open_line, open_col = stack[-1]
    return Span(source, open_line, open_col, open_line, open_col + 1)


def _token_message(err: UnexpectedToken, source: SourceText) -> tuple[str, Span | None]:
    tok: Token = err.token
    expected = set(err.expected)
    got = _describe(tok.type, str(tok))
    stack = list(err.state.value_stack) if err.state is not None else []
    prev_tok = stack[-1] if stack and isinstance(stack[-1], Token) else None
    prev2 = stack[-2] if len(stack) > 1 and isinstance(stack[-2], Token) else None
    if tok.type == "$END":
        brace = _unclosed_brace(source)
        if brace is not None:
            return (f"unexpected end of file: the '{{' opened at line {brace.line} "
                    "is never closed", None)
        return "unexpected end of file", None
    if "EQUAL" in expected and prev_tok is not None and prev_tok.type == "NAME" \
            and tok.type in ("NUMBER", "NAME", "STRING"):
        return (f"expected '=' after '{prev_tok}', found {got} "
                f"(write `{prev_tok} = {tok} ...`)", None)
    if prev_tok is not None and prev_tok.type == "UNIT" and tok.type in ("EQUAL", "COLON"):
        return (f"'{prev_tok}' starts a new statement: put it on its own line "
                "(or separate statements with ';')", None)
    if prev2 is not None and str(prev2) == "link" and tok.type in ("LSQB", "DOT", "LINK_OP"):
        return ("a link names its plane first: `link PLANE a <-> b { bw = ... }`, "
                f"found {got}", None)
    if str(tok) == "//":
        return "comments start with '#', found '//'", None
    if "LINK_OP" in expected and tok.type in ("MINUS", "LESSTHAN", "MORETHAN", "__ANON_0"):
        return f"links are written with '<->', found {got}", None
    if "LBRACE" in expected and tok.type in ("_NL", "$END"):
        return ("a link needs a block with at least its bandwidth, "
                "e.g. `{ bw = 28 GB/s }`", None)
    opened = {t.type for t in stack if isinstance(t, Token)}
    if "ASSERT" in opened and "COMMA" in expected and tok.type in ("_NL", "SEMICOLON"):
        return 'an assertion needs a message: `assert CONDITION, "message"`', None
    if "IF" in opened and prev_tok is not None and str(prev_tok) == "param":
        return ("an `if` block cannot declare a parameter: declare it in the type body "
                "(its value may depend on the condition's parameters)", None)
    if tok.type in ("NAME", "UNIT") and ("_NL" in expected or "SEMICOLON" in expected):
        return (f"unexpected {got}: put one statement per line "
                "(or separate statements with ';')", None)
    if tok.type in ("INSTANCE", "IMPORT", "PLANE") and "RBRACE" in expected:
        brace = _unclosed_brace(source, upto=(tok.line or 1) - 1)
        where = f" (the '{{' opened at line {brace.line} is never closed)" if brace else ""
        return f"'{tok}' cannot appear inside a block: is a '}}' missing?{where}", None
    if tok.type == "_NL":
        return f"unexpected end of line; expected {_expected(expected)}", None
    return f"unexpected {got}; expected {_expected(expected)}", None


def _char_message(err: UnexpectedCharacters, source: SourceText) -> str:
    line = source.line(err.line)
    rest = line[err.column - 1:]
    if rest.startswith(("<>", "--", "->", "<-", "<=>")):
        return "links are written with '<->'"
    if rest.startswith("'"):
        return "strings are written in double quotes"
    if rest.startswith(("//", "/*")):
        return "comments start with '#'"
    return f"unexpected character {rest[:1]!r}"


def syntax_diagnostic(err: UnexpectedInput, source: SourceText) -> Diagnostic:
    """Turn a lark parse error into one E001 diagnostic with a friendly message."""
    if isinstance(err, UnexpectedToken):
        msg, span = _token_message(err, source)
        tok = err.token
        if span is None:
            if tok.type == "$END" or tok.line is None or tok.line < 1:
                last = max(1, len(source.text.splitlines()))
                end_col = len(source.line(last)) + 1
                span = Span(source, last, end_col, last, end_col + 1)
            else:
                length = 1 if tok.type == "_NL" else max(1, len(str(tok)))
                span = Span(source, tok.line, tok.column or 1, tok.line, (tok.column or 1) + length)
        return Diagnostic("E001", msg, span)
    if isinstance(err, UnexpectedCharacters):
        span = Span(source, err.line, err.column, err.line, err.column + 1)
        return Diagnostic("E001", _char_message(err, source), span)
    if isinstance(err, UnexpectedEOF):
        last = max(1, len(source.text.splitlines()))
        span = Span(source, last, 1, last, 2)
        return Diagnostic("E001", "unexpected end of file", span)
    line = getattr(err, "line", 1) or 1
    col = getattr(err, "column", 1) or 1
    return Diagnostic("E001", str(err).splitlines()[0], Span(source, line, col, line, col + 1))
