"""Emitters: one small class per output format.

An emitter has a ``name`` (what ``cmx emit NAME`` takes), a one-line ``description``, the
``options`` it understands (``-O key=value``: a tuple of
:class:`~supernode_dsl.emit.options.Option` declarations, read with :meth:`EmitContext.value`)
and ``emit(context)``, which returns the whole output (text, bytes, or a
:class:`~supernode_dsl.files.FileTree` of several files) or raises
:class:`~supernode_dsl.diagnostics.CmxError` with an ``E026`` diagnostic.  Outputs must be
deterministic: same input, same bytes.

The built-in emitters are registered in one place, the ``BUILTIN`` tuple of
:mod:`supernode_dsl.emit.builtin`.  Third parties add formats from their own package by
declaring an entry point in the group ``supernode_dsl.emitters`` that names an
:class:`Emitter` subclass (a built-in name always wins over an entry point)::

    [project.entry-points."supernode_dsl.emitters"]
    my-format = "my_package.module:MyEmitter"
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import networkx as nx

from supernode_dsl.diagnostics import CmxError, Diagnostic
from supernode_dsl.elaborate import Model
from supernode_dsl.emit.options import Option, check_options
from supernode_dsl.files import FileTree

if TYPE_CHECKING:
    from supernode_dsl.plan.document import PlanDocument

__all__ = ["ENTRY_POINT_GROUP", "EmitContext", "Emitter", "available_emitters", "emit_error"]

ENTRY_POINT_GROUP = "supernode_dsl.emitters"

T = TypeVar("T")


@dataclass(frozen=True)
class EmitContext:
    """Everything an emitter may read: the compiled model and graph, the plan (if one was
    given with ``--plan``: already checked, and made for this topology and deployment), the
    source file name, the ``-O`` options as given (name -> text; read them typed with
    :meth:`value`) and the name of the plan file (``""`` when no ``--plan`` was given)."""

    model: Model
    graph: nx.Graph
    plan: PlanDocument | None = None
    source: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    plan_file: str = ""

    def value(self, option: Option[T]) -> T:
        """The typed value of ``option`` (its default when not given).  Raises
        :class:`~supernode_dsl.emit.options.OptionError` for a value the declaration does
        not accept (``cmx emit`` has checked every value before the emitter runs)."""
        text = self.options.get(option.name)
        return option.default if text is None else option.read(text)

    def require_plan(self, emitter: str) -> PlanDocument:
        """The plan, or an E026 error saying that ``emitter`` needs ``--plan``."""
        if self.plan is None:
            raise emit_error(f"'{emitter}' needs a plan: run `cmx plan FILE -o plan.json` "
                             "and pass `--plan plan.json`")
        return self.plan


class Emitter(abc.ABC):
    """Base class of every output format."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: The ``-O`` options, each declared once (``cmx emit --list`` prints them).
    options: ClassVar[tuple[Option[Any], ...]] = ()
    #: The file name suffix the output usually has (``.json``, ``.dot``, ``.png``).
    suffix: ClassVar[str] = ""

    @abc.abstractmethod
    def emit(self, ctx: EmitContext) -> str | bytes | FileTree:
        """The whole output for ``ctx`` (a :class:`FileTree` for a directory of files);
        deterministic."""

    @classmethod
    def check_options(cls, given: Mapping[str, str]) -> None:
        """Raise :class:`~supernode_dsl.emit.options.OptionError` (naming the option and the
        values it accepts) unless every option in ``given`` is declared and its value
        accepted; the framework calls this before :meth:`emit`."""
        check_options(cls.name, cls.options, given)


def emit_error(message: str) -> CmxError:
    """An E026 error (no source location: emit problems concern the request)."""
    return CmxError([Diagnostic("E026", message)])


def available_emitters() -> dict[str, type[Emitter]]:
    """Every emitter: the built-in ones (``BUILTIN``) and those of installed packages (entry
    points of the group :data:`ENTRY_POINT_GROUP`), sorted by name.  A built-in name wins
    over an entry point of the same name; a broken entry point is skipped, not fatal."""
    from supernode_dsl.emit.builtin import BUILTIN

    found: dict[str, type[Emitter]] = {e.name: e for e in BUILTIN}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception:
            continue
        if isinstance(cls, type) and issubclass(cls, Emitter) and cls.name not in found:
            found[cls.name] = cls
    return dict(sorted(found.items()))
