"""One point of a sweep: compile, plan and estimate with the plan stage's public entry,
and keep the figures a sweep compares."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "PointResult", "evaluate_point", "point_groups"]

#: The figures of a point, in table order (None where the plan has no such role or value).
METRICS = (
    "decode_tokens_per_s_per_npu", "tpot_ms", "batch_per_npu",
    "prefill_tokens_per_s_per_npu", "ttft_ms",
    "npus_used", "sustainable_requests_per_s", "bottleneck",
)


@dataclass(frozen=True)
class PointResult:
    """The outcome of one point: ``metrics`` (see :data:`METRICS`) when it could be planned,
    else ``error``, the first diagnostic (``CODE: message``; e.g. E023 memory exceeded)."""

    defines: dict[str, str]
    metrics: dict[str, Any] | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def point_groups(results: list[PointResult], per: tuple[str, ...]) -> list[int]:
    """Each point's group under the axes ``per`` (the points with the same values of them;
    numbered by first appearance in grid order; no axes: every point in group 0): the
    groups a sweep's Pareto front is taken per."""
    keys: dict[tuple[str, ...], int] = {}
    return [keys.setdefault(tuple(r.defines[a] for a in per), len(keys)) for r in results]


def _metrics(doc: Any) -> dict[str, Any]:
    decode = doc.roles.get("decode")
    prefill = doc.roles.get("prefill")
    de = decode.estimate if decode is not None else None
    pe = prefill.estimate if prefill is not None else None
    split = doc.serving.roles if doc.serving is not None else None
    return {
        "decode_tokens_per_s_per_npu": de.tokens_per_s_per_npu if de else None,
        "tpot_ms": de.tpot_ms if de else None,
        "batch_per_npu": de.batch_per_npu if de else None,
        "prefill_tokens_per_s_per_npu": pe.tokens_per_s_per_npu if pe else None,
        "ttft_ms": pe.ttft_ms if pe else None,
        "npus_used": split.npus_used if split else None,
        "sustainable_requests_per_s": split.sustainable_requests_per_s if split else None,
        "bottleneck": split.bottleneck if split else None,
    }


def evaluate_point(file: str, defines: dict[str, str], deployment: str | None) -> PointResult:
    """Plan ``deployment`` of ``file`` with ``defines`` (a pure function of its arguments
    and the files: the same point gives the same result in any process or on any host)."""
    from supernode_dsl import build_graph, compile_file
    from supernode_dsl.diagnostics import CmxError
    from supernode_dsl.plan import PlanRequest, plan_deployment

    try:
        model = compile_file(Path(file), dict(defines))
        doc = plan_deployment(model, build_graph(model), PlanRequest(deployment=deployment))
    except CmxError as err:
        first = err.diagnostics[0]
        return PointResult(dict(defines), None, f"{first.code}: {first.message}")
    return PointResult(dict(defines), _metrics(doc), None)
