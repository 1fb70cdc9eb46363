"""Attention kinds: the shape attributes each kind declares, the weights and KV cache they
imply, and the kind's operators for one microbatch on one device.

A ``model`` names its kind with ``attention = "..."``; :data:`ATTENTION_KINDS` is the
registry (one :class:`KindEntry` per kind) and :func:`read_attention` turns a declaration
into an :class:`MLA` or :class:`GQA` shape, reporting an unknown kind or an attribute of
another kind (E002), a missing attribute (E019) and counts that do not fit together (E005)
at the attribute.

* ``mla``: DeepSeek's multi-head latent attention.  The cache holds one compressed latent
  (``kv_lora_rank``) and one shared RoPE key (``qk_rope_dim``) per token and layer.
* ``gqa``: grouped-query attention (Qwen3, Llama, Mixtral): ``heads`` query heads share
  ``kv_heads`` key/value heads of ``head_dim``; the cache holds a key and a value per KV
  head.  ``qk_norm`` adds the per-head RMSNorm of queries and keys (Qwen3).
* ``mha``: multi-head attention, GQA with one KV head per query head.

Operator conventions are those of :mod:`supernode_dsl.plan.serving.ops` (one
multiply-accumulate is 2 operations; the bytes are the weights read plus the KV cache read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING

from supernode_dsl.diagnostics import DiagnosticSink
from supernode_dsl.elaborate import Spec
from supernode_dsl.plan.serving.ops import (
    ACTIVATION_BYTES,
    CommPaths,
    LayerShape,
    Op,
    gemm,
    norm,
    quantise,
    restage,
    streams,
    transfer,
    vector,
)
from supernode_dsl.units import Quantity

if TYPE_CHECKING:
    from supernode_dsl.plan.spec import ModelArch

__all__ = ["ATTENTION_KINDS", "GQA", "KIND_ATTRS", "MLA", "Attention", "KindEntry",
           "read_attention"]

_ACTIVATION_BYTES = ACTIVATION_BYTES  # exchanged by the hybrid-attention collectives


def _vector_stream(s: LayerShape) -> str:
    """Where the attention's vector kernels run: prefill's vector cores, else the
    attention stream."""
    return "vector" if s.prefill else streams(s.prefill)[0]


def _around(a: ModelArch, s: LayerShape, rope_heads: int, rope_dim: int,
            norms: tuple[int, ...]) -> tuple[list[Op], list[Op], list[Op]]:
    """The attention's vector kernels: (before the projections: input RMSNorm and
    activation quantisation; after them: the kind's own norms of width ``norms``, RoPE on
    ``rope_heads`` heads of ``rope_dim``, the KV-cache write; before the output projection:
    quantisation of its input)."""
    vec, t = _vector_stream(s), s.tokens
    nb = a.bytes_of("attention")
    before = [norm("attn_norm", vec, 0, t, a.hidden),
              *quantise("quant_attn", vec, 0, t, a.hidden, nb)]
    rope = t * rope_heads * rope_dim * ACTIVATION_BYTES
    kv = t * a.kv_bytes_per_token_layer
    after = [*(norm(f"attn_norm_{i}", vec, 0, t, w) for i, w in enumerate(norms)),
             vector("rope", vec, 0, rope, rope, t),
             vector("kv_write", vec, 0, kv, kv, t)]
    o_in = quantise("quant_o", vec, 0, t, a.attention.heads * _o_width(a), nb)
    return before, after, o_in


def _o_width(a: ModelArch) -> int:
    att = a.attention
    return att.v_head_dim if isinstance(att, MLA) else att.head_dim


def _attended(s: LayerShape) -> tuple[float, float]:
    """(keys each new token attends to, cached tokens read) of one microbatch.

    A prefill microbatch may hold part of a prompt (``requests`` below 1): its tokens are
    then chunks of whole prompts, and causal attention over the chunks averages to
    attention over the whole prompt, so a sequence is ``tokens / requests`` tokens long.
    """
    if not s.prefill:
        return s.context, s.requests * s.context
    per_seq = s.tokens / s.requests if s.requests > 0 else s.tokens
    return s.context + (per_seq + 1) / 2, s.requests * (s.context + per_seq)


def _format(a: ModelArch) -> tuple[str, float]:
    """The attention weights' number format and bytes per parameter."""
    return a.precision.get("attention", "bf16"), a.bytes_of("attention")


