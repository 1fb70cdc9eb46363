"""The elaborator: names resolved, parameters evaluated, types instantiated as templates."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from supernode_dsl.contracts import narrow
from supernode_dsl.diagnostics import CmxError, DiagnosticSink, SourceText, Span
from supernode_dsl.elaborate.evaluate import (
    EvalError,
    Value,
    as_int,
    evaluate,
    format_value,
    free_names,
    truth,
)
from supernode_dsl.elaborate.links import (
    LinkLimitError,
    Reversal,
    resolve_pairs,
    shadowing_params,
    touches_empty_array,
)
from supernode_dsl.elaborate.model import ChildArray, LinkBundle, Model, Plane, Spec, Template
from supernode_dsl.parse import Program, parse_text
from supernode_dsl.parse import ast as A
from supernode_dsl.schema import (
    CALIBRATION_ATTRS,
    CATEGORIES,
    CHOICES,
    DEPLOYMENT_ATTRS,
    LINK_ATTRS,
    MODEL_ATTRS,
    SPEC_CATEGORIES,
    Kind,
    expected_dim,
    kind_name,
    known_attribute_names,
)
from supernode_dsl.units import Dim, Quantity, dim_name

__all__ = ["SPEC_BOUNDS", "Elaborator", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Sanity limits on every quantity that sizes what the compiler allocates; a file that
    exceeds one gets an E010 diagnostic naming the limit, checked before the allocation,
    never an out-of-memory error.  The defaults are far above any real machine or model.

    ``max_instances`` (the CLI's ``--max-instances``) and ``max_links`` bound the topology;
    ``max_layers`` a model's layers (``layers``, ``dense_layers``, ``mtp_depth``),
    ``max_experts`` its experts and a role's expert slots (:data:`SPEC_BOUNDS`),
    ``max_microbatches`` the microbatches a role's pipeline is scheduled over and
    ``max_tokens`` a role's batch, sequences, tokens and context per device.
    """

    max_instances: int = 5_000_000
    max_links: int = 10_000_000
    max_layers: int = 1_000
    max_experts: int = 16_384
    max_microbatches: int = 16
    max_tokens: int = 100_000_000


#: The ``model`` and ``deployment`` attributes that size an allocation, each with the
#: :class:`Limits` field bounding it (a role attribute ``decode.X`` / ``prefill.X`` as ``X``).
SPEC_BOUNDS: dict[str, str] = {
    "layers": "max_layers", "dense_layers": "max_layers", "mtp_depth": "max_layers",
    "moe_every": "max_layers",
    "routed_experts": "max_experts", "shared_experts": "max_experts",
    "expert_groups": "max_experts", "topk_groups": "max_experts", "top_k": "max_experts",
    "routed_slots": "max_experts", "shared_slots": "max_experts",
    "redundant": "max_experts", "shared_devices": "max_experts",
    "microbatches": "max_microbatches",
    "batch_per_device": "max_tokens", "batch_per_npu": "max_tokens",
    "sequences_per_device": "max_tokens", "tokens_per_npu": "max_tokens",
    "context_len": "max_tokens",
}


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


_TemplateKey = tuple[str, tuple[tuple[str, Value], ...], tuple[tuple[str, Value], ...]]


