"""Between frozen dataclasses and JSON, driven by the field types: one writer, one checked
reader.

:func:`dump` writes a dataclass as a JSON value; a field's ``digits`` metadata (set with
:func:`rounded`) rounds its floats there and nowhere else.  :func:`load` reads a JSON value
as a dataclass and raises :class:`PathError`, naming the JSON path, for a missing or unknown
key or a value of the wrong type.  Field types understood: ``int``, ``float`` (an int stays
an int, so a document reads back to the same bytes), ``str``, ``bool``, ``Literal[...]``,
``X | None``, ``tuple[X, ...]``, ``Mapping[str, X]`` and dataclasses.  Metadata ``name`` is
the JSON key (default: the field's name); a field with :data:`OMIT` is absent from the JSON
when it is None (and None when absent).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["OMIT", "JsonPath", "PathError", "dump", "format_path", "load", "rounded"]

#: A position in a JSON document: object keys and array indices from the root.
JsonPath = tuple[str | int, ...]

T = TypeVar("T")


class PathError(ValueError):
    """A problem at one JSON path of a document."""

    def __init__(self, path: JsonPath, message: str) -> None:
        super().__init__(f"{format_path(path)}: {message}")
        self.path = path
        self.message = message


def format_path(path: JsonPath) -> str:
    """``roles.decode.expert_placement.phy2log[3]``; the root is ``(document)``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"


#: Field metadata: the field is absent from the JSON when it is None (give it default None).
OMIT: Mapping[str, Any] = {"omit": True}


def rounded(digits: int, *, omit: bool = False) -> dict[str, Any]:
    """Field metadata: round this field's floats to ``digits`` decimals when written
    (and ``omit`` as :data:`OMIT`)."""
    return {"digits": digits, "omit": omit}


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, Any, int | None, bool], ...]:
    """(attribute, JSON key, type, digits, omit) of every field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, f.metadata.get("name") or f.name, hints[f.name],
                  f.metadata.get("digits"), bool(f.metadata.get("omit")))
                 for f in dataclasses.fields(cls))


#: Scalar types written as they are (floats only where no rounding is declared).
_UNROUNDED = frozenset({int, float, str, bool, type(None)})
_PLAIN_SCALARS = _UNROUNDED - {float}


@functools.cache
def _dataclass_fields(cls: type) -> tuple[tuple[str, str, Any, int | None, bool], ...] | None:
    """:func:`_fields` of ``cls`` when its instances are dataclasses, else None (cached per
    type: a plan has some 50,000 values to write)."""
    return _fields(cls) if dataclasses.is_dataclass(cls) else None


def dump(value: Any, digits: int | None = None) -> Any:
    """The JSON value of ``value`` (a dataclass, tuple, mapping or scalar)."""
    cls: type = type(value)
    if cls is float:
        return value if digits is None else round(value, digits)
    if cls in _PLAIN_SCALARS:
        return value
    fields = _dataclass_fields(cls)
    if fields is not None:
        out: dict[str, Any] = {}
        for attr, name, _, places, omit in fields:
            v = getattr(value, attr)
            if not (omit and v is None):
                out[name] = dump(v, places)
        return out
    if isinstance(value, tuple | list):
        plain = _UNROUNDED if digits is None else _PLAIN_SCALARS
        if all(type(v) in plain for v in value):  # arrays of scalars: nothing to convert
            return list(value)
        return [dump(v, digits) for v in value]
    if isinstance(value, Mapping):
        return {k: dump(v, digits) for k, v in value.items()}
    if isinstance(value, float) and digits is not None:
        return round(value, digits)
    return value


def load(cls: type[T], data: Any, path: JsonPath = ()) -> T:
    """``data`` read as dataclass ``cls``; :class:`PathError` at the first problem."""
    value: T = _read(cls, data, path)
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value),
                                                                         type(value).__name__)


@functools.cache
def _shape(tp: Any) -> tuple[str, Any]:
    """How :func:`_read` reads a value of field type ``tp`` (cached per type): ``object``
    (a dataclass), ``union`` (whether None is allowed, the other type), ``literal`` (the
    values), ``array`` (the item type), ``mapping`` (the value type) or ``scalar``."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "object", None
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(tp)
        return "union", (type(None) in options,
                         next(o for o in options if o is not type(None)))
    if origin is typing.Literal:
        return "literal", typing.get_args(tp)
    if origin is tuple:
        return "array", typing.get_args(tp)[0]
    if origin is Mapping or origin is dict:
        return "mapping", typing.get_args(tp)[1]
    return "scalar", None


def _read(tp: Any, data: Any, path: JsonPath) -> Any:
    kind, arg = _shape(tp)
    if kind == "object":
        return _read_object(tp, data, path)
    if kind == "union":
        none_ok, inner = arg
        if data is None and none_ok:
            return None
        return _read(inner, data, path)
    if kind == "literal":
        if data not in arg or isinstance(data, bool):
            allowed = ", ".join(repr(a) for a in arg)
            raise PathError(path, f"{data!r} is not one of {allowed}")
        return data
    if kind == "array":
        if not isinstance(data, list):
            raise PathError(path, f"expected an array, found {_kind(data)}")
        if arg in _CHECKS:  # arrays of scalars (placements, schedules): one pass, no recursion
            check = _CHECKS[arg][0]
            for i, v in enumerate(data):
                if not check(v):
                    _scalar(arg, v, (*path, i))
            return tuple(data)
        return tuple(_read(arg, v, (*path, i)) for i, v in enumerate(data))
    if kind == "mapping":
        if not isinstance(data, dict):
            raise PathError(path, f"expected an object, found {_kind(data)}")
        return {k: _read(arg, v, (*path, k)) for k, v in data.items()}
    return _scalar(tp, data, path)


#: The scalar types a field may have: the check a JSON value must pass, and its description.
_CHECKS: dict[Any, tuple[Callable[[Any], bool], str]] = {
    float: (lambda v: isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v), "a finite number"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    bool: (lambda v: isinstance(v, bool), "a boolean"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def _scalar(tp: Any, data: Any, path: JsonPath) -> Any:
    if tp not in _CHECKS:  # pragma: no cover - a field type this reader does not know
        raise TypeError(f"cannot read {tp!r}")
    check, what = _CHECKS[tp]
    if not check(data):
        raise PathError(path, f"expected {what}, found {_kind(data)} ({_short(data)})")
    return data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _keys(cls: type) -> frozenset[str]:
    """The JSON keys of dataclass ``cls``."""
    return frozenset(name for _, name, _, _, _ in _fields(cls))


def _read_object(cls: type, data: Any, path: JsonPath) -> Any:
    if not isinstance(data, dict):
        raise PathError(path, f"expected an object, found {_kind(data)}")
    fields = _fields(cls)
    extra = sorted(set(data) - _keys(cls))
    if extra:
        raise PathError((*path, extra[0]), "unknown key")
    values: dict[str, Any] = {}
    for attr, name, tp, _, omit in fields:
        if name not in data:
            if not omit:
                raise PathError(path, f"missing key '{name}'")
            values[attr] = None
            continue
        values[attr] = _read(tp, data[name], (*path, name))
    return cls(**values)
