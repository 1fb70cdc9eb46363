"""Routing as ns-3 does it: a shortest-path BFS in which only switches forward.

ns-3's routing for ASTRA-sim and SimAI (``CalculateRoute``, ASTRA-sim ns-3 back end
``astra-sim/astra-network-ns3`` commit ``8fd360471385``, ``scratch/common.h`` l.210; SimAI
``aliyun/SimAI`` commit ``cef83f9ddd96``,
``astra-sim-alibabacloud/astra-sim/network_frontend/ns3/common.h`` l.242) runs a BFS from every
host over the links; a node is *reached* by any link, but only a forwarding node (a switch;
SimAI's NVSwitches too) is expanded.  Hosts therefore never forward: two hosts joined only
through a third host, or only by a direct torus of hosts, have no route.

:func:`unroutable_pairs` is that check on an abstract edge list, so that emitters can refuse
(or warn about) an export that the simulator could not route.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

__all__ = ["unroutable_pairs"]


def unroutable_pairs(hosts: Sequence[int], forwarding: Iterable[int],
                     links: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every ordered pair ``(a, b)`` of distinct ``hosts`` (in the order of ``hosts``, then of
    ``hosts`` for ``b``) such that ns-3's BFS from ``a`` never reaches ``b``: no path from
    ``a`` to ``b`` whose inner nodes are all in ``forwarding``.  ``links`` are undirected
    ``(u, v)`` node ids; ids need not be contiguous.  Empty when every pair routes.
    Cost: one BFS per host, O(hosts x links)."""
    nbr: dict[int, list[int]] = {}
    for u, v in links:
        nbr.setdefault(u, []).append(v)
        nbr.setdefault(v, []).append(u)
    fwd = set(forwarding)
    out: list[tuple[int, int]] = []
    for h in hosts:
        seen = _reached(h, nbr, fwd)
        out.extend((h, o) for o in hosts if o != h and o not in seen)
    return out


def _reached(start: int, nbr: dict[int, list[int]], fwd: set[int]) -> set[int]:
    """The nodes ns-3's BFS from ``start`` reaches (only ``fwd`` nodes are expanded)."""
    seen = {start}
    queue = deque([start])
    while queue:
        now = queue.popleft()
        for nxt in nbr.get(now, ()):
            if nxt not in seen:
                seen.add(nxt)
                if nxt in fwd:
                    queue.append(nxt)
    return seen
