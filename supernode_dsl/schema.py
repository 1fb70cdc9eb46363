"""The contract: categories, attribute vocabulary, and graph attribute names with their units.

Everything a downstream tool reads from a compiled graph is named here, once.  Values in the
graph are always in SI base units: bytes, bytes per second (one direction), seconds,
operations per second, watts, hertz; counts are plain integers.  ``docs/graph-contract.md``
documents the same table for users.
"""

from __future__ import annotations

from typing import Final

from supernode_dsl.units import BANDWIDTH, BYTES, COUNT, FREQUENCY, OPS_RATE, POWER, TIME, Dim

__all__ = [
    "CATEGORIES",
    "EDGE_BANDWIDTH",
    "EDGE_COUNT",
    "EDGE_LATENCY",
    "EDGE_LINK_BANDWIDTH",
    "EDGE_PLANE",
    "ENDPOINT_EXCLUDED",
    "GRAPH_NAME",
    "GRAPH_PLANES",
    "GRAPH_ROOT",
    "GRAPH_SCHEMA_VERSION",
    "LINK_ATTRS",
    "NODE_CATEGORY",
    "NODE_INDEX",
    "NODE_PARENT",
    "NODE_PATH",
    "NODE_TYPE",
    "SCHEMA_VERSION",
    "expected_dim",
]

SCHEMA_VERSION: Final = "1.0"

#: The component categories a type may declare.
CATEGORIES: Final = (
    "accelerator", "die", "cpu", "memory", "switch", "nic", "board", "node", "rack", "system",
)

#: Categories that forward traffic but are not traffic endpoints (bisection ignores them).
ENDPOINT_EXCLUDED: Final = frozenset({"switch", "nic"})

# ---- node attributes ----------------------------------------------------------------------
NODE_PATH: Final = "path"          #: str, hierarchical instance path, e.g. cm384.node[3].npu[5]
NODE_CATEGORY: Final = "category"  #: str, one of CATEGORIES
NODE_TYPE: Final = "type"          #: str, the declared type name
NODE_PARENT: Final = "parent"      #: str, path of the enclosing instance ('' for the root)
NODE_INDEX: Final = "index"        #: int, position in instance order (depth-first, as declared)

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
_KNOWN_ATTRS: Final[dict[str, Dim]] = {
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
}

#: Attributes of a link block.
LINK_ATTRS: Final[dict[str, Dim]] = {"bw": BANDWIDTH, "latency": TIME, "count": COUNT}


def expected_dim(name: str, vocabulary: dict[str, Dim] | None = None) -> Dim | None:
    """The dimension attribute ``name`` must have; None if unknown (``x_`` names: any)."""
    vocab = _KNOWN_ATTRS if vocabulary is None else vocabulary
    if name in vocab:
        return vocab[name]
    head = name.split(".", 1)[0]
    if "." in name and f"{head}.*" in vocab:
        return vocab[f"{head}.*"]
    return None


def known_attribute_names() -> list[str]:
    """Every known attribute name (families written as ``compute.*``), for suggestions."""
    return sorted(_KNOWN_ATTRS)
