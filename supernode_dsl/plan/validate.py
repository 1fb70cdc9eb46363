"""One checker for every plan: the JSON Schema plus the invariants no schema can state.

:func:`plan_problems` runs on every plan the planner writes, on every plan a command reads
(through :meth:`~supernode_dsl.plan.document.PlanDocument.from_json`) and on every plan in
the tests.  Each problem names the JSON path of the value it is about.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator, validators

__all__ = ["Problem", "plan_problems", "plan_schema", "validate_plan"]

_SCHEMA_PATH = Path(__file__).with_name("plan.schema.json")
_MAX_SCHEMA_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One way a plan is invalid: the JSON path of the value and what is wrong with it."""

    path: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        from supernode_dsl.plan.document.codec import format_path

        return f"{format_path(self.path)}: {self.message}"


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The published JSON Schema of plan documents (``$id`` names its version)."""
    schema: dict[str, Any] = json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


# The Python types that certainly satisfy a JSON Schema "type" (bool is not a number)
_CERTAIN_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,), "number": (int, float), "string": (str,)}
_SCALAR_KEYWORDS = frozenset({"type", "minimum"})
_OBJECT_KEYWORDS = frozenset({"type", "required", "additionalProperties", "properties"})

#: A check that a value certainly satisfies a schema (False: unsure, let jsonschema decide).
Certain = Callable[[Any], bool]


def _scalar_check(schema: Any) -> Certain | None:
    """The check of a plain scalar schema (``{"type": ..., "minimum": ...}``), else None."""
    if not isinstance(schema, dict) or not set(schema) <= _SCALAR_KEYWORDS:
        return None
    kind = schema.get("type")
    kinds = _CERTAIN_TYPES.get(kind) if isinstance(kind, str) else None
    if kinds is None:
        return None
    low = schema.get("minimum")
    if low is None:
        return lambda x: type(x) in kinds
    return lambda x: type(x) in kinds and x >= low


def _object_check(schema: Any) -> Certain | None:
    """The check of a closed object of plain scalars (``type: object``, ``required``,
    ``additionalProperties: false``, ``properties`` each a plain scalar schema; a schedule's
    events), reached directly or through a local ``{"$ref": "#/$defs/NAME"}``; else None."""
    if isinstance(schema, dict) and set(schema) == {"$ref"} and \
            str(schema["$ref"]).startswith("#/$defs/"):
        schema = plan_schema().get("$defs", {}).get(schema["$ref"][len("#/$defs/"):])
    if not isinstance(schema, dict) or set(schema) != _OBJECT_KEYWORDS or \
            schema["type"] != "object" or schema["additionalProperties"] is not False:
        return None
    props = {name: _scalar_check(sub) for name, sub in schema["properties"].items()}
    checks = {name: c for name, c in props.items() if c is not None}
    if len(checks) != len(props):
        return None
    required = frozenset(schema["required"])
    allowed = frozenset(checks)

    def check(x: Any) -> bool:
        return type(x) is dict and required <= x.keys() <= allowed and \
            all(checks[k](v) for k, v in x.items())
    return check


# schema (by identity; the schema is loaded once) -> its check, or None
_CHECKS: dict[int, tuple[Any, Certain | None]] = {}


def _certain(schema: Any) -> Certain | None:
    """The check that values certainly satisfy ``schema``, None for any other schema."""
    found = _CHECKS.get(id(schema))
    if found is None or found[0] is not schema:
        found = _CHECKS[id(schema)] = (schema, _scalar_check(schema) or _object_check(schema))
    return found[1]


# jsonschema descends into every value, one validator object per step: tens of thousands
# for a plan's placements and schedules.  The two keywords below skip the values that
# certainly match a plain scalar schema (or a closed object of them) and hand everything
# else to jsonschema's own keyword, so the errors and their messages are exactly
# jsonschema's.

def _items(validator: Any, items: Any, instance: Any, schema: Any) -> Any:
    """``items``: an array whose items certainly match yields no error at once."""
    if "prefixItems" not in schema and isinstance(instance, list):
        check = _certain(items)
        if check is not None and all(map(check, instance)):
            return
    yield from Draft202012Validator.VALIDATORS["items"](validator, items, instance, schema)


def _properties(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
    """``properties``: a value that certainly matches its schema is not descended into."""
    if not isinstance(instance, dict):
        return
    for name, sub in properties.items():
        if name in instance:
            check = _certain(sub)
            if check is None or not check(instance[name]):
                yield from validator.descend(instance[name], sub, path=name, schema_path=name)


@functools.cache
def _validator() -> Any:
    fast = validators.extend(Draft202012Validator,
                             {"items": _items, "properties": _properties})
    return fast(plan_schema())


def _schema_problems(doc: Any) -> list[Problem]:
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.path)))
    return [Problem(tuple(e.path), e.message) for e in errors[:_MAX_SCHEMA_PROBLEMS]]


def _matrix_problem(at: tuple[str | int, ...], rows: Sequence[Sequence[int]],
                    shape: tuple[int, int], below: int | None) -> Problem | None:
    """A problem unless ``rows`` is a ``shape`` matrix (with entries < ``below``)."""
    if len(rows) != shape[0]:
        return Problem(at, f"{len(rows)} rows, expected {shape[0]} (one per MoE layer)")
    for i, row in enumerate(rows):
        if len(row) != shape[1]:
            return Problem((*at, i), f"{len(row)} entries, expected {shape[1]}")
        if below is not None and max(row, default=0) >= below:
            return Problem((*at, i), f"names an expert >= num_logical ({below})")
    return None


def _placement_problems(name: str, role: Mapping[str, Any], moe_layers: list[int],
                        table: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    ep = role["expert_placement"]
    at = ("roles", name, "expert_placement")
    n_log, n_phys = ep["num_logical"], ep["num_physical"]
    out = [p for p in (_matrix_problem((*at, "phy2log"), ep["phy2log"],
                                       (len(moe_layers), n_phys), n_log),
                       _matrix_problem((*at, "logcnt"), ep["logcnt"],
                                       (len(moe_layers), n_log), None)) if p]
    if out:
        return out
    if ep["moe_layers"] != moe_layers:
        out.append(Problem((*at, "moe_layers"), "the MoE layers differ from the model's"))
    phy = np.asarray(ep["phy2log"], dtype=np.int64).reshape(len(moe_layers), n_phys)
    counts = np.stack([np.bincount(row, minlength=n_log) for row in phy]) if len(phy) \
        else np.zeros((0, n_log), dtype=np.int64)
    if not np.array_equal(counts, np.asarray(ep["logcnt"]).reshape(counts.shape)):
        layer = int(np.argwhere((counts != np.asarray(ep["logcnt"]).reshape(counts.shape))
                                .any(axis=1))[0][0])
        out.append(Problem((*at, "logcnt", layer), "logcnt disagrees with phy2log"))
    if (counts == 0).any():
        layer, expert = np.argwhere(counts == 0)[0]
        out.append(Problem((*at, "phy2log", int(layer)), f"expert {expert} of MoE layer "
                           f"{moe_layers[layer]} has no replica"))
    isd = ep["instance_slot_devices"]
    if len(ep["slot_device"]) != n_phys or not isd or ep["slot_device"] != isd[0]:
        out.append(Problem((*at, "slot_device"),
                           f"must list {n_phys} devices (instance 0's slot list)"))
        return out
    return out + _device_problems(name, role, phy, table)


def _instance_problems(name: str, role: Mapping[str, Any],
                       table: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    ep = role["expert_placement"]
    out: list[Problem] = []
    isd, devices_of = ep["instance_slot_devices"], role["instance_devices"]
    if not len(isd) == len(devices_of) == role["instances"]:
        return [Problem(("roles", name, "instance_devices"),
                        f"{len(devices_of)} device lists and {len(isd)} slot lists for "
                        f"{role['instances']} instances")]
    for i, (slots, devices) in enumerate(zip(isd, devices_of, strict=True)):
        at = ("roles", name, "instance_devices", i)
        if len(devices) != role["ep"]:
            out.append(Problem(at, f"instance {i} has {len(devices)} devices, ep = {role['ep']}"))
        if set(slots) - set(devices):
            out.append(Problem(("roles", name, "expert_placement", "instance_slot_devices", i),
                               f"instance {i} places experts on devices it does not own"))
        for k, path in enumerate(devices):
            row = table.get(path)
            if row is None or row["role"] != name or row["instance"] != i:
                out.append(Problem((*at, k), f"device {path} is not assigned to instance {i} "
                                   "in the device table"))
                break
    return out


def _device_problems(name: str, role: Mapping[str, Any], phy: np.ndarray,
                     table: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    ep = role["expert_placement"]
    at = ("roles", name, "expert_placement")
    out = _instance_problems(name, role, table)
    index = {p: i for i, p in enumerate(dict.fromkeys(ep["slot_device"]))}
    slot_dev = np.asarray([index[p] for p in ep["slot_device"]], dtype=np.int64)
    for layer, row in enumerate(phy):
        pairs = np.unique(np.stack([slot_dev, row]), axis=1)
        if pairs.shape[1] != len(row):
            out.append(Problem((*at, "phy2log", layer), "two replicas of one expert on one "
                               "device"))
            break
    dedicated = set(ep["shared_devices"]) & set(ep["slot_device"])
    first = role["instance_devices"][0] if role["instance_devices"] else []
    if dedicated and len(ep["shared_devices"]) != len(first):
        out.append(Problem((*at, "shared_devices"), "shared-expert devices also hold routed "
                           "slots"))
    return out


def _memory_problems(name: str, role: Mapping[str, Any]) -> list[Problem]:
    mem = role["memory"]
    at = ("roles", name, "memory")
    parts = sum(v for k, v in mem.items()
                if k not in ("capacity", "total", "free", "other_weights_by_part"))
    out = []
    if abs(parts - mem["total"]) > 1e-6 * max(1.0, abs(mem["total"])):
        out.append(Problem((*at, "total"), "the memory terms do not add up to the total"))
    by_part = mem.get("other_weights_by_part")
    if by_part is not None and abs(sum(by_part.values()) - mem["other_weights"]) > \
            1e-6 * max(1.0, abs(mem["other_weights"])):
        out.append(Problem((*at, "other_weights_by_part"),
                           "the parts do not add up to other_weights"))
    if mem["total"] > mem["capacity"]:
        out.append(Problem((*at, "total"), f"a device needs {mem['total'] / 1e9:.2f} GB but "
                           f"has {mem['capacity'] / 1e9:.2f} GB"))
    return out


def _schedule_problems(at: tuple[str | int, ...], sched: Mapping[str, Any]) -> list[Problem]:
    """No two ops overlap on one stream, and the schedule ends at its step."""
    kind = sched["device_kind"]
    busy: dict[str, float] = {}
    out = []
    for e in sorted(sched["events"], key=lambda e: (e["stream"], e["start_us"])):
        # times are rounded to 1 ns: allow that much of an apparent overlap
        if e["start_us"] < busy.get(e["stream"], 0.0) - 2e-3:
            out.append(Problem((*at, "events"), f"{kind}: two ops overlap on stream "
                               f"{e['stream']}"))
            break
        busy[e["stream"]] = e["start_us"] + e["dur_us"]
    end = max((e["start_us"] + e["dur_us"] for e in sched["events"]), default=0.0)
    if abs(end - sched["step_us"]) > 1e-2 + 1e-6 * end:
        out.append(Problem((*at, "step_us"), f"{kind}: the schedule ends at {end:.3f} us, "
                           "not at its step"))
    return out


def _pipeline_problems(name: str, role: Mapping[str, Any]) -> list[Problem]:
    """Each stream runs one op at a time, every schedule ends at its step, the pipeline's
    step is the slowest device kind's, the speed-up is the no-overlap step over the step,
    and the estimate's per-layer spans add up to the step less its host time and the load
    of reused KV (``host_ms``, ``kv_load_ms``)."""
    pipe = role["pipeline"]
    at = ("roles", name, "pipeline")
    out = [p for i, s in enumerate(pipe["schedule"])
           for p in _schedule_problems((*at, "schedule", i), s)]
    step = max(s["step_us"] for s in pipe["schedule"])
    if abs(step - pipe["step_us"]) > 1e-2 + 1e-6 * step:
        out.append(Problem((*at, "step_us"), "the pipeline step is not the slowest device "
                           "kind's"))
    if step and abs(pipe["no_overlap_us"] / step - pipe["speedup"]) > 1e-3:
        out.append(Problem((*at, "speedup"), "the speed-up disagrees with the steps"))
    est = role["estimate"]
    spans = sum(r["span_us"] for r in est["per_layer"])
    # the step is the schedule's layers, then the host time and the reused KV's load
    outside = (est.get("host_ms") or 0.0) + (est.get("kv_load_ms") or 0.0)
    if abs(spans + outside * 1e3 - est["step_ms"] * 1e3) > \
            1e-2 * (len(est["per_layer"]) + 2) + 1e-6 * spans:
        out.append(Problem(("roles", name, "estimate", "per_layer"),
                           f"the per-layer spans add up to {spans:.3f} us, not the step "
                           "less its host time and KV load"))
    return out


def _kv_problems(name: str, role: Mapping[str, Any]) -> list[Problem]:
    """The KV capacity is what memory leaves for the cache, and the served sequences fit."""
    kv, mem = role["kv"], role["memory"]
    at = ("roles", name, "kv")
    out = []
    if abs(kv["kv_capacity_bytes"] - (mem["kv_cache"] + mem["free"])) > 1.0:
        out.append(Problem((*at, "kv_capacity_bytes"), "the KV capacity is not memory's KV "
                           "term plus its free bytes"))
    if kv["bytes_per_sequence"] and mem["kv_cache"] > \
            kv["max_sequences_per_device"] * kv["bytes_per_sequence"] + 1.0:
        out.append(Problem((*at, "max_sequences_per_device"),
                           "the served sequences exceed the KV capacity"))
    return out


def plan_problems(doc: Any) -> list[Problem]:
    """Every problem with a plan document (a JSON value), empty when it is valid.

    Checks the JSON Schema, then per role: every logical expert placed at least once per MoE
    layer, ``logcnt`` consistent with ``phy2log``, slot counts, no two replicas of one expert
    on one device, devices owned by their instance and listed in the device table, shared
    devices apart from routed ones, the memory budget (terms add up, total fits), and from
    1.1 on the KV capacity and the pipeline (see :func:`_pipeline_problems`).
    """
    problems = _schema_problems(doc)
    if problems:
        return problems
    table = {d["path"]: d for d in doc["devices"]}
    moe_layers = doc["model"]["moe_layers"]
    for name, role in doc["roles"].items():
        problems += _placement_problems(name, role, moe_layers, table)
        problems += _memory_problems(name, role)
        if doc["schema_version"] != "1.0":
            problems += _serving_problems(name, role)
    return problems


def validate_plan(doc: Any) -> list[str]:
    """:func:`plan_problems` as text, ``"path: message"`` each."""
    return [str(p) for p in plan_problems(doc)]


def _serving_problems(name: str, role: Mapping[str, Any]) -> list[Problem]:
    missing = [k for k in ("kv", "pipeline", "estimate") if k not in role]
    if missing:
        return [Problem(("roles", name), f"a {', '.join(missing)} block is needed from "
                        "schema 1.1 on")]
    return _pipeline_problems(name, role) + _kv_problems(name, role)
