"""One checker for every plan: the JSON Schema plus the invariants no schema can state.

:func:`validate_plan` runs on every plan the planner writes and on every plan in the tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator

__all__ = ["plan_schema", "validate_plan"]

_SCHEMA_PATH = Path(__file__).with_name("plan.schema.json")


@functools.cache
def plan_schema() -> dict[str, Any]:
    """The published JSON Schema of plan documents (``$id`` names its version)."""
    schema: dict[str, Any] = json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _schema_problems(doc: Mapping[str, Any]) -> list[str]:
    validator = Draft202012Validator(plan_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    return [f"/{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:20]]


def _placement_problems(name: str, role: Mapping[str, Any], moe_layers: list[int],
                        table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    ep = role["expert_placement"]
    out: list[str] = []
    phy = np.asarray(ep["phy2log"], dtype=np.int64)
    cnt = np.asarray(ep["logcnt"], dtype=np.int64)
    n_log, n_phys = ep["num_logical"], ep["num_physical"]
    if phy.shape != (len(moe_layers), n_phys) or cnt.shape != (len(moe_layers), n_log):
        return [f"{name}: phy2log is {list(phy.shape)} and logcnt {list(cnt.shape)}, expected "
                f"[{len(moe_layers)}, {n_phys}] and [{len(moe_layers)}, {n_log}]"]
    if ep["moe_layers"] != moe_layers:
        out.append(f"{name}: moe_layers differ from the model's")
    if phy.max(initial=0) >= n_log:
        out.append(f"{name}: phy2log names an expert >= num_logical ({n_log})")
        return out
    counts = np.stack([np.bincount(row, minlength=n_log) for row in phy])
    if not np.array_equal(counts, cnt):
        out.append(f"{name}: logcnt disagrees with phy2log")
    if (counts == 0).any():
        layer, expert = np.argwhere(counts == 0)[0]
        out.append(f"{name}: expert {expert} of MoE layer {moe_layers[layer]} has no replica")
    if len(ep["slot_device"]) != n_phys or ep["slot_device"] != ep["instance_slot_devices"][0]:
        out.append(f"{name}: slot_device must list {n_phys} devices (instance 0's)")
    out += _device_problems(name, role, phy, table)
    return out


def _device_problems(name: str, role: Mapping[str, Any], phy: np.ndarray,
                     table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    ep = role["expert_placement"]
    out: list[str] = []
    for i, slots in enumerate(ep["instance_slot_devices"]):
        devices = role["instance_devices"][i]
        if len(devices) != role["ep"]:
            out.append(f"{name}: instance {i} has {len(devices)} devices, ep = {role['ep']}")
        if set(slots) - set(devices):
            out.append(f"{name}: instance {i} places experts on devices it does not own")
        for path in devices:
            row = table.get(path)
            if row is None or row["role"] != name or row["instance"] != i:
                out.append(f"{name}: device {path} is not assigned to instance {i} in the "
                           "device table")
                break
    if len(ep["instance_slot_devices"]) != role["instances"]:
        out.append(f"{name}: {len(ep['instance_slot_devices'])} instance slot lists for "
                   f"{role['instances']} instances")
    index = {p: i for i, p in enumerate(dict.fromkeys(ep["slot_device"]))}
    slot_dev = np.asarray([index[p] for p in ep["slot_device"]], dtype=np.int64)
    for layer, row in enumerate(phy):
        pairs = np.unique(np.stack([slot_dev, row]), axis=1)
        if pairs.shape[1] != len(row):
            out.append(f"{name}: two replicas of one expert on one device "
                       f"(MoE layer index {layer})")
            break
    dedicated = set(ep["shared_devices"]) & set(ep["slot_device"])
    if dedicated and len(ep["shared_devices"]) != len(role["instance_devices"][0]):
        out.append(f"{name}: shared-expert devices also hold routed slots")
    return out


def _memory_problems(name: str, role: Mapping[str, Any]) -> list[str]:
    mem = role["memory"]
    parts = sum(v for k, v in mem.items() if k not in ("capacity", "total", "free"))
    out = []
    if abs(parts - mem["total"]) > 1e-6 * max(1.0, mem["total"]):
        out.append(f"{name}: memory terms do not add up to the total")
    if mem["total"] > mem["capacity"]:
        out.append(f"{name}: a device needs {mem['total'] / 1e9:.2f} GB but has "
                   f"{mem['capacity'] / 1e9:.2f} GB")
    return out


def _pipeline_problems(name: str, role: Mapping[str, Any]) -> list[str]:
    """Each stream runs one op at a time, every schedule ends at its step, the pipeline's
    step is the slowest device kind's, the speed-up is the no-overlap step over the step,
    and the estimate's per-layer spans add up to the step."""
    pipe, out = role["pipeline"], []
    for sched in pipe["schedule"]:
        kind = sched["device_kind"]
        busy: dict[str, float] = {}
        for e in sorted(sched["events"], key=lambda e: (e["stream"], e["start_us"])):
            # times are rounded to 1 ns: allow that much of an apparent overlap
            if e["start_us"] < busy.get(e["stream"], 0.0) - 2e-3:
                out.append(f"{name}: {kind}: two ops overlap on stream {e['stream']}")
                break
            busy[e["stream"]] = e["start_us"] + e["dur_us"]
        end = max((e["start_us"] + e["dur_us"] for e in sched["events"]), default=0.0)
        if abs(end - sched["step_us"]) > 1e-2 + 1e-6 * end:
            out.append(f"{name}: {kind}: the schedule ends at {end:.3f} us, not its step")
    step = max(s["step_us"] for s in pipe["schedule"])
    if abs(step - pipe["step_us"]) > 1e-2 + 1e-6 * step:
        out.append(f"{name}: pipeline step is not the slowest device kind's")
    if step and abs(pipe["no_overlap_us"] / step - pipe["speedup"]) > 1e-3:
        out.append(f"{name}: pipeline speed-up disagrees with its steps")
    est = role.get("estimate")
    if est is not None:
        spans = sum(r["span_us"] for r in est["per_layer"])
        if abs(spans - est["step_ms"] * 1e3) > 1e-2 * len(est["per_layer"]) + 1e-6 * spans:
            out.append(f"{name}: the per-layer spans add up to {spans:.3f} us, not the step")
    return out


