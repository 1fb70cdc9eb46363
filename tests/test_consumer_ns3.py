"""``ns3-topology`` and ``simai-topology`` of every shipped machine, read by the consumers kit's
ports of their readers (``ns3/reader_harness.py``: ASTRA-sim's ns-3 back end
astra-sim/astra-network-ns3 ``8fd360471385`` ``scratch/common.h``, SimAI aliyun/SimAI
``cef83f9ddd96`` ``network_frontend/ns3/common.h``, and ns-3's routing BFS).

Each file must read without error, and every NPU pair must route, or the export must refuse
naming the pairs (ns-3; SimAI: warn, and write the file); then the file written anyway must
have exactly as many unroutable pairs by the kit's BFS as the message counted."""

from __future__ import annotations

import ast
import importlib.util
import re
import warnings
from contextlib import nullcontext
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from consumers import ROOT, kit_file, run_python

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit.simulators import UnroutableWarning

HARNESS = "ns3/reader_harness.py"
MACHINES = {
    "cloudmatrix384": ("cloudmatrix384.cmx", {}),
    "cloudmatrix384-cluster": ("cloudmatrix384-cluster.cmx", {"supernodes": "2"}),
    "gb200-nvl72": ("gb200-nvl72.cmx", {}),
    "h800-cluster": ("h800-cluster.cmx", {"nodes": "2"}),
    "tpu-v4-pod": ("tpu-v4-pod.cmx", {"nx": "4", "ny": "4", "nz": "4"}),
}
REFUSAL = re.compile(r"cannot route (\d+) of (\d+) NPU pairs .* first: (\d+) \(")


@cache
def _context(machine: str) -> tuple[Any, Any, str]:
    name, defines = MACHINES[machine]
    path = ROOT / "topologies" / name
    model = cmx.compile_file(path, defines)
    return model, cmx.build_graph(model), str(path)


def _emit(machine: str, fmt: str, **options: str) -> str:
    model, g, path = _context(machine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = available_emitters()[fmt]().emit(EmitContext(model, g, None, path, options))
    assert isinstance(out, str)
    return out


def _export(machine: str, fmt: str) -> tuple[str, int | None]:
    """The file, and the unroutable pairs the export refused with (None: it did not)."""
    try:
        return _emit(machine, fmt), None
    except CmxError as err:
        found = REFUSAL.search(str(err))
        assert found is not None, str(err)
        return _emit(machine, fmt, unroutable="warn"), int(found[1])


@cache
def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reader_harness", kit_file(HARNESS))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_astra_ns3_reader_routes_or_we_refuse(machine: str, tmp_path: Path) -> None:
    text, refused = _export(machine, "ns3-topology")
    path = tmp_path / "topo.txt"
    path.write_text(text)
    proc = run_python(kit_file(HARNESS), path, "--expect", "astra")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "errors=none" in proc.stdout and "all hosts: True" in proc.stdout
    routing = ast.literal_eval(proc.stdout.split("routing: ", 1)[1].splitlines()[0])
    assert routing["unreachable"] == (refused or 0)


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_simai_reader_reads_every_machine(machine: str, tmp_path: Path) -> None:
    """SimAI's file is written for every machine; pairs SimAI cannot route are a warning
    whose count is what the kit's BFS finds (refusing them left the clusters and the TPU
    pod without a file)."""
    model, g, source = _context(machine)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = available_emitters()["simai-topology"]().emit(EmitContext(model, g, None, source))
    assert isinstance(text, str)
    said = [REFUSAL.search(str(w.message)) for w in caught
            if issubclass(w.category, UnroutableWarning)]
    path = tmp_path / "topo.txt"
    path.write_text(text)
    proc = run_python(kit_file(HARNESS), path, "--expect", "simai")
    assert proc.returncode == 0 and "errors: none" in proc.stdout, proc.stdout + proc.stderr
    read = _harness().simai(text)
    forwarding = [1 if t == 2 else t for t in read["types"]]  # SimAI: NVSwitches forward too
    routing = _harness().routes(read["node_num"], forwarding, read["links"])
    assert routing["unreachable"] == (int(said[0][1]) if said and said[0] else 0)
    assert len(said) == (1 if routing["unreachable"] else 0)
    with pytest.raises(CmxError, match="SimAI cannot route") if said else nullcontext():
        _emit(machine, "simai-topology", unroutable="error")


def test_simai_numbering_follows_simai_own_generator() -> None:
    sample = kit_file("ns3/samples/simai-Spectrum-X_128g_8gps_400Gbps_H800.txt").read_text()
    for text in (sample, _emit("cloudmatrix384", "simai-topology")):
        head, ids = (line.split() for line in text.splitlines()[:2])
        nodes, gpus = int(head[0]), int(head[0]) - int(head[2]) - int(head[3])
        assert [int(x) for x in ids] == list(range(gpus, nodes))  # NVSwitches, then switches
        assert _harness().simai(text)["errors"] == []

