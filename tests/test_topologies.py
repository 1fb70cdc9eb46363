"""Every shipped topology compiles, and its counts and bandwidths match hand arithmetic.

Every expected number below is computed here from the public facts (the factors are
commented with their source), never pasted from the compiler's output.  Sources:
shared reference cloudmatrix384.md (CloudMatrix384) and other-machines.md (GB200 NVL72,
DeepSeek H800 cluster, TPU v4).  GB/s = 1e9 B/s; bandwidths are one direction.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.diagnostics import DiagnosticSink
from supernode_dsl.graph import plane_summary, shortest_path
from supernode_dsl.plan.spec import read_model

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"
GB = 1e9        # bytes per GB
GBPS = 1e9 / 8  # bytes per Gbit
US = 1e-6       # seconds per microsecond

ALL_FILES = sorted(TOPOLOGIES.rglob("*.cmx"))

# Files with a test of their numbers below (relative to topologies/).
COVERED = {
    "cloudmatrix384.cmx",
    "cloudmatrix384-cluster.cmx",
    "cloudmatrix384-scaleout.cmx",
    "gb200-nvl72.cmx",
    "h800-cluster.cmx",
    "tpu-v4-pod.cmx",
    "lib/ascend.cmx",
    "lib/nvidia.cmx",
    "models/deepseek-v3.cmx",
    "deepseek-r1-cloudmatrix384.cmx",
    "deepseek-v3-h800.cmx",
    "models/qwen3-235b-a22b.cmx",       # and tests/test_models.py
    "models/mixtral-8x22b.cmx",
    "calibration/cloudmatrix-infer.cmx",          # tests/test_calibrate.py
    "calibration/cloudmatrix-infer.fitted.cmx",   # tests/test_calibrate.py
    "qwen3-235b-cloudmatrix384.cmx",
    "mixtral-8x22b-h800.cmx",
    "deepseek-v3-gb200-nvl72.cmx",
    "dragonfly.cmx",
    "ubmesh-rack.cmx",
}


@cache
def _compiled(name: str, defines: tuple[tuple[str, str], ...] = ()) -> tuple[cmx.Model, nx.Graph]:
    model = cmx.compile_file(TOPOLOGIES / name, defines=dict(defines))
    return model, cmx.build_graph(model)


def compiled(name: str, **defines: str) -> tuple[cmx.Model, nx.Graph]:
    """Model and graph of a topology (cached: several tests read the same compilation)."""
    return _compiled(name, tuple(sorted(defines.items())))


@cache
def _summary(name: str, defines: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return plane_summary(_compiled(name, defines)[1])


def summary(name: str, **defines: str) -> dict[str, Any]:
    return _summary(name, tuple(sorted(defines.items())))


def bisection(name: str, plane: str, **defines: str) -> float:
    return float(summary(name, **defines)[plane]["bisection_bandwidth"])


def links(name: str, plane: str, **defines: str) -> int:
    return int(summary(name, **defines)[plane]["links"])


# ---- every file ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(TOPOLOGIES)))
def test_every_file_compiles_and_builds(path: Path) -> None:
    """Parse, elaborate and build the graph (which also checks switch port budgets)."""
    model, g = compiled(str(path.relative_to(TOPOLOGIES)))
    assert model.num_instances == g.number_of_nodes()
    # a model-only file describes no hardware: it has specs and no links
    assert g.number_of_edges() > 0 or model.specs


def test_every_file_has_a_numbers_test() -> None:
    """A new topology file needs its hand-computed counts and bisection added here."""
    shipped = {str(p.relative_to(TOPOLOGIES)) for p in ALL_FILES}
    assert shipped - COVERED == set(), "add tests for these files to tests/test_topologies.py"


# ---- libraries (a file without `instance`: one instance of each type) -------------------------

def test_ascend_library() -> None:
    model, _ = compiled("lib/ascend.cmx")
    types = model.count_by_type()
    # One of each of the 8 types; Ascend910C brings 2 more Ascend910CDie: 1 + 2.
    assert types["Ascend910CDie"] == 1 + 2
    assert types["Ascend910C"] == types["Kunpeng920"] == types["UBSwitchL1"] == 1
    # d2d: the one Ascend910C's die pair at 270 GB/s (540 GB/s bidirectional / 2).
    assert bisection("lib/ascend.cmx", "d2d") == pytest.approx(270 * GB, rel=0.01)


def test_nvidia_library() -> None:
    model, g = compiled("lib/nvidia.cmx")
    types = model.count_by_type()
    # One B200 (2 dies) + one standalone B200Die.
    assert types["B200Die"] == 1 + 2
    for t in ("B200", "Grace", "NVLink5Switch", "NVSwitch3", "H100SXM", "H800SXM",
              "Xeon8480C", "ConnectX7", "StorageRoCE400G", "IBSwitch64x400G"):
        assert types[t] == 1, t
    by_type = {d["type"]: d for _, d in g.nodes(data=True)}
    # NVLink 5 ASIC: 144 ports per tray / 2 ASICs [SEC]; 50 GB/s per port per direction.
    assert by_type["NVLink5Switch"]["ports"] == 144 // 2
    assert by_type["NVLink5Switch"]["port_bw"] == pytest.approx(50 * GB)
    # NVSwitch gen 3: 64 ports, 25.6 Tb/s bidirectional [NVS] -> 25.6e12/8/2/64 per port.
    assert by_type["NVSwitch3"]["port_bw"] == pytest.approx(25.6e12 / 8 / 2 / 64)
    # B200: 372 GB per superchip / 2 GPUs [GBP]; BF16 2.5 PF dense [BW T2].
    assert by_type["B200"]["hbm"] == pytest.approx(372e9 / 2)
    assert by_type["B200"]["compute.bf16"] == pytest.approx(2.5e15)
    # 64-port 400G IB switch [DSI].
    assert by_type["IBSwitch64x400G"]["ports"] == 64
    assert by_type["IBSwitch64x400G"]["port_bw"] == pytest.approx(400 * GBPS)


# ---- Huawei CloudMatrix384 ------------------------------------------------------------------

CM = "cloudmatrix384.cmx"
CM_NODE_UB_UP = 7 * 16 * 28 * GB  # 7 L1 chips per node x 16 L2 uplinks each x 28 GB/s = 3,136 GB/s


def test_cloudmatrix384_counts() -> None:
    model, _ = compiled(CM)
    cat, types = model.count_by_category(), model.count_by_type()
    assert cat["accelerator"] == 48 * 8      # 48 nodes x 8 Ascend 910C
    assert cat["die"] == 48 * 8 * 2          # 2 dies per 910C
    assert cat["cpu"] == 48 * 4              # 4 Kunpeng per node
    assert cat["node"] == 48
    assert types["UBSwitchL1"] == 48 * 7     # 7 L1 chips (sub-planes) per node
    assert types["UBSwitchL2"] == 7 * 16     # 16 L2 chips per sub-plane


def test_cloudmatrix384_bisection() -> None:
    # UB: 24 | 24 nodes; each node's L1 uplinks carry 3,136 GB/s = 75,264 GB/s.
    assert bisection(CM, "ub") == pytest.approx(24 * CM_NODE_UB_UP, rel=0.01)
    assert bisection(CM, "ub") == pytest.approx(75_264 * GB, rel=0.01)
    # RDMA: 24 nodes x 16 dies x 200 Gbps per die, the rail leaves are non-blocking.
    assert bisection(CM, "rdma") == pytest.approx(24 * 16 * 200 * GBPS, rel=0.01)
    # VPC: 24 nodes x one 400 Gbps Qingtian card.
    assert bisection(CM, "vpc") == pytest.approx(24 * 400 * GBPS, rel=0.01)
    # d2d joins the two dies of one NPU only: the halves are not connected.
    assert bisection(CM, "d2d") == 0


def test_cloudmatrix384_36_nodes() -> None:
    model, _ = compiled(CM, nodes="36")
    assert model.count_by_category()["accelerator"] == 36 * 8
    assert bisection(CM, "ub", nodes="36") == pytest.approx(18 * CM_NODE_UB_UP, rel=0.01)


def test_cloudmatrix384_ub_latency() -> None:
    _, g = compiled(CM)
    # Same node, two NPUs: die -> L1 -> die, 2 x 0.6 us (the paper measures 1.2 us).
    intra = shortest_path(g, "ub", "cm384.node[0].npu[0].die[0]", "cm384.node[0].npu[1].die[0]")
    assert intra is not None and intra.latency == pytest.approx(2 * 0.6 * US)
    assert intra.latency == pytest.approx(1.2 * US)
    # Two nodes: die -> L1 -> L2 -> L1 -> die, 2 x 0.6 + 2 x 0.35 us (paper: 1.9 us).
    inter = shortest_path(g, "ub", "cm384.node[0].npu[0].die[0]", "cm384.node[5].npu[3].die[1]")
    assert inter is not None and inter.latency == pytest.approx((2 * 0.6 + 2 * 0.35) * US)
    assert inter.latency == pytest.approx(1.9 * US)
    assert len(inter.hops) == 5


def test_cloudmatrix384_cluster_two_supernodes() -> None:
    name = "cloudmatrix384-cluster.cmx"
    model, _ = compiled(name, supernodes="2")
    cat, types = model.count_by_category(), model.count_by_type()
    assert cat["accelerator"] == 2 * 384
    assert cat["node"] == 2 * 48
    # 9 RoCE switches per supernode (8 rail leaves + 1 VPC) + 8 rails x 48 spines.
    assert types["RoCESwitch"] == 2 * 9 + 8 * 48
    # RDMA, supernode 0 | supernode 1: 384 NPUs x 2 dies x 200 Gbps ...
    assert bisection(name, "rdma", supernodes="2") == pytest.approx(384 * 2 * 200 * GBPS,
                                                                    rel=0.01)
    # ... equal to the spine cut: 8 rails x 48 spines x 1 uplink x 400 Gbps.
    assert bisection(name, "rdma", supernodes="2") == pytest.approx(8 * 48 * 400 * GBPS,
                                                                    rel=0.01)
    # UB does not join supernodes.
    assert bisection(name, "ub", supernodes="2") == 0


# ---- CloudMatrix384 scale-out: three-tier RoCE (leaves, pod spines, cores) --------------------

SO = "cloudmatrix384-scaleout.cmx"
NPU_RDMA = 400 * GBPS  # one 400G NIC per NPU (2 dies x 200 Gbps)


def scaleout_switches(supernodes: int, pod: int, oversubscription: int = 1) -> int:
    """RoCE switches by hand: 9 per supernode (8 rail leaves + 1 VPC), 12 spines per pod and
    rail, 12 core groups per rail of pod x 4 leaf links / (4 core links x oversubscription)."""
    pods = supernodes // pod
    cores_per_group = pod * (48 // 12) // (4 * oversubscription)
    return supernodes * 9 + pods * 8 * 12 + 8 * 12 * cores_per_group


def test_scaleout_432_counts() -> None:
    # elaborated only (the graph is the benchmark's job): 432 x 384 = 165,888 NPUs
    model = cmx.compile_file(TOPOLOGIES / SO, defines={"supernodes": "432"})
    cat, types = model.count_by_category(), model.count_by_type()
    assert cat["accelerator"] == 432 * 384 == 165_888
    assert cat["die"] == 432 * 384 * 2
    # 27 pods of 16: 3,456 leaves + 432 VPC switches, 8 x 27 x 12 = 2,592 spines,
    # 8 x 12 x 16 = 1,536 cores
    assert types["RoCESwitch"] == 3_456 + 432 + 2_592 + 1_536 == scaleout_switches(432, 16)


def test_scaleout_one_supernode() -> None:
    model, _ = compiled(SO, supernodes="1")
    assert model.count_by_type()["RoCESwitch"] == 9 + 8 * 12 + 8 * 12 * 1
    # 24 | 24 nodes of one supernode: 192 NPUs x 400 Gbps through the rail leaves.
    assert bisection(SO, "rdma", supernodes="1") == pytest.approx(192 * NPU_RDMA, rel=0.01)
    # RDMA links: 768 die-NIC + 384 NIC-leaf, then 8 leaves x 12 spines x 4 (leaf trunk)
    # and 8 x 12 spines x 1 core x 4 (core trunk).
    assert links(SO, "rdma", supernodes="1") == 768 + 384 + 8 * 12 * 4 + 8 * 12 * 1 * 4


def test_scaleout_two_pods() -> None:
    d = {"supernodes": "2", "pod_supernodes": "1"}
    model, g = compiled(SO, **d)
    assert model.count_by_type()["RoCESwitch"] == scaleout_switches(2, 1) == 18 + 192 + 96
    # supernode 0 | supernode 1, which are pod 0 | pod 1: 384 NPUs x 400 Gbps, equal to pod
    # 0's spine uplinks, 8 rails x 12 spines x 1 core x 4 links x 400 Gbps (1:1).
    assert bisection(SO, "rdma", **d) == pytest.approx(384 * NPU_RDMA, rel=0.01)
    assert bisection(SO, "rdma", **d) == pytest.approx(8 * 12 * 4 * 400 * GBPS, rel=0.01)
    assert links(SO, "rdma", **d) == 2 * (768 + 384 + 8 * 12 * 4) + 2 * 8 * 12 * 4
    # die -> NIC (0.5 us) -> leaf -> spine -> core -> spine -> leaf -> NIC (6 x 1 us) -> die
    # (0.5 us): 7 us; the paper's RoCE across leaves is 5.6 us end to end (DSI Table 5).
    path = shortest_path(g, "rdma", "fabric.sn[0].node[0].npu[0].die[0]",
                         "fabric.sn[1].node[0].npu[0].die[0]")
    assert path is not None and path.latency == pytest.approx(7 * US)
    assert len(path.hops) == 9 and "core" in path.hops[4]
    assert bisection(SO, "ub", **d) == 0


def test_scaleout_oversubscribed() -> None:
    d = {"supernodes": "4", "pod_supernodes": "2", "oversubscription": "2"}
    model, _ = compiled(SO, **d)
    # 2 pods; cores per group = 2 x 4 / (4 x 2) = 1
    assert model.count_by_type()["RoCESwitch"] == scaleout_switches(4, 2, 2) == 36 + 192 + 96
    # pod 0 | pod 1: 768 NPUs x 400 Gbps would be 1:1; spine uplinks are half of the
    # downlinks: 8 x 12 spines x 1 core x 4 links x 400 Gbps = 384 x 400 Gbps.
    assert bisection(SO, "rdma", **d) == pytest.approx(384 * NPU_RDMA, rel=0.01)
    assert bisection(SO, "rdma", **d) == pytest.approx(768 * NPU_RDMA / 2, rel=0.01)


# ---- NVIDIA GB200 NVL72 ----------------------------------------------------------------------

NVL = "gb200-nvl72.cmx"


def test_gb200_counts() -> None:
    model, _ = compiled(NVL)
    cat, types = model.count_by_category(), model.count_by_type()
    assert cat["node"] == 18                 # compute trays [BW T2]
    assert cat["accelerator"] == 18 * 4      # 4 GPUs per tray = 72
    assert cat["die"] == 72 * 2              # 2 dies per B200 package [BW]
    assert cat["cpu"] == 18 * 2              # 2 Grace per tray = 36
    assert cat["board"] == 9                 # NVLink switch trays
    assert types["NVLink5Switch"] == 9 * 2   # 2 ASICs per switch tray [SEC]
    assert types["ConnectX7"] == 18 * 4      # one NIC per GPU [MLP]
    assert cat["rack"] == 1


def test_gb200_nvlink() -> None:
    # Every GPU has 1 link to each of the 18 ASICs.
    assert links(NVL, "nvlink") == 72 * 18
    # 36 | 36 GPUs through non-blocking switches: 36 GPUs x 18 links x 50 GB/s = 32.4 TB/s.
    assert bisection(NVL, "nvlink") == pytest.approx(36 * 18 * 50 * GB, rel=0.01)
    assert bisection(NVL, "nvlink") == pytest.approx(32.4e12, rel=0.01)
    # C2C: 2 superchips per tray x 2 GPUs; only inside trays, so no bisection.
    assert links(NVL, "c2c") == 18 * 2 * 2
    assert bisection(NVL, "c2c") == 0
    # Scale-out NICs only (the fabric is outside the rack).
    assert bisection(NVL, "ib") == 0


def test_gb200_ports_and_paths() -> None:
    _, g = compiled(NVL)
    # Every ASIC port is used: 72 GPUs x 1 link each.
    for n, d in g.nodes(data=True):
        if d["type"] == "NVLink5Switch":
            used = sum(e["count"] for _, _, e in g.edges(n, data=True))
            assert used == d["ports"] == 72
    # GPU -> switch -> GPU in one hop of switching, 18 x 50 GB/s = 900 GB/s between two GPUs.
    p = shortest_path(g, "nvlink", "nvl72.tray[0].gpu[0]", "nvl72.tray[17].gpu[3]")
    assert p is not None and len(p.hops) == 3
    assert p.max_flow_bandwidth == pytest.approx(18 * 50 * GB, rel=0.01)
    # C2C: 900 GB/s bidirectional per superchip, split evenly (choice) -> 225 GB/s/dir per GPU.
    assert g.edges["nvl72.tray[0].cpu[1]", "nvl72.tray[0].gpu[3]"]["bandwidth"] == \
        pytest.approx(900 * GB / 2 / 2)


# ---- DeepSeek H800 cluster -------------------------------------------------------------------

H8 = "h800-cluster.cmx"


def test_h800_counts_default() -> None:
    model, _ = compiled(H8)
    cat, types = model.count_by_category(), model.count_by_type()
    assert cat["node"] == 256                       # [DSV3] 2,048 GPUs / 8
    assert cat["accelerator"] == 256 * 8            # 2,048 H800
    assert types["NVSwitch3"] == 256 * 4            # 4 NVSwitch chips per HGX board
    assert types["ConnectX7"] == 256 * 8            # 8 x 400G CX-7 per node [DSI]
    assert types["StorageRoCE400G"] == 256          # 1 storage NIC per node [DSI]
    # Per plane, 256 endpoints: 256/32 = 8 leaves + 8/2 = 4 spines; 8 planes -> 96 switches.
    assert types["IBSwitch64x400G"] == 8 * (256 // 32 + 256 // 32 // 2)
    assert types["IBSwitch64x400G"] == 96


def test_h800_bandwidth_default() -> None:
    # ib links: GPU-NIC 2,048 + NIC-leaf 2,048 + 8 planes x 8 leaves x 32 uplinks.
    assert links(H8, "ib") == 2048 + 2048 + 8 * 8 * 32
    # 128 | 128 nodes: 1,024 GPUs x 50 GB/s (400G), each plane non-blocking = 51.2 TB/s;
    # the same as 8 planes x 4 leaves x 32 uplinks x 50 GB/s.
    assert bisection(H8, "ib") == pytest.approx(128 * 8 * 50 * GB, rel=0.01)
    assert bisection(H8, "ib") == pytest.approx(8 * 4 * 32 * 50 * GB, rel=0.01)
    # NVLink: 2,048 GPUs x 4 switches x 2 links each (8 links per GPU, a stated choice).
    assert links(H8, "nvlink") == 2048 * 4 * 2
    # NVLink stays inside a node: no bisection across nodes.
    assert bisection(H8, "nvlink") == 0


def test_h800_ports() -> None:
    _, g = compiled(H8)
    for n, d in g.nodes(data=True):
        if d["type"] == "IBSwitch64x400G":
            used = sum(e["count"] for _, _, e in g.edges(n, data=True))
            # Leaves: 32 down + 32 up; spines: 8 leaves x 32/4 = 64.
            assert used == 64, n


# (nodes, leaves per plane = ceil(nodes / 32), spines per plane = ceil(leaves / 2) rounded
# up to a power of two, at least 1)
@pytest.mark.parametrize(("nodes", "leaves", "spines"),
                         [(1, 1, 1), (4, 1, 1), (32, 1, 1), (100, 4, 2)])
def test_h800_smaller(nodes: int, leaves: int, spines: int) -> None:
    model, _ = compiled(H8, nodes=str(nodes))
    assert model.count_by_category()["accelerator"] == 8 * nodes
    assert model.count_by_type()["IBSwitch64x400G"] == 8 * (leaves + spines)
    # nodes/2 | nodes/2 nodes, 8 GPUs each at 50 GB/s; non-blocking leaves and spines
    # (with one node the 8 GPUs sit on 8 disjoint planes: the IB halves never meet).
    half = nodes // 2
    assert bisection(H8, "ib", nodes=str(nodes)) == pytest.approx(half * 8 * 50 * GB, rel=0.01)


def test_h800_one_node_nvlink() -> None:
    # 4 | 4 GPUs through the NVSwitches: 4 x 200 GB/s (H800, [DSI]) = 0.8 TB/s.
    assert bisection(H8, "nvlink", nodes="1") == pytest.approx(4 * 200 * GB, rel=0.01)


def test_h800_latency() -> None:
    _, g = compiled(H8)
    gpu = "cluster.node[{}].hgx.gpu[{}]"
    # Same leaf (nodes 0 and 1 on leaf 0): 2 host sides x 0.95 + 2 switch hops x 0.45
    # = 2.8 us, DeepSeek's measurement [DSI Table 5].
    same = shortest_path(g, "ib", gpu.format(0, 0), gpu.format(1, 0))
    assert same is not None and same.latency == pytest.approx(2.8 * US)
    # Across leaves (node 32 is on leaf 1): + 2 x 0.45 (leaf-spine-leaf) = 3.7 us [DSI T5].
    cross = shortest_path(g, "ib", gpu.format(0, 0), gpu.format(32, 0))
    assert cross is not None and cross.latency == pytest.approx(3.7 * US)
    assert len(cross.hops) == 7
    # Rails are disjoint: GPU 0 of one node cannot reach GPU 1 of another over IB.
    assert shortest_path(g, "ib", gpu.format(0, 0), gpu.format(1, 1)) is None
    # NVLink inside a node: 2 hops, 3.33 us [DSI T5]; 8 links x 25 GB/s = 200 GB/s per GPU.
    nv = shortest_path(g, "nvlink", gpu.format(0, 0), gpu.format(0, 5))
    assert nv is not None and nv.latency == pytest.approx(3.33 * US)
    assert nv.max_flow_bandwidth == pytest.approx(200 * GB, rel=0.01)


# ---- Google TPU v4 ---------------------------------------------------------------------------

TPU = "tpu-v4-pod.cmx"
CUBE = {"nx": "4", "ny": "4", "nz": "4"}


def test_tpu_v4_pod() -> None:
    model, _ = compiled(TPU)
    cat = model.count_by_category()
    assert cat["accelerator"] == 16 ** 3     # 4,096 chips [T4P]
    assert cat["node"] == 16 ** 3 // 4       # 4 chips per host: 1,024 hosts [T4P]
    # 6 ICI links per chip, each shared by two chips.
    assert links(TPU, "ici") == 16 ** 3 * 6 // 2
    # Cut across x: 16 x 16 rings, each cut twice (wrap-around), x 50 GB/s = 25.6 TB/s.
    assert bisection(TPU, "ici") == pytest.approx(16 * 16 * 2 * 50 * GB, rel=0.01)
    assert bisection(TPU, "ici") == pytest.approx(25.6e12, rel=0.01)


def test_tpu_v4_cube() -> None:
    model, _ = compiled(TPU, **CUBE)
    assert model.count_by_category()["accelerator"] == 4 ** 3
    assert model.count_by_category()["node"] == 4 ** 3 // 4
    # 4 x 4 rings cut twice x 50 GB/s = 1.6 TB/s.
    assert bisection(TPU, "ici", **CUBE) == pytest.approx(4 * 4 * 2 * 50 * GB, rel=0.01)


def test_tpu_v4_torus_paths() -> None:
    _, g = compiled(TPU)
    # chip (x, y, z) is host[x // 2][y // 2][z].chip[x % 2][y % 2]
    chip = "pod.host[{}][{}][{}].chip[{}][{}]"
    origin = chip.format(0, 0, 0, 0, 0)
    # (8, 8, 8) is the farthest chip of a 16-ring torus: 8 hops per dimension.
    far = shortest_path(g, "ici", origin, chip.format(4, 4, 8, 0, 0))
    assert far is not None and len(far.hops) - 1 == 3 * 8
    # Wrap-around: (15, 0, 0) and (0, 15, 0) and (0, 0, 15) are 1 hop away.
    for x, y, z in ((15, 0, 0), (0, 15, 0), (0, 0, 15)):
        p = shortest_path(g, "ici", origin, chip.format(x // 2, y // 2, z, x % 2, y % 2))
        assert p is not None and len(p.hops) == 2, (x, y, z)
    # Any two chips: 6 links x 50 GB/s of max-flow.
    assert far.max_flow_bandwidth == pytest.approx(6 * 50 * GB, rel=0.01)


# ---- deployments: the machine they import, unchanged, plus model and deployment specs -------

@pytest.mark.parametrize(("name", "model", "kv_per_token"), [
    # (512 + 64) values per token per layer in BF16 (reference §6)
    ("models/deepseek-v3.cmx", "DeepSeekV3", (512 + 64) * 2 * 61),
    # a key and a value per KV head per layer in BF16
    ("models/qwen3-235b-a22b.cmx", "Qwen3_235B_A22B", 2 * 4 * 128 * 2 * 94),
    ("models/mixtral-8x22b.cmx", "Mixtral8x22B", 2 * 8 * 128 * 2 * 56),
])
def test_model_files(name: str, model: str, kv_per_token: int) -> None:
    compiled_model, _ = compiled(name)
    (spec,) = compiled_model.specs
    assert (spec.category, spec.name) == ("model", model)
    sink = DiagnosticSink()
    arch = read_model(spec, sink)
    assert arch is not None and not sink.has_errors
    assert arch.kv_bytes_per_token_layer * arch.layers == kv_per_token


@pytest.mark.parametrize(("path", "accelerators", "deployment"), [
    ("deepseek-r1-cloudmatrix384.cmx", 384, "DeepSeekR1OnCloudMatrix384"),
    ("deepseek-v3-h800.cmx", 256 * 8, "DeepSeekV3OnH800"),
    ("qwen3-235b-cloudmatrix384.cmx", 384, "Qwen3OnCloudMatrix384"),
    ("mixtral-8x22b-h800.cmx", 256 * 8, "Mixtral8x22BOnH800"),
    ("deepseek-v3-gb200-nvl72.cmx", 72, "DeepSeekV3OnGB200NVL72"),
])
def test_deployment_files(path: str, accelerators: int, deployment: str) -> None:
    model, _ = compiled(path)
    assert model.count_by_category()["accelerator"] == accelerators
    assert [s.name for s in model.specs if s.category == "deployment"] == [deployment]


# ---- dragonfly (Kim et al., ISCA 2008): p = 2 terminals, a = 4 routers, h = 2 global ports ----

def _dragonfly_counts(groups: int, p: int = 2, a: int = 4) -> tuple[int, int]:
    """Instances and links of the dragonfly of ``groups`` groups, by hand: the root, then per
    group itself, ``a`` routers and ``a * p`` terminals; per group ``a * p`` terminal links
    and a full mesh of ``a * (a - 1) / 2`` local links; one global link per pair of groups."""
    instances = 1 + groups * (1 + a + a * p)
    links = groups * (a * p + a * (a - 1) // 2) + groups * (groups - 1) // 2
    return instances, links


# groups -> links across the bisection.  With an even number of groups the first half of
# the terminals is groups 0 .. G/2 - 1 and every terminal link and router can feed its global
# links (at most 2 per router to the other half), so the cut is the (G/2)^2 global links
# between the halves.  With G = 9 (72 terminals, 36 | 36) the split runs through group 4:
# its routers 0 and 1 (2 x 2 terminals, global links to groups 0-3) are with the first half,
# routers 2 and 3 (global links to groups 5-8) with the second; the smallest cut is the 16
# global links from groups 0-3 to 5-8 plus group 4's 4 local links from routers {0, 1} to
# {2, 3}: 20.
DRAGONFLY_BISECTION_LINKS = {4: 4, 6: 9, 8: 16, 9: 20}


@pytest.mark.parametrize("groups", sorted(DRAGONFLY_BISECTION_LINKS))
def test_dragonfly_sizes(groups: int) -> None:
    model, g = compiled("dragonfly.cmx", groups=str(groups))
    instances, link_count = _dragonfly_counts(groups)
    assert model.num_instances == instances
    assert links("dragonfly.cmx", "df", groups=str(groups)) == link_count
    # every link is 200 Gb/s = 25 GB/s
    assert bisection("dragonfly.cmx", "df", groups=str(groups)) == pytest.approx(
        DRAGONFLY_BISECTION_LINKS[groups] * 25 * GB, rel=1e-4)
    # router radix p + (a - 1) + h = 2 + 3 + 2 = 7: the full dragonfly (9 groups) uses
    # every port of every router, a smaller one fewer
    used = {sum(d["count"] for *_, d in g.edges(n, data=True))
            for n in g if g.nodes[n]["category"] == "switch"}
    assert used == {7} if groups == 9 else max(used) <= 7


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_dragonfly_family(data: st.DataObject) -> None:
    """Any (p, a, h, groups) the file accepts: the hand counts, every router within its
    radix p + (a - 1) + h, and exactly one global link between every two groups."""
    a = data.draw(st.integers(2, 5), label="a")
    h = data.draw(st.integers(1, 3), label="h")
    p = data.draw(st.integers(1, 3), label="p")
    groups = data.draw(st.integers(2, a * h + 1), label="groups")
    model, g = compiled("dragonfly.cmx", a=str(a), h=str(h), p=str(p), groups=str(groups))
    assert model.num_instances == _dragonfly_counts(groups, p=p, a=a)[0]
    assert g.number_of_edges() == _dragonfly_counts(groups, p=p, a=a)[1]
    between: dict[tuple[str, str], int] = {}
    for u, v in g.edges:
        gu, gv = u.split(".")[1], v.split(".")[1]
        if gu != gv:
            key = (min(gu, gv), max(gu, gv))
            between[key] = between.get(key, 0) + 1
    assert len(between) == groups * (groups - 1) // 2 and set(between.values()) == {1}
    for n in g:
        if g.nodes[n]["category"] == "switch":
            assert sum(d["count"] for *_, d in g.edges(n, data=True)) <= p + (a - 1) + h


def test_dragonfly_other_routers() -> None:
    """a = 2 routers of h = 1 global port: at most 3 groups; 2 terminals per router."""
    model, _ = compiled("dragonfly.cmx", a="2", h="1", p="2")
    assert model.num_instances == _dragonfly_counts(3, p=2, a=2)[0]      # 3 groups: 22
    assert links("dragonfly.cmx", "df", a="2", h="1", p="2") == _dragonfly_counts(3, 2, 2)[1]


def test_dragonfly_too_many_groups_is_located_at_the_define() -> None:
    with pytest.raises(cmx.CmxError) as info:
        compiled("dragonfly.cmx", groups="10")
    (d,) = info.value.diagnostics
    assert d.code == "E027" and d.span is not None and d.span.file == "<-D groups=10>"
    assert "groups <= a * h + 1" in d.message and "groups = 10" in d.message
    assert d.notes and d.notes[0][1] is not None and d.notes[0][1].line == 27


# ---- UB-Mesh-style nD full mesh: nx NPUs per board, ny boards per rack, racks per pod --------

def _ubmesh(nx: int, ny: int, racks: int) -> tuple[int, int]:
    """Instances (root, racks, boards, NPUs) and links: X, a full mesh of each board;
    Y, a full mesh of each NPU position over the boards of a rack; Z, over the racks."""
    instances = 1 + racks * (1 + ny * (1 + nx))
    x = racks * ny * _pairs(nx)
    y = racks * nx * _pairs(ny)
    z = nx * ny * _pairs(racks)
    return instances, x + y + z


def _pairs(n: int) -> int:
    """Links of a full mesh of ``n``."""
    return n * (n - 1) // 2


# (nx, ny, racks) -> bisection (GB/s).  Every node is an NPU (no switches), so the bisection
# is the bandwidth of the links between the two halves in instance order: with one rack,
# boards 0 .. ny/2 - 1 against the rest, nx * (ny/2)^2 Y links of 50 GB/s; with one board a
# full mesh of nx split in two, (nx/2)^2 X links of 50 GB/s; with an even number of racks,
# racks against racks, nx * ny * (racks/2)^2 Z links of 25 GB/s.
UBMESH_BISECTION = {
    (8, 8, 1): 8 * 4**2 * 50,       # 6,400
    (4, 4, 1): 4 * 2**2 * 50,       # 800
    (8, 1, 1): 4**2 * 50,           # 800
    (8, 8, 4): 8 * 8 * 2**2 * 25,   # 6,400
    (4, 2, 2): 4 * 2 * 1 * 25,      # 200
}


@pytest.mark.parametrize("shape", sorted(UBMESH_BISECTION))
def test_ubmesh_sizes(shape: tuple[int, int, int]) -> None:
    nx_, ny, racks = shape
    defines = {"nx": str(nx_), "ny": str(ny), "racks": str(racks)}
    model, _ = compiled("ubmesh-rack.cmx", **defines)
    instances, link_count = _ubmesh(nx_, ny, racks)
    assert model.num_instances == instances
    assert links("ubmesh-rack.cmx", "ub", **defines) == link_count
    assert bisection("ubmesh-rack.cmx", "ub", **defines) == pytest.approx(
        UBMESH_BISECTION[shape] * GB, rel=1e-4)
    assert model.warnings == ()


def test_ubmesh_default_is_the_papers_rack() -> None:
    model, _ = compiled("ubmesh-rack.cmx")
    assert model.count_by_type()["Npu"] == 64
    assert _ubmesh(8, 8, 1) == (74, 448)


def test_ubmesh_too_many_npus_is_located_at_the_define() -> None:
    with pytest.raises(cmx.CmxError) as info:
        compiled("ubmesh-rack.cmx", nx="9")
    (d,) = info.value.diagnostics
    assert d.code == "E027" and d.span is not None and d.span.file == "<-D nx=9>"
