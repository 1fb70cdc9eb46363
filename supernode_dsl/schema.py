"""The contract: categories, attribute vocabulary, and graph attribute names with their units.

Everything a downstream tool reads from a compiled graph is named here, once.  Values in the
graph are always in SI base units: bytes, bytes per second (one direction), seconds,
operations per second, watts, hertz; counts are plain integers.  ``docs/graph-contract.md``
documents the same table for users.
"""

from __future__ import annotations

from typing import Final

from supernode_dsl.units import (
    BANDWIDTH,
    BYTES,
    COUNT,
    FREQUENCY,
    OPS_RATE,
    POWER,
    TIME,
    Dim,
    dim_name,
)

__all__ = [
    "CACHE_POOLS",
    "CALIBRATION_ATTRS",
    "CALIBRATION_BOUNDS",
    "CATEGORIES",
    "CHOICES",
    "DEPLOYMENT_ATTRS",
    "EDGE_BANDWIDTH",
    "EDGE_COUNT",
    "EDGE_LATENCY",
    "EDGE_LINK_BANDWIDTH",
    "EDGE_PLANE",
    "ENDPOINT_EXCLUDED",
    "EP_UNITS",
    "GRAPH_NAME",
    "GRAPH_PLANES",
    "GRAPH_ROOT",
    "GRAPH_SCHEMA_VERSION",
    "LINK_ATTRS",
    "MODEL_ATTRS",
    "NODE_ARRAY",
    "NODE_CATEGORY",
    "NODE_INDEX",
    "NODE_INDICES",
    "NODE_LATENCY",
    "NODE_PARENT",
    "NODE_PATH",
    "NODE_TYPE",
    "OVERLAP_MODES",
    "PRECISION_PARTS",
    "ROLES",
    "SCHEMA_VERSION",
    "SPEC_CATEGORIES",
    "TRAVERSAL_LATENCY",
    "Kind",
    "expected_dim",
    "kind_name",
]

SCHEMA_VERSION: Final = "1.1"

#: The component categories a type may declare.
CATEGORIES: Final = (
    "accelerator", "die", "cpu", "memory", "switch", "nic", "board", "node", "rack", "system",
)

#: Declarations that describe workloads, not components: they are never instantiated.
SPEC_CATEGORIES: Final = ("model", "deployment", "calibration")

#: Roles a deployment may declare; ``prefill`` and ``decode`` use expert parallelism.
ROLES: Final = ("prefill", "decode")

#: Categories that forward traffic but are not traffic endpoints (bisection ignores them).
ENDPOINT_EXCLUDED: Final = frozenset({"switch", "nic"})

# ---- node attributes ----------------------------------------------------------------------
NODE_PATH: Final = "path"          #: str, hierarchical instance path, e.g. cm384.node[3].npu[5]
NODE_CATEGORY: Final = "category"  #: str, one of CATEGORIES
NODE_TYPE: Final = "type"          #: str, the declared type name
NODE_PARENT: Final = "parent"      #: str, path of the enclosing instance ('' for the root)
NODE_INDEX: Final = "index"        #: int, position in instance order (depth-first, as declared)
NODE_ARRAY: Final = "array"        #: str, the child declaration the instance is an element of
NODE_INDICES: Final = "indices"    #: tuple[int, ...], its indices in that array (() if scalar)
NODE_LATENCY: Final = "latency"    #: float, s, the declared ``latency`` of an instance; on a
#: category in TRAVERSAL_LATENCY it is added to every path that passes through the instance
TRAVERSAL_LATENCY: Final = frozenset({"switch"})

# ---- edge attributes (one edge = one bundle of parallel links of one plane) ----------------
EDGE_PLANE: Final = "plane"                    #: str, declared plane name
EDGE_BANDWIDTH: Final = "bandwidth"            #: float, B/s one direction, all links together
EDGE_LINK_BANDWIDTH: Final = "link_bandwidth"  #: float, B/s one direction, one link
EDGE_LATENCY: Final = "latency"                #: float, s, one traversal
EDGE_COUNT: Final = "count"                    #: int, parallel links (switch ports used)

# ---- graph attributes ----------------------------------------------------------------------
GRAPH_NAME: Final = "name"                     #: str, the root instance name
GRAPH_ROOT: Final = "root_type"                #: str, the root type name
GRAPH_PLANES: Final = "planes"                 #: dict plane -> description
GRAPH_SCHEMA_VERSION: Final = "schema_version"

