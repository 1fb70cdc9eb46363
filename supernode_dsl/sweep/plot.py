"""The Pareto plot of a sweep as SVG: every plannable point by its latency (x) and decode
tokens/s per NPU (y), the front drawn as a staircase; plain text, the same bytes for the
same table."""

from __future__ import annotations

from html import escape

from supernode_dsl.sweep.point import PointResult, point_groups

__all__ = ["pareto_svg"]

_W, _H, _L, _B, _PAD = 640, 400, 70, 50, 20


def _ticks(hi: float) -> list[tuple[float, str]]:
    """Round ticks from 0 to ``hi`` (1, 2, 2.5 or 5 x 10^k apart, about six) and their
    labels: the report's tick rule, so this plot reads like the page's other charts."""
    from supernode_dsl.emit.report.common import nice_ticks, tick_text  # report imports us

    ticks = nice_ticks(0.0, hi, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    return [(t, tick_text(t, step)) for t in ticks]


#: The colours of the fronts of a sweep taken per group (the first is the one front's).
_FRONT_COLOURS = ("#c0392b", "#2471a3", "#1e8449", "#b9770e", "#7d3c98", "#148f77")


def pareto_svg(results: list[PointResult], front: list[int], y: str = "tpot_ms", *,
               namespace: bool = True, per: tuple[str, ...] = ()) -> str:
    """An SVG scatter plot of ``results`` (``y``: the latency on the x axis) with ``front``
    (indices) highlighted and joined; with ``per`` (axes), each group of points with the
    same values of those axes has its front joined in its own colour, named in a legend.
    ``namespace=False`` leaves out the ``xmlns`` declaration (for inlining in HTML5, which
    does not need it: the report's page holds no URL); the drawing is otherwise the same
    bytes."""
    key = "decode_tokens_per_s_per_npu"
    pts = [(i, r.metrics[y], r.metrics[key]) for i, r in enumerate(results)
           if r.metrics and r.metrics.get(y) is not None and r.metrics.get(key) is not None]
    xs, ys = [p[1] for p in pts] or [0.0], [p[2] for p in pts] or [0.0]
    x0, x1, y0, y1 = 0.0, max(xs) * 1.05 or 1.0, 0.0, max(ys) * 1.05 or 1.0

    def sx(v: float) -> float:
        return _L + (v - x0) / (x1 - x0) * (_W - _L - _PAD)

    def sy(v: float) -> float:
        return _H - _B - (v - y0) / (y1 - y0) * (_H - _B - _PAD)

    xmlns = ' xmlns="http://www.w3.org/2000/svg"' if namespace else ""
    out = [f'<svg{xmlns} class="chart pareto" role="img" '
           f'width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" font-family="sans-serif" '
           f'font-size="11">',
           f"<title>Pareto front: decode tokens/s per NPU against {escape(y)}</title>",
           f'<line x1="{_L}" y1="{_H - _B}" x2="{_W - _PAD}" y2="{_H - _B}" stroke="#000"/>',
           f'<line x1="{_L}" y1="{_PAD}" x2="{_L}" y2="{_H - _B}" stroke="#000"/>']
    for t, text in _ticks(x1):
        out.append(f'<text x="{sx(t):.1f}" y="{_H - _B + 15}" text-anchor="middle">'
                   f"{text}</text>")
    for t, text in _ticks(y1):
        out.append(f'<text x="{_L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{text}</text>')
    label = "TPOT (ms)" if y == "tpot_ms" else "TTFT (ms)"
    out.append(f'<text x="{(_L + _W) / 2:.0f}" y="{_H - 12}" text-anchor="middle">'
               f"{label}</text>")
    out.append(f'<text x="14" y="{_H / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {_H / 2:.0f})">decode tokens/s per NPU</text>')
    on, group = set(front), point_groups(results, per)
    for g in sorted(set(group)):
        stair = sorted((p for p in pts if p[0] in on and group[p[0]] == g),
                       key=lambda p: (p[1], p[2]))
        if stair:
            path = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for _, x, v in stair)
            out.append(f'<polyline points="{path}" fill="none" '
                       f'stroke="{_colour(g)}"/>')
    if per:
        out += _legend(results, group, per)
    for i, x, v in pts:
        color = _colour(group[i]) if i in on else "#7f8c8d"
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(v):.1f}" r="{4 if i in on else 3}" '
                   f'fill="{color}"><title>point {i}: {x:g} ms, {v:g} tokens/s</title></circle>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _colour(group: int) -> str:
    return _FRONT_COLOURS[group % len(_FRONT_COLOURS)]


def _legend(results: list[PointResult], group: list[int],
            per: tuple[str, ...]) -> list[str]:
    """One line per group at the top right: its colour and its axis values."""
    first = {g: i for i, g in reversed(list(enumerate(group)))}
    out = []
    for row, g in enumerate(sorted(first)):
        label = ", ".join(f"{a}={results[first[g]].defines[a]}" for a in per)
        top = _PAD + 4 + 14 * row
        out.append(f'<rect x="{_W - 200}" y="{top}" width="10" height="10" '
                   f'fill="{_colour(g)}"/>')
        out.append(f'<text x="{_W - 185}" y="{top + 9}">{escape(label)}</text>')
    return out
