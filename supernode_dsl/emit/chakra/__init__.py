"""``chakra-et``: one serving step of one instance of a plan's role as a directory ASTRA-sim runs.

The directory holds ``workload.<npu>.et`` (one Chakra execution trace per rank of the
instance, :mod:`~supernode_dsl.emit.chakra.step`), the ``comm_group.json`` the traces name,
and the ``network.yml`` (one dimension over the instance's NPUs:
:mod:`~supernode_dsl.emit.chakra.network`), ``system.json`` and ``remote_memory.json`` of the
same NPU numbering, so that

    AstraSim_Analytical_Congestion_Aware --workload-configuration=DIR/workload \\
      --comm-group-configuration=DIR/comm_group.json --system-configuration=DIR/system.json \\
      --network-configuration=DIR/network.yml \\
      --remote-memory-configuration=DIR/remote_memory.json

simulates the step (``cmx simulate`` does this and reads the result back).  The instances
of a role run the same plan on NPUs of their own, so one instance's step is the role's
(``-O instance`` picks which).  The trace encoding is :mod:`~supernode_dsl.emit.chakra.wire`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, ClassVar

from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.chakra.network import InstanceNetwork, instance_network
from supernode_dsl.emit.chakra.step import StepWorkload, step_workload
from supernode_dsl.emit.chakra.wire import ALL_TO_ALL, trace_bytes
from supernode_dsl.emit.options import Option, choice_option, int_option
from supernode_dsl.emit.simulators import (
    UNIT,
    network_yml,
    role_instance_npus,
    system_json,
)
from supernode_dsl.files import FileTree
from supernode_dsl.graph import collapse
from supernode_dsl.plan import deployment_spec

__all__ = ["EMITTERS", "TRACE_PREFIX", "ChakraEtEmitter", "step_of"]

#: The planner's EP device is a die of a multi-die accelerator: one rank, one NPU.
CHAKRA_UNIT = choice_option("unit", UNIT.help, UNIT.choices, default="die")
ROLE = choice_option("role", "the role whose step the traces run", ("decode", "prefill"))
LAYERS = int_option("layers", "only transformer layers 0..N-1 (0: the whole step, with the "
                    "MTP module and the output head)", 0, minimum=0)
INSTANCE = int_option("instance", "which instance of the role (from 1): its NPUs are the "
                      "network", 1, minimum=1)
#: system.json's ``preferred-dataset-splits``: 1, where ``astra-system`` writes 4.  A
#: collective is cut into that many chunks, each run through every phase and each paying the
#: path latency (astra-sim c459ab6 ``Sys::generate_collective``, astra-sim/system/Sys.cc:775-
#: 1040); a dispatch or combine is one message per peer, and one chunk is what the kernels
#: send: a direct all-to-all of 2 MiB over 320 dies is then the bytes over the bandwidth plus
#: one path latency (12.47 us against 12.56 us by hand), with 4 chunks 17.86 us and 6-8 times
#: the wall time (docs/validation.md).
DATASET_SPLITS = int_option("dataset_splits", "system.json preferred-dataset-splits", 1,
                            minimum=1)
#: system.json's ``active-chunks-per-dimension`` (read at Sys.cc:436-437): how many of the
#: chunks above are in flight per dimension; with one chunk it does not matter.
ACTIVE_CHUNKS = int_option("active_chunks", "system.json active-chunks-per-dimension", 1,
                           minimum=1)
#: ``--workload-configuration`` is the directory and this prefix.
TRACE_PREFIX = "workload"
#: ASTRA-sim's remote memory configuration for no memory expansion (the kit's examples).
_REMOTE_MEMORY = '{"memory-type": "NO_MEMORY_EXPANSION"}\n'


def _with_unit(ctx: EmitContext) -> EmitContext:
    """``ctx`` with ``-O unit`` given explicitly (chakra-et's default, die, is not
    ``astra-network``'s), so the network, system and comm groups number NPUs alike."""
    return replace(ctx, options={**ctx.options, "unit": ctx.value(CHAKRA_UNIT)})


def _instance_ids(ctx: EmitContext, role: str) -> list[int]:
    """The machine NPU id of each rank of the ``-O instance`` of ``role``; E026 when the
    role has fewer instances or several devices fold into one NPU."""
    instances = [ids for r, _, ids in role_instance_npus(ctx) if r == role]
    number = ctx.value(INSTANCE)
    if number > len(instances):
        raise emit_error(f"the plan's {role} role has {len(instances)} instance(s), "
                         f"not {number}")
    ids = instances[number - 1]
    if len(set(ids)) != len(ids):
        raise emit_error(f"several {role} devices fold into one NPU with "
                         f"unit={ctx.value(UNIT)}: use -O unit=die")
    return ids


def step_of(ctx: EmitContext) -> tuple[StepWorkload, InstanceNetwork, str]:
    """The workload of ``-O role=`` for its ``-O instance`` (needs ``--plan``), the one
    dimension over that instance's NPUs (renumbered 0..n-1 in machine order), and the
    machine unit of its NPU 0; E026 when a device of the role is not its own NPU under
    ``-O unit=`` (dies folded into one accelerator)."""
    ctx = _with_unit(ctx)
    plan = ctx.require_plan(ChakraEtEmitter.name)
    role = ctx.value(ROLE)
    ids = _instance_ids(ctx, role)
    machine = collapse(ctx.graph, ctx.value(UNIT))
    network = instance_network(machine.dimensions, ids)
    network = replace(network, lost=machine.lost + network.lost)
    local = {npu: k for k, npu in enumerate(sorted(ids))}
    try:
        dep, workload = deployment_spec(ctx.model, plan.source.deployment)
    except CmxError as err:
        raise emit_error(f"the plan's deployment: {err.diagnostics[0].message}") from None
    step = step_workload(plan, dep, role, {ctx.value(INSTANCE) - 1: [local[i] for i in ids]},
                         len(ids), ctx.value(LAYERS), workload.perfect_balance)
    return step, network, machine.units[min(ids)]


class ChakraEtEmitter(Emitter):
    """Per-NPU Chakra traces of one step of one instance of a role of the plan, with the
    comm groups, network (that instance's NPUs), system and remote-memory files ASTRA-sim
    needs (a directory; needs ``--plan``)."""

    name = "chakra-et"
    description = "Chakra execution traces of one serving step + ASTRA-sim inputs (--plan; " \
                  "a directory)"
    options: ClassVar[tuple[Option[Any], ...]] = (ROLE, CHAKRA_UNIT, INSTANCE, LAYERS,
                                                   DATASET_SPLITS, ACTIVE_CHUNKS)

    def emit(self, ctx: EmitContext) -> FileTree:
        step, network, first = step_of(ctx)
        files = {f"{TRACE_PREFIX}.{npu}.et": trace_bytes(nodes)
                 for npu, nodes in enumerate(step.traces)}
        files["comm_group.json"] = (json.dumps({k: list(v) for k, v in step.groups.items()},
                                               indent=2) + "\n").encode()
        files["network.yml"] = network_yml(ctx, [network.dimension],
                                           _network_header(ctx, network)).encode()
        system = replace(ctx, options={"active_chunks": str(ctx.value(ACTIVE_CHUNKS)),
                                       "dataset_splits": str(ctx.value(DATASET_SPLITS))})
        files["system.json"] = system_json(system, [network.dimension], first).encode()
        files["remote_memory.json"] = _REMOTE_MEMORY.encode()
        files["estimate.json"] = (json.dumps(
            {"role": step.role, "instance": ctx.value(INSTANCE), "layers": step.layers,
             "estimate_us": round(step.estimate_us, 3), "all_to_alls": _all_to_alls(step),
             "plan": ctx.plan_file},
            indent=2) + "\n").encode()
        return FileTree(files)


def _all_to_alls(step: StepWorkload) -> int:
    """The most all-to-all nodes in one rank's trace."""
    return max((sum(1 for n in nodes if n.comm_type == ALL_TO_ALL) for nodes in step.traces),
               default=0)


def _network_header(ctx: EmitContext, network: InstanceNetwork) -> list[str]:
    lines = [f"ASTRA-sim network.yml generated by cmx (chakra-et) from {ctx.source}",
             *network.notes]
    if network.lost:
        lines += ["approximation; what is lost:", *(f"  - {x}" for x in network.lost)]
    return lines


EMITTERS: tuple[type[Emitter], ...] = (ChakraEtEmitter,)