#: Attributes known on components, with the dimension their value must have.  A dotted
#: family (``compute.*``) accepts any suffix.  Names starting with ``x_`` are free-form user
#: extensions and accept any dimension.
#: What an attribute's value must be: a quantity of this dimension, or a string (``str``).
Kind = Dim | type[str] | type[bool]

_KNOWN_ATTRS: Final[dict[str, Kind]] = {
    "hbm": BYTES, "hbm_bw": BANDWIDTH,
    "dram": BYTES, "dram_bw": BANDWIDTH,
    "sram": BYTES, "sram_bw": BANDWIDTH,
    "memory": BYTES, "memory_bw": BANDWIDTH,
    "ports": COUNT, "port_bw": BANDWIDTH,
    "bw": BANDWIDTH, "latency": TIME,
    "tdp": POWER, "clock": FREQUENCY,
    "compute.*": OPS_RATE,
    "cores.*": COUNT,
    "efficiency.*": COUNT,
    "overhead.*": TIME,       # fixed costs, e.g. overhead.op: every operator (launch, sync)
    "overlap": str,           # how two microbatches share the device: one of OVERLAP_MODES
    "a2a_forward": str,       # "node": all-to-all sends once per destination node (DeepEP)
}

#: Attributes of a link block.
LINK_ATTRS: Final[dict[str, Kind]] = {"bw": BANDWIDTH, "latency": TIME, "count": COUNT}

#: The parts of a model whose number format a ``precision.<part>`` attribute names.
PRECISION_PARTS: Final = ("experts", "dense", "attention", "gate", "embedding", "norms",
                          "dispatch", "combine", "kv_cache")

#: Attributes of a ``model`` declaration (a transformer, possibly mixture-of-experts).  The
#: attention attributes belong to attention kinds (``plan/attention.py``): a model may set
#: only those of the kind it declares.
MODEL_ATTRS: Final[dict[str, Kind]] = {
    "layers": COUNT, "dense_layers": COUNT, "moe_every": COUNT, "hidden": COUNT,
    "vocab": COUNT, "tie_embeddings": bool, "dense_intermediate": COUNT,
    "routed_experts": COUNT, "shared_experts": COUNT, "top_k": COUNT,
    "expert_groups": COUNT, "topk_groups": COUNT, "expert_intermediate": COUNT,
    "attention": str, "heads": COUNT,
    "q_lora_rank": COUNT, "kv_lora_rank": COUNT,              # mla
    "qk_nope_dim": COUNT, "qk_rope_dim": COUNT, "v_head_dim": COUNT,
    "kv_heads": COUNT, "head_dim": COUNT, "qk_norm": bool,    # gqa, mha
    "mtp_depth": COUNT,
    **{f"precision.{part}": str for part in PRECISION_PARTS},
}

_ROLE_ATTRS: Final[dict[str, Kind]] = {
    "instances": COUNT,        # instances of the role
    "npus": COUNT,             # accelerators per instance
    "ep": COUNT,               # expert-parallel degree (devices per instance)
    "routed_slots": COUNT,     # routed-expert slots per EP device
    "shared_slots": COUNT,     # shared-expert copies per EP device
    "shared_devices": COUNT,   # devices per instance dedicated to the shared expert
    "redundant": COUNT,        # redundant routed replicas per instance
    "batch_per_device": COUNT,  # tokens per device per step (decode) or per chunk (prefill)
    "context_len": COUNT,      # tokens of KV cache per sequence
    "sequences_per_device": COUNT,
    "hbm_reserve": BYTES,      # activations and workspace held back per device
    "microbatches": COUNT,     # 0: the planner chooses; otherwise a fixed count
    "comm_cores": COUNT,       # cores the collectives hold while microbatches overlap them
}

#: Attributes only one role has.
_ROLE_ONLY_ATTRS: Final[dict[str, dict[str, Kind]]] = {
    "decode": {"batch_per_npu": COUNT},    # requests per accelerator (0: the largest meeting
                                           # the SLO)
    "prefill": {"tokens_per_npu": COUNT,   # prompt tokens per accelerator per forward pass
                "attention_tp": COUNT},    # tensor-parallel degree of the hybrid attention
}

#: The caching-pool kinds ``cache.pool`` may name: ``cpu_dram``, EMS over the DRAM of the
#: deployment's nodes' CPUs.
CACHE_POOLS: Final = ("cpu_dram",)

