"""Turns lark's parse tree into the typed AST of :mod:`supernode_dsl.parse.ast`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer, v_args
from lark.tree import Meta

from supernode_dsl.diagnostics import SourceText, Span
from supernode_dsl.parse import ast as A

__all__ = ["AstBuilder"]


@v_args(meta=True)
class AstBuilder(Transformer[Token, Any]):
    """Builds AST nodes; one instance per source buffer (spans point into it)."""

    def __init__(self, source: SourceText) -> None:
        super().__init__()
        self.source = source

    # ---- spans ---------------------------------------------------------------------------
    def _span(self, meta: Meta) -> Span:
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return Span(
            self.source,
            tok.line or 1,
            tok.column or 1,
            tok.end_line or tok.line or 1,
            tok.end_column or (tok.column or 1) + len(tok),
        )

    # ---- expressions ---------------------------------------------------------------------
    @staticmethod
    def _num(text: str) -> tuple[float, bool]:
        # float() of the text, not of int(text): correctly rounded either way, and no
        # OverflowError (a 401-digit integer is inf) or digit limit (Python's 4,300 for
        # int); the evaluator reports inf and over-long literals, located
        clean = text.replace("_", "")
        return float(clean), not any(c in clean for c in ".eE")

    def number(self, meta: Meta, ch: list[Token]) -> A.Number:
        value, is_int = self._num(str(ch[0]))
        return A.Number(value, is_int, self._span(meta))

    def quantity(self, meta: Meta, ch: list[Token]) -> A.QuantityLit:
        value, _ = self._num(str(ch[0]))
        return A.QuantityLit(value, str(ch[1]), self._span(meta), self._tspan(ch[1]))

    def var(self, meta: Meta, ch: list[Token]) -> A.Var:
        return A.Var(str(ch[0]), self._span(meta))

    def string(self, meta: Meta, ch: list[Token]) -> A.String:
        return A.String(_unquote(str(ch[0])), self._span(meta))

    def true(self, meta: Meta, ch: list[Token]) -> A.Bool:
        return A.Bool(True, self._span(meta))

    def false(self, meta: Meta, ch: list[Token]) -> A.Bool:
        return A.Bool(False, self._span(meta))

    def call(self, meta: Meta, ch: list[Any]) -> A.Call:
        return A.Call(str(ch[0]), tuple(c for c in ch[1:] if c is not None), self._span(meta))

    def neg(self, meta: Meta, ch: list[Any]) -> A.Neg:
        return A.Neg(ch[0], self._span(meta))

    def _binop(self, op: str, meta: Meta, ch: list[Any]) -> A.BinOp:
        return A.BinOp(op, ch[0], ch[1], self._span(meta))

    def add(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("+", meta, ch)

    def sub(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("-", meta, ch)

    def mul(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("*", meta, ch)

    def div(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("/", meta, ch)

    def floordiv(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("//", meta, ch)

    def mod(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("%", meta, ch)

    def pow(self, meta: Meta, ch: list[Any]) -> A.BinOp:
        return self._binop("**", meta, ch)

    def compare(self, meta: Meta, ch: list[Any]) -> A.Compare:
        return A.Compare(str(ch[1]), ch[0], ch[2], self._span(meta))

    def and_(self, meta: Meta, ch: list[Any]) -> A.Logic:
        return A.Logic("and", ch[0], ch[1], self._span(meta))

    def or_(self, meta: Meta, ch: list[Any]) -> A.Logic:
        return A.Logic("or", ch[0], ch[1], self._span(meta))

    def not_(self, meta: Meta, ch: list[Any]) -> A.Not:
        return A.Not(ch[0], self._span(meta))

    # ---- references ----------------------------------------------------------------------
    def index_expr(self, meta: Meta, ch: list[Any]) -> A.IndexExpr:
        return A.IndexExpr(ch[0], self._span(meta))

    def index_all(self, meta: Meta, ch: list[Any]) -> A.IndexAll:
        return A.IndexAll(self._span(meta))

    def index_range(self, meta: Meta, ch: list[Any]) -> A.IndexRange:
        return A.IndexRange(ch[0], ch[1], self._span(meta))

    def segment(self, meta: Meta, ch: list[Any]) -> A.Segment:
        return A.Segment(str(ch[0]), tuple(ch[1:]), self._span(meta))

    def ref(self, meta: Meta, ch: list[Any]) -> A.Ref:
        return A.Ref(tuple(ch), self._span(meta))

    # ---- statements ----------------------------------------------------------------------
    def attr_name(self, meta: Meta, ch: list[Token]) -> tuple[str, Span]:
        return ".".join(str(c) for c in ch), self._span(meta)

    def attr_stmt(self, meta: Meta, ch: list[Any]) -> A.AttrStmt:
        (name, name_span), value = ch
        return A.AttrStmt(name, value, self._span(meta), name_span)

    def param_decl(self, meta: Meta, ch: list[Any]) -> A.ParamDecl:
        return A.ParamDecl(str(ch[0]), ch[1], self._span(meta), self._tspan(ch[0]))

    def plane_decl(self, meta: Meta, ch: list[Any]) -> A.PlaneDecl:
        desc = _unquote(str(ch[1])) if len(ch) > 1 else ""
        return A.PlaneDecl(str(ch[0]), desc, self._span(meta))

    def import_stmt(self, meta: Meta, ch: list[Token]) -> A.Import:
        return A.Import(_unquote(str(ch[0])), self._span(meta))

    def arg(self, meta: Meta, ch: list[Any]) -> A.Arg:
        return A.Arg(str(ch[0]), ch[1], self._span(meta))

    def type_args(self, meta: Meta, ch: list[Any]) -> tuple[A.Arg, ...]:
        return tuple(c for c in ch if c is not None)

    def attr_block(self, meta: Meta, ch: list[Any]) -> tuple[A.AttrStmt, ...]:
        return tuple(ch)

    def type_ref(self, meta: Meta, ch: list[Any]) -> A.TypeRef:
        args: tuple[A.Arg, ...] = ()
        attrs: tuple[A.AttrStmt, ...] = ()
        for item in ch[1:]:
            if item and isinstance(item[0], A.Arg):
                args = item
            elif item:
                attrs = item
        return A.TypeRef(str(ch[0]), args, attrs, self._span(meta))

    def dim(self, meta: Meta, ch: list[Any]) -> A.Expr:
        return ch[0]  # type: ignore[no-any-return]

    def child_decl(self, meta: Meta, ch: list[Any]) -> A.ChildDecl:
        return A.ChildDecl(
            str(ch[0]), tuple(ch[1:-1]), ch[-1], self._span(meta), self._tspan(ch[0])
        )

    def link_stmt(self, meta: Meta, ch: list[Any]) -> A.LinkStmt:
        plane, left, _op, right, *rest = ch
        guard = rest[0][1] if len(rest) == 2 else None
        return A.LinkStmt(str(plane), left, right, rest[-1], self._span(meta),
                          self._tspan(plane), guard)

    def guard(self, meta: Meta, ch: list[Any]) -> tuple[str, A.Expr]:
        return ("guard", ch[0])

    def assert_stmt(self, meta: Meta, ch: list[Any]) -> A.AssertStmt:
        return A.AssertStmt(ch[0], _unquote(str(ch[1])), self._span(meta))

    def if_block(self, meta: Meta, ch: list[Any]) -> A.IfBlock:
        condition, *body = ch
        orelse = body.pop() if body and isinstance(body[-1], _Else) else None
        return A.IfBlock(
            condition=condition,
            attrs=tuple(b for b in body if isinstance(b, A.AttrStmt)),
            children=tuple(b for b in body if isinstance(b, A.ChildDecl)),
            links=tuple(b for b in body if isinstance(b, A.LinkStmt)),
            asserts=tuple(b for b in body if isinstance(b, A.AssertStmt)),
            blocks=tuple(b for b in body if isinstance(b, A.IfBlock)),
            orelse=orelse.block if orelse else None,
            span=self._span(meta),
        )

    def else_block(self, meta: Meta, ch: list[Any]) -> _Else:
        if len(ch) == 1 and isinstance(ch[0], A.IfBlock):
            return _Else(ch[0])  # `else if`: the nested block is the else branch
        # the implied condition sits on the `else` keyword, not over the whole branch, so
        # a position lookup inside the branch reaches its statements
        true = A.Bool(True, Span(self.source, meta.line, meta.column, meta.line, meta.column + 4))
        return _Else(self.if_block(meta, [true, *ch]))

    def type_decl(self, meta: Meta, ch: list[Any]) -> A.TypeDecl:
        category, name, *body = ch
        return A.TypeDecl(
            category=str(category),
            name=str(name),
            params=tuple(b for b in body if isinstance(b, A.ParamDecl)),
            attrs=tuple(b for b in body if isinstance(b, A.AttrStmt)),
            children=tuple(b for b in body if isinstance(b, A.ChildDecl)),
            links=tuple(b for b in body if isinstance(b, A.LinkStmt)),
            span=self._span(meta),
            name_span=self._tspan(name),
            category_span=self._tspan(category),
            asserts=tuple(b for b in body if isinstance(b, A.AssertStmt)),
            blocks=tuple(b for b in body if isinstance(b, A.IfBlock)),
        )

    def root_decl(self, meta: Meta, ch: list[Any]) -> A.RootDecl:
        return A.RootDecl(str(ch[0]), ch[1], self._span(meta))

    def start(self, meta: Meta, ch: list[Any]) -> A.FileAST:
        return A.FileAST(
            path=self.source.name,
            imports=tuple(c for c in ch if isinstance(c, A.Import)),
            params=tuple(c for c in ch if isinstance(c, A.ParamDecl)),
            planes=tuple(c for c in ch if isinstance(c, A.PlaneDecl)),
            types=tuple(c for c in ch if isinstance(c, A.TypeDecl)),
            roots=tuple(c for c in ch if isinstance(c, A.RootDecl)),
            asserts=tuple(c for c in ch if isinstance(c, A.AssertStmt)),
        )


@dataclass(frozen=True, slots=True)
class _Else:
    """The else branch of an ``if`` while the tree is built (an always-true block)."""

    block: A.IfBlock


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def _unquote(text: str) -> str:
    """Resolve a double-quoted literal's escapes: \\n, \\t, \\\\ and \\"; others stay as written."""
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
