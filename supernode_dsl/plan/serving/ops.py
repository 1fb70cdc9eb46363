"""The operators of one transformer step on one EP device, with the work each one does.

An :class:`Op` carries arithmetic (operations and their number format), HBM traffic and, for
communication, the seconds its transfer takes on the graph's routes.  How long an op lasts
depends on the share of the device's matrix cores its stream holds (:func:`op_seconds`).  The
operator list follows CloudMatrix-Infer's kernels: the attention kind's operators
(:mod:`supernode_dsl.plan.attention`: MLAProlog, FusedAttention, O_proj for MLA; QKV
projection, attention, O projection for GQA/MHA), then a dense FFN or the MoE (gate,
dispatch, expert MLP, combine) as the model declares each layer; everything is counted from
the declared shapes and precisions.

Conventions: one multiply-accumulate is 2 operations; byte counts are the weights read (every
microbatch reads them again) plus the KV cache read by attention; activations are not counted
(they are small next to weights and KV at the batch sizes served).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from supernode_dsl.plan.serving.hardware import DeviceFacts, Route

if TYPE_CHECKING:  # the model imports its attention kinds, which build on these ops
    from supernode_dsl.plan.spec import ModelArch

__all__ = ["COLLECTIVES", "COLLECTIVE_KERNELS", "LOW_LATENCY", "CommPaths", "LayerShape",
           "MoeMessages", "Op", "attention_ops", "dense_ops", "distinct_devices", "gemm",
           "layer_ops", "moe_messages", "moe_ops", "op_seconds", "restage", "step_ops", "streams"]

#: The MoE collectives, named as parts name their measured figures (``efficiency.ub_dispatch``).
COLLECTIVES = ("dispatch", "combine")
#: The suffix of a collective's low-latency kernel (decode), as in ``overhead.dispatch_ll``.
LOW_LATENCY = "_ll"

#: Every collective kernel a part may declare figures for: each collective's
#: high-throughput and low-latency kernel.
COLLECTIVE_KERNELS = tuple(c + k for c in COLLECTIVES for k in ("", LOW_LATENCY))


@dataclass(frozen=True)
class Op:
    """One operator of one layer for one microbatch on one device."""

    name: str
    stream: str
    stage: int            # ops of one stage run back to back for a microbatch
    ops: float = 0.0      # arithmetic operations
    fmt: str = "bf16"     # their number format
    kind: str = "gemm"    # which efficiency applies: "gemm" or "attention"
    hbm_bytes: float = 0.0
    comm_s: float = 0.0   # seconds of communication (does not depend on cores)


def op_seconds(op: Op, facts: DeviceFacts, share: float) -> float:
    """Duration of ``op`` on a device whose stream holds ``share`` of the matrix cores:
    the larger of compute time and HBM time, plus the communication time, plus the part's
    fixed ``overhead.op`` per operator.  A peak or a bandwidth the part does not declare
    contributes no time (the estimate lists them)."""
    compute = 0.0
    if op.ops:
        peak = facts.peak_of(op.fmt) * facts.eff(op.kind) * share
        compute = op.ops / peak if peak > 0 else 0.0
    bandwidth = facts.hbm_bw * facts.eff("memory")
    memory = op.hbm_bytes / bandwidth if op.hbm_bytes and bandwidth > 0 else 0.0
    return max(compute, memory) + op.comm_s + facts.overhead.get("op", 0.0)


@dataclass(frozen=True)
class CommPaths:
    """The routes from a device to the other devices of its instance, with the share of its
    expert traffic each route carries (shares add up to 1), and what the part measures of
    its collective kernels.

    A collective is named by its operator and kernel family: ``dispatch`` and ``combine``
    are the high-throughput kernels prefill uses, ``dispatch_ll`` and ``combine_ll`` the
    low-latency kernels of decode (DeepEP's two families).
    """

    routes: tuple[tuple[Route, float], ...]
    #: Measured efficiencies of named collectives per plane (``ub_dispatch``,
    #: ``ub_dispatch_ll``), which replace the plane's own efficiency for that collective; a
    #: low-latency kernel without its own figure uses its family's (``ub_dispatch``).
    collective_efficiency: tuple[tuple[str, float], ...] = ()
    #: Measured fixed times of named collectives (s), from the part's ``overhead.<name>``:
    #: the start-up and synchronisation a kernel pays whatever its volume, which replaces
    #: the one path latency an undeclared collective is charged.
    collective_overhead: tuple[tuple[str, float], ...] = ()

    def seconds(self, send: float, receive: float, collective: str = "") -> float:
        """Time to send ``send`` bytes and receive ``receive`` bytes, spread over the routes
        by their shares: per plane, bytes over the plane's effective bandwidth (the
        collective's measured efficiency on that plane when one is declared); sending and
        receiving overlap; plus the collective's fixed time (its declared overhead, else
        the longest route latency: one message round)."""
        return max(self._one_way(send, collective), self._one_way(receive, collective)) \
            + self.fixed(collective)

    def fixed(self, collective: str) -> float:
        """The fixed part of ``collective``'s time (s)."""
        return dict(self.collective_overhead).get(collective, self.latency)

    @property
    def latency(self) -> float:
        """The longest latency of the routes (s)."""
        return max((r.latency for r, _ in self.routes), default=0.0)

    def _one_way(self, total: float, collective: str) -> float:
        measured = dict(self.collective_efficiency)
        family = collective.removesuffix(LOW_LATENCY)
        per_plane: dict[str, float] = {}
        for r, share in self.routes:
            eff = measured.get(f"{r.plane}_{collective}",
                               measured.get(f"{r.plane}_{family}", r.efficiency))
            per_plane[r.plane] = per_plane.get(r.plane, 0.0) + total * share / \
                (r.bandwidth * eff)
        return max(per_plane.values(), default=0.0)


