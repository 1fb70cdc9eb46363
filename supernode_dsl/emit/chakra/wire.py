"""Chakra execution-trace files in protobuf wire format, without a protobuf dependency.

A trace file (what ASTRA-sim's ``ETFeeder`` reads) is a ``GlobalMetadata`` message and then
one ``Node`` message per node, each preceded by its length as a varint (Chakra's
``protolib.encodeMessage``).  The messages and field numbers are those of Chakra's
``schema/protobuf/et_def.proto`` (astra-sim/chakra ``214f2c5``, the commit astra-sim
``c459ab6`` pins): ``GlobalMetadata.version`` = 1; ``Node``: ``id`` = 1, ``name`` = 2,
``type`` = 3, ``data_deps`` = 5 (packed), ``duration_micros`` = 7, ``attr`` = 10;
``AttributeProto``: ``name`` = 1, ``int64_val`` = 9, ``bool_val`` = 27, ``string_val`` = 29.
The bytes are what the protobuf library serialises for the same message (fields in number
order, proto3 defaults left out, ``oneof`` values always written): the consumer test decodes
them with Chakra's generated ``et_def_pb2`` and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["ALL_GATHER", "ALL_TO_ALL", "CHAKRA_VERSION", "COMM_COLL_NODE", "COMP_NODE",
           "TraceNode", "node_message", "trace_bytes"]

#: ``NodeType`` and ``CollectiveCommType`` values of et_def.proto.
COMP_NODE = 4
COMM_COLL_NODE = 7
ALL_GATHER = 2
ALL_TO_ALL = 6
#: The schema version the pinned Chakra writes in ``GlobalMetadata`` (its package version).
CHAKRA_VERSION = "0.0.4"

_VARINT, _LEN = 0, 2


@dataclass(frozen=True)
class TraceNode:
    """One node of a trace: a compute node (``comm_size`` 0) lasting ``duration_us`` whole
    microseconds on the GPU (or, with ``cpu``, on the CPU-op resource, which ASTRA-sim runs
    beside the GPU's), or a collective ``comm_type`` of ``comm_size`` bytes in communicator
    group ``group`` (a key of comm_group.json); it starts when ``deps`` have finished."""

    id: int
    name: str
    deps: tuple[int, ...]
    duration_us: int = 0
    cpu: bool = False
    comm_type: int = -1
    comm_size: int = 0
    group: str = ""

    @property
    def is_comm(self) -> bool:
        """Whether this is a collective."""
        return self.comm_type >= 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _uint(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(value) if value else b""


def _chunk(field: int, payload: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(payload)) + payload


def _string(field: int, text: str) -> bytes:
    return _chunk(field, text.encode("utf-8")) if text else b""


def _attr(name: str, value: int | bool | str) -> bytes:
    """An ``AttributeProto``: int64_val, bool_val or string_val (a oneof: always written)."""
    body = _string(1, name)
    if isinstance(value, bool):
        body += _key(27, _VARINT) + _varint(int(value))
    elif isinstance(value, int):
        if value < 0:
            raise ValueError("negative int64 attributes are not written")
        body += _key(9, _VARINT) + _varint(value)
    else:
        body += _chunk(29, value.encode("utf-8"))
    return _chunk(10, body)


def _packed(field: int, values: Sequence[int]) -> bytes:
    return _chunk(field, b"".join(_varint(v) for v in values)) if values else b""


def node_message(n: TraceNode) -> bytes:
    """The ``Node`` message of ``n``."""
    body = _uint(1, n.id) + _string(2, n.name)
    body += _uint(3, COMM_COLL_NODE if n.is_comm else COMP_NODE)
    body += _packed(5, n.deps) + _uint(7, 0 if n.is_comm else n.duration_us)
    body += _attr("is_cpu_op", n.cpu)
    if n.is_comm:
        body += _attr("comm_type", n.comm_type) + _attr("comm_size", n.comm_size)
        if n.group:
            body += _attr("pg_name", n.group)
    return body


def trace_bytes(nodes: Iterable[TraceNode]) -> bytes:
    """A whole trace file: the metadata and every node, each length-prefixed."""
    messages = [_string(1, CHAKRA_VERSION), *(node_message(n) for n in nodes)]
    return b"".join(_varint(len(m)) + m for m in messages)
