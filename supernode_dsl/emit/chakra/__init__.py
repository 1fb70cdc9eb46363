"""``chakra-et``: one serving step of a plan's role as a directory ASTRA-sim runs.

The directory holds ``workload.<npu>.et`` (one Chakra execution trace per NPU of
``astra-network``, :mod:`~supernode_dsl.emit.chakra.step`; NPUs outside the role get a
trace without nodes), the ``comm_group.json`` the traces name, and the ``network.yml``,
``system.json`` and ``remote_memory.json`` of the same NPU numbering, so that

    AstraSim_Analytical_Congestion_Unaware --workload-configuration=DIR/workload \\
      --comm-group-configuration=DIR/comm_group.json --system-configuration=DIR/system.json \\
      --network-configuration=DIR/network.yml \\
      --remote-memory-configuration=DIR/remote_memory.json

simulates the step (``cmx simulate`` does this and reads the result back).  The trace
encoding is :mod:`~supernode_dsl.emit.chakra.wire`.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from typing import Any, ClassVar

from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit.base import EmitContext, Emitter, emit_error
from supernode_dsl.emit.chakra.step import StepWorkload, step_workload
from supernode_dsl.emit.chakra.wire import trace_bytes
from supernode_dsl.emit.options import Option, choice_option, int_option
from supernode_dsl.emit.simulators import (
    UNIT,
    AstraNetworkEmitter,
    AstraSystemEmitter,
    role_instance_npus,
)
from supernode_dsl.files import FileTree
from supernode_dsl.graph import npu_units
from supernode_dsl.plan import deployment_spec

__all__ = ["EMITTERS", "TRACE_PREFIX", "ChakraEtEmitter", "step_of"]

#: The planner's EP device is a die of a multi-die accelerator: one rank, one NPU.
CHAKRA_UNIT = choice_option("unit", UNIT.help, UNIT.choices, default="die")
ROLE = choice_option("role", "the role whose step the traces run", ("decode", "prefill"))
LAYERS = int_option("layers", "only transformer layers 0..N-1 (0: the whole step, with the "
                    "MTP module and the output head)", 0, minimum=0)
#: system.json's ``active-chunks-per-dimension`` (read at astra-sim c459ab6
#: astra-sim/system/Sys.cc:436-437, default 1 at l.188; ``concurrent_streams`` =
#: ceil(chunks / queues of the first dimension), l.226-227).  1 here, where ``astra-system``
#: writes 2: the multi-dimension files these traces need run on the congestion-unaware back
#: end, which gives every chunk in flight the whole link, so 2 overlaps chunks for free
#: (0.75x the ring formula on CloudMatrix384 nodes=2, 1.0x plus latencies with 1:
#: docs/emitters-simulators.md); 2 is right for the congestion-aware back end.
ACTIVE_CHUNKS = int_option("active_chunks", "system.json active-chunks-per-dimension (1: the "
                           "congestion-unaware back end; 2 for the aware one)", 1, minimum=1)
#: ``--workload-configuration`` is the directory and this prefix.
TRACE_PREFIX = "workload"
#: ASTRA-sim's remote memory configuration for no memory expansion (the kit's examples).
_REMOTE_MEMORY = '{"memory-type": "NO_MEMORY_EXPANSION"}\n'


def _with_unit(ctx: EmitContext) -> EmitContext:
    """``ctx`` with ``-O unit`` given explicitly (chakra-et's default, die, is not
    ``astra-network``'s), so the network, system and comm groups number NPUs alike."""
    return replace(ctx, options={**ctx.options, "unit": ctx.value(CHAKRA_UNIT)})


def step_of(ctx: EmitContext) -> StepWorkload:
    """The workload of ``-O role=`` for ``ctx`` (needs ``--plan``); E026 when a device of
    the role is not its own NPU under ``-O unit=`` (dies folded into one accelerator)."""
    ctx = _with_unit(ctx)
    plan = ctx.require_plan(ChakraEtEmitter.name)
    role = ctx.value(ROLE)
    instances = [ids for r, _, ids in role_instance_npus(ctx) if r == role]
    for ids in instances:
        if len(set(ids)) != len(ids):
            raise emit_error(f"several {role} devices fold into one NPU with "
                             f"unit={ctx.value(UNIT)}: use -O unit=die")
    try:
        dep, workload = deployment_spec(ctx.model, plan.source.deployment)
    except CmxError as err:
        raise emit_error(f"the plan's deployment: {err.diagnostics[0].message}") from None
    npus = len(npu_units(ctx.graph, ctx.value(UNIT)))
    return step_workload(plan, dep, role, instances, npus, ctx.value(LAYERS),
                         workload.perfect_balance)


class ChakraEtEmitter(Emitter):
    """Per-NPU Chakra traces of one step of a role of the plan, with the comm groups,
    network, system and remote-memory files ASTRA-sim needs (a directory; needs
    ``--plan``)."""

    name = "chakra-et"
    description = "Chakra execution traces of one serving step + ASTRA-sim inputs (--plan; " \
                  "a directory)"
    options: ClassVar[tuple[Option[Any], ...]] = (ROLE, CHAKRA_UNIT, LAYERS, ACTIVE_CHUNKS)

    def emit(self, ctx: EmitContext) -> FileTree:
        step = step_of(ctx)
        files = {f"{TRACE_PREFIX}.{npu}.et": trace_bytes(nodes)
                 for npu, nodes in enumerate(step.traces)}
        unit = {"unit": ctx.value(CHAKRA_UNIT)}
        system = {**unit, "active_chunks": str(ctx.value(ACTIVE_CHUNKS))}
        files["comm_group.json"] = (json.dumps({k: list(v) for k, v in step.groups.items()},
                                               indent=2) + "\n").encode()
        files["network.yml"] = AstraNetworkEmitter().emit(
            EmitContext(ctx.model, ctx.graph, ctx.plan, ctx.source, unit)).encode()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same collapse: network.yml has warned
            files["system.json"] = AstraSystemEmitter().emit(
                EmitContext(ctx.model, ctx.graph, ctx.plan, ctx.source, system)).encode()
        files["remote_memory.json"] = _REMOTE_MEMORY.encode()
        files["estimate.json"] = (json.dumps(
            {"role": step.role, "layers": step.layers, "estimate_us": round(step.estimate_us, 3),
             "plan": ctx.plan_file}, indent=2) + "\n").encode()
        return FileTree(files)


EMITTERS: tuple[type[Emitter], ...] = (ChakraEtEmitter,)