class Elaborator:
    """Turns a parsed :class:`Program` into a :class:`Model`; one instance per compilation."""

    def __init__(self, program: Program, limits: Limits) -> None:
        self.program = program
        self.limits = limits
        self.sink = DiagnosticSink()
        self.types: dict[str, A.TypeDecl] = {}
        self.param_decls: dict[str, A.ParamDecl] = {}
        self.planes: dict[str, A.PlaneDecl] = {}
        self.globals: dict[str, Value] = {}
        self.overrides: dict[str, A.ParamDecl] = {}
        self._evaluating: list[str] = []
        self._cyclic: set[str] = set()
        self._templates: dict[_TemplateKey, Template | None] = {}
        self._type_stack: list[str] = []

    # ---- declarations ------------------------------------------------------------------
    def collect(self) -> None:
        """Gather types, params and planes of every file; report duplicates (E008)."""
        for f in self.program.files:
            for t in f.types:
                self._declare(self.types, t.name, t, t.name_span, "type")
                if t.category not in CATEGORIES + SPEC_CATEGORIES:
                    known = CATEGORIES + SPEC_CATEGORIES
                    self.sink.error(
                        "E002",
                        f"unknown category '{t.category}' (one of: {', '.join(known)})"
                        + _suggest(t.category, list(known)),
                        t.category_span,
                    )
            for p in f.params:
                self._declare(self.param_decls, p.name, p, p.name_span, "parameter")
            for pl in f.planes:
                self._declare(self.planes, pl.name, pl, pl.span, "plane")

    def _declare(self, table: Mapping[str, object], name: str, item: object, span: Span,
                 kind: str) -> None:
        if name in table:
            first = table[name]
            self.sink.error(
                "E008", f"{kind} '{name}' is declared twice", span,
                notes=(("first declared here", getattr(first, "span", None)),),
            )
        else:
            table[name] = item  # type: ignore[index]

    def define(self, defines: Mapping[str, str]) -> None:
        """Parse ``-D name=value`` overrides of global parameters (E015 on mistakes)."""
        for name, text in defines.items():
            # the display name is one line (a diagnostic's head is `name:line:col: ...`)
            shown = f"{name}={text}".encode("unicode_escape").decode("ascii")
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            src = SourceText(f"<-D {shown}>", f"param {name} = {text}\n")
            inner = DiagnosticSink()
            tree = parse_text(src, inner)
            if deep := [d for d in inner.diagnostics if d.code == "E014"]:
                self.sink.diagnostics.extend(deep)  # nested too deeply
                continue
            if tree is None or len(tree.params) != 1:
                self.sink.error("E015", f"-D {name}={shown}: the value is not an expression",
                                Span(src, 1, 1, 1, len(src.text)))
                continue
            if name not in self.param_decls:
                self.sink.error(
                    "E015",
                    f"-D {name}: no parameter '{name}' is declared"
                    + _suggest(name, list(self.param_decls)),
                    Span(src, 1, 7, 1, 7 + len(name)),
                )
                continue
            self.overrides[name] = tree.params[0]

    # ---- parameters --------------------------------------------------------------------
    def global_value(self, name: str, span: Span) -> Value:
        """Value of a global parameter (evaluated on first use, cycles reported)."""
        if name in self.globals:
            return self.globals[name]
        decl = self.overrides.get(name) or self.param_decls.get(name)
        if decl is None:
            raise EvalError("E002", f"unknown name '{name}'"
                            + _suggest(name, list(self.param_decls)), span)
        if name in self._evaluating:
            members = self._evaluating[self._evaluating.index(name):]
            self._cyclic.update(members)
            cycle = " -> ".join([*members, name])
            raise EvalError("E014", f"parameter '{name}' depends on itself ({cycle})", span)
        self._evaluating.append(name)
        try:
            value = evaluate(decl.value, self.global_value)
        finally:
            self._evaluating.pop()
        self.globals[name] = value
        return value

    def evaluate_globals(self) -> None:
        """Evaluate every global parameter once, so mistakes are reported even if unused."""
        for name, decl in self.param_decls.items():
            if name in self._cyclic:
                continue  # its cycle is already reported (once, not once per member)
            try:
                self.global_value(name, decl.name_span)
            except EvalError as e:
                self.sink.error(e.code, e.message, e.span)

    # ---- templates ---------------------------------------------------------------------
    def template(self, ref: A.TypeRef, env: Mapping[str, Value]) -> Template | None:
        """The template for a type use, elaborated once per distinct arguments."""
        decl = self.types.get(ref.name)
        if decl is None:
            self.sink.error("E002", f"unknown type '{ref.name}'"
                            + _suggest(ref.name, list(self.types)), ref.span)
            return None
        if decl.category in SPEC_CATEGORIES:
            self.sink.error("E002", f"'{ref.name}' is a {decl.category}, not a component type, "
                            "so it cannot be instantiated", ref.span)
            return None
        if ref.name in self._type_stack:
            chain = " -> ".join([*self._type_stack[self._type_stack.index(ref.name):], ref.name])
            self.sink.error("E017", f"type '{ref.name}' contains itself ({chain})", ref.span)
            return None
        local = self._type_params(decl, ref, env)
        if local is None:
            return None
        # Overrides are written in the enclosing type, so they see its names (lexical scope).
        overrides = self._attrs(ref.attrs, self._scope(env))
        key: _TemplateKey = (ref.name, tuple(sorted(local.items())), overrides)
        if key not in self._templates:
            self._type_stack.append(ref.name)
            try:
                given = {a.name: a.value.span for a in ref.args}
                self._templates[key] = self._build(decl, local, overrides, given)
            finally:
                self._type_stack.pop()
        return self._templates[key]

    def _scope(self, local: Mapping[str, Value]) -> _Scope:
        return _Scope(self, local)

    def _type_params(self, decl: A.TypeDecl, ref: A.TypeRef,
                     env: Mapping[str, Value]) -> dict[str, Value] | None:
        declared = {p.name: p for p in decl.params}
        caller = self._scope(env)
        given: dict[str, Value] = {}
        ok = True
        for arg in ref.args:
            if arg.name not in declared:
                self.sink.error("E002", f"type '{decl.name}' has no parameter '{arg.name}'"
                                + _suggest(arg.name, list(declared)), arg.span)
                ok = False
                continue
            try:
                given[arg.name] = evaluate(arg.value, caller.lookup)
            except EvalError as e:
                self.sink.error(e.code, e.message, e.span)
                ok = False
        local: dict[str, Value] = {}
        for p in decl.params:
            if p.name in given:
                local[p.name] = given[p.name]
                continue
            try:
                local[p.name] = evaluate(p.value, self._scope(local).lookup)
            except EvalError as e:
                self.sink.error(e.code, e.message, e.span)
                ok = False
        return local if ok else None

    def _attrs(self, stmts: Sequence[A.AttrStmt], scope: _Scope,
               vocabulary: dict[str, Kind] | None = None) -> tuple[tuple[str, Value], ...]:
        out: dict[str, Value] = {}
        # An attribute may use the attributes set before it in the same block.
        for st in stmts:
            inner = _Scope(self, {**out, **scope.local})
            try:
                value = self._spec_ref(st, vocabulary) or evaluate(st.value, inner.lookup)
            except EvalError as e:
                self.sink.error(e.code, e.message, e.span)
                continue
            if self._check_attr(st, value, vocabulary):
                if st.name in out:
                    self.sink.error("E008", f"attribute '{st.name}' is set twice", st.name_span)
                out[st.name] = value
        return tuple(out.items())

    def _spec_ref(self, st: A.AttrStmt, vocabulary: dict[str, Kind] | None) -> str | None:
        """``model = Name`` in a deployment names a declared model: its value is the name."""
        if vocabulary is not DEPLOYMENT_ATTRS or st.name != "model" \
                or not isinstance(st.value, A.Var):
            return None
        decl = self.types.get(st.value.name)
        if decl is None or decl.category != "model":
            models = [n for n, t in self.types.items() if t.category == "model"]
            raise EvalError("E002", f"'{st.value.name}' is not a declared model"
                            + _suggest(st.value.name, models), st.value.span)
        return st.value.name

    def _check_attr(self, st: A.AttrStmt, value: Value,
                    vocabulary: dict[str, Kind] | None) -> bool:
        if st.name.startswith("x_"):
            return True
        want = expected_dim(st.name, vocabulary)
        if want is None:
            names = list(vocabulary) if vocabulary is not None else known_attribute_names()
            self.sink.error(
                "E002",
                f"unknown attribute '{st.name}'" + _suggest(st.name, names)
                + " (free-form attributes start with 'x_')",
                st.name_span,
            )
            return False
        if not isinstance(want, Dim) or not isinstance(value, Quantity):
            if want is str and isinstance(value, str):
                return self._check_choice(st, value)
            if want is bool and isinstance(value, bool):
                return True
            self.sink.error("E004", f"'{st.name}' needs {kind_name(want)}", st.value.span)
            return False
        if value.dim != want:
            if value.dim.is_dimensionless:
                self.sink.error("E003", f"missing unit: '{st.name}' is {dim_name(want)}",
                                st.value.span)
            else:
                self.sink.error("E004", f"'{st.name}' needs {dim_name(want)}, "
                                f"not {dim_name(value.dim)}", st.value.span)
            return False
        if value.value < 0:
            self.sink.error("E005", f"'{st.name}' cannot be negative", st.value.span)
            return False
        return True

    def _check_choice(self, st: A.AttrStmt, value: str) -> bool:
        """E002 unless ``value`` is one of the values :data:`CHOICES` allows ``st.name``."""
        allowed = CHOICES.get(st.name)
        if allowed is None or value in allowed:
            return True
        self.sink.error("E002", f"'{st.name}' cannot be '{value}' (choices: "
                        f"{', '.join(allowed)})" + _suggest(value, list(allowed)), st.value.span)
        return False

    def _build(self, decl: A.TypeDecl, local: dict[str, Value],
               overrides: tuple[tuple[str, Value], ...],
               given: Mapping[str, Span]) -> Template | None:
        scope = self._scope(local)
        body = self._body(decl, scope)
        defaults = {p.name: p for p in decl.params if p.name not in given}
        for st in body.asserts:
            self.check_assert(st, scope, given, defaults)
        attrs = dict(self._attrs(body.attrs, scope))
        attrs.update(overrides)
        children, size = self._children(decl.name, body.children, scope)
        shell = Template(decl.name, decl.category, tuple(attrs.items()), tuple(children), (),
                         size, decl.span)
        if size > self.limits.max_instances:
            return shell
        bundles = [b for st in body.links if (b := self._link(shell, st, scope)) is not None]
        return Template(decl.name, decl.category, shell.attrs, shell.children, tuple(bundles),
                        size, decl.span)

    def _body(self, decl: A.TypeDecl, scope: _Scope) -> _Body:
        """The type's attributes, children, links and assertions, with those of the branches
        of its ``if`` blocks that hold (conditions evaluated in ``scope``), in source order."""
        attrs, children = list(decl.attrs), list(decl.children)
        links, asserts = list(decl.links), list(decl.asserts)
        pending = list(decl.blocks)
        while pending:
            block: A.IfBlock | None = pending.pop()
            while block is not None:
                try:
                    taken = truth(evaluate(block.condition, scope.lookup),
                                  block.condition.span, "an 'if'")
                except EvalError as e:
                    self.sink.error(e.code, e.message, e.span)
                    break
                if taken:
                    attrs += block.attrs
                    children += block.children
                    links += block.links
                    asserts += block.asserts
                    pending += block.blocks
                    break
                block = block.orelse
        return _Body(_in_source_order(attrs), _in_source_order(children),
                     _in_source_order(links), _in_source_order(asserts))

    def check_assert(self, st: A.AssertStmt, scope: _Scope,
                     given: Mapping[str, Span] | None = None,
                     defaults: Mapping[str, A.ParamDecl] | None = None) -> None:
        """E027 when ``st``'s condition is false: at the value that made it false, with the
        assertion as a note: a type argument (``given``: the argument spans of the type's
        use) or a ``-D`` value it depends on (also through ``defaults``, the type
        parameters left at their default); else at the assertion."""
        try:
            ok = truth(evaluate(st.condition, scope.lookup), st.condition.span, "'assert'")
        except EvalError as e:
            self.sink.error(e.code, e.message, e.span)
            return
        if ok:
            return
        names = sorted(free_names(st.condition))
        shown = ", ".join(f"{n} = {v}" for n in names if (v := self._shown(n, scope, st.span)))
        message = f"assertion failed: {st.message}" + (f" ({shown})" if shown else "")
        sites = [(given[n], "") for n in names if given and n in given] + [
            (self.overrides[d].value.span, f"; from -D {d}")
            for d in self._global_deps(names, scope, defaults or {}) if d in self.overrides]
        if sites:
            at, origin = sites[0]
            self.sink.error("E027", message + origin, at,
                            notes=(("the assertion", st.span),))
        else:
            self.sink.error("E027", message, st.condition.span)

    def _shown(self, name: str, scope: _Scope, span: Span) -> str:
        """``name``'s value for a message, '' if it has none (a name that ``and``/``or``
        never evaluated may be unknown)."""
        try:
            return format_value(scope.lookup(name, span))
        except EvalError:
            return ""

    def _global_deps(self, names: list[str], scope: _Scope,
                     defaults: Mapping[str, A.ParamDecl]) -> list[str]:
        """The global parameters ``names`` depend on, directly or through other globals or
        the ``defaults`` of type parameters, in order of discovery."""
        seen: list[str] = []
        todo = list(names)
        while todo:
            name = todo.pop(0)
            if name in scope.local:
                default = defaults.get(name)
                todo += sorted(free_names(default.value)) if default else []
                continue
            decl = self.overrides.get(name) or self.param_decls.get(name)
            if name in seen or decl is None:
                continue
            seen.append(name)
            todo += sorted(free_names(decl.value))
        return seen

    def check_global_asserts(self) -> None:
        """Every top-level ``assert`` of every file, in the global scope."""
        for f in self.program.files:
            for st in f.asserts:
                self.check_assert(st, self._scope({}))

    def _children(self, type_name: str, decls: Sequence[A.ChildDecl],
                  scope: _Scope) -> tuple[list[ChildArray], int]:
        children: list[ChildArray] = []
        size = 1
        seen: dict[str, A.ChildDecl] = {}
        for ch in decls:
            if ch.name in seen:
                self.sink.error("E008", f"instance name '{ch.name}' is used twice in "
                                f"'{type_name}'", ch.name_span,
                                notes=(("first used here", seen[ch.name].span),))
                continue
            seen[ch.name] = ch
            shape: list[int] = []
            try:
                for d in ch.dims:
                    shape.append(as_int(evaluate(d, scope.lookup), d.span, "an array size",
                                        minimum=0))
            except EvalError as e:
                self.sink.error(e.code, e.message, e.span)
                continue
            tpl = self.template(ch.type_ref, local_env(scope))
            if tpl is None:
                continue
            count = 1
            for n in shape:
                count *= n
            if tpl.size > self.limits.max_instances:  # already reported inside the type
                size += tpl.size
                continue
            if count * tpl.size + size > self.limits.max_instances:
                self.sink.error(
                    "E010",
                    f"'{ch.name}' would create {count * tpl.size:,} instances; the limit is "
                    f"{self.limits.max_instances:,} (raise it with --max-instances)",
                    ch.span,
                )
                size += self.limits.max_instances
                continue
            children.append(ChildArray(ch.name, tuple(shape), tpl, size, ch.span))
            size += count * tpl.size
        return children, size

    def _link(self, tpl: Template, st: A.LinkStmt, scope: _Scope) -> LinkBundle | None:
        if st.plane not in self.planes:
            self.sink.error("E002", f"unknown plane '{st.plane}'"
                            + _suggest(st.plane, list(self.planes))
                            + " (declare it with `plane NAME \"description\"`)", st.plane_span)
            return None
        attrs = dict(self._attrs(st.attrs, scope, LINK_ATTRS))
        if "bw" not in attrs:
            if not any(a.name == "bw" for a in st.attrs):
                self.sink.error("E019", "a link needs a bandwidth: add `bw = ...` "
                                "(per link, per direction)", st.span)
            return None
        try:
            count = as_int(attrs.get("count", Quantity(1.0)), st.span, "'count'", minimum=1)
            if touches_empty_array(tpl, st):
                return None
            found = resolve_pairs(tpl, st, scope.lookup, scope.is_param,
                                  self.limits.max_links)
        except EvalError as e:
            self.sink.error(e.code, e.message, e.span)
            return None
        except LinkLimitError as e:
            self.sink.error("E010", f"this link statement would create about {e.estimate:,} "
                            f"links; the limit is {self.limits.max_links:,}", st.span)
            return None
        for err in found.errors:
            self.sink.error(err.code, err.message, err.span)
        if found.reversal is not None:
            self._warn_reversal(tpl, st, found.reversal)
        for var in shadowing_params(st, scope.is_param):
            self.sink.warning(
                "W001", f"'{var.name}' is a parameter, so this index is one fixed value, not "
                "an index variable; rename the index if every index was meant", var.span)
        pairs = found.pairs
        if not pairs:
            if not found.errors and not found.filtered:
                self.sink.error("E007", "this link pattern matches nothing", st.span)
            return None
        bw, lat = attrs["bw"], attrs.get("latency", Quantity(0.0))
        bw = narrow(bw, Quantity, "a link's bw")
        lat = narrow(lat, Quantity, "a link's latency")
        if bw.value <= 0:
            self.sink.error("E005", "a link's bandwidth must be positive", st.span)
            return None
        extras = tuple((k, v) for k, v in attrs.items() if k.startswith("x_"))
        return LinkBundle(st.plane, bw.value, lat.value,
                          tuple((a, b, n * count) for (a, b), n in pairs.items()), st.span,
                          extras)

    def _warn_reversal(self, tpl: Template, st: A.LinkStmt, rev: Reversal) -> None:
        """W002: a pair matched from both ends becomes parallel links, rarely what is meant
        (a ring of 2, or a full mesh written without ``where i < j``)."""
        more = f"; {rev.pairs - 1} more pairs likewise" if rev.pairs > 1 else ""
        self.sink.warning(
            "W002",
            f"in '{tpl.type_name}', {rev.a} <-> {rev.b} is matched from both ends "
            f"({rev.again} matches it again as {rev.b} <-> {rev.a}{more}), so it becomes 2 "
            "parallel links; add `where` (e.g. `where i < j`) for one link per pair, or "
            "write `count = 2` if two are meant",
            st.left.span, notes=(("the other end", st.right.span),))

    # ---- the whole program -------------------------------------------------------------
    def root(self) -> tuple[str, Template | None]:
        """Elaborate the root: the main file's `instance`, or every type it declares."""
        main = self.program.main
        if len(main.roots) > 1:
            for extra in main.roots[1:]:
                self.sink.error("E016", "a file has at most one `instance` (the root)",
                                extra.span, notes=(("the first one", main.roots[0].span),))
        if main.roots:
            r = main.roots[0]
            return r.name, self.template(r.type_ref, {})
        return self._library_root(main)

    def _library_root(self, main: A.FileAST) -> tuple[str, Template | None]:
        """A file without `instance` (a library): one instance of each of its types."""
        name = main.path.rsplit("/", 1)[-1].removesuffix(".cmx").replace("-", "_") or "lib"
        name = name if name.isidentifier() else "lib"
        children: list[ChildArray] = []
        size = 1
        for t in main.types:
            if t.category in SPEC_CATEGORIES:
                continue
            tpl = self.template(A.TypeRef(t.name, (), (), t.name_span), {})
            if tpl is not None:
                children.append(ChildArray(t.name, (), tpl, size, t.span))
                size += tpl.size
        span = main.types[0].span if main.types else Span(SourceText(main.path, ""), 1, 1, 1, 1)
        return name, Template("<library>", "system", (), tuple(children), (), size, span)

    def specs(self) -> tuple[Spec, ...]:
        """Every model and deployment declaration, attributes checked, in declaration order."""
        out: list[Spec] = []
        for decl in self.types.values():
            if decl.category not in SPEC_CATEGORIES:
                continue
            vocabulary = {"model": MODEL_ATTRS, "calibration": CALIBRATION_ATTRS}.get(
                decl.category, DEPLOYMENT_ATTRS)
            local = self._type_params(decl, A.TypeRef(decl.name, (), (), decl.span), {})
            if local is None:
                continue
            attrs = self._attrs(decl.attrs, self._scope(local), vocabulary)
            spans = tuple((st.name, st.value.span) for st in decl.attrs)
            self._check_bounds(attrs, dict(spans))
            out.append(Spec(decl.name, decl.category, attrs, decl.name_span, spans))
        return tuple(out)

    def _check_bounds(self, attrs: tuple[tuple[str, Value], ...],
                      spans: Mapping[str, Span]) -> None:
        """E010 for a spec attribute above its :data:`SPEC_BOUNDS` limit."""
        for name, value in attrs:
            field = SPEC_BOUNDS.get(name.rpartition(".")[2] if name.startswith(
                ("decode.", "prefill.")) else name)
            if field is None or not isinstance(value, Quantity):
                continue
            limit = getattr(self.limits, field)
            if value.value > limit:
                shown = f"{value.value:,.0f}" if value.value < 1e15 else f"{value.value:.3g}"
                self.sink.error("E010", f"'{name}' is {shown}; the limit is "
                                f"{limit:,} (Limits.{field} in the Python API)", spans[name])

    def run(self, defines: Mapping[str, str]) -> Model:
        """Elaborate everything; raise CmxError with all diagnostics of the stage."""
        self.collect()
        self.define(defines)
        self.evaluate_globals()
        self.check_global_asserts()
        name, root = self.root()
        specs = self.specs()
        self.sink.raise_if_errors()
        if root is None:
            raise CmxError(self.sink.diagnostics)
        planes = tuple(Plane(p.name, p.description, p.span) for p in self.planes.values())
        model = Model(
            root_name=name,
            root=root,
            planes=planes,
            params=tuple(sorted(self.globals.items())),
            files=tuple(f.path for f in self.program.files),
            specs=specs,
            warnings=self.sink.warnings,
        )
        if (links := model.num_link_bundles()) > self.limits.max_links:
            self.sink.error("E010", f"the model has {links:,} links; the limit is "
                            f"{self.limits.max_links:,}", root.span)
            self.sink.raise_if_errors()
        return model


