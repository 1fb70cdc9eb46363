"""The elaborated model: an immutable, shared-structure description of every instance.

Elaboration produces one :class:`Template` per distinct (type, arguments, overrides).  A
template knows its attributes, its child arrays and its links, and numbers its own subtree in
depth-first declaration order: the template itself is local index 0, element ``k`` of a child
array starts at ``child.offset + k * child.template.size``.  Identical subtrees share one
template, so a 128-supernode cluster is described by a handful of templates; paths are
produced on demand by :meth:`Model.instances`.

Attribute values are in SI base units (see :mod:`supernode_dsl.schema`).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from supernode_dsl.diagnostics import Diagnostic, Span
from supernode_dsl.elaborate.evaluate import Value

__all__ = ["ChildArray", "Instance", "LinkBundle", "Model", "Plane", "Spec", "Template"]

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class LinkBundle:
    """The links of one ``link`` statement in one template.

    ``pairs`` holds ``(a, b, count)``: local indices of the two endpoints and how many
    parallel links join them.  ``link_bandwidth`` is per link and per direction (B/s),
    ``latency`` per traversal (s); ``extras`` are the free-form ``x_`` attributes.
    """

    plane: str
    link_bandwidth: float
    latency: float
    pairs: tuple[tuple[int, int, int], ...]
    span: Span
    extras: tuple[tuple[str, Value], ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """An elaborated type: attributes, child arrays, links and the size of its subtree."""

    type_name: str
    category: str
    attrs: tuple[tuple[str, Value], ...]
    children: tuple[ChildArray, ...]
    links: tuple[LinkBundle, ...]
    size: int
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class ChildArray:
    """``name[d0][d1]...: template`` inside a template; ``offset`` is its first local index."""

    name: str
    shape: tuple[int, ...]
    template: Template
    offset: int
    span: Span

    @property
    def count(self) -> int:
        """Number of elements in the array."""
        return math.prod(self.shape)

    def element_indices(self) -> Iterator[tuple[int, ...]]:
        """The index tuple of every element, in row-major (local index) order (one empty
        tuple for a scalar child)."""
        yield from itertools.product(*(range(n) for n in self.shape))


@dataclass(frozen=True, slots=True)
class Plane:
    """A declared network plane."""

    name: str
    description: str
    span: Span


@dataclass(frozen=True, slots=True)
class Spec:
    """An elaborated ``model`` or ``deployment`` declaration: checked attributes, SI units.

    ``attr_spans`` locates each attribute's value, so later stages (the planner) can report
    their findings at the line that caused them.
    """

    name: str
    category: str
    attrs: tuple[tuple[str, Value], ...]
    span: Span
    attr_spans: tuple[tuple[str, Span], ...]

    def get(self, name: str, default: Value | None = None) -> Value | None:
        """The value of attribute ``name``, or ``default``."""
        return dict(self.attrs).get(name, default)

    def span_of(self, name: str) -> Span:
        """Where attribute ``name`` is set (the declaration if it is not set)."""
        return dict(self.attr_spans).get(name, self.span)


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance in depth-first order: its path, template, parent path and global index,
    and the child declaration it is an element of (``array``, the root's name for the root)
    with its indices in that array (``()`` for a scalar child and the root)."""

    path: str
    template: Template
    parent: str
    index: int
    array: str = ""
    indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Model:
    """The output of elaboration: the root template, the planes and the parameter values."""

    root_name: str
    root: Template
    planes: tuple[Plane, ...]
    params: tuple[tuple[str, Value], ...]
    files: tuple[str, ...]
    specs: tuple[Spec, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()
    _counts: dict[str, Counter[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_instances(self) -> int:
        """Total number of instances, the root included."""
        return self.root.size

    def instances(self) -> Iterator[Instance]:
        """Every instance in depth-first declaration order (the "instance order")."""
        stack: list[Instance] = [Instance(self.root_name, self.root, "", 0, self.root_name)]
        while stack:
            inst = stack.pop()
            yield inst
            pending = []
            for child in inst.template.children:
                step = child.template.size
                first = inst.index + child.offset
                for k, idx in enumerate(child.element_indices()):
                    suffix = child.name + "".join(f"[{i}]" for i in idx)
                    pending.append(Instance(f"{inst.path}.{suffix}", child.template,
                                            inst.path, first + k * step, child.name, idx))
            stack.extend(reversed(pending))

    def _count(self, key: str) -> Counter[str]:
        if key not in self._counts:
            self._counts[key] = _fold(self.root, lambda t: Counter(
                {t.category if key == "category" else t.type_name: 1}))
        return self._counts[key]

    def num_link_bundles(self) -> int:
        """Number of graph edges the model will produce (computed from templates)."""
        return _fold(self.root, lambda t: Counter({"": sum(len(b.pairs) for b in t.links)}))[""]

    def count_by_category(self) -> dict[str, int]:
        """Category -> number of instances (computed from templates, without flattening)."""
        return dict(sorted(self._count("category").items()))

    def count_by_type(self) -> dict[str, int]:
        """Type name -> number of instances."""
        return dict(sorted(self._count("type").items()))

    def templates(self) -> list[Template]:
        """Every distinct template of the model once, the root's first."""
        out: dict[int, Template] = {}
        stack = [self.root]
        while stack:
            t = stack.pop()
            if id(t) not in out:
                out[id(t)] = t
                stack.extend(c.template for c in t.children)
        return list(out.values())

    def count_by_child(self) -> dict[Span, int]:
        """Child declaration (the span of its ``name[..]: Type`` line) -> the number of
        instances it creates in the whole model (its shape times its parents' count)."""
        return dict(_fold(self.root, lambda t: Counter({c.span: c.count for c in t.children})))


def _fold(root: Template, own: Callable[[Template], Counter[K]]) -> Counter[K]:
    """Sum ``own(t)`` over every instance of the subtree of ``root``, computed once per
    shared template (a child array of ``n`` elements counts its template ``n`` times)."""
    memo: dict[int, Counter[K]] = {}

    def total(t: Template) -> Counter[K]:
        if id(t) not in memo:
            c = own(t)
            for ch in t.children:
                if not ch.count:
                    continue  # an array of size 0 adds no instance, nor a 0 to the counts
                for k, v in total(ch.template).items():
                    c[k] += v * ch.count
            memo[id(t)] = c
        return memo[id(t)]

    return total(root)
