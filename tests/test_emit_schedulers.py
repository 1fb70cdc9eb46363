"""The scheduler emitters: Slurm topology.yaml / topology.conf and Kubernetes labels."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit.schedulers import hostlist

ROOT = Path(__file__).resolve().parent.parent
TOPO = ROOT / "topologies"
SMALL = {
    "cm384": (TOPO / "cloudmatrix384.cmx", {"nodes": "4"}),
    "cluster": (TOPO / "cloudmatrix384-cluster.cmx", {"nodes": "4"}),
    "h800": (TOPO / "h800-cluster.cmx", {"nodes": "64"}),
    "tpu": (TOPO / "tpu-v4-pod.cmx", {"nx": "4", "ny": "4", "nz": "4"}),
}


def _ctx(key: str, **options: str) -> EmitContext:
    path, defines = SMALL[key]
    model = cmx.compile_file(path, defines)
    return EmitContext(model, cmx.build_graph(model), None, str(path), options)


def _emit(name: str, ctx: EmitContext) -> str:
    out = available_emitters()[name]().emit(ctx)
    assert isinstance(out, str)
    return out


def _expand(expr: str) -> list[str]:
    """A minimal Slurm hostlist expander for the expressions hostlist() writes."""
    out: list[str] = []
    for m in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?", expr):
        prefix, ranges = m.group(1), m.group(2)
        if ranges is None:
            out.append(prefix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            out += [f"{prefix}{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _nodes(key: str) -> int:
    g = _ctx(key).graph
    return sum(1 for _, d in g.nodes(data=True) if d["category"] == "node")


def test_hostlist_compresses_and_round_trips() -> None:
    names = ["a-n0", "a-n1", "a-n2", "a-n5", "b7", "sw"]
    assert hostlist(names) == "a-n[0-2,5],b7,sw"
    assert _expand(hostlist(names)) == names


@pytest.mark.parametrize("key", sorted(SMALL))
def test_topology_yaml_lists_every_node_once(key: str) -> None:
    yaml = pytest.importorskip("yaml")
    docs: list[dict[str, Any]] = yaml.safe_load(_emit("slurm-topology-yaml", _ctx(key)))
    assert sum(1 for d in docs if d["cluster_default"]) == 1
    n = _nodes(key)
    for doc in docs:
        if "block" in doc:
            names = [x for b in doc["block"]["blocks"] for x in _expand(b["nodes"])]
            assert len(names) == len(set(names)) == n
            assert doc["block"]["block_sizes"][0] == min(
                len(_expand(b["nodes"])) for b in doc["block"]["blocks"])
        if "tree" in doc:
            sws = doc["tree"]["switches"]
            names = [x for s in sws if "nodes" in s for x in _expand(s["nodes"])]
            assert len(names) == len(set(names)) == n
            known = {s["switch"] for s in sws}
            assert all(set(_expand(s["children"])) <= known for s in sws if "children" in s)


def test_shapes_of_the_shipped_topologies() -> None:
    yaml = pytest.importorskip("yaml")
    cm = yaml.safe_load(_emit("slurm-topology-yaml", _ctx("cm384")))
    assert cm[0]["topology"] == "supernode"
    assert cm[0]["block"]["blocks"] == [{"block": "b0", "nodes": "cm384-n[0-3]"}]
    cluster = yaml.safe_load(_emit("slurm-topology-yaml", _ctx("cluster")))
    assert len(cluster[0]["block"]["blocks"]) == 4
    h800 = yaml.safe_load(_emit("slurm-topology-yaml", _ctx("h800")))
    assert [d["topology"] for d in h800] == ["scaleout"]  # NVLink stays inside a node
    custom = yaml.safe_load(_emit("slurm-topology-yaml", _ctx("cm384", node_prefix="x")))
    assert custom[0]["block"]["blocks"][0]["nodes"] == "x[0-3]"


def test_topology_conf() -> None:
    text = _emit("slurm-topology-conf", _ctx("h800"))
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert "SwitchName=cluster-leaf0-0 Nodes=cluster-n[0-31]" in lines
    assert "SwitchName=cluster-spine0-0 Switches=cluster-leaf0-[0-1]" in lines
    listed = [x for line in lines if " Nodes=" in line
              for x in _expand(line.split(" Nodes=")[1])]
    assert sorted(listed) == sorted(f"cluster-n{i}" for i in range(64))
    with pytest.raises(CmxError, match="no scale-out switch"):
        _emit("slurm-topology-conf", _ctx("tpu"))


def test_k8s_labels() -> None:
    labels = json.loads(_emit("k8s-node-labels", _ctx("cluster")))
    assert len(labels) == _nodes("cluster")
    n0 = labels["cluster-n0"]
    assert n0["accelerator.topograph.run/domain"] == "b0"
    assert n0["fabric.topograph.run/tier-0"] == "cluster-sn0-rdma_leaf0"
    legacy = json.loads(_emit("k8s-node-labels", _ctx("cluster", convention="legacy")))
    assert set(legacy["cluster-n0"]) == {
        "network.topology.nvidia.com/accelerator", "network.topology.nvidia.com/leaf",
        "network.topology.nvidia.com/spine", "network.topology.nvidia.com/core"}
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(_emit("k8s-node-labels", _ctx("cluster", format="yaml"))) == labels


@pytest.mark.parametrize("name", ["slurm-topology-yaml", "slurm-topology-conf",
                                  "k8s-node-labels"])
def test_deterministic(name: str) -> None:
    assert _emit(name, _ctx("cluster")) == _emit(name, _ctx("cluster"))


def test_cli_slurm_yaml(tmp_path: Path) -> None:
    out = tmp_path / "topology.yaml"
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit",
                           "slurm-topology-yaml", str(TOPO / "cloudmatrix384.cmx"),
                           "-D", "nodes=4", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cm384-n[0-3]" in out.read_text()
