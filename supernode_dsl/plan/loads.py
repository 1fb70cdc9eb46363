"""Reading measured expert loads: SGLang JSON, NumPy ``.npy`` or CSV, shape [MoE layers x
routed experts].

* JSON: ``{"logical_count": [[...], ...]}`` (what SGLang's expert distribution recorder
  writes and ``--init-expert-location`` accepts); a bare list of lists is accepted too.
* ``.npy``: a 2-D numeric array.
* CSV: one row per MoE layer, one column per expert, no header (a header row of names is
  skipped); ``#`` comment lines are ignored.

Every mistake is an E021 diagnostic with the file, and the line and column where there is one.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from supernode_dsl.diagnostics import CmxError, Diagnostic, SourceText, Span
from supernode_dsl.files import read_bytes, read_text

__all__ = ["read_loads"]


def _fail(message: str, source: SourceText | None = None, line: int = 1,
          col: int = 1) -> CmxError:
    span = Span(source, line, col, line, col + 1) if source is not None else None
    return CmxError([Diagnostic("E021", message, span)])


def _from_json(source: SourceText) -> np.ndarray:
    try:
        data = json.loads(source.text)
    except json.JSONDecodeError as err:
        raise _fail(f"not valid JSON: {err.msg}", source, err.lineno, err.colno) from None
    if isinstance(data, dict):
        if "logical_count" not in data:
            raise _fail("expected an object with \"logical_count\": [[...] per MoE layer]",
                        source)
        data = data["logical_count"]
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail("logical_count must be a list of equally long lists of numbers",
                    source) from None
    return arr


def _from_csv(source: SourceText) -> np.ndarray:
    rows: list[list[float]] = []
    lines = source.text.splitlines()
    reader = csv.reader(io.StringIO(source.text))
    for lineno, row in enumerate(reader, start=1):
        text = lines[lineno - 1] if lineno <= len(lines) else ""
        if not row or text.lstrip().startswith("#"):
            continue
        values: list[float] = []
        for k, cell in enumerate(row):
            try:
                values.append(float(cell))
            except ValueError:
                if not rows and lineno == 1:
                    values = []
                    break  # a header row
                col = sum(len(c) + 1 for c in row[:k]) + 1
                raise _fail(f"'{cell.strip()}' is not a number", source, lineno, col) \
                    from None
        if values:
            if rows and len(values) != len(rows[0]):
                raise _fail(f"row has {len(values)} values, the first row {len(rows[0])}",
                            source, lineno)
            rows.append(values)
    return np.asarray(rows, dtype=np.float64)


def read_loads(path: str | Path, layers: int | None = None,
               experts: int | None = None) -> np.ndarray:
    """Read expert loads: a 2-D array of finite values >= 0, each row with some load, of
    shape [layers x experts] when those are given.

    Raises :class:`~supernode_dsl.diagnostics.CmxError` (E021) otherwise.
    """
    p = Path(path)
    try:
        if p.suffix == ".npy":
            arr = np.load(io.BytesIO(read_bytes(p, "E021")), allow_pickle=False)
            source = None
        else:
            source = read_text(p, "E021")
            arr = _from_csv(source) if p.suffix == ".csv" else _from_json(source)
    except OSError as err:
        raise _fail(f"cannot read '{path}': {err.strerror or err}") from None
    except ValueError as err:
        raise _fail(f"cannot read '{path}': {err}") from None
    where = f"'{path}'"
    if arr.ndim != 2 or (layers is not None and arr.shape != (layers, experts)):
        want = f"[{layers}, {experts}]" if layers is not None else "two dimensions"
        raise _fail(f"{where} holds an array of shape {list(arr.shape)}; expected "
                    f"{want} (MoE layers x routed experts)", source)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise _fail(f"{where}: loads must be finite and not negative", source)
    if np.any(arr.sum(axis=1) <= 0):
        layer = int(np.argmin(arr.sum(axis=1)))
        raise _fail(f"{where}: MoE layer {layer} has no load at all", source)
    result: np.ndarray = np.asarray(arr, dtype=np.float64)
    return result