def _kv_problems(name: str, role: Mapping[str, Any]) -> list[str]:
    """The KV capacity is what memory leaves for the cache, and the served sequences fit."""
    kv, mem = role["kv"], role["memory"]
    out = []
    if abs(kv["kv_capacity_bytes"] - (mem["kv_cache"] + mem["free"])) > 1.0:
        out.append(f"{name}: KV capacity is not memory's KV term plus its free bytes")
    if kv["bytes_per_sequence"] and mem["kv_cache"] > \
            kv["max_sequences_per_device"] * kv["bytes_per_sequence"] + 1.0:
        out.append(f"{name}: the served sequences exceed the KV capacity")
    return out


def validate_plan(doc: Mapping[str, Any]) -> list[str]:
    """Every problem with a plan document, empty when it is valid.

    Checks the JSON Schema, then per role: every logical expert placed at least once per MoE
    layer, ``logcnt`` consistent with ``phy2log``, slot counts, no two replicas of one expert
    on one device, devices owned by their instance and listed in the device table, shared
    devices apart from routed ones, the memory budget (terms add up, total fits), and in
    1.1 plans the KV capacity and the pipeline (see :func:`_pipeline_problems`).
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


def _serving_problems(name: str, role: Mapping[str, Any]) -> list[str]:
    missing = [k for k in ("kv", "pipeline", "estimate") if k not in role]
    if missing:
        return [f"{name}: a 1.1 plan's role needs {', '.join(missing)}"]
    return _pipeline_problems(name, role) + _kv_problems(name, role)
