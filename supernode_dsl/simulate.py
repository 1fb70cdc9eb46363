"""``cmx simulate``: run ASTRA-sim on a ``chakra-et`` directory and read its step time back.

Entry point: :func:`simulate_step` (emit, run, compare with the plan's estimate).

:func:`run_astra_sim` runs the simulator binary on the files of a ``chakra-et`` output in a
temporary working directory (ASTRA-sim writes ``log/`` there) and :func:`parse_finished`
reads its result.  ASTRA-sim's analytical back ends count time in ns: event time is in ns
(astra-network-analytical ``599a047``, ``include/astra-network-analytical/common/Type.h:30-31``,
"Event time in ns", ``using EventTime = uint64_t``), and the workload prints that time as "cycles"
(below), so 1 cycle = 1 ns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from supernode_dsl.diagnostics import Diagnostic, Severity
from supernode_dsl.emit.base import EmitContext
from supernode_dsl.emit.chakra import TRACE_PREFIX, ChakraEtEmitter
from supernode_dsl.files import Output, write_outputs

__all__ = ["ENV_BINARY", "SimulationError", "SimulationResult", "StepComparison",
           "back_end_warning", "find_binary", "parse_finished", "run_astra_sim",
           "simulate_step"]

#: The environment variable naming the ASTRA-sim binary when ``--astra-sim`` is not given.
ENV_BINARY = "CMX_ASTRA_SIM"
#: The name ASTRA-sim's build gives its congestion-unaware analytical binary
#: (``AstraSim_Analytical_Congestion_Unaware``), the back end that gives every message in
#: flight the whole link.
UNAWARE = "Congestion_Unaware"

_FINISHED = re.compile(r"sys\[(\d+)\] finished, (\d+) cycles, exposed communication (\d+) "
                       r"cycles")


class SimulationError(Exception):
    """ASTRA-sim is missing, rejected the input, or did not finish every NPU."""


@dataclass(frozen=True)
class SimulationResult:
    """Per NPU: ``finished_ns`` the simulated time it finished its trace, ``exposed_ns`` the
    part of it not spent in compute nodes; ``step_ns`` the latest finish (the step)."""

    finished_ns: Mapping[int, int]
    exposed_ns: Mapping[int, int]

    @property
    def step_ns(self) -> int:
        """The step time: the latest NPU's finish."""
        return max(self.finished_ns.values(), default=0)


def parse_finished(output: str, npus: int) -> SimulationResult:
    """The ``finished`` lines of ASTRA-sim's output, one per NPU: printed by
    ``Workload::report`` (astra-sim ``c459ab6``, ``astra-sim/workload/Workload.cc:418-423``:
    ``"sys[{}] finished, {} cycles, exposed communication {} cycles."`` with the current
    tick and the tick minus the GPU compute time).  Raises :class:`SimulationError` unless
    each NPU ``0..npus-1`` reported once: an NPU without a line deadlocked or was cut off
    (ASTRA-sim still exits 0)."""
    finished: dict[int, int] = {}
    exposed: dict[int, int] = {}
    for m in _FINISHED.finditer(output):
        npu = int(m.group(1))
        finished[npu], exposed[npu] = int(m.group(2)), int(m.group(3))
    missing = [n for n in range(npus) if n not in finished]
    if missing:
        raise SimulationError(f"ASTRA-sim did not finish {len(missing)} of {npus} NPUs "
                              f"(first: {missing[0]}): the simulation deadlocked or stopped")
    return SimulationResult(finished, exposed)


def find_binary(given: str | None) -> Path:
    """The ASTRA-sim binary: ``given``, else the :data:`ENV_BINARY` environment variable;
    :class:`SimulationError` when neither names an executable file."""
    name = given or os.environ.get(ENV_BINARY)
    if not name:
        raise SimulationError(f"no ASTRA-sim binary: give --astra-sim BIN or set {ENV_BINARY} "
                              "(e.g. AstraSim_Analytical_Congestion_Unaware)")
    path = Path(name)
    if not path.is_file() or not os.access(path, os.X_OK):
        found = shutil.which(name)
        if found is None:
            raise SimulationError(f"ASTRA-sim binary '{name}' is not an executable file")
        path = Path(found)
    return path.resolve()


