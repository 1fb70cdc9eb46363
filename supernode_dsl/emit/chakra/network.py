"""The network of one role instance as ASTRA-sim simulates its collectives fast and faithfully.

Entry point: :func:`instance_network`.  Why one instance on one dimension (astra-sim
``c459ab6``; measurements in docs/validation.md):

* A collective whose communicator group is a *subset* of the NPUs is run as a ring over the
  group, whatever system.json's ``*-implementation`` says
  (``astra-sim/system/CommunicatorGroup.cc:45-70``: a ``RingTopology`` with
  ``CollectiveImplType::Ring`` unless the group holds all NPUs); a ring all-to-all of ``n``
  ranks is ``n(n-1)/2`` steps of ``1/n`` of the data one after another
  (``collective_algorithm/Ring.cc:47-48``), each paying the path latency.  Over 144-320 ranks
  that is thousands of serial steps per all-to-all: hundreds of times the bytes over the
  bandwidth in simulated time, and minutes of wall time.  A group holding every NPU gets the
  system's implementation instead: ``direct`` for all-to-all (``AllToAll.cc``: ``n-1``
  messages at once, one per peer), which is how the dispatch and combine kernels send.
  So the network holds one instance's NPUs, and its EP group is all of them.
* The congestion-aware back end, the only one that shares a link between messages in flight
  (the unaware one gives each message the whole link, so a direct all-to-all comes out as one
  message's latency), takes one dimension only
  (``congestion_aware/topology/Helper.cpp:25-29``).  So the instance is written as one
  ``Switch`` dimension of its NPUs with the per-NPU bandwidth and the latency of the
  outermost machine dimension it spans: the link its all-to-all traffic leaves the NPU on
  (CloudMatrix384: UB, one switched tier over every die; H800: each GPU's InfiniBand rail).
  What that loses is stated in the file's header: the traffic to peers that a lower, faster
  dimension reaches (dies of the same NPU over d2d, GPUs of the same node over NVLink) is
  charged to the outer link too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from supernode_dsl.emit.base import emit_error
from supernode_dsl.graph import Dimension

__all__ = ["InstanceNetwork", "instance_network"]


@dataclass(frozen=True)
class InstanceNetwork:
    """One dimension over an instance's NPUs, and the comment lines saying what it keeps
    (``notes``) and what it loses (``lost``) of the machine's dimensions."""

    dimension: Dimension
    notes: tuple[str, ...]
    lost: tuple[str, ...]


def _spanned(dims: Sequence[Dimension], ids: Sequence[int]) -> list[int]:
    """The machine dimensions (innermost first) in which the NPUs ``ids`` differ: ASTRA-sim's
    address of NPU ``i`` is its mixed-radix digits over ``npus_count``, innermost fastest
    (``MultiDimTopology::translate_address``)."""
    spanned, stride = [], 1
    for k, d in enumerate(dims):
        if len({(i // stride) % d.npus for i in ids}) > 1:
            spanned.append(k)
        stride *= d.npus
    return spanned


def instance_network(dims: Sequence[Dimension], ids: Sequence[int]) -> InstanceNetwork:
    """The one dimension over the NPUs ``ids`` (machine NPU ids, as ``astra-network``
    numbers them with ``dims``): a ``Switch`` of ``len(ids)`` NPUs with the bandwidth and
    latency of the outermost dimension of ``dims`` they span (of the first dimension when they
    span none), or that dimension itself when it is the only one they span and they fill it.
    E026 when the ids do not fit ``dims`` or the outermost dimension spanned is a Ring or
    FullyConnected one they do not fill (a subset of it is not a dimension ASTRA-sim has)."""
    total = math.prod(d.npus for d in dims)
    if not ids or min(ids) < 0 or max(ids) >= total:
        raise emit_error(f"the instance's NPU ids do not fit the network's {total} NPUs")
    spanned = _spanned(dims, ids) or [0]
    outer = dims[spanned[-1]]
    whole = len(spanned) == 1 and len(ids) == outer.npus
    if outer.topology != "Switch" and not whole:
        raise emit_error(f"the instance's {len(ids)} NPUs span part of a {outer.topology} "
                         f"dimension ({outer.source}): ASTRA-sim has no dimension for it")
    dim = outer if whole else Dimension("Switch", len(ids), outer.bandwidth, outer.latency,
                                        outer.source)
    notes = (f"one instance: {len(ids)} NPUs, renumbered 0..{len(ids) - 1} in machine order",
             f"dimension 1: {dim.topology} of {dim.npus} from {outer.source}"
             + ("" if whole else f" (the machine's outermost dimension they span, "
                                 f"{outer.topology} of {outer.npus})"))
    lost = tuple(f"{dims[k].topology} of {dims[k].npus} from {dims[k].source} "
                 f"({dims[k].bandwidth:g} GB/s per NPU): its peers are reached over "
                 f"{outer.source} ({outer.bandwidth:g} GB/s) here"
                 for k in spanned[:-1])
    return InstanceNetwork(dim, notes, lost)
