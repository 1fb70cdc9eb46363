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

__all__ = ["SYNTHETIC_NOTE", "read_loads", "synthetic_loads", "synthetic_loads_json"]


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
            arr = np.load(p, allow_pickle=False)
            source = None
        else:
            source = SourceText(str(path), p.read_text(encoding="utf-8"))
            arr = _from_csv(source) if p.suffix == ".csv" else _from_json(source)
    except OSError as err:
        raise _fail(f"cannot read '{path}': {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:
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
