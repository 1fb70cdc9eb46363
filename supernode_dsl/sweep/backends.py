"""Where a sweep's points run: local processes (concurrent.futures) or a Ray cluster.
Both call the same :func:`~supernode_dsl.sweep.point.evaluate_point`, so results are
identical; each yields ``(index, result)`` as points finish, in any order."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from supernode_dsl.sweep.point import PointResult, evaluate_point

__all__ = ["POLL_S", "BackendError", "run_local", "run_ray"]

Job = tuple[int, dict[str, str]]
POLL_S = 0.25  # how often the Ray backend collects finished points


class BackendError(RuntimeError):
    """The backend cannot start (Ray missing, cluster unreachable)."""


def run_local(file: str, deployment: str | None, jobs: list[Job], workers: int | None
              ) -> Iterator[tuple[int, PointResult]]:
    """Run ``jobs`` on ``workers`` local processes (default: one per CPU)."""
    if not jobs:
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(evaluate_point, file, d, deployment): i for i, d in jobs}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def run_ray(file: str, deployment: str | None, jobs: list[Job], address: str | None
            ) -> Iterator[tuple[int, PointResult]]:
    """Run ``jobs`` as Ray tasks: on the cluster at ``address`` (``ray://host:10001`` or
    ``auto``), else on a Ray instance started here.  The workers need this package and the
    topology files at the same path (a shared file system or a runtime environment)."""
    try:
        import ray
    except ImportError as err:
        raise BackendError("--backend ray needs Ray: pip install 'supernode-dsl[ray]'") from err
    if not jobs:
        return
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise BackendError(f"cannot start Ray at {address or 'a local instance'}: {err}"
                               ) from err
    try:
        task = ray.remote(evaluate_point)
        refs = {task.remote(file, d, deployment): i for i, d in jobs}
        pending = list(refs)
        while pending:
            # whatever is ready within the poll interval: one wait per interval, not one
            # per point (each wait scans the pending list)
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
            for ref in ready:
                yield refs[ref], ray.get(ref)
    finally:
        if started:
            ray.shutdown()
