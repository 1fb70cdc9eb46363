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

__all__ = [
    "ACTIVATION_BYTES",
    "COLLECTIVE",
    "COLLECTIVES",
    "COLLECTIVE_KERNELS",
    "LOW_LATENCY",
    "CommPaths",
    "LayerShape",
    "MoeMessages",
    "Op",
    "attention_ops",
    "collective_kernel",
    "dense_ops",
    "distinct_devices",
    "gemm",
    "layer_ops",
    "merge_vector",
    "moe_messages",
    "moe_ops",
    "norm",
    "op_seconds",
    "quantise",
    "restage",
    "step_ops",
    "streams",
    "transfer",
    "vector",
]

#: The MoE collectives, named as parts name their measured figures (``efficiency.ub_dispatch``).
COLLECTIVES = ("dispatch", "combine")
#: The suffix of a collective's low-latency kernel (decode), as in ``overhead.dispatch_ll``.
LOW_LATENCY = "_ll"

#: The op kind of a transfer between devices (:func:`transfer`).
COLLECTIVE = "collective"

#: Every collective kernel a part may declare figures for: each collective's
#: high-throughput and low-latency kernel.
COLLECTIVE_KERNELS = tuple(c + k for c in COLLECTIVES for k in ("", LOW_LATENCY))


def collective_kernel(collective: str, prefill: bool) -> str:
    """The kernel ``collective`` runs on in a role: prefill the high-throughput one
    (``dispatch``), decode the low-latency one (``dispatch_ll``); parts name their figures
    for it so (``overhead.dispatch_ll``)."""
    return collective if prefill else collective + LOW_LATENCY


@dataclass(frozen=True)
class Op:
    """One operator of one layer for one microbatch on one device.

    ``kind`` names the efficiency tables that apply: ``gemm`` (matrix multiplies, whose
    efficiency depends on ``rows``, the M of the multiply per weight matrix), ``attention``
    (``rows``: the keys each query attends to) or ``vector`` (element-wise and reduction
    kernels, costed by the bytes they move); a ``collective`` (:func:`transfer`) only
    moves data, its whole time, fixed part included, in ``comm_s``."""

    name: str
    stream: str
    stage: int            # ops of one stage run back to back for a microbatch
    ops: float = 0.0      # arithmetic operations
    fmt: str = "bf16"     # their number format
    kind: str = "gemm"    # "gemm", "attention", "vector" or "collective" (see above)
    hbm_bytes: float = 0.0
    comm_s: float = 0.0   # seconds of communication (does not depend on cores)
    rows: float = 0.0     # the shape the efficiency tables are read at (see above)
    kernels: int = 1      # kernels this op stands for (consecutive vector kernels merged)
    #: a step-level op (the output head, sampling): it runs once per step on the whole
    #: device, after every microbatch's layers, over the tokens of all of them
    once: bool = False


#: The efficiency of memory traffic of an op kind: its own ``<kind>_memory`` (a GEMM
#: streaming weights reaches less of HBM than attention streaming its KV cache), else the
#: part's ``memory``.
def _memory_eff(facts: DeviceFacts, kind: str, rows: float) -> float:
    name = f"{kind}_memory"
    if name in facts.efficiency or facts.curve(name):
        return facts.eff_at(name, rows)
    return facts.eff_at("memory", rows)


def op_seconds(op: Op, facts: DeviceFacts, share: float) -> float:
    """Duration of ``op`` on a device whose stream holds ``share`` of the cores:
    max(operations / (peak x efficiency(kind, rows) x share), bytes / (HBM bandwidth x
    memory efficiency x share)) + communication + the part's fixed time per operator of the
    op's kind (``overhead.<kind>``, else ``overhead.op``).

    The HBM bandwidth is shared like the cores: two streams that run at once each get the
    share of the bandwidth their cores hold: exact for the op that finishes first under
    rate sharing, an upper bound for the other, which could use the whole bandwidth once
    alone (checked against a rate-sharing schedule in ``tests/test_calibrate.py``).  A
    peak or a bandwidth the part does not declare contributes no time (the estimate lists
    them).  A collective pays no ``overhead.<kind>``: its measured fixed time is part of
    ``comm_s`` (:meth:`CommPaths.fixed`)."""
    compute = 0.0
    if op.ops:
        peak = facts.peak_of(op.fmt) * facts.eff_at(op.kind, op.rows) * share
        compute = op.ops / peak if peak > 0 else 0.0
    bandwidth = facts.hbm_bw * _memory_eff(facts, op.kind, op.rows) * share
    memory = op.hbm_bytes / bandwidth if op.hbm_bytes and bandwidth > 0 else 0.0
    fixed = 0.0 if op.kind == COLLECTIVE else \
        facts.overhead.get(op.kind, facts.overhead.get("op", 0.0)) * op.kernels
    return max(compute, memory) + op.comm_s + fixed


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
    #: (index of the route to other nodes, index of the route inside the node, share of the
    #: per-device bytes that cross to other nodes) when the high-throughput kernels send a
    #: token once per destination node and forward it there over the node's own plane
    #: (DeepEP's normal kernels: InfiniBand to the node, NVLink inside it).
    forward: tuple[int, int, float] | None = None

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

    def _shares(self, collective: str) -> list[tuple[Route, float]]:
        routes = list(self.routes)
        if self.forward is None or collective not in COLLECTIVES:
            return routes
        remote, local, factor = self.forward
        (r_out, s_out), (r_in, s_in) = routes[remote], routes[local]
        routes[remote] = (r_out, s_out * factor)
        routes[local] = (r_in, s_in + s_out)   # every forwarded copy crosses the node plane
        return routes

    def _one_way(self, total: float, collective: str) -> float:
        measured = dict(self.collective_efficiency)
        family = collective.removesuffix(LOW_LATENCY)
        per_plane: dict[str, float] = {}
        for r, share in self._shares(collective):
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
    microbatches: int = 1     # of the step (weights read once per step are shared by them)


