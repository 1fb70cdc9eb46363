"""ASTRA-sim runs what ``astra-network``, ``astra-system`` and ``astra-comm-group`` write.

The consumer is the kit's ASTRA-sim analytical binaries (astra-sim c459ab6, analytical
599a047: ``astra-sim/README.md`` of the kit).  Each case emits the three files, writes a
workload with the kit's ``examples/gen_comm_group_et.py`` (one collective inside each
communicator group, Chakra traces), runs the congestion-unaware binary (and the aware one
where the network has one dimension, its limit) and reads back ``sys[k] finished, T cycles``
(1 cycle = 1 ns).  Chakra is the kit's pure-Python wheel, unpacked once per session onto
``PYTHONPATH``; it needs ``protobuf>=7.35.1`` (a test extra).  The binaries need
``libprotobuf.so.32`` (Debian ``libprotobuf32``, installed by ``.ci/run``): the tests skip
with that reason when ``ldd`` does not find it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from consumers import ROOT, kit_file, run_python

import supernode_dsl as cmx
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.graph import collapse
from supernode_dsl.plan import PlanRequest, plan_deployment

TOPO = ROOT / "topologies"
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"
MIB = 1 << 20
_FINISHED = re.compile(r"sys\[(\d+)\] finished, (\d+) cycles")


@dataclass(frozen=True)
class Bundle:
    """The emitted files of one case in their folder, and the network's shape."""

    folder: Path
    npus: int
    dims: int
    groups: Mapping[str, tuple[int, ...]]


def _binary(back_end: str) -> Path:
    """The kit's ``AstraSim_Analytical_Congestion_<back_end>``; skips when it cannot start."""
    path = kit_file(f"astra-sim/bin/AstraSim_Analytical_Congestion_{back_end}")
    if shutil.which("ldd"):
        ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        missing = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
        if missing:
            pytest.skip(f"{path.name} cannot start, missing {', '.join(missing)} "
                        "(Debian package libprotobuf32; .ci/run installs it)")
    return path


@pytest.fixture(scope="session")
def chakra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the kit's Chakra wheel unpacked, for ``PYTHONPATH`` (the wheel's
    packages have no ``__init__.py``, and zipimport does not find namespace packages)."""
    pytest.importorskip("google.protobuf", minversion="7.35.1",
                        reason="Chakra's et_def_pb2 (gencode 7.35.1) needs protobuf>=7.35.1")
    folder = tmp_path_factory.mktemp("chakra")
    with zipfile.ZipFile(kit_file("astra-sim/chakra/chakra-0.0.4-py3-none-any.whl")) as wheel:
        wheel.extractall(folder)
    return folder


def _emit_bundle(folder: Path, model: Any, graph: Any, plan: Any = None, *,
                 groups: Mapping[str, Iterable[int]] | None = None,
                 options: Mapping[str, str] | None = None) -> Bundle:
    """Write ``network.yml``, ``system.json`` and ``comm_group.json`` (emitted from the plan,
    or ``groups`` as given) into ``folder``."""
    # Workload.cc:71 (astra-sim c459ab6) treats a comm-group path containing "empty" as none.
    assert "empty" not in str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = dict(options or {})
    ctx = EmitContext(model, graph, plan, "case.cmx", options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # approximation warnings: test_emit_simulators.py
        for name, file in (("astra-network", "network.yml"), ("astra-system", "system.json"),
                           *([("astra-comm-group", "comm_group.json")] if plan else [])):
            (folder / file).write_text(str(available_emitters()[name]().emit(ctx)))
    if groups is not None:
        (folder / "comm_group.json").write_text(json.dumps({k: list(v)
                                                             for k, v in groups.items()}))
    (folder / "remote_memory.json").write_text('{"memory-type": "NO_MEMORY_EXPANSION"}')
    dims = collapse(graph, options.get("unit", "accelerator")).dimensions
    read = json.loads((folder / "comm_group.json").read_text())
    return Bundle(folder, math.prod(d.npus for d in dims), len(dims),
                  {k: tuple(v) for k, v in read.items()})


def _ring_all_reduce_ns(bundle: Bundle, graph: Any, size: int) -> float:
    """Ring all-reduce of ``size`` bytes over all NPUs of a one-dimension network, no latency:
    2(n-1)/n S/B plus the reduce-scatter steps' three memory passes over S/n each
    (astra-sim c459ab6 astra-sim/system/PacketBundle.cc:55-61) at ``local-mem-bw``."""
    n, bytes_per_ns = bundle.npus, collapse(graph).dimensions[0].bandwidth  # GB/s = B/ns
    mem = float(json.loads((bundle.folder / "system.json").read_text())["local-mem-bw"])
    return 2 * (n - 1) / n * size / bytes_per_ns + (n - 1) * 3 * size / n / mem


def _workload(chakra: Path, bundle: Bundle, size: int, kind: str = "ALL_REDUCE") -> Path:
    """Per-NPU traces running one ``kind`` of ``size`` bytes inside each group."""
    prefix = bundle.folder / f"et-{kind}-{size}" / "t"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(chakra))
        proc = run_python(kit_file("astra-sim/examples/gen_comm_group_et.py"),
                          bundle.folder / "comm_group.json", str(bundle.npus), str(size), kind,
                          prefix)
    assert proc.returncode == 0, proc.stderr
    return prefix


def _run(back_end: str, bundle: Bundle, workload: Path,
         system: str = "system.json") -> subprocess.CompletedProcess[str]:
    f = bundle.folder
    return subprocess.run(
        [str(_binary(back_end)), f"--workload-configuration={workload}",
         f"--system-configuration={f / system}", f"--network-configuration={f / 'network.yml'}",
         f"--remote-memory-configuration={f / 'remote_memory.json'}",
         f"--comm-group-configuration={f / 'comm_group.json'}"],
        cwd=f, capture_output=True, text=True, timeout=120, check=False)  # writes log/ in cwd


def _simulate(back_end: str, bundle: Bundle, workload: Path,
              system: str = "system.json") -> dict[str, int]:
    """Run ASTRA-sim; assert exit 0 and that every NPU finished; each group's time (cycles =
    ns), which must be the same for all its members."""
    proc = _run(back_end, bundle, workload, system)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    finished = {int(k): int(t) for k, t in _FINISHED.findall(proc.stdout)}
    assert sorted(finished) == list(range(bundle.npus)), "an NPU never finished"
    times = {key: {finished[n] for n in members} for key, members in bundle.groups.items()}
    assert all(len(t) == 1 and min(t) > 0 for t in times.values()), times
    return {key: min(t) for key, t in times.items()}


def _compile(path: Path, **defines: str) -> tuple[Any, Any]:
    model = cmx.compile_file(path, defines)
    return model, cmx.build_graph(model)


def _all(npus: int) -> dict[str, range]:
    return {"1": range(npus)}


def test_tiny_plan_comm_groups_run(chakra: Path, tmp_path: Path) -> None:
    # Fails with keys from "0": CommunicatorGroup.cc:32 Assertion 'id > 0' (rc 134).
    model, graph = _compile(TINY)
    plan = plan_deployment(model, graph, PlanRequest())
    bundle = _emit_bundle(tmp_path, model, graph, plan)
    assert bundle.dims == 1 and sorted(bundle.groups) == ["1", "2", "3"]
    workload = _workload(chakra, bundle, MIB)
    for back_end in ("Unaware", "Aware"):
        times = _simulate(back_end, bundle, workload)
        assert times["2"] == times["3"] < times["1"]  # two 2-NPU prefill groups, 4-NPU decode


def test_bandwidth_is_read_as_written(chakra: Path, tmp_path: Path) -> None:
    """One chunk at a time, the unaware all-reduce grows with the size exactly as the ring
    formula at the graph's bandwidth (the latencies do not grow): fails with decimal GB/s."""
    model, graph = _compile(TOPO / "cloudmatrix384.cmx", nodes="2")
    bundle = _emit_bundle(tmp_path, model, graph, groups=_all(16),
                          options={"active_chunks": "1", "dataset_splits": "1"})
    small, large = 16 * MIB, 64 * MIB
    cycles = [_simulate("Unaware", bundle, _workload(chakra, bundle, s))["1"]
              for s in (small, large)]
    expected = _ring_all_reduce_ns(bundle, graph, large - small)
    assert cycles[1] - cycles[0] == pytest.approx(expected, rel=1e-3)


