"""Device memory budget of a role: weights, KV cache, dispatch/combine buffers, reserve.

Every term is computed from the model's declared shape and precisions and the deployment's
declared batch and context; nothing is fitted.  Buffers follow CloudMatrix-Infer's
pre-allocation rule (reference §4): ``ep x max_tokens x message size`` for dispatch and
combine, ``max_tokens = batch_per_device x min(top_k, experts per device)``.
"""

from __future__ import annotations

from supernode_dsl.plan.spec import ModelArch, RoleSpec

__all__ = ["memory_budget", "non_expert_params"]


def non_expert_params(arch: ModelArch) -> dict[str, float]:
    """Bytes of the weights every device of a data-parallel attention deployment holds: the
    attention blocks (every layer and MTP module, by the attention kind), the dense FFN of
    every layer that is not MoE, the routers of the MoE layers, the vocabulary matrices
    (two, or one when tied) and two RMSNorm vectors per layer."""
    moe = len(arch.moe_layers)
    return {
        "attention": (arch.layers + arch.mtp_layers) * arch.attention_params()
        * arch.bytes_of("attention"),
        "dense_ffn": arch.dense_ffn_layers * 3 * arch.hidden * arch.dense_intermediate
        * arch.bytes_of("dense"),
        "router": moe * arch.hidden * arch.routed_experts * arch.bytes_of("gate"),
        "embedding": arch.embedding_copies * arch.vocab * arch.hidden
        * arch.bytes_of("embedding"),
        "norms": 2 * arch.layers * arch.hidden * arch.bytes_of("norms"),
    }


def memory_budget(arch: ModelArch, role: RoleSpec, capacity: float) -> dict[str, float]:
    """Bytes per device of each term, for the fullest device kind of ``role``.

    A device holds either ``routed_slots + shared_slots`` experts per MoE layer or, when it is
    one of the role's dedicated shared-expert devices, the shared experts (none when the
    model has no shared expert: the deployment then declares no shared slot or device).
    """
    moe = len(arch.moe_layers)
    per_device_experts = role.routed_slots + role.shared_slots
    if role.shared_devices:
        per_device_experts = max(per_device_experts, arch.shared_experts)
    experts = per_device_experts * moe * arch.expert_bytes
    dense = sum(non_expert_params(arch).values())
    kv = role.sequences_per_device * role.context_len * arch.kv_bytes_per_token_layer \
        * arch.layers
    max_tokens = role.batch_per_device * min(arch.top_k, max(1, per_device_experts))
    dispatch = role.ep * max_tokens * arch.dispatch_bytes()
    combine = role.ep * max_tokens * arch.combine_bytes()
    total = experts + dense + kv + dispatch + combine + role.hbm_reserve
    return {
        "capacity": capacity,
        "expert_weights": experts,
        "other_weights": dense,
        "kv_cache": kv,
        "dispatch_buffer": dispatch,
        "combine_buffer": combine,
        "reserve": role.hbm_reserve,
        "total": total,
        "free": capacity - total,
    }
