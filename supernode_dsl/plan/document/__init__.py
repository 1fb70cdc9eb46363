"""The plan as a typed, validated document (schema 1.2).

:class:`PlanDocument` is what the planner returns, what ``cmx plan`` writes and what the
emitters and the report read.  ``to_json()`` is the only place values are rounded;
``from_json()`` (and ``from_text()``, which also reports JSON syntax errors) checks a JSON
value with :func:`~supernode_dsl.plan.validate.plan_problems` (the JSON Schema, then every
invariant), reads it into the dataclasses, and turns every failure into an ``E024``
diagnostic naming the file and the JSON path, located at the value when the text is known::

    plan.json:120:7: error[E024]: roles.decode.expert_placement.phy2log[3]: expected an
    array, found an integer (7)

Plans of schema 1.0 and 1.1 load too (see :data:`VERSIONS`): they have no fingerprint, so
:func:`~supernode_dsl.plan.document.fingerprint.check_plan_for` can only compare their
topology name and device paths with the file's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supernode_dsl.contracts import check_instance, check_text
from supernode_dsl.diagnostics import CmxError, Diagnostic, SourceText, Span
from supernode_dsl.plan.document.codec import OMIT, JsonPath, PathError, dump, format_path, load
from supernode_dsl.plan.document.locate import locate, parse_json
from supernode_dsl.plan.document.role import RolePlan
from supernode_dsl.plan.document.serving import Serving
from supernode_dsl.plan.validate import plan_problems

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "VERSIONS", "DeviceRow", "Fingerprint",
           "ModelSummary", "PlanDocument", "PlanOrigin", "Source", "plan_error"]

SCHEMA_VERSION = "1.2"
SCHEMA_ID = f"https://supernode-dsl.dev/schemas/plan/{SCHEMA_VERSION}.json"
#: The schema versions :meth:`PlanDocument.from_json` reads.
VERSIONS = ("1.0", "1.1", SCHEMA_VERSION)
_MAX_DIAGNOSTICS = 10


@dataclass(frozen=True)
class Source:
    """What the plan was made from: file, ``-D`` defines, deployment, topology (the root
    instance's name) and the file names of the loads and the previous plan."""

    file: str
    defines: Mapping[str, str]
    expert_loads: str | None
    previous: str | None
    deployment: str
    topology: str


@dataclass(frozen=True)
class ModelSummary:
    """The model facts a plan reader needs."""

    name: str
    layers: int
    moe_layers: tuple[int, ...]
    routed_experts: int
    shared_experts: int
    top_k: int
    expert_groups: int
    expert_bytes: int


@dataclass(frozen=True)
class DeviceRow:
    """One EP device of the topology and what the plan does with it (None: unused)."""

    path: str
    npu: str
    node: str
    rack: int | None
    role: str | None
    instance: int | None
    rank: int | None


@dataclass(frozen=True)
class Fingerprint:
    """sha256 (hex) of the compiled topology and of the deployment the plan was made for
    (see :mod:`supernode_dsl.plan.document.fingerprint` for exactly what goes in)."""

    topology: str
    deployment: str


@dataclass(frozen=True)
class PlanOrigin:
    """Where a plan's JSON came from: a display name and, when known, its text (for the
    line and column of a problem)."""

    name: str
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class PlanDocument:
    """A plan: devices, roles, serving plan, and what it was made for."""

    schema_id: str | None = field(default=None, metadata={"name": "$schema", **OMIT})
    schema_version: str
    generator: str
    source: Source
    model: ModelSummary
    devices: tuple[DeviceRow, ...]
    roles: Mapping[str, RolePlan]
    serving: Serving | None = field(default=None, metadata=OMIT)
    fingerprint: Fingerprint | None = field(default=None, metadata=OMIT)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the plan, values rounded as the contract says."""
        out: dict[str, Any] = dump(self)
        return out

    @classmethod
    def from_json(cls, data: Any, origin: PlanOrigin | str) -> PlanDocument:
        """The document of a JSON value; :class:`CmxError` (E024, located) unless it is a
        valid plan of a version in :data:`VERSIONS`;
        :class:`~supernode_dsl.diagnostics.ArgumentError` for an ``origin`` that is neither
        a ``str`` nor a :class:`PlanOrigin`."""
        where = PlanOrigin(origin) if isinstance(origin, str) else \
            check_instance(origin, PlanOrigin, "PlanDocument.from_json", "origin")
        version = data.get("schema_version") if isinstance(data, dict) else None
        if not isinstance(data, dict):
            found = "null" if data is None else type(data).__name__
            raise CmxError([plan_error(where, (), f"a plan is a JSON object, not {found}")])
        if version not in VERSIONS:
            raise CmxError([plan_error(where, ("schema_version",) if "schema_version" in data
                                       else (), f"schema version {version!r} is not one "
                                       f"of {', '.join(VERSIONS)}")])
        problems = plan_problems(data)
        if problems:
            raise CmxError([plan_error(where, p.path, p.message)
                            for p in problems[:_MAX_DIAGNOSTICS]])
        try:
            return load(cls, data)
        except PathError as err:
            raise CmxError([plan_error(where, err.path, err.message)]) from None

    @classmethod
    def from_text(cls, text: str, name: str) -> PlanDocument:
        """The document of JSON ``text`` read from file ``name``; E024 for a JSON syntax
        error, an over-long integer or too deep nesting too (located);
        :class:`~supernode_dsl.diagnostics.ArgumentError` unless both are ``str``."""
        text = check_text(text, "PlanDocument.from_text", "text")
        name = check_text(name, "PlanDocument.from_text", "name")
        data = parse_json(SourceText(name, text), "E024")
        return cls.from_json(data, PlanOrigin(name, text))


_CARET_MAX = 40  # a long value (a whole phy2log row) is marked by its first characters


def plan_error(origin: PlanOrigin, path: JsonPath, message: str) -> Diagnostic:
    """An E024 diagnostic about the value at ``path`` of the plan from ``origin``: at its
    line and column when the text is known, else naming the file."""
    text = f"{format_path(path)}: {message}"
    if origin.text is None:
        return Diagnostic("E024", f"{origin.name}: {text}")
    line, col, length = locate(origin.text, path)
    span = Span(SourceText(origin.name, origin.text), line, col, line,
                col + min(length, _CARET_MAX))
    return Diagnostic("E024", text, span)