@dataclass(frozen=True)
class MLA:
    """Multi-head latent attention (DeepSeek-V2/V3): ``q_lora_rank`` 0 means an
    uncompressed query projection."""

    heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_dim: int
    qk_rope_dim: int
    v_head_dim: int

    def _q_params(self, hidden: int) -> int:
        qk = self.qk_nope_dim + self.qk_rope_dim
        if not self.q_lora_rank:
            return hidden * self.heads * qk
        return hidden * self.q_lora_rank + self.q_lora_rank * self.heads * qk

    def params(self, hidden: int) -> int:
        """Parameters of one attention block: query, KV down/up and output projections."""
        n = self.heads
        kv = hidden * (self.kv_lora_rank + self.qk_rope_dim) \
            + self.kv_lora_rank * n * (self.qk_nope_dim + self.v_head_dim)
        return self._q_params(hidden) + kv + n * self.v_head_dim * hidden

    def kv_values(self) -> int:
        """Values cached per token per layer: the latent and the shared RoPE key."""
        return self.kv_lora_rank + self.qk_rope_dim

    def ops(self, a: ModelArch, s: LayerShape, paths: CommPaths) -> list[Op]:
        """MLAProlog, the hybrid-attention collectives (prefill), attention, O_proj.

        Decode uses the absorbed form (W_UK folded into the query, W_UV into the output: the
        cache stays compressed); prefill decompresses keys and values (W_UK, W_UV on every
        token of the sequence) and attends causally.
        """
        h, n, t = a.hidden, self.heads, s.tokens
        fmt, nb = _format(a)
        qk = self.qk_nope_dim + self.qk_rope_dim
        w_uk = self.kv_lora_rank * n * self.qk_nope_dim
        w_uv = self.kv_lora_rank * n * self.v_head_dim
        w_o = n * self.v_head_dim * h
        down = self._q_params(h) + h * (self.kv_lora_rank + self.qk_rope_dim)
        cmp_stream, _, comm_stream = streams(s.prefill)
        keys, cached = _attended(s)
        kv_read = cached * a.kv_bytes_per_token_layer
        if s.prefill:
            core = 2 * t * n * keys * (qk + self.v_head_dim)
            prolog_macs = t * down + (t + s.requests * s.context) * (w_uk + w_uv)
            o_macs = t * w_o
            o_params = w_o
        else:
            core = 2 * t * n * s.context * (2 * self.kv_lora_rank + self.qk_rope_dim)
            prolog_macs = t * (down + w_uk)
            o_macs = t * (w_uv + w_o)
            o_params = w_uv + w_o
        prolog_params = down + (w_uk + w_uv if s.prefill else w_uk)
        before, after, o_in = _around(a, s, n + 1, self.qk_rope_dim,
                                      tuple(r for r in (self.q_lora_rank, self.kv_lora_rank)
                                            if r))
        ops = [
            *before,
            gemm("mla_prolog", cmp_stream, 0, prolog_macs, prolog_params, nb, fmt, t),
            *after,
            Op("attention", cmp_stream, 0, ops=core, kind="attention", hbm_bytes=kv_read,
               rows=keys),
            *o_in,
            gemm("o_proj", cmp_stream, 0, o_macs, o_params, nb, fmt, t),
        ]
        if s.prefill and s.attention_tp > 1:
            _insert_tp(ops, self.tp_messages(t, s.attention_tp), comm_stream, paths,
                       len(before) + 1, len(o_in))
        return restage(ops, s.prefill, 0)

    def tp_messages(self, tokens: float, tp: int) -> tuple[TpMessage, ...]:
        """Prefill's attention collectives over ``tp`` devices for ``tokens`` tokens per
        device: an all-gather of the compressed Q/KV latents and the RoPE key, and an
        all-to-all of the attention outputs back to the tokens' devices."""
        gathered = tokens * (tp - 1) * (self.q_lora_rank + self.kv_lora_rank
                                        + self.qk_rope_dim) * _ACTIVATION_BYTES
        exchanged = tokens * (tp - 1) / tp * self.heads * self.v_head_dim * _ACTIVATION_BYTES
        return (TpMessage("all_gather", gathered / (tp - 1), gathered),
                TpMessage("all_to_all", exchanged, exchanged))


