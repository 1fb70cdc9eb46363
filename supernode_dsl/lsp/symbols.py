"""What a name under the cursor is: its kind, where it is declared, and what it resolves to.

:func:`symbol_at` reads the syntax tree of a document (:func:`~supernode_dsl.parse.lookup.
nodes_at`) and the declarations of every file of its program (types, parameters and planes
are global across imports; instances, type parameters and index variables are local to a
type); :func:`hover_markdown` describes a symbol with the elaborated model's values (in
units: ``28 GB/s``) and instance counts.  No pygls here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from supernode_dsl.contracts import present
from supernode_dsl.diagnostics import SourceText, Span
from supernode_dsl.elaborate import Model, Value
from supernode_dsl.lsp.analysis import Analysis, source_path
from supernode_dsl.parse import Program
from supernode_dsl.parse import ast as A
from supernode_dsl.parse.lookup import contains, name_span, nodes_at
from supernode_dsl.schema import DEPLOYMENT_ATTRS, LINK_ATTRS, MODEL_ATTRS, expected_dim, kind_name
from supernode_dsl.units import BANDWIDTH, TIME, Quantity, format_quantity

__all__ = ["Declarations", "Symbol", "hover_markdown", "symbol_at"]


@dataclass(frozen=True, slots=True)
class Symbol:
    """A name in a document: ``kind`` (type, parameter, plane, instance, attribute, index,
    import, root, category), the span it is written at, its declaration (None for an index
    variable or an attribute, which are not declared) and the nodes that give its meaning
    (the declaration's AST node, the enclosing type, the link or type use around it)."""

    kind: str
    name: str
    span: Span
    declaration: Span | None
    node: object = None
    owner: A.TypeDecl | None = None
    context: object = None


@dataclass(frozen=True, slots=True)
class Declarations:
    """The global names of a program: types, parameters and planes of all its files."""

    types: dict[str, A.TypeDecl]
    params: dict[str, A.ParamDecl]
    planes: dict[str, A.PlaneDecl]

    @classmethod
    def of(cls, program: Program) -> Declarations:
        """The first declaration of each name (a duplicate is an E008 of its own)."""
        types: dict[str, A.TypeDecl] = {}
        params: dict[str, A.ParamDecl] = {}
        planes: dict[str, A.PlaneDecl] = {}
        for f in program.files:
            for t in f.types:
                types.setdefault(t.name, t)
            for p in f.params:
                params.setdefault(p.name, p)
            for pl in f.planes:
                planes.setdefault(pl.name, pl)
        return cls(types, params, planes)


def symbol_at(analysis: Analysis, line: int, col: int) -> Symbol | None:
    """The symbol at (``line``, ``col``), 1-based, of the analysed document, or None (no
    name there, or the document did not parse)."""
    if analysis.program is None:
        return None
    decls = Declarations.of(analysis.program)
    chain = nodes_at(analysis.program.main, line, col)
    owner = next((n for n in chain if isinstance(n, A.TypeDecl)), None)
    for depth in range(len(chain) - 1, -1, -1):
        parent = chain[depth - 1] if depth else None
        found = _resolve(chain[depth], parent, chain, owner, decls, line, col)
        if found is not None:
            return found
    return None


def _resolve(node: object, parent: object, chain: tuple[object, ...], owner: A.TypeDecl | None,
             decls: Declarations, line: int, col: int) -> Symbol | None:
    """The symbol ``node`` names at the position, if the position is on its name."""
    if isinstance(node, A.Var):
        return _var(node, chain, owner, decls)
    if isinstance(node, A.Segment) and isinstance(parent, A.Ref):
        return _segment(node, parent, owner, decls, line, col)
    if isinstance(node, A.Arg) and isinstance(parent, A.TypeRef):
        here = name_span(node, node.name)
        decl = decls.types.get(parent.name)
        param = next((p for p in decl.params if p.name == node.name), None) if decl else None
        return Symbol("parameter", node.name, here, param.name_span if param else None,
                      param, decl) if contains(here, line, col) else None
    if isinstance(node, A.TypeRef):
        return _named(node, "type", node.name, name_span(node, node.name), decls, line, col)
    if isinstance(node, A.AttrStmt):
        return Symbol("attribute", node.name, node.name_span, None, node, owner,
                      _attr_context(chain, node)) if contains(node.name_span, line, col) else None
    return _declaration(node, owner, decls, line, col)


def _declaration(node: object, owner: A.TypeDecl | None, decls: Declarations, line: int,
                 col: int) -> Symbol | None:
    """A declaration's own name, or a link's plane."""
    site: tuple[str, str, Span, object] | None = None
    if isinstance(node, A.TypeDecl):
        if contains(node.category_span, line, col):
            return Symbol("category", node.category, node.category_span, None, node)
        site = ("type", node.name, node.name_span, node)
    elif isinstance(node, A.ParamDecl):
        site = ("parameter", node.name, node.name_span, node)
    elif isinstance(node, A.ChildDecl):
        site = ("instance", node.name, node.name_span, node)
    elif isinstance(node, A.PlaneDecl):
        site = ("plane", node.name, name_span(node, node.name, "plane"), node)
    elif isinstance(node, A.LinkStmt):
        return _named(node, "plane", node.plane, node.plane_span, decls, line, col)
    elif isinstance(node, A.RootDecl):
        site = ("root", node.name, name_span(node, node.name, "instance"), node)
    elif isinstance(node, A.Import):
        target = _import_target(node)
        decl = Span(SourceText(str(target), ""), 1, 1, 1, 1) if target else None
        return Symbol("import", node.path, node.span, decl, node)
    if site is None or not contains(site[2], line, col):
        return None
    kind, name, span, decl_node = site
    return Symbol(kind, name, span, span, decl_node, owner)


def _named(node: object, kind: str, name: str, here: Span, decls: Declarations, line: int,
           col: int) -> Symbol | None:
    """A use of a global type or plane."""
    if not contains(here, line, col):
        return None
    table: dict[str, A.TypeDecl] | dict[str, A.PlaneDecl] = (
        decls.types if kind == "type" else decls.planes)
    decl = table.get(name)
    if decl is None:
        return Symbol(kind, name, here, None, None)
    span = decl.name_span if isinstance(decl, A.TypeDecl) else name_span(decl, name, "plane")
    return Symbol(kind, name, here, span, decl)


def _var(node: A.Var, chain: tuple[object, ...], owner: A.TypeDecl | None,
         decls: Declarations) -> Symbol:
    """A name used as a value: a parameter of the enclosing type, a global parameter, a
    model named by a deployment, or an index variable of a link pattern."""
    local = next((p for p in owner.params if p.name == node.name), None) if owner else None
    if local is not None:
        return Symbol("parameter", node.name, node.span, local.name_span, local, owner)
    glob = decls.params.get(node.name)
    if glob is not None:
        return Symbol("parameter", node.name, node.span, glob.name_span, glob)
    spec = decls.types.get(node.name)
    if spec is not None:
        return Symbol("type", node.name, node.span, spec.name_span, spec)
    link = next((n for n in chain if isinstance(n, A.LinkStmt)), None)
    return Symbol("index", node.name, node.span, None, None, owner, link)


def _segment(node: A.Segment, ref: A.Ref, owner: A.TypeDecl | None, decls: Declarations,
             line: int, col: int) -> Symbol | None:
    """A step of a link endpoint: the child array it names, found by following the earlier
    steps through the types of their children."""
    here = name_span(node, node.name)
    if owner is None or not contains(here, line, col):
        return None
    scope: A.TypeDecl | None = owner
    declaring: A.TypeDecl | None = owner
    child: A.ChildDecl | None = None
    for seg in ref.segments[: ref.segments.index(node) + 1]:
        declaring = scope
        child = next((c for c in _children(scope) if c.name == seg.name), None) if scope else None
        if child is None:
            return Symbol("instance", node.name, here, None, None, scope)
        scope = decls.types.get(child.type_ref.name)
    child = present(child, "the instance's declaration")
    return Symbol("instance", node.name, here, child.name_span, child, declaring)


def _children(decl: A.TypeDecl) -> Iterator[A.ChildDecl]:
    """Every child a type declares, those of its ``if`` blocks (both branches, in source
    order) included: the editor cannot know which branch a use of the type takes."""
    yield from decl.children
    pending = list(decl.blocks)
    while pending:
        block = pending.pop(0)
        yield from block.children
        pending[:0] = [*block.blocks, *([block.orelse] if block.orelse else [])]


def _attr_context(chain: tuple[object, ...], stmt: A.AttrStmt) -> object:
    """What an attribute statement sets: a link, a type use (an override) or its type."""
    index = chain.index(stmt)
    return next((n for n in reversed(chain[:index])
                 if isinstance(n, A.LinkStmt | A.ChildDecl | A.TypeDecl)), None)


def _import_target(imp: A.Import) -> Path | None:
    here = source_path(imp.span.file)
    return (here.parent / imp.path).resolve() if here else None


# ---- hover ---------------------------------------------------------------------------------
def _value_text(v: Value) -> str:
    """A value as a user writes it, in units: ``28 GB/s``, ``true``, ``"mla"``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return format_quantity(v)


def _distinct(values: list[Value]) -> str:
    shown = list(dict.fromkeys(_value_text(v) for v in values))
    return " | ".join(shown) if shown else "not elaborated"


def _source_line(span: Span | None) -> str:
    return span.source.line(span.line).strip() if span else ""


def hover_markdown(sym: Symbol, model: Model | None, base: Path | None = None) -> str:
    """Markdown for a hover: the declaration line, the kind, and what the elaborated model
    (None when elaboration failed) makes of the name; file names are shown relative to
    ``base`` (the document's folder) where they can be."""
    head = f"```cmx\n{_source_line(sym.declaration) or _source_line(sym.span)}\n```\n\n"
    facts = _FACTS.get(sym.kind, _no_facts)(sym, model)
    where = ""
    if sym.declaration is not None and sym.declaration.source.text:
        where = f"\n\ndeclared at {_shown(sym.declaration.file, base)}:{sym.declaration.line}"
    return head + facts + where


def _shown(name: str, base: Path | None) -> str:
    path = source_path(name)
    if path is None or base is None:
        return name
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _no_facts(sym: Symbol, model: Model | None) -> str:
    return f"**{sym.kind}** `{sym.name}`"


def _type_facts(sym: Symbol, model: Model | None) -> str:
    decl = sym.node if isinstance(sym.node, A.TypeDecl) else None
    category = decl.category if decl else "unknown"
    text = f"**{category}** `{sym.name}`"
    if model is None or decl is None:
        return text
    if decl.category in ("model", "deployment"):
        spec = next((s for s in model.specs if s.name == sym.name), None)
        return text + _attr_rows([spec.attrs] if spec else [])
    count = model.count_by_type().get(sym.name, 0)
    text += f": {count:,} instance{'s' * (count != 1)} in the model"
    return text + _attr_rows([t.attrs for t in model.templates() if t.type_name == sym.name])


def _attr_rows(sets: list[tuple[tuple[str, Value], ...]]) -> str:
    """One markdown list row per attribute with its distinct values over ``sets`` (the
    templates of a type: one per distinct argument values)."""
    names = list(dict.fromkeys(k for attrs in sets for k, _ in attrs))
    rows = [f"- `{k}` = {_distinct([v for attrs in sets for n, v in attrs if n == k])}"
            for k in names]
    return "\n\n" + "\n".join(rows) if rows else ""


def _param_facts(sym: Symbol, model: Model | None) -> str:
    if sym.owner is not None:
        return (f"**parameter** `{sym.name}` of `{sym.owner.name}` (set per use; the default "
                "is on its declaration line)")
    text = f"**parameter** `{sym.name}`"
    if model is not None and (value := dict(model.params).get(sym.name)) is not None:
        text += f" = {_value_text(value)}"
    return text


def _instance_facts(sym: Symbol, model: Model | None) -> str:
    child = sym.node if isinstance(sym.node, A.ChildDecl) else None
    if child is None:
        return f"**instances** `{sym.name}` (no such child)"
    text = f"**instances** `{child.name}`: `{child.type_ref.name}`"
    if model is None:
        return text
    total = model.count_by_child().get(child.span, 0)
    shapes = list(dict.fromkeys(
        " x ".join(str(n) for n in c.shape) or "1" for t in model.templates()
        for c in t.children if c.span == child.span))
    owner = f" per `{sym.owner.name}`" if sym.owner else ""
    return (text + f"\n\n{total:,} instance{'s' * (total != 1)} in the model"
            + (f" ({' | '.join(shapes)}{owner})" if shapes else ""))


def _attr_facts(sym: Symbol, model: Model | None) -> str:
    ctx = sym.context
    vocabulary = None
    if isinstance(ctx, A.LinkStmt):
        vocabulary = LINK_ATTRS
    elif isinstance(ctx, A.TypeDecl) and ctx.category in ("model", "deployment"):
        vocabulary = MODEL_ATTRS if ctx.category == "model" else DEPLOYMENT_ATTRS
    want = None if sym.name.startswith("x_") else expected_dim(sym.name, vocabulary)
    kind = "free-form" if sym.name.startswith("x_") else kind_name(want) if want else "unknown"
    text = f"**attribute** `{sym.name}` ({kind})"
    if model is None:
        return text
    return text + f" = {_distinct(_attr_values(sym.name, ctx, model))}"


def _attr_values(name: str, ctx: object, model: Model) -> list[Value]:
    """Every value the model gives attribute ``name`` where ``ctx`` sets it."""
    tpls = model.templates()
    if isinstance(ctx, A.LinkStmt):
        bundles = [b for t in tpls for b in t.links if b.span == ctx.span]
        if name == "bw":
            return [Quantity(b.link_bandwidth, BANDWIDTH) for b in bundles]
        if name == "latency":
            return [Quantity(b.latency, TIME) for b in bundles]
        return [v for b in bundles for k, v in b.extras if k == name]
    if isinstance(ctx, A.ChildDecl):
        return [v for t in tpls for c in t.children if c.span == ctx.span
                for k, v in c.template.attrs if k == name]
    if isinstance(ctx, A.TypeDecl):
        spec = next((s for s in model.specs if s.name == ctx.name), None)
        if spec is not None:
            return [v for k, v in spec.attrs if k == name]
        return [v for t in tpls if t.type_name == ctx.name for k, v in t.attrs if k == name]
    return []


def _plane_facts(sym: Symbol, model: Model | None) -> str:
    decl = sym.node if isinstance(sym.node, A.PlaneDecl) else None
    return f"**plane** `{sym.name}`" + (f": {decl.description}" if decl and decl.description
                                          else "" if decl else " (not declared)")


def _index_facts(sym: Symbol, model: Model | None) -> str:
    return (f"**index variable** `{sym.name}`: ranges over the dimension where it is used "
            "alone, one binding per index, and ties the two ends of the link together")


def _root_facts(sym: Symbol, model: Model | None) -> str:
    root = sym.node if isinstance(sym.node, A.RootDecl) else None
    text = f"**root instance** `{sym.name}`" + (f": `{root.type_ref.name}`" if root else "")
    if model is not None:
        text += f"\n\n{model.num_instances:,} instances in the model"
    return text


def _import_facts(sym: Symbol, model: Model | None) -> str:
    target = sym.declaration.file if sym.declaration else "?"
    return f"**import** `{sym.name}` -> `{target}`"


_FACTS = {
    "type": _type_facts,
    "parameter": _param_facts,
    "instance": _instance_facts,
    "attribute": _attr_facts,
    "plane": _plane_facts,
    "index": _index_facts,
    "root": _root_facts,
    "import": _import_facts,
}