def gemm(name: str, stream: str, stage: int, macs: float, params: float, nbytes: float,
         fmt: str, rows: float) -> Op:
    """A matrix multiply of ``macs`` multiply-accumulates over ``params`` weights of
    ``nbytes`` bytes each, ``rows`` token rows per weight matrix (its M)."""
    return Op(name, stream, stage, ops=2 * macs, fmt=fmt, hbm_bytes=params * nbytes,
              rows=rows)


def transfer(name: str, stream: str, stage: int, seconds: float) -> Op:
    """A collective that moves data between devices for ``seconds`` (from
    :meth:`CommPaths.seconds`, its fixed time included): no arithmetic, no HBM traffic
    counted, no kernel fixed time added."""
    return Op(name, stream, stage, kind=COLLECTIVE, comm_s=seconds)


#: Bytes of one activation value between kernels (BF16).
ACTIVATION_BYTES = 2


def vector(name: str, stream: str, stage: int, read: float, written: float,
           rows: float = 0.0) -> Op:
    """An element-wise or reduction kernel that reads ``read`` and writes ``written``
    bytes of activations (RMSNorm, RoPE, quantisation, SwiGLU, permutation, top-k)."""
    return Op(name, stream, stage, kind="vector", hbm_bytes=read + written, rows=rows)


def norm(name: str, stream: str, stage: int, tokens: float, width: int) -> Op:
    """RMSNorm of ``tokens`` vectors of ``width`` values (read, scaled, written in BF16)."""
    size = tokens * width * ACTIVATION_BYTES
    return vector(name, stream, stage, size, size, tokens)


def quantise(name: str, stream: str, stage: int, tokens: float, width: int,
             nbytes: float) -> list[Op]:
    """Dynamic quantisation of ``tokens`` activations of ``width`` values before a GEMM
    whose weights take ``nbytes`` per value: for 8-bit weights the activations are read in
    BF16 and written in 8 bits (per-token scales are negligible); nothing for 16 bits."""
    if nbytes >= ACTIVATION_BYTES:
        return []
    size = tokens * width
    return [vector(name, stream, stage, size * ACTIVATION_BYTES, size * nbytes, tokens)]


def streams(prefill: bool) -> tuple[str, str, str]:
    """(attention/compute stream, MoE stream, communication stream) names."""
    return ("cube", "cube", "copy") if prefill else ("attention", "moe", "moe")


def attention_ops(a: ModelArch, s: LayerShape, paths: CommPaths) -> list[Op]:
    """The attention operators of the model's attention kind
    (:mod:`supernode_dsl.plan.attention`)."""
    return a.attention.ops(a, s, paths)


def moe_ops(a: ModelArch, s: LayerShape, paths: CommPaths) -> list[Op]:
    """The FFN norm, gate and top-k selection, activation quantisation, dispatch, token
    permutation, routed (and shared) expert MLPs with their SwiGLU, combine and the
    weighted unpermutation (prefill on the high-throughput collective kernels, decode on the
    low-latency ones; prefill runs the vector kernels on the vector cores)."""
    _, moe_stream, comm_stream = streams(s.prefill)
    vec = "vector" if s.prefill else moe_stream
    ex = a.expert_params
    fmt, nb = a.precision.get("experts", "bf16"), a.bytes_of("experts")
    h, t, k = a.hidden, s.tokens, a.top_k
    ops = [
        norm("ffn_norm", vec, 1, t, h),
        gemm("gate", vec, 1, t * h * a.routed_experts, h * a.routed_experts,
             a.bytes_of("gate"), a.precision.get("gate", "bf16"), t),
        # FP32 scores read, (expert, weight) pairs written
        vector("topk", vec, 1, t * a.routed_experts * 4, t * k * 8, t),
        *quantise("quant_dispatch", vec, 1, t, h, a.bytes_of("dispatch")),
        transfer("dispatch", comm_stream, 1, paths.seconds(
            s.send_tokens * a.dispatch_bytes(), s.recv_tokens * a.dispatch_bytes(),
            collective_kernel("dispatch", s.prefill))),
    ]
    held = s.routed_experts_held + (a.shared_experts if s.shared_tokens else 0)
    pairs = s.routed_tokens + s.shared_tokens
    if pairs:
        token = h * a.bytes_of("dispatch")
        inter = a.expert_intermediate
        ops += [
            vector("permute", moe_stream, 1, pairs * token, pairs * token, pairs),
            gemm("experts", moe_stream, 1, pairs * ex, held * ex, nb, fmt, pairs / held),
            # gate and up halves read in BF16, the product written for the down projection
            vector("swiglu", moe_stream, 1, pairs * 2 * inter * ACTIVATION_BYTES,
                   pairs * inter * min(nb, ACTIVATION_BYTES), pairs),
        ]
    ops += [
        transfer("combine", comm_stream, 1, paths.seconds(
            s.recv_tokens * a.combine_bytes(), s.send_tokens * a.combine_bytes(),
            collective_kernel("combine", s.prefill))),
        vector("unpermute", vec, 1, t * k * h * ACTIVATION_BYTES, t * h * ACTIVATION_BYTES, t),
    ]
    return restage(ops, s.prefill, 1)