@dataclass(frozen=True)
class GQA:
    """Grouped-query attention: ``heads`` query heads in groups sharing ``kv_heads`` key and
    value heads of ``head_dim`` (MHA when ``kv_heads == heads``); ``qk_norm``: RMSNorm of
    each query and key head (one ``head_dim`` weight vector each, as in Qwen3)."""

    heads: int
    kv_heads: int
    head_dim: int
    qk_norm: bool = False

    def qkv_params(self, hidden: int) -> int:
        """Parameters of the fused Q, K, V projection."""
        return hidden * (self.heads + 2 * self.kv_heads) * self.head_dim

    def o_params(self, hidden: int) -> int:
        """Parameters of the output projection."""
        return self.heads * self.head_dim * hidden

    def params(self, hidden: int) -> int:
        """Parameters of one attention block: Q, K, V and O projections, QK-norm weights."""
        norms = 2 * self.head_dim if self.qk_norm else 0
        return self.qkv_params(hidden) + self.o_params(hidden) + norms

    def kv_values(self) -> int:
        """Values cached per token per layer: a key and a value per KV head."""
        return 2 * self.kv_heads * self.head_dim

    def ops(self, a: ModelArch, s: LayerShape, paths: CommPaths) -> list[Op]:
        """QKV projection, attention over the KV heads' cache, O projection; with
        ``attention_tp`` > 1 in prefill, heads are split over the TP devices: an all-to-all
        brings each device its heads' Q, K, V for the group's tokens, another brings the
        outputs back.  The vector kernels (norms, QK norms, RoPE, KV write, quantisation) run
        around them.
        """
        t = s.tokens
        fmt, nb = _format(a)
        cmp_stream, _, comm_stream = streams(s.prefill)
        keys, cached = _attended(s)
        qkv, o = self.qkv_params(a.hidden), self.o_params(a.hidden)
        # QK^T and PV: head_dim multiply-accumulates each, per query head and key
        core = 2 * t * self.heads * keys * 2 * self.head_dim
        qk_norms = (self.heads * self.head_dim, self.kv_heads * self.head_dim) \
            if self.qk_norm else ()
        before, after, o_in = _around(a, s, self.heads + self.kv_heads, self.head_dim, qk_norms)
        ops = [
            *before,
            gemm("qkv_proj", cmp_stream, 0, t * qkv, qkv, nb, fmt, t),
            *after,
            Op("attention", cmp_stream, 0, ops=core, kind="attention",
               hbm_bytes=cached * a.kv_bytes_per_token_layer, rows=keys),
            *o_in,
            gemm("o_proj", cmp_stream, 0, t * o, o, nb, fmt, t),
        ]
        if s.prefill and s.attention_tp > 1:
            _insert_tp(ops, self.tp_messages(t, s.attention_tp), comm_stream, paths,
                       len(before) + 1, len(o_in))
        return restage(ops, s.prefill, 0)

    def tp_messages(self, tokens: float, tp: int) -> tuple[TpMessage, ...]:
        """Prefill's attention collectives over ``tp`` devices for ``tokens`` tokens per
        device: an all-to-all bringing each device its heads' Q, K, V, another bringing
        the outputs back."""
        away = tokens * (tp - 1) / tp * self.head_dim * _ACTIVATION_BYTES
        there, back = away * (self.heads + 2 * self.kv_heads), away * self.heads
        return (TpMessage("all_to_all", there, there), TpMessage("all_to_all", back, back))


@dataclass(frozen=True)
class TpMessage:
    """One attention collective of prefill's attention TP group: the bytes a device sends
    and receives."""

    name: str
    send: float
    recv: float


def _insert_tp(ops: list[Op], messages: tuple[TpMessage, ...], stream: str,
               paths: CommPaths, first_at: int, o_in: int) -> None:
    """Put the first attention collective at ``first_at`` (after the projection) and the
    second before the ``o_in`` vector ops that precede the output projection."""
    first, second = messages
    ops.insert(first_at, transfer(first.name, stream, 0, paths.seconds(first.send, first.recv)))
    ops.insert(len(ops) - 1 - o_in,
               transfer(second.name, stream, 0, paths.seconds(second.send, second.recv)))


#: An attention shape.
Attention = MLA | GQA

_Values = Mapping[str, int | bool]


@dataclass(frozen=True)
class KindEntry:
    """One attention kind of the registry: its attributes (all required but ``optional``),
    how they build its shape, and the checks its counts must pass."""

    name: str
    attrs: tuple[str, ...]
    optional: tuple[str, ...]
    build: Callable[[_Values], Attention]
    summary: str