def test_cloudmatrix384_two_nodes_all_reduce(chakra: Path, tmp_path: Path) -> None:
    """With the default active chunks the congestion-aware all-reduce stays near the ring
    formula (with 1 it is more than twice it)."""
    model, graph = _compile(TOPO / "cloudmatrix384.cmx", nodes="2")
    bundle = _emit_bundle(tmp_path, model, graph, groups=_all(16))
    size = 64 * MIB
    workload = _workload(chakra, bundle, size)
    aware = _simulate("Aware", bundle, workload)["1"]
    unaware = _simulate("Unaware", bundle, workload)["1"]
    formula = _ring_all_reduce_ns(bundle, graph, size)
    assert 0.9 < aware / formula < 1.5, (aware, unaware, formula)
    assert unaware < aware  # no link sharing: two chunks in flight each get the full link


def test_h800_two_nodes_runs_unaware_and_aware_refuses_two_dims(chakra: Path,
                                                                tmp_path: Path) -> None:
    model, graph = _compile(TOPO / "h800-cluster.cmx", nodes="2")
    bundle = _emit_bundle(tmp_path, model, graph, groups=_all(16))
    assert bundle.dims == 2
    workload = _workload(chakra, bundle, 16 * MIB)
    assert _simulate("Unaware", bundle, workload)["1"] > 0
    refused = _run("Aware", bundle, workload)
    assert refused.returncode != 0 and "only support 1-dim topology" in refused.stderr


@pytest.mark.parametrize(("deployment", "back_ends", "options"), [
    ("deepseek-r1-cloudmatrix384.cmx", ("Unaware", "Aware"), {}),
    # 2,048 NPUs: one dataset split (not 4) keeps the run near 2 s
    ("deepseek-v3-h800.cmx", ("Unaware",), {"dataset_splits": "1"}),
])
def test_shipped_deployment_comm_groups_run(chakra: Path, tmp_path: Path, deployment: str,
                                            back_ends: tuple[str, ...],
                                            options: dict[str, str]) -> None:
    """Full size: every role instance of the shipped plan is a group running an all-reduce."""
    model, graph = _compile(TOPO / deployment)
    bundle = _emit_bundle(tmp_path, model, graph, plan_deployment(model, graph, PlanRequest()),
                          options=options)
    workload = _workload(chakra, bundle, 16 * MIB)
    for back_end in back_ends:
        times = _simulate(back_end, bundle, workload)
        sizes = {len(members) for members in bundle.groups.values()}
        for size in sizes:  # groups of one size take one time
            assert len({t for k, t in times.items() if len(bundle.groups[k]) == size}) == 1
