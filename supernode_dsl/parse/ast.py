"""The typed syntax tree of a .cmx file: frozen dataclasses, each keeping its source span.

The parser builds these and nothing else; meaning (names, units, counts) is given in
elaboration.  Expressions are a small closed set of node classes (:data:`Expr`).
"""

from __future__ import annotations

from dataclasses import dataclass

from supernode_dsl.diagnostics import Span

__all__ = [
    "Arg",
    "AssertStmt",
    "AttrStmt",
    "BinOp",
    "Bool",
    "Call",
    "ChildDecl",
    "Compare",
    "Expr",
    "FileAST",
    "IfBlock",
    "Import",
    "Index",
    "IndexAll",
    "IndexExpr",
    "IndexRange",
    "LinkStmt",
    "Logic",
    "Neg",
    "Not",
    "Number",
    "ParamDecl",
    "PlaneDecl",
    "QuantityLit",
    "Ref",
    "RootDecl",
    "Segment",
    "String",
    "TypeDecl",
    "TypeRef",
    "Var",
]


# ---- expressions -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Number:
    """A plain number literal."""

    value: float
    is_int: bool
    span: Span


@dataclass(frozen=True, slots=True)
class QuantityLit:
    """A number followed by a unit word, e.g. ``28 GB/s``; the unit is checked later."""

    value: float
    unit: str
    span: Span
    unit_span: Span


@dataclass(frozen=True, slots=True)
class Var:
    """A name used as a value: a parameter or an index variable."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class String:
    """A double-quoted string literal (escapes resolved)."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Bool:
    """``true`` or ``false``."""

    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    """A binary operation; ``op`` is one of + - * / // % **."""

    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus."""

    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """A call of a built-in function (min, max, ceil, floor, ...)."""

    func: str
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    """A comparison; ``op`` is one of == != < <= > >= (the value is a boolean)."""

    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Logic:
    """``left and right`` or ``left or right`` (``op`` is "and" or "or") on booleans."""

    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand`` on a boolean."""

    operand: Expr
    span: Span


Expr = Number | QuantityLit | Var | String | Bool | BinOp | Neg | Call | Compare | Logic | Not


# ---- references (link endpoints) ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IndexExpr:
    """``[expr]``: one index, possibly using index variables."""

    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class IndexAll:
    """``[*]``: every index of that dimension."""

    span: Span


@dataclass(frozen=True, slots=True)
class IndexRange:
    """``[lo:hi]``: indices lo .. hi-1."""

    lo: Expr
    hi: Expr
    span: Span


Index = IndexExpr | IndexAll | IndexRange


@dataclass(frozen=True, slots=True)
class Segment:
    """One step of a reference: a child name and its indices, e.g. ``l2[j][*]``."""

    name: str
    indices: tuple[Index, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Ref:
    """A dotted reference to instances below the current type, e.g. ``npu[*].die[1]``."""

    segments: tuple[Segment, ...]
    span: Span

    def text(self) -> str:
        """The reference as written (normalised spacing)."""
        return ".".join(s.name + "[…]" * len(s.indices) for s in self.segments)


# ---- statements --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AttrStmt:
    """``name = expr`` (``name`` may be dotted: ``compute.bf16``)."""

    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """``param name = expr``: a global parameter or a parameter of a type."""

    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class PlaneDecl:
    """``plane name "description"``."""

    name: str
    description: str
    span: Span


@dataclass(frozen=True, slots=True)
class Import:
    """``import "path"`` (relative to the importing file)."""

    path: str
    span: Span


@dataclass(frozen=True, slots=True)
class Arg:
    """``name = expr`` in a type argument list."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class TypeRef:
    """A use of a type: its name, arguments for its params and attribute overrides."""

    name: str
    args: tuple[Arg, ...]
    attrs: tuple[AttrStmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ChildDecl:
    """``name[d1][d2]: Type`` inside a type body."""

    name: str
    dims: tuple[Expr, ...]
    type_ref: TypeRef
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class LinkStmt:
    """``link plane a <-> b where guard { attrs }`` (``guard`` is None without ``where``)."""

    plane: str
    left: Ref
    right: Ref
    attrs: tuple[AttrStmt, ...]
    span: Span
    plane_span: Span
    guard: Expr | None = None


@dataclass(frozen=True, slots=True)
class AssertStmt:
    """``assert condition, "message"``: at top level or in a type body."""

    condition: Expr
    message: str
    span: Span


@dataclass(frozen=True, slots=True)
class IfBlock:
    """``if condition { ... } else { ... }`` in a type body: the items of the branch taken
    are part of the type (``orelse`` holds the else branch; an ``else if`` is one nested
    block)."""

    condition: Expr
    attrs: tuple[AttrStmt, ...]
    children: tuple[ChildDecl, ...]
    links: tuple[LinkStmt, ...]
    asserts: tuple[AssertStmt, ...]
    blocks: tuple[IfBlock, ...]
    orelse: IfBlock | None
    span: Span


@dataclass(frozen=True, slots=True)
class TypeDecl:
    """``category Name { ... }``."""

    category: str
    name: str
    params: tuple[ParamDecl, ...]
    attrs: tuple[AttrStmt, ...]
    children: tuple[ChildDecl, ...]
    links: tuple[LinkStmt, ...]
    span: Span
    name_span: Span
    category_span: Span
    asserts: tuple[AssertStmt, ...] = ()
    blocks: tuple[IfBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class RootDecl:
    """``instance name: Type`` at top level: the root of the elaborated model."""

    name: str
    type_ref: TypeRef
    span: Span


@dataclass(frozen=True, slots=True)
class FileAST:
    """One parsed file, its statements grouped by kind in source order."""

    path: str
    imports: tuple[Import, ...]
    params: tuple[ParamDecl, ...]
    planes: tuple[PlaneDecl, ...]
    types: tuple[TypeDecl, ...]
    roots: tuple[RootDecl, ...]
    asserts: tuple[AssertStmt, ...] = ()
