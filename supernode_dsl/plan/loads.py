"""Measured expert loads: SGLang JSON, NumPy ``.npy`` or CSV, shape [MoE layers x routed
experts], and the one check every load array passes.

* JSON: ``{"logical_count": [[...], ...]}`` (what SGLang's expert distribution recorder
  writes and ``--init-expert-location`` accepts); a bare list of lists is accepted too.
* ``.npy``: a 2-D array of integers or floats (NumPy format 1.0 or 2.0).  The header is
  checked before any data is read: an ``.npz`` archive, an object, string, bytes, boolean,
  complex, datetime or structured array, or data shorter than the header says is refused.
* CSV: one row per MoE layer, one column per expert, no header (a header row of names is
  skipped); ``#`` comment lines are ignored.

:func:`check_loads` is the check of a load array, for a file (``cmx plan --expert-loads``)
and for the Python API (``PlanRequest(loads=...)``, :func:`~supernode_dsl.plan.placement.
place_experts`) alike: two dimensions, finite values in ``[0, MAX_LOAD]``, some load in
every layer.  Every mistake is an E021 diagnostic with the file, and the line and column where
there is one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from supernode_dsl.diagnostics import CmxError, Diagnostic, SourceText, Span
from supernode_dsl.files import read_bytes
from supernode_dsl.plan.document.locate import locate, parse_json

__all__ = ["MAX_LOAD", "SYNTHETIC_NOTE", "check_loads", "parse_loads", "read_loads",
           "synthetic_loads", "synthetic_loads_json"]

#: The largest load value accepted.  Loads are token counts (or rates) per expert; the
#: placement sums and compares them, which must stay finite and keep their precision.
MAX_LOAD = 1e18

#: Where a value of the array lies in the file: (layer, expert or None) -> its span.
Locator = Callable[[int, int | None], Span | None]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_NUMERIC_KINDS = {"i": "integers", "u": "unsigned integers", "f": "floats"}
_KIND_NAMES = {"b": "booleans", "c": "complex numbers", "O": "Python objects",
               "S": "bytes", "U": "strings", "V": "structured records", "M": "datetimes",
               "m": "time deltas"}


def _fail(message: str, span: Span | None = None) -> CmxError:
    return CmxError([Diagnostic("E021", message, span)])


def _at(source: SourceText, line: int, col: int) -> Span:
    return Span(source, line, col, line, col + 1)


def _json_locator(source: SourceText, keyed: bool) -> Locator:
    def span_of(layer: int, expert: int | None) -> Span:
        path: tuple[str | int, ...] = ("logical_count",) if keyed else ()
        path += (layer,) if expert is None else (layer, expert)
        line, col, length = locate(source.text, path)
        return Span(source, line, col, line, col + min(length, 40))
    return span_of


def _from_json(source: SourceText) -> tuple[Any, Locator]:
    data = parse_json(source, "E021")
    keyed = isinstance(data, dict)
    if keyed:
        if "logical_count" not in data:
            raise _fail("expected an object with \"logical_count\": [[...] per MoE layer]",
                        _at(source, 1, 1))
        data = data["logical_count"]
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise _fail("logical_count must be a list of equally long lists of numbers",
                    _json_locator(source, keyed)(0, None) if isinstance(data, list)
                    else _at(source, 1, 1))
    for i, row in enumerate(data):
        for k, v in enumerate(row):
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise _fail(f"layer {i}, expert {k}: expected a number, found "
                            f"{type(v).__name__}", _json_locator(source, keyed)(i, k))
        if len(row) != len(data[0]):
            raise _fail(f"layer {i} has {len(row)} values, layer 0 {len(data[0])}",
                        _json_locator(source, keyed)(i, None))
    return data, _json_locator(source, keyed)


def _number(cell: str) -> float:
    """A CSV cell's value; ValueError for text that is not a number or a number that is
    too large for a float (``float`` would make it ``inf``)."""
    value = float(cell)
    if value in (np.inf, -np.inf) and "inf" not in cell.lower():
        raise ValueError(cell)
    return value


def _from_csv(source: SourceText) -> tuple[list[list[float]], Locator]:
    rows: list[list[float]] = []
    row_lines: list[int] = []
    lines = source.text.splitlines()
    reader = csv.reader(io.StringIO(source.text))
    for lineno, row in enumerate(reader, start=1):
        text = lines[lineno - 1] if lineno <= len(lines) else ""
        if not row or text.lstrip().startswith("#"):
            continue
        values: list[float] = []
        for k, cell in enumerate(row):
            try:
                values.append(_number(cell))
            except ValueError:
                if not rows and lineno == 1:
                    values = []
                    break  # a header row
                col = sum(len(c) + 1 for c in row[:k]) + 1
                shown = cell.strip() if len(cell.strip()) <= 40 else cell.strip()[:37] + "..."
                raise _fail(f"'{shown}' is not a number a load can be",
                            _at(source, lineno, col)) from None
        if values:
            if rows and len(values) != len(rows[0]):
                raise _fail(f"row has {len(values)} values, the first row {len(rows[0])}",
                            _at(source, lineno, 1))
            rows.append(values)
            row_lines.append(lineno)

    def span_of(layer: int, expert: int | None) -> Span | None:
        return _at(source, row_lines[layer], 1) if layer < len(row_lines) else None
    return rows, span_of


def _from_npy(data: bytes, name: str) -> np.ndarray:
    """The array of ``.npy`` bytes; the header (format, dtype, shape) is checked before
    the data is touched, so no header makes it allocate or unpickle anything."""
    if data.startswith(_ZIP_MAGIC):
        raise _fail(f"'{name}' is an .npz archive (np.savez), not an .npy array; save one "
                    "array with np.save")
    if not data.startswith(_NPY_MAGIC):
        raise _fail(f"'{name}' is not an .npy file (it does not start with \\x93NUMPY)")
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not 1.0 or 2.0")
    except Exception as err:
        # NumPy's header parser (literal_eval after tokenize) raises ValueError, SyntaxError,
        # tokenize.TokenError, ... on a hostile header: each one is a bad file
        raise _fail(f"'{name}': not a readable .npy header: {type(err).__name__}") from None
    if dtype.kind not in _NUMERIC_KINDS:
        what = _KIND_NAMES.get(dtype.kind, f"dtype {dtype}")
        raise _fail(f"'{name}' holds {what} (dtype {dtype.str}); loads are integers or "
                    "floats")
    if len(shape) != 2:
        raise _fail(f"'{name}' holds an array of shape {list(shape)}; expected two "
                    "dimensions (MoE layers x routed experts)")
    count = shape[0] * shape[1]
    offset = fp.tell()
    if len(data) - offset != count * dtype.itemsize:
        raise _fail(f"'{name}': the header says {list(shape)} {dtype.str} values "
                    f"({count * dtype.itemsize:,} bytes), the file holds "
                    f"{len(data) - offset:,} bytes of data")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def parse_loads(data: bytes, name: str) -> np.ndarray:
    """The load array of file ``name`` whose bytes are ``data`` (format by suffix:
    ``.npy``, ``.csv``, else JSON), checked with :func:`check_loads`."""
    if Path(name).suffix == ".npy":
        return check_loads(_from_npy(data, name), name)
    try:
        source = SourceText(name, data.decode("utf-8"))
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        shown = SourceText(name, data[:err.start].decode("utf-8") + "?")
        raise _fail(f"not UTF-8 text: byte 0x{data[err.start]:02x}", _at(shown, line, col)) \
            from None
    values, span_of = _from_csv(source) if Path(name).suffix == ".csv" else _from_json(source)
    return check_loads(values, name, span_of=span_of)


def read_loads(path: str | Path, layers: int | None = None,
               experts: int | None = None) -> np.ndarray:
    """Read expert loads: a 2-D array of finite values in ``[0, MAX_LOAD]``, each row with
    some load, of shape [layers x experts] when those are given.

    Raises :class:`~supernode_dsl.diagnostics.CmxError` (E021) otherwise.
    """
    loads = parse_loads(read_bytes(Path(path), "E021"), str(path))
    if layers is not None and experts is not None:
        return check_loads(loads, str(path), (layers, experts))
    return loads


def _as_array(loads: Any, where: str) -> np.ndarray:
    """``loads`` as a float64 array; E021 for what is not numbers."""
    if isinstance(loads, np.ndarray) and loads.dtype.kind not in _NUMERIC_KINDS:
        what = _KIND_NAMES.get(loads.dtype.kind, f"dtype {loads.dtype}")
        raise _fail(f"{where} holds {what} (dtype {loads.dtype.str}); loads are integers "
                    "or floats")
    if isinstance(loads, str | bytes | dict) or not hasattr(loads, "__len__"):
        raise _fail(f"{where} must be a 2-D array of numbers, not {type(loads).__name__}")
    try:
        arr = np.asarray(loads)
    except (TypeError, ValueError, OverflowError):
        raise _fail(f"{where} must be a 2-D array of numbers (equally long rows)") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise _fail(f"{where} must be a 2-D array of numbers, not of "
                    f"{_KIND_NAMES.get(arr.dtype.kind, str(arr.dtype))}")
    with np.errstate(over="ignore"):
        return np.asarray(arr, dtype=np.float64)


def check_loads(loads: Any, name: str | None = None, shape: tuple[int, int] | None = None,
                *, span_of: Locator | None = None, some_load: bool = True) -> np.ndarray:
    """``loads`` as a float64 [MoE layers x routed experts] array, checked: two dimensions
    (of ``shape`` when given), finite values in ``[0, MAX_LOAD]``, some load in every layer
    (unless ``some_load`` is False: the placement alone copes with an idle layer; a plan's
    balance of one is undefined).

    ``name`` is the file the loads came from (None: the Python API); ``span_of`` locates a
    value in it.  Raises :class:`~supernode_dsl.diagnostics.CmxError` (E021) naming the
    file, and the layer and expert of a bad value.
    """
    where = f"'{name}'" if name is not None else "expert loads"
    locate_at = span_of or (lambda layer, expert: None)
    arr = _as_array(loads, where)
    if arr.ndim != 2 or arr.size == 0 or (shape is not None and arr.shape != shape):
        want = f"{list(shape)}" if shape is not None else "two non-empty dimensions"
        raise _fail(f"{where} holds an array of shape {list(arr.shape)}; expected {want} "
                    "(MoE layers x routed experts)")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > MAX_LOAD)
    if bad.any():
        layer, expert = (int(i) for i in np.argwhere(bad)[0])
        value = arr[layer, expert]
        why = "not finite" if not np.isfinite(value) else "negative" if value < 0 else \
            f"above the largest load accepted ({MAX_LOAD:g})"
        span = locate_at(layer, expert)
        raise _fail(f"{where + ': ' if span is None else ''}layer {layer}, expert {expert}: "
                    f"load {value:g} is {why}; loads are finite and in [0, {MAX_LOAD:g}]", span)
    empty = np.flatnonzero(arr.sum(axis=1) <= 0)
    if some_load and empty.size:
        layer = int(empty[0])
        span = locate_at(layer, None)
        raise _fail(f"{where + ': ' if span is None else ''}MoE layer {layer} has no load at "
                    "all", span)
    return arr


#: The label every synthetic loads file carries (SGLang reads only ``logical_count``).
SYNTHETIC_NOTE = ("SYNTHETIC expert loads made by `cmx loads synth`: lognormal token counts, "
                  "not a measurement")


def synthetic_loads(layers: int, experts: int, seed: int, sigma: float = 1.2) -> np.ndarray:
    """Made-up, skewed expert loads [layers x experts]: token counts ``round(1000 x
    lognormal(0, sigma))`` from ``numpy.random.default_rng(seed)`` (at least 1 per layer),
    deterministic for a seed.  For trying the planner and its re-planning, not evidence of
    any real routing."""
    rng = np.random.default_rng(seed)
    counts = np.rint(1000 * rng.lognormal(0.0, sigma, size=(layers, experts)))
    counts[:, 0] = np.maximum(counts[:, 0], 1)
    return counts.astype(np.int64)


def synthetic_loads_json(counts: np.ndarray, seed: int, sigma: float) -> str:
    """``counts`` as SGLang ``{"logical_count": ...}`` JSON, labelled as synthetic."""
    data = {"logical_count": counts.tolist(), "synthetic": SYNTHETIC_NOTE,
            "seed": seed, "sigma": sigma}
    return json.dumps(data) + "\n"