def run_astra_sim(binary: Path, bundle: Path, npus: int, timeout: float | None = None
                  ) -> SimulationResult:
    """Run ``binary`` on the ``chakra-et`` directory ``bundle`` (``npus`` trace files) in a
    temporary working directory and parse its result; :class:`SimulationError` when it
    exits non-zero (its last output lines in the message), times out, or leaves an NPU
    unfinished."""
    files = {"workload": bundle / TRACE_PREFIX, "system": bundle / "system.json",
             "network": bundle / "network.yml", "remote-memory": bundle / "remote_memory.json",
             "comm-group": bundle / "comm_group.json"}
    args = [str(binary)] + [f"--{k}-configuration={v.resolve()}" for k, v in files.items()]
    with tempfile.TemporaryDirectory(prefix="cmx-astra-") as work:
        try:
            done = subprocess.run(args, cwd=work, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SimulationError(f"ASTRA-sim did not finish within {timeout:g} s") from None
        except OSError as err:
            raise SimulationError(f"cannot run '{binary}': {err.strerror or err}") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-3:])
        raise SimulationError(f"ASTRA-sim exited with status {done.returncode}:\n{tail}")
    return parse_finished(output, npus)


@dataclass(frozen=True)
class StepComparison:
    """A simulated step next to the plan's estimate of the same events."""

    role: str
    instance: int
    layers: int
    npus: int
    simulated_us: float
    estimate_us: float
    binary: str
    all_to_alls: int = 0

    def to_json(self) -> dict[str, object]:
        """The comparison as ``cmx simulate --json`` prints it."""
        return {"role": self.role, "instance": self.instance, "layers": self.layers,
                "npus": self.npus,
                "simulated_us": round(self.simulated_us, 3),
                "estimate_us": round(self.estimate_us, 3),
                "simulated_over_estimate": round(self.simulated_us / self.estimate_us, 4)
                if self.estimate_us else None,
                "all_to_alls": self.all_to_alls, "astra_sim": self.binary}

    def line(self) -> str:
        """One line for people."""
        what = "whole step" if self.layers <= 0 else f"layers 0-{self.layers - 1}"
        diff = (self.simulated_us / self.estimate_us - 1) * 100 if self.estimate_us else 0.0
        return (f"{self.role} step ({what}, instance {self.instance}, {self.npus} NPUs): "
                f"ASTRA-sim "
                f"{self.simulated_us:,.1f} us, estimate {self.estimate_us:,.1f} us "
                f"({diff:+.1f} %)")


def simulate_step(ctx: EmitContext, binary: Path, timeout: float | None = None
                  ) -> StepComparison:
    """Emit ``chakra-et`` for ``ctx`` into a temporary directory, run ``binary`` on it and
    compare the step with the plan's estimate.  Raises :class:`SimulationError` and the
    emitter's :class:`~supernode_dsl.diagnostics.CmxError`."""
    tree = ChakraEtEmitter().emit(ctx)
    estimate = json.loads(tree.files["estimate.json"])
    npus = sum(1 for name in tree.files if name.endswith(".et"))
    with tempfile.TemporaryDirectory(prefix="cmx-chakra-") as tmp:
        bundle = Path(tmp) / "bundle"
        write_outputs([Output(bundle, tree)])
        result = run_astra_sim(binary, bundle, npus, timeout)
    return StepComparison(estimate["role"], estimate["instance"], estimate["layers"], npus,
                          result.step_ns / 1e3, float(estimate["estimate_us"]), str(binary),
                          int(estimate["all_to_alls"]))


def back_end_warning(result: StepComparison) -> Diagnostic | None:
    """W004 when ``result`` ran all-to-alls on ASTRA-sim's congestion-unaware binary: it
    gives every message the whole link, so a direct all-to-all lasts one message's latency
    whatever its size (docs/emitters-simulators.md, "Limits of ASTRA-sim")."""
    if result.all_to_alls == 0 or UNAWARE not in Path(result.binary).name:
        return None
    return Diagnostic("W004", f"{Path(result.binary).name} does not share links: its "
                      f"{result.all_to_alls} all-to-all(s) per rank last one message's "
                      "latency whatever their size; use AstraSim_Analytical_Congestion_Aware",
                      severity=Severity.WARNING)