def _mla(v: _Values) -> Attention:
    return MLA(int(v["heads"]), int(v["q_lora_rank"]), int(v["kv_lora_rank"]),
               int(v["qk_nope_dim"]), int(v["qk_rope_dim"]), int(v["v_head_dim"]))


def _gqa(v: _Values) -> Attention:
    return GQA(int(v["heads"]), int(v["kv_heads"]), int(v["head_dim"]), bool(v["qk_norm"]))


def _mha(v: _Values) -> Attention:
    return _gqa({**v, "kv_heads": v["heads"]})


#: The attention kinds a model may declare, by the name ``attention = "..."`` gives.
ATTENTION_KINDS: dict[str, KindEntry] = {
    "mla": KindEntry("mla", ("heads", "q_lora_rank", "kv_lora_rank", "qk_nope_dim",
                             "qk_rope_dim", "v_head_dim"), ("q_lora_rank",), _mla,
                     "multi-head latent attention (DeepSeek)"),
    "gqa": KindEntry("gqa", ("heads", "kv_heads", "head_dim", "qk_norm"), ("qk_norm",), _gqa,
                     "grouped-query attention (Qwen3, Llama, Mixtral)"),
    "mha": KindEntry("mha", ("heads", "head_dim", "qk_norm"), ("qk_norm",), _mha,
                     "multi-head attention (GQA with kv_heads = heads)"),
}

#: Every attribute that belongs to some attention kind.
KIND_ATTRS: tuple[str, ...] = tuple(dict.fromkeys(
    a for entry in ATTENTION_KINDS.values() for a in entry.attrs))

#: Attributes whose value is a boolean; the others are counts.
_FLAGS = ("qk_norm",)


def _value(spec: Spec, name: str) -> int | bool | None:
    v = spec.get(name)
    if isinstance(v, bool):
        return v
    return int(v.value) if isinstance(v, Quantity) else None


def read_attention(spec: Spec, sink: DiagnosticSink) -> Attention | None:
    """The attention shape ``spec`` declares; None (with the errors in ``sink``) if the kind
    is missing or unknown, an attribute belongs to another kind, one is missing, or the
    counts do not fit together."""
    kind = spec.get("attention")
    if not isinstance(kind, str):
        sink.error("E019", f"model '{spec.name}' needs `attention = KIND` (one of "
                   f"{', '.join(repr(k) for k in ATTENTION_KINDS)})", spec.span)
        return None
    entry = ATTENTION_KINDS.get(kind)
    if entry is None:
        close = get_close_matches(kind, list(ATTENTION_KINDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else \
            f" (known: {', '.join(ATTENTION_KINDS)})"
        sink.error("E002", f"unknown attention kind '{kind}'{hint}", spec.span_of("attention"))
        return None
    values = {name: _value(spec, name) for name in KIND_ATTRS}
    ok = True
    for name, v in values.items():
        if v is not None and name not in entry.attrs:
            ok = False
            sink.error("E002", f"'{name}' is not an attribute of attention kind '{kind}' "
                       f"(its attributes: {', '.join(entry.attrs)})", spec.span_of(name))
    missing = [n for n in entry.attrs if values[n] is None and n not in entry.optional]
    if missing:
        ok = False
        sink.error("E019", f"attention kind '{kind}' needs {', '.join(missing)}",
                   spec.span_of("attention"))
    if not ok:
        return None
    full = {n: (v if v is not None else (False if n in _FLAGS else 0))
            for n, v in values.items()}
    return _checked(entry.build(full), spec, sink)


def _checked(shape: Attention, spec: Spec, sink: DiagnosticSink) -> Attention | None:
    """``shape`` if its counts fit together, else None with an E005 at the attribute."""
    problems: list[tuple[str, str]] = []
    if shape.heads < 1:
        problems.append(("heads", "an attention block needs at least one head"))
    if isinstance(shape, GQA):
        if shape.head_dim < 1:
            problems.append(("head_dim", "a head needs head_dim >= 1"))
        if shape.kv_heads < 1 or shape.heads % shape.kv_heads:
            problems.append(("kv_heads", f"{shape.kv_heads} KV heads do not divide "
                             f"{shape.heads} query heads into equal groups"))
    elif shape.kv_lora_rank < 1:
        problems.append(("kv_lora_rank", "MLA caches a latent of kv_lora_rank >= 1 values"))
    for name, why in problems:
        sink.error("E005", f"'{name}': {why}", spec.span_of(name))
    return None if problems else shape