#: Attributes of a ``deployment`` declaration.
DEPLOYMENT_ATTRS: Final[dict[str, Kind]] = {
    "model": str,              # the name of a declared model
    "calibration": str,        # the name of a declared calibration whose fitted values apply
    "nodes_per_rack": COUNT,
    "ep_unit": str,            # the expert-parallel device: one of EP_UNITS (default: scale-up)
    "cache.pool": str,         # one of CACHE_POOLS
    "cache.block_tokens": COUNT, "cache.plane": str,
    "cache.prefix_reuse": COUNT,      # share of a prompt's tokens found in the cache (0..1)
    "workload.prompt_len": COUNT, "workload.output_len": COUNT,
    "workload.tpot_slo": TIME,        # 0 s: no target
    "workload.ttft_slo": TIME,        # 0 s: no target
    "workload.host_time": TIME,       # host work per step not hidden behind the device
    "workload.arrival_rate": COUNT,   # requests per second (0: no target)
    "workload.npu_budget": COUNT,     # accelerators the roles planner may use (0: the topology's)
    "mtp.accept": COUNT,              # acceptance of the speculative token (0: no MTP)
    "balance.perfect": bool,          # true: experts perfectly balanced; false: use the loads
    "kv_transfer.plane": str,         # plane carrying prefill -> decode KV cache
    # overrides of the computed dispatch/combine message per token and destination
    "dispatch_bytes_per_token": BYTES, "combine_bytes_per_token": BYTES,
    **{f"{role}.{name}": kind for role in ROLES
       for name, kind in {**_ROLE_ATTRS, **_ROLE_ONLY_ATTRS[role]}.items()},
}


#: Heads of calibration attributes that name a part attribute (``low.efficiency.gemm.m64``):
#: their value has that attribute's dimension.
CALIBRATION_BOUNDS: Final = ("low", "high", "start", "fitted")

#: Attributes of a ``calibration`` declaration (plan/serving/calibrate.py): what it fits
#: (``part``, on ``deployment`` of ``topology``), its measurements (``measure.<m>`` with
#: the conditions ``batch.<m>``, ``mtp.<m>``, ``microbatches.<m>``, ``split.<m>``, what
#: the estimate computes for it, ``figure.<m>``, and ``source.<m>``), its free parameters
#: (``low.<attr>``, ``high.<attr>``, ``start.<attr>``, ``why.<attr>``) and, once fitted,
#: ``fitted.<attr>`` and ``residual.<m>`` (estimate / measurement).
CALIBRATION_ATTRS: Final[dict[str, Kind]] = {
    "part": str, "topology": str, "deployment": str,
    "measure.*": TIME, "batch.*": COUNT, "mtp.*": bool, "microbatches.*": COUNT,
    "split.*": COUNT, "figure.*": str, "source.*": str, "why.*": str, "residual.*": COUNT,
    "ep.*": COUNT, "tokens.*": COUNT,
}


#: How the microbatches of a step share a device (a part's ``overlap``): ``core_split``, the
#: matrix cores split between two streams that compute at once (Ascend's cube/vector split);
#: ``comm_overlap``, one microbatch computes on every core while another's communication runs
#: (DeepSeek's decode on H800).
OVERLAP_MODES: Final = ("core_split", "comm_overlap")

#: The levels a deployment's expert-parallel device may be (``ep_unit``).
EP_UNITS: Final = ("die", "accelerator")

#: String attributes whose value must be one of a fixed set.
CHOICES: Final[dict[str, tuple[str, ...]]] = {"overlap": OVERLAP_MODES, "ep_unit": EP_UNITS,
                                              "a2a_forward": ("node",)}


def expected_dim(name: str, vocabulary: dict[str, Kind] | None = None) -> Kind | None:
    """The dimension attribute ``name`` must have; None if unknown (``x_`` names: any)."""
    vocab = _KNOWN_ATTRS if vocabulary is None else vocabulary
    head, _, rest = name.partition(".")
    if vocab is CALIBRATION_ATTRS and head in CALIBRATION_BOUNDS:
        return expected_dim(rest) if rest else None
    if name in vocab:
        return vocab[name]
    head = name.split(".", 1)[0]
    if "." in name and f"{head}.*" in vocab:
        return vocab[f"{head}.*"]
    return None


def kind_name(kind: Kind) -> str:
    """How a message names what a value must be: 'a string' or a dimension's name."""
    if kind is str:
        return "a string"
    if kind is bool:
        return "true or false"
    return dim_name(kind)  # type: ignore[arg-type]


def known_attribute_names() -> list[str]:
    """Every known attribute name (families written as ``compute.*``), for suggestions."""
    return sorted(_KNOWN_ATTRS)