@dataclass(frozen=True)
class LayerShape:
    """The work of one microbatch on one device kind.

    ``tokens`` and ``requests`` are this device's attention tokens and sequences;
    ``context`` the keys each token attends to (decode) or the prefix before the new tokens
    (prefill); ``routed_tokens`` and ``shared_tokens`` the token-expert pairs the device's
    routed and shared experts compute; ``send_tokens``/``recv_tokens`` the dispatched token
    messages; ``prefill`` selects the prefill forms (non-absorbed MLA, causal attention,
    hybrid attention collectives on ``attention_tp`` devices).
    """

    tokens: float
    requests: float
    context: float
    routed_tokens: float
    routed_experts_held: int
    shared_tokens: float
    send_tokens: float
    recv_tokens: float
    prefill: bool
    attention_tp: int = 1


def gemm(name: str, stream: str, stage: int, macs: float, params: float, nbytes: float,
         fmt: str) -> Op:
    """A matrix multiply of ``macs`` multiply-accumulates over ``params`` weights of
    ``nbytes`` bytes each."""
    return Op(name, stream, stage, ops=2 * macs, fmt=fmt, hbm_bytes=params * nbytes)


def streams(prefill: bool) -> tuple[str, str, str]:
    """(attention/compute stream, MoE stream, communication stream) names."""
    return ("cube", "cube", "copy") if prefill else ("attention", "moe", "moe")


def attention_ops(a: ModelArch, s: LayerShape, paths: CommPaths) -> list[Op]:
    """The attention operators of the model's attention kind
    (:mod:`supernode_dsl.plan.attention`)."""
    return a.attention.ops(a, s, paths)


def moe_ops(a: ModelArch, s: LayerShape, paths: CommPaths) -> list[Op]:
    """Gate, dispatch, routed (and shared) expert MLPs, combine (prefill on the
    high-throughput collective kernels, decode on the low-latency ones)."""
    _, moe_stream, comm_stream = streams(s.prefill)
    gate_stream = "vector" if s.prefill else moe_stream
    ex = a.expert_params
    fmt, nb = a.precision.get("experts", "bf16"), a.bytes_of("experts")
    kernel = "" if s.prefill else LOW_LATENCY
    ops = [
        gemm("gate", gate_stream, 1, s.tokens * a.hidden * a.routed_experts,
              a.hidden * a.routed_experts, a.bytes_of("gate"), a.precision.get("gate", "bf16")),
        Op("dispatch", comm_stream, 1, comm_s=paths.seconds(
            s.send_tokens * a.dispatch_bytes(), s.recv_tokens * a.dispatch_bytes(),
            "dispatch" + kernel)),
    ]
    held = s.routed_experts_held + (a.shared_experts if s.shared_tokens else 0)
    if s.routed_tokens or s.shared_tokens:
        ops.append(gemm("experts", moe_stream, 1, (s.routed_tokens + s.shared_tokens) * ex,
                        held * ex, nb, fmt))
    ops.append(Op("combine", comm_stream, 1, comm_s=paths.seconds(
        s.recv_tokens * a.combine_bytes(), s.send_tokens * a.combine_bytes(),
        "combine" + kernel)))
    return restage(ops, s.prefill, 1)


