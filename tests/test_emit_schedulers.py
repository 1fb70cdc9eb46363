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
from supernode_dsl.emit.schedulers import hostlist, label_value

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
        "network.topology.nvidia.com/accelerator", "network.topology.nvidia.com/block",
        "network.topology.nvidia.com/spine"}
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(_emit("k8s-node-labels", _ctx("cluster", format="yaml"))) == labels


def test_k8s_labels_stop_below_the_virtual_root() -> None:
    """Topograph's tree root has no ID and labels no node: the tiers end at the real top
    switches (the spines of the 4-supernode cluster), not at Slurm's ``cluster-root``."""
    conf = _emit("slurm-topology-conf", _ctx("cluster"))
    assert "SwitchName=cluster-root " in conf  # Slurm keeps its single root
    labels = json.loads(_emit("k8s-node-labels", _ctx("cluster")))
    values = {v for mine in labels.values() for v in mine.values()}
    assert "cluster-root" not in values
    assert labels["cluster-n0"]["fabric.topograph.run/tier-1"] == "cluster-spine0-0"
    assert all("fabric.topograph.run/tier-2" not in mine for mine in labels.values())


def test_label_value_hashes_like_topograph() -> None:
    assert label_value("x" * 63) == "x" * 63
    # FNV-1a 64 test vectors (Go hash/fnv, as Topograph's checkLabel uses it)
    assert label_value("a" * 64) == f"x{_fnv1a64(b'a' * 64):x}"
    assert _fnv1a64(b"a") == 0xAF63DC4C8601EC8C


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


def test_k8s_labels_hash_long_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance name that makes switch names longer than 63 characters: the values are
    hashed (``x`` + 16 hex digits), distinct switches stay distinct."""
    long = "hall7east" * 7
    text = (TOPO / "cloudmatrix384-cluster.cmx").read_text().replace(
        "instance cluster:", f"instance {long}:")
    monkeypatch.chdir(TOPO)
    model = cmx.compile_string(text, {"nodes": "4"})
    ctx = EmitContext(model, cmx.build_graph(model), None, "long.cmx", {})
    labels = json.loads(_emit("k8s-node-labels", ctx))
    n0 = labels[f"{long}-n0"]
    leaf, spine = n0["fabric.topograph.run/tier-0"], n0["fabric.topograph.run/tier-1"]
    assert leaf == label_value(f"{long}-sn0-rdma_leaf0") != spine
    assert re.fullmatch(r"x[0-9a-f]{1,16}", leaf) and re.fullmatch(r"x[0-9a-f]{1,16}", spine)
    assert all(len(v) <= 63 for mine in labels.values() for v in mine.values())


def test_k8s_labels_as_kubectl_commands() -> None:
    labels = json.loads(_emit("k8s-node-labels", _ctx("cluster")))
    text = _emit("k8s-node-labels", _ctx("cluster", format="kubectl"))
    commands = [x for x in text.splitlines() if not x.startswith("#")]
    assert len(commands) == len(labels)
    for line, (node, mine) in zip(commands, labels.items(), strict=True):
        words = line.split()
        assert words[:5] == ["kubectl", "label", "node", node, "--overwrite"]
        assert dict(w.split("=", 1) for w in words[5:]) == mine


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
