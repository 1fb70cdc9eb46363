"""The scheduler exports handed to their real consumers (the kit's ``checks/k8s`` and
``slurm/``, found through tests/consumers.py).

* Kubernetes: every shipped machine's ``k8s-node-labels`` pass the apimachinery label rules
  (``check_k8s_labels.py``), and the ``format=kubectl`` commands run through the real
  ``kubectl label --local`` (``kubectl_label_local.sh``), for the first nodes of each machine.
* Slurm 26.05 (``slurmctld`` on localhost with fake nodes, ``check-topology.sh``) loads
  ``slurm-topology-yaml`` and ``slurm-topology-conf`` of the CloudMatrix384 cluster (two
  supernodes) and of the H800 cluster, and ``scontrol show topology`` shows the blocks and
  switches we wrote.

Slurm and kubectl come from Debian's registry once per machine (``fetch-slurm.sh``, about
45 MB) into pytest's cache directory; the tests skip with the reason when that fails.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest
from consumers import ROOT, kit_file, run_python

import supernode_dsl as cmx
from supernode_dsl.elaborate import Model
from supernode_dsl.emit import EmitContext, available_emitters

TOPO = ROOT / "topologies"
#: every shipped machine (the deployments reuse these), small where the default is large
MACHINES = {
    "cloudmatrix384": {"nodes": "4"},
    "cloudmatrix384-cluster": {"nodes": "2"},
    "gb200-nvl72": {},
    "h800-cluster": {"nodes": "96"},  # 3 leaves: two spines and Slurm's virtual root
    "tpu-v4-pod": {"nx": "4", "ny": "4", "nz": "4"},
}
KUBECTL_NODES = 4  # kubectl runs ~60 ms a node; the label shapes repeat after the first few
LONG = "hall7east" * 7  # 63 characters: every switch name under it is longer


@functools.cache
def _compiled(path: Path, defines: tuple[tuple[str, str], ...]) -> tuple[Model, nx.Graph]:
    """Each machine compiled once for the module's tests."""
    model = cmx.compile_file(path, dict(defines))
    return model, cmx.build_graph(model)


def _emit(name: str, path: Path, defines: dict[str, str], **options: str) -> str:
    model, g = _compiled(path, tuple(sorted(defines.items())))
    out = available_emitters()[name]().emit(EmitContext(model, g, None, str(path), options))
    assert isinstance(out, str)
    return out