@dataclass(frozen=True, slots=True)
class _Body:
    """The items of a type body that apply to one use of the type (``if`` blocks resolved),
    each kind in source order."""

    attrs: tuple[A.AttrStmt, ...]
    children: tuple[A.ChildDecl, ...]
    links: tuple[A.LinkStmt, ...]
    asserts: tuple[A.AssertStmt, ...]


_Item = TypeVar("_Item", A.AttrStmt, A.ChildDecl, A.LinkStmt, A.AssertStmt)


def _in_source_order(items: list[_Item]) -> tuple[_Item, ...]:
    """``items`` sorted by position (the items of ``if`` blocks interleave with the body)."""
    return tuple(sorted(items, key=lambda item: (item.span.line, item.span.col)))


class _Scope:
    """Name resolution inside a type: its own params first, then the globals."""

    def __init__(self, elab: Elaborator, local: Mapping[str, Value]) -> None:
        self.elab = elab
        self.local = local

    def lookup(self, name: str, span: Span) -> Value:
        if name in self.local:
            return self.local[name]
        return self.elab.global_value(name, span)

    def is_param(self, name: str) -> bool:
        return name in self.local or name in self.elab.param_decls


def local_env(scope: _Scope) -> Mapping[str, Value]:
    """The caller environment passed to a child's type arguments."""
    return scope.local
