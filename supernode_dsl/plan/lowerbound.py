"""Proven lower bounds on the largest per-die load of a routed-expert placement.

Contract: for one layer's loads ``w`` (``[num_experts]``, non-negative), any placement that
gives every expert ``c_e >= 1`` replicas (``sum c_e = P`` slots, ``c_e <= num_dies``) and
splits ``w_e`` evenly over them has a die whose load is at least ``lower_bound(w, ...)``.

Two bounds are combined:

* average: the total load spread over ``num_dies`` dies, ``sum(w) / num_dies``;
* largest replica: some die holds a replica of size ``max_e w_e / c_e``; its minimum over
  feasible replica counts is ``1 / z*`` where ``z*`` solves the mixed-integer program
  ``max z  s.t.  w_e z <= c_e,  sum c_e = P,  1 <= c_e <= num_dies`` (integer ``c``), solved
  exactly with HiGHS through ``scipy.optimize.milp``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # scipy.optimize is imported where the bound is computed: a slow import
    from scipy.optimize import Bounds, LinearConstraint

_REL_SAFETY = 1e-9  # HiGHS feasibility tolerance: shrink the MILP bound by this factor


def average_bound(loads_row: NDArray[np.float64], num_dies: int) -> float:
    """Total load divided by the number of dies (some die is at least average)."""
    return float(np.sum(loads_row)) / num_dies


def replica_bound(loads_row: NDArray[np.float64], num_slots: int, num_dies: int) -> float:
    """Smallest possible largest replica size ``max_e w_e / c_e`` (exact, via MILP).

    Raises ValueError when ``num_slots`` cannot give each expert 1..num_dies replicas.
    """
    w = np.asarray(loads_row, dtype=np.float64)
    num_experts = w.size
    if not num_experts <= num_slots <= num_experts * num_dies:
        raise ValueError("num_slots must lie in [num_experts, num_experts * num_dies]")
    top = float(w.max(initial=0.0))
    if top <= 0:
        return 0.0
    from scipy.optimize import milp

    cost, constraints, bounds, integrality = _replica_milp(w / top, num_slots, num_dies)
    with _quiet_stdout():
        res = milp(cost, constraints=constraints, bounds=bounds, integrality=integrality,
                   options={"mip_rel_gap": 1e-9})
    if res.status != 0 or res.mip_dual_bound is None:
        raise RuntimeError(f"HiGHS failed on the replica bound: {res.message}")
    z_upper = -float(res.mip_dual_bound)  # valid upper bound on z* even if not optimal
    return top * (1.0 - _REL_SAFETY) / z_upper


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence the solver's C-level prints: ``cmx plan -o -`` writes the plan to stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _replica_milp(
    w: NDArray[np.float64], num_slots: int, num_dies: int
) -> tuple[NDArray[np.float64], list[LinearConstraint], Bounds, NDArray[np.float64]]:
    """(cost, constraints, bounds, integrality) of ``max z: w_e z <= c_e, sum c = P``."""
    num_experts = w.size
    cost = np.zeros(num_experts + 1)
    cost[-1] = -1.0  # maximise z
    rows = np.hstack([-np.eye(num_experts), w[:, None]])  # w_e z - c_e <= 0
    total = np.append(np.ones(num_experts), 0.0)[None, :]  # sum c_e = P
    from scipy.optimize import Bounds, LinearConstraint

    constraints = [LinearConstraint(rows, -np.inf, 0.0),
                   LinearConstraint(total, num_slots, num_slots)]
    bounds = Bounds(np.append(np.ones(num_experts), 0.0),
                    np.append(np.full(num_experts, num_dies), np.inf))
    return cost, constraints, bounds, np.append(np.ones(num_experts), 0.0)


def die_load_lower_bound(
    loads_row: NDArray[np.float64], num_dies: int, slots_per_die: int
) -> float:
    """Max of the average bound and the exact largest-replica bound for one layer."""
    num_slots = num_dies * slots_per_die
    return max(average_bound(loads_row, num_dies),
               replica_bound(loads_row, num_slots, num_dies))