@pytest.fixture(scope="module")
def long_named(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CloudMatrix384 cluster (two nodes a supernode) under a 63-character instance
    name, so that every switch's label value needs Topograph's hash."""
    text = (TOPO / "cloudmatrix384-cluster.cmx").read_text().replace(
        'import "cloudmatrix384.cmx"', f'import "{TOPO / "cloudmatrix384.cmx"}"').replace(
        "instance cluster:", f"instance {LONG}:")
    path = tmp_path_factory.mktemp("long") / "long.cmx"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def slurm_dist(request: pytest.FixtureRequest) -> Path:
    """Slurm 26.05 and kubectl unpacked by the kit's ``fetch-slurm.sh`` into the pytest cache
    (a no-op once there); skips with the script's error when Debian's registry is out of
    reach."""
    script = kit_file("slurm/fetch-slurm.sh")
    dest = request.config.cache.mkdir("cmx-slurm-dist") if request.config.cache else \
        request.getfixturevalue("tmp_path_factory").mktemp("slurm-dist")
    try:
        proc = subprocess.run([str(script), str(dest)], capture_output=True, text=True,
                              timeout=600, check=False, env={**os.environ, "WITH_KUBECTL": "1"})
    except subprocess.TimeoutExpired:
        pytest.skip("fetch-slurm.sh: no answer from Debian's registry in 600 s")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"Slurm could not be fetched from Debian's registry: {last}")
    return dest


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_labels_pass_the_kubernetes_rules(machine: str, tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(_emit("k8s-node-labels", TOPO / f"{machine}.cmx", MACHINES[machine]))
    proc = run_python(kit_file("checks/k8s/check_k8s_labels.py"), labels, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: every key/value valid" in proc.stdout


def test_long_values_pass_the_kubernetes_rules(long_named: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text(_emit("k8s-node-labels", long_named, {"nodes": "2"}))
    proc = run_python(kit_file("checks/k8s/check_k8s_labels.py"), labels, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _kubectl_run(slurm_dist: Path, path: Path, defines: dict[str, str], out: Path
                 ) -> subprocess.CompletedProcess[str]:
    """Our ``format=kubectl`` commands (the first nodes) through the kit's runner of the real
    ``kubectl label --local``: the kit's own command file is replaced by ours."""
    kubectl = slurm_dist / "bin" / "kubectl"
    if not kubectl.exists():
        pytest.skip(f"no kubectl in {slurm_dist}")
    labels = out / "labels.json"
    out.mkdir()
    labels.write_text(_emit("k8s-node-labels", path, defines))
    run_python(kit_file("checks/k8s/check_k8s_labels.py"), labels, out)  # node manifests
    script = _emit("k8s-node-labels", path, defines, format="kubectl")
    commands = [x for x in script.splitlines() if x.startswith("kubectl label node ")]
    assert len(commands) == len(json.loads(labels.read_text()))
    (out / "label-commands.sh").write_text("\n".join(commands[:KUBECTL_NODES]) + "\n")
    return subprocess.run([str(kit_file("checks/k8s/kubectl_label_local.sh")), str(kubectl),
                           str(out)], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_kubectl_applies_the_label_commands(machine: str, slurm_dist: Path,
                                            tmp_path: Path) -> None:
    proc = _kubectl_run(slurm_dist, TOPO / f"{machine}.cmx", MACHINES[machine],
                        tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 rejected" in proc.stdout


def test_kubectl_applies_hashed_values(long_named: Path, slurm_dist: Path,
                                       tmp_path: Path) -> None:
    proc = _kubectl_run(slurm_dist, long_named, {"nodes": "2"}, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _free_port_pair() -> int:
    """A port P with P and P+1 free on this host (SlurmctldPort, SlurmdPort)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("", 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("", port + 1))
                except OSError:
                    continue
        return port
    pytest.skip("no two consecutive free ports for slurmctld")


def _slurm(slurm_dist: Path, text: str, suffix: str, tmp_path: Path, *extra: str) -> str:
    """``scontrol show topology`` (and ``extra`` commands) after slurmctld loaded ``text``."""
    path = tmp_path / f"topology{suffix}"
    path.write_text(text)
    proc = subprocess.run([str(kit_file("slurm/check-topology.sh")), str(slurm_dist),
                           str(path), str(_free_port_pair()), *extra],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "== slurm-wlm 26.05" in proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, str]]:
    """(topology.yaml, topology.conf) of the CloudMatrix384 cluster with two supernodes."""
    path, defines = TOPO / "cloudmatrix384-cluster.cmx", {"supernodes": "2"}
    yield (_emit("slurm-topology-yaml", path, defines),
           _emit("slurm-topology-conf", path, defines))


@pytest.fixture(scope="module")
def h800() -> Iterator[tuple[str, str]]:
    """(topology.yaml, topology.conf) of the H800 cluster as shipped (256 nodes)."""
    path = TOPO / "h800-cluster.cmx"
    yield _emit("slurm-topology-yaml", path, {}), _emit("slurm-topology-conf", path, {})


def test_slurm_loads_the_cloudmatrix_cluster(slurm_dist: Path, cluster: tuple[str, str],
                                             tmp_path: Path) -> None:
    yaml_out = _slurm(slurm_dist, cluster[0], ".yaml", tmp_path, "show topology scaleout")
    blocks, scaleout = yaml_out.split("== scontrol show topology scaleout")
    assert "BlockName=b0 BlockIndex=0 Nodes=cluster-n[0-47] BlockSize=48" in blocks
    assert "BlockName=b1 BlockIndex=1 Nodes=cluster-n[48-95] BlockSize=48" in blocks
    assert "SwitchName=cluster-sn1-rdma_leaf0 Level=0 LinkSpeed=0 Nodes=cluster-n[48-95]" \
        in scaleout
    assert "SwitchName=cluster-spine0-47 Level=1 " in scaleout
    conf_out = _slurm(slurm_dist, cluster[1], ".conf", tmp_path)
    assert "SwitchName=cluster-root Level=2 LinkSpeed=1 Nodes=cluster-n[0-95] " \
           "Switches=cluster-spine0-[0-47]" in conf_out


def test_slurm_loads_the_h800_cluster(slurm_dist: Path, h800: tuple[str, str],
                                      tmp_path: Path) -> None:
    for text, suffix in zip(h800, (".yaml", ".conf"), strict=True):
        out = _slurm(slurm_dist, text, suffix, tmp_path)
        assert " Level=0 " in out and "Nodes=cluster-n[224-255]" in out
        assert "SwitchName=cluster-spine0-0 Level=1 " in out
        assert "Switches=cluster-leaf0-[0-7]" in out
        assert "BlockName=" not in out  # NVLink stays inside a node: no block topology
    assert "SwitchName=cluster-root Level=2 LinkSpeed=1 Nodes=cluster-n[0-255] " \
           "Switches=cluster-spine0-[0-3]" in out