def dense_ops(a: ModelArch, s: LayerShape) -> list[Op]:
    """The dense FFN of a layer that is not MoE (data parallel: every device holds it):
    its norm, activation quantisation, the gate/up and down projections and SwiGLU."""
    _, moe_stream, _ = streams(s.prefill)
    vec = "vector" if s.prefill else moe_stream
    params = 3 * a.hidden * a.dense_intermediate
    nb, t = a.bytes_of("dense"), s.tokens
    return restage([
        norm("ffn_norm", vec, 1, t, a.hidden),
        *quantise("quant_ffn", vec, 1, t, a.hidden, nb),
        gemm("dense_ffn", moe_stream, 1, t * params, params, nb,
             a.precision.get("dense", "bf16"), t),
        vector("swiglu", moe_stream, 1, t * 2 * a.dense_intermediate * ACTIVATION_BYTES,
               t * a.dense_intermediate * min(nb, ACTIVATION_BYTES), t),
    ], s.prefill, 1)


def restage(ops: list[Op], prefill: bool, stage: int) -> list[Op]:
    """Prefill interleaves microbatches op by op (each op its own stage); decode runs a
    stream's ops of one layer back to back (one stage per stream)."""
    ops = merge_vector(ops)
    if not prefill:
        return [replace(o, stage=stage) for o in ops]
    return [replace(o, stage=10 * stage + i) for i, o in enumerate(ops)]


def merge_vector(ops: list[Op]) -> list[Op]:
    """``ops`` with every run of consecutive vector kernels on one stream as one op (named
    ``a+b``, their bytes and kernel counts added): the same time, as a vector kernel has
    no arithmetic, with fewer events in the schedule."""
    out: list[Op] = []
    for op in ops:
        last = out[-1] if out else None
        if last is not None and op.kind == last.kind == "vector" and op.stream == last.stream:
            out[-1] = replace(last, name=f"{last.name}+{op.name}",
                              hbm_bytes=last.hbm_bytes + op.hbm_bytes,
                              kernels=last.kernels + op.kernels)
        else:
            out.append(op)
    return out


def layer_ops(a: ModelArch, layer: int, s: LayerShape, paths: CommPaths) -> list[Op]:
    """The ops of transformer layer ``layer`` (dense FFN or MoE) for one microbatch."""
    tail = moe_ops(a, s, paths) if a.is_moe(layer) else dense_ops(a, s)
    return attention_ops(a, s, paths) + tail


def step_ops(a: ModelArch, s: LayerShape, mtp: bool, paths: CommPaths,
             moe_shape: LayerShape) -> list[tuple[int, list[Op]]]:
    """Per-step work after the layers: the MTP module (one more MoE layer behind a 2h x h
    projection) when ``mtp``, then the output head and sampling; as (layer index, ops)
    pairs, the head's index -1.

    The head runs once per step (``Op.once``: after every microbatch, on the whole device)
    over every token that needs logits in the step's ``microbatches`` (decode: each
    request's tokens, the speculative one included; prefill: the last token of each
    prompt), in the ``embedding`` precision, reading its weights once.  Sampling reads the
    logits (BF16)."""
    out: list[tuple[int, list[Op]]] = []
    head_tokens = (s.tokens if not s.prefill else s.requests) * max(1, s.microbatches)
    head = a.vocab * a.hidden
    stream = streams(s.prefill)[0]
    lm = gemm("lm_head", stream, 0, head_tokens * head, head, a.bytes_of("embedding"),
              a.precision.get("embedding", "bf16"), head_tokens)
    sample = vector("sampling", stream, 0, head_tokens * a.vocab * ACTIVATION_BYTES,
                    head_tokens * 8, head_tokens)
    if mtp and a.mtp_layers:
        proj = 2 * a.hidden * a.hidden
        eh = gemm("mtp_proj", stream, 0, s.tokens * proj, proj, a.bytes_of("attention"),
                  a.precision.get("attention", "bf16"), s.tokens)
        out.append((a.layers, [eh, *attention_ops(a, moe_shape, paths),
                               *moe_ops(a, moe_shape, paths)]))
    out.append((-1, [replace(lm, once=True), replace(sample, once=True)]))
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
