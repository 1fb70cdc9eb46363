"""Argument checks of the public Python API: one place, one error.

Each function here checks one kind of argument of a documented function (a path, ``-D``
defines, :class:`~supernode_dsl.elaborate.Limits`, an instance of a given class) and returns
it in the form the stages use, or raises :class:`~supernode_dsl.diagnostics.ArgumentError`
(E028) naming the function, the argument and what was given.  The stages call them at their
entry points, so a wrong argument is refused before any work and never ends in an
``AttributeError`` deep inside (nor depends on ``assert``, which ``python -O`` removes).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from supernode_dsl.diagnostics import ArgumentError

__all__ = ["check_defines", "check_instance", "check_limits", "check_path", "check_text",
           "describe"]

T = TypeVar("T")


def describe(value: Any) -> str:
    """A short description of ``value`` for a message: its type and, if short, its repr."""
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {shown}"


def check_path(value: Any, where: str, what: str = "path") -> Path:
    """``value`` as a :class:`~pathlib.Path`: a non-empty ``str`` or ``os.PathLike`` of
    ``str`` without NUL characters."""
    raw = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(raw, str):
        raise ArgumentError(f"{where}: {what} must be a str or a pathlib.Path, "
                            f"not {describe(value)}")
    if not raw or "\0" in raw:
        raise ArgumentError(f"{where}: {what} {raw!r} is not a file name")
    return Path(raw)


def check_text(value: Any, where: str, what: str) -> str:
    """``value`` if it is a ``str``."""
    if not isinstance(value, str):
        raise ArgumentError(f"{where}: {what} must be a str, not {describe(value)}")
    return value


def check_defines(value: Any, where: str) -> dict[str, str]:
    """``-D`` overrides as name -> expression text: None or a mapping with ``str`` keys and
    ``str`` values (an ``int`` or finite ``float`` value stands for its decimal text)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ArgumentError(f"{where}: defines must be a mapping of parameter names to "
                            f"expression text, like {{'nodes': '36'}}, not {describe(value)}")
    out: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str):
            raise ArgumentError(f"{where}: a define's name must be a str, not {describe(name)}")
        if isinstance(text, int | float) and not isinstance(text, bool) \
                and math.isfinite(text):
            text = repr(text)
        if not isinstance(text, str):
            raise ArgumentError(f"{where}: define {name!r} must be expression text (a str), "
                                f"not {describe(text)}")
        out[name] = text
    return out


def check_limits(value: Any, where: str, cls: type[T]) -> T:
    """``value`` if it is None (then ``cls()``, the defaults) or a ``cls`` (the
    :class:`~supernode_dsl.elaborate.Limits` dataclass) whose fields are all integers >= 1."""
    if value is None:
        return cls()
    limits = check_instance(value, cls, where, "limits")
    for f in dataclasses.fields(limits):  # type: ignore[arg-type]
        v = getattr(limits, f.name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ArgumentError(f"{where}: limits.{f.name} must be an integer >= 1, "
                                f"not {describe(v)}")
    return limits


def check_instance(value: Any, cls: type[T], where: str, what: str) -> T:
    """``value`` if it is an instance of ``cls``."""
    if not isinstance(value, cls):
        raise ArgumentError(f"{where}: {what} must be a {cls.__name__}, not {describe(value)}")
    return value


def present(value: T | None, what: str) -> T:
    """``value``, which an invariant of this package makes non-None: ``RuntimeError`` (a bug
    of the package, never a user mistake) if it is None.  Unlike ``assert`` it holds under
    ``python -O``."""
    if value is None:
        raise RuntimeError(f"internal error: {what} is missing")
    return value


def narrow(value: Any, cls: type[T] | tuple[type, ...], what: str) -> T:
    """``value``, which an invariant of this package makes an instance of ``cls``:
    ``RuntimeError`` otherwise (see :func:`present`)."""
    if not isinstance(value, cls):
        raise RuntimeError(f"internal error: {what} is a {type(value).__name__}")
    return value  # type: ignore[return-value]


def check_graph(value: Any, where: str) -> Any:
    """``value`` if it is a compiled graph: a ``networkx.Graph`` from
    :func:`~supernode_dsl.graph.build_graph` (it declares its planes)."""
    import networkx as nx

    from supernode_dsl import schema as S

    if not isinstance(value, nx.Graph) or S.GRAPH_PLANES not in value.graph:
        raise ArgumentError(f"{where}: g must be a graph from build_graph, not "
                            f"{describe(value)}")
    return value


def check_plane(g: Any, plane: Any, where: str) -> str:
    """``plane`` if it is the name of a plane of the compiled graph ``g``."""
    from supernode_dsl import schema as S

    planes = list(g.graph[S.GRAPH_PLANES])
    if not isinstance(plane, str) or plane not in planes:
        raise ArgumentError(f"{where}: plane must be one of {', '.join(planes) or '(none)'}, "
                            f"not {describe(plane)}")
    return plane


def check_instances(g: Any, paths: Any, where: str, what: str) -> list[str]:
    """``paths`` as a list: an iterable (not a ``str``) of instance paths of ``g``."""
    if isinstance(paths, str | bytes) or not hasattr(paths, "__iter__"):
        raise ArgumentError(f"{where}: {what} must be a list of instance paths, not "
                            f"{describe(paths)}")
    out = list(paths)
    for p in out:
        if not isinstance(p, str) or p not in g:
            raise ArgumentError(f"{where}: {what} holds {describe(p)}, not an instance path "
                                "of the graph")
    return out


def check_int(value: Any, where: str, what: str, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool) in ``[low, high]``; ``high`` bounds what
    the value makes the function allocate or loop over."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ArgumentError(f"{where}: {what} must be an integer in [{low:,}, {high:,}], "
                            f"not {describe(value)}")
    return value


def check_real(value: Any, where: str, what: str, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite real number (not a bool), ``>= 0`` (``> 0``
    when ``positive``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        sign = "> 0" if positive else ">= 0"
        raise ArgumentError(f"{where}: {what} must be a finite number {sign}, "
                            f"not {describe(value)}")
    return float(value)