def dense_ops(a: ModelArch, s: LayerShape) -> list[Op]:
    """The dense FFN of a layer that is not MoE (data parallel: every device holds it)."""
    _, moe_stream, _ = streams(s.prefill)
    params = 3 * a.hidden * a.dense_intermediate
    return restage([gemm("dense_ffn", moe_stream, 1, s.tokens * params, params,
                         a.bytes_of("dense"), a.precision.get("dense", "bf16"))],
                   s.prefill, 1)


def restage(ops: list[Op], prefill: bool, stage: int) -> list[Op]:
    """Prefill interleaves microbatches op by op (each op its own stage); decode runs a
    stream's ops of one layer back to back (one stage per stream)."""
    if not prefill:
        return [replace(o, stage=stage) for o in ops]
    return [replace(o, stage=10 * stage + i) for i, o in enumerate(ops)]


def layer_ops(a: ModelArch, layer: int, s: LayerShape, paths: CommPaths) -> list[Op]:
    """The ops of transformer layer ``layer`` (dense FFN or MoE) for one microbatch."""
    tail = moe_ops(a, s, paths) if a.is_moe(layer) else dense_ops(a, s)
    return attention_ops(a, s, paths) + tail


def step_ops(a: ModelArch, s: LayerShape, mtp: bool, paths: CommPaths,
             moe_shape: LayerShape) -> list[tuple[int, list[Op]]]:
    """Per-step work after the layers: the MTP module (one more MoE layer behind a 2h x h
    projection) when ``mtp``, and the output head; as (layer index, ops) pairs, the head's
    index -1."""
    out: list[tuple[int, list[Op]]] = []
    head_tokens = s.tokens if not s.prefill else s.requests
    head = a.vocab * a.hidden
    stream = streams(s.prefill)[0]
    lm = gemm("lm_head", stream, 0, head_tokens * head, head, a.bytes_of("embedding"),
              a.precision.get("embedding", "bf16"))
    if mtp and a.mtp_layers:
        proj = 2 * a.hidden * a.hidden
        eh = gemm("mtp_proj", stream, 0, s.tokens * proj, proj, a.bytes_of("attention"),
                  a.precision.get("attention", "bf16"))
        out.append((a.layers, [eh, *attention_ops(a, moe_shape, paths),
                               *moe_ops(a, moe_shape, paths)]))
        out.append((-1, [lm, lm]))
    else:
        out.append((-1, [lm]))
    return out


@dataclass(frozen=True)
class MoeMessages:
    """The token messages of one MoE layer for one microbatch on one device: ``pairs`` the
    token-expert pairs its routed experts compute, ``send``/``recv`` the dispatched token
    messages it sends and receives (combine sends ``recv`` back and receives ``send``);
    ``shared_recv`` what a shared-expert device receives instead (0 without them)."""

    pairs: float
    send: float
    recv: float
    shared_recv: float


def moe_messages(a: ModelArch, ep: int, routed_devices: int, routed_slots: int,
                 shared_devices: int, tokens: float, load: float) -> MoeMessages:
    """The messages of a routed-expert device of an EP group of ``ep`` devices
    (``routed_devices`` holding ``routed_slots`` routed experts each, ``shared_devices`` the
    shared ones) when every device attends ``tokens`` tokens and this one carries ``load``
    times the mean routed load: a token goes once to each distinct device its ``top_k``
    experts live on (:func:`distinct_devices`) and to the shared-expert devices."""
    distinct = distinct_devices(a, routed_devices, routed_slots)
    pairs = tokens * ep * a.top_k / routed_devices * load
    recv = pairs * distinct / a.top_k if a.top_k else 0.0
    send = tokens * (distinct + (a.shared_experts if shared_devices else 0))
    shared = tokens * ep / shared_devices * a.shared_experts if shared_devices else 0.0
    return MoeMessages(pairs, send, recv, shared)


def distinct_devices(a: ModelArch, devices: int, slots_per_device: int) -> float:
    """Expected number of distinct devices a token's ``top_k`` experts live on, when
    ``devices`` devices share the routed experts evenly (each holding about
    experts/devices of them; replicas counted as one expert)."""
    if devices <= 0:
        return 0.0
    share = a.routed_experts / devices if slots_per_device else 0.0
    miss = 1.0
    for i in range(a.top_k):
        miss *= max(0.0, 1 - share / (a.routed_experts - i))
    return devices * (1 - miss)
