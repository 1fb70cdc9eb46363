"""The simulator emitters: ASTRA-sim network/system/comm-group and the ns-3 edge list."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit.simulators import TopologyApproximationWarning, UnroutableWarning
from supernode_dsl.graph import collapse, npu_units
from supernode_dsl.plan import PlanRequest, plan_deployment

ROOT = Path(__file__).resolve().parent.parent
TOPO = ROOT / "topologies"
SMALL = {
    "cm384": (TOPO / "cloudmatrix384.cmx", {"nodes": "4"}),
    "h800": (TOPO / "h800-cluster.cmx", {"nodes": "4"}),
    "tpu": (TOPO / "tpu-v4-pod.cmx", {"nx": "4", "ny": "4", "nz": "4"}),
}
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"


def _ctx(key: str, plan: Any = None, **options: str) -> EmitContext:
    path, defines = SMALL[key]
    model = cmx.compile_file(path, defines)
    return EmitContext(model, cmx.build_graph(model), plan, str(path), options)


def _emit(name: str, ctx: EmitContext) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TopologyApproximationWarning)
        out = available_emitters()[name]().emit(ctx)
    assert isinstance(out, str)
    return out


def _yaml(text: str) -> Any:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(text)


@pytest.mark.parametrize("key", sorted(SMALL))
@pytest.mark.parametrize("unit", ["accelerator", "die"])
def test_network_dimensions_multiply_out_to_the_npus(key: str, unit: str) -> None:
    ctx = _ctx(key, unit=unit)
    net = _yaml(_emit("astra-network", ctx))
    dims = len(net["topology"])
    assert dims >= 1 and all(len(net[k]) == dims
                             for k in ("npus_count", "bandwidth", "latency"))
    assert set(net["topology"]) <= {"Ring", "FullyConnected", "Switch"}
    assert math.prod(net["npus_count"]) == len(npu_units(ctx.graph, unit))
    assert all(b > 0 for b in net["bandwidth"]) and all(lat >= 0 for lat in net["latency"])


def test_known_shapes() -> None:
    h800 = _yaml(_emit("astra-network", _ctx("h800")))
    assert h800 == {"topology": ["Switch", "Switch"], "npus_count": [8, 4],
                    "bandwidth": [_gib(200), _gib(50)], "latency": [1665.0, 1400.0]}
    tpu = _yaml(_emit("astra-network", _ctx("tpu")))
    assert tpu["topology"] == ["Ring"] * 3 and tpu["npus_count"] == [4, 4, 4]
    cm = _yaml(_emit("astra-network", _ctx("cm384")))
    assert cm["topology"] == ["Switch"] and cm["npus_count"] == [32]
    assert cm["bandwidth"] == [_gib(392)]  # 2 dies x 7 L1 links x 28 GB/s
    dies = _yaml(_emit("astra-network", _ctx("cm384", unit="die")))
    assert dies["topology"] == ["FullyConnected", "Switch"] and dies["npus_count"] == [2, 32]


def _gib(gb_per_s: float) -> float:
    """Decimal GB/s as the GiB/s ASTRA-sim's network.yml reads (rounded as written)."""
    return round(gb_per_s * 1e9 / 2**30, 6)


def test_network_bandwidth_is_in_the_gib_per_s_astra_sim_reads() -> None:
    # astra-network-analytical 599a047 common/NetworkFunction.cpp:16: bw * 2^30 / 1e9 B/ns
    text = _emit("astra-network", _ctx("cm384"))
    assert _yaml(text)["bandwidth"] == [365.078449]  # 392 GB/s = 392e9 B/s
    assert "bandwidth GiB/s" in text


def test_lost_information_is_a_comment_and_a_warning() -> None:
    ctx = _ctx("cm384")
    with pytest.warns(TopologyApproximationWarning, match="rdma"):
        text = available_emitters()["astra-network"]().emit(ctx)
    assert isinstance(text, str)
    assert "# WARNING: approximation" in text and "plane rdma" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error", TopologyApproximationWarning)
        exact = available_emitters()["astra-network"]().emit(_ctx("h800"))
    assert isinstance(exact, str) and "# exact:" in exact


def test_irregular_graph_is_approximated_with_a_warning() -> None:
    src = """
plane p "x"
accelerator A { hbm = 1 GB }
switch S { ports = 8 }
node N { a[3]: A
         s: S
         link p a[*] <-> s { bw = 10 GB/s } }
node M { a[2]: A
         s: S
         link p a[*] <-> s { bw = 20 GB/s } }
system X { n: N
           m: M
           top: S
           link p n.s <-> top { bw = 10 GB/s }
           link p m.s <-> top { bw = 10 GB/s } }
instance x: X
"""
    g = cmx.build_graph(cmx.compile_string(src))
    result = collapse(g)
    assert result.lost and any("varies" in line for line in result.lost)
    assert sum(d.npus for d in result.dimensions[:1]) == 5


def test_system_has_one_implementation_per_dimension() -> None:
    for key in SMALL:
        ctx = _ctx(key)
        dims = len(_yaml(_emit("astra-network", ctx))["topology"])
        system = json.loads(_emit("astra-system", ctx))
        for k in ("all-reduce-implementation", "all-gather-implementation",
                  "reduce-scatter-implementation", "all-to-all-implementation"):
            assert len(system[k]) == dims
        assert system["scheduling-policy"] == "LIFO"
        # astra-sim c459ab6 examples/system/native_collectives/HGX-H100-validated.json:4
        assert system["active-chunks-per-dimension"] == 2
        assert system["local-mem-bw"] > 0  # decimal GB/s, astra-sim/system/Sys.cc:474
    with pytest.raises(CmxError):
        _emit("astra-system", _ctx("h800", scheduling_policy="RANDOM"))


def test_comm_groups_follow_the_plan() -> None:
    model = cmx.compile_file(TINY)
    g = cmx.build_graph(model)
    plan = plan_deployment(model, g, PlanRequest())
    emitter = available_emitters()["astra-comm-group"]()
    groups = json.loads(str(emitter.emit(EmitContext(model, g, plan, str(TINY), {}))))
    # decode: 1 instance of 4 NPUs; prefill: 2 instances of 2 NPUs (accelerator ids); keys
    # from 1: ASTRA-sim asserts id > 0 (astra-sim c459ab6 system/CommunicatorGroup.cc:32)
    assert groups == {"1": [0, 1, 2, 3], "2": [4, 5], "3": [6, 7]}
    dies = json.loads(str(emitter.emit(EmitContext(model, g, plan, str(TINY),
                                                   {"unit": "die"}))))
    assert dies["1"] == list(range(8)) and dies["3"] == [12, 13, 14, 15]
    with pytest.raises(CmxError, match="needs a plan"):
        emitter.emit(EmitContext(model, g, None, str(TINY), {}))


def _ns3(ctx: EmitContext, name: str = "ns3-topology") -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnroutableWarning)
        return _emit(name, ctx).splitlines()


@pytest.mark.parametrize("key", sorted(SMALL))
def test_ns3_header_matches_the_lines(key: str) -> None:
    ctx = _ctx(key, unroutable="warn")
    lines = _ns3(ctx)
    total, nswitch, nlinks = (int(x) for x in lines[0].split())
    switches = [int(x) for x in lines[1].split()]
    assert len(switches) == nswitch and len(lines) == 2 + nlinks
    npus = len(npu_units(ctx.graph, "accelerator"))
    assert total == npus + nswitch and switches == list(range(npus, total))
    pairs = set()
    for line in lines[2:]:
        src, dst, rate, delay, err = line.split()
        assert 0 <= int(src) < int(dst) < total
        assert rate.endswith("Gbps") and float(rate[:-4]) > 0
        assert delay.endswith("ms") and float(delay[:-2]) >= 0 and err == "0"
        pairs.add((int(src), int(dst)))
    assert len(pairs) == nlinks  # every link once


def test_ns3_plane_option_and_rates() -> None:
    lines = _ns3(_ctx("cm384", plane="rdma", unroutable="warn"))
    assert lines[2] == "0 32 400Gbps 0.0005ms 0"  # both dies' 200G links to NIC 0, merged
    with pytest.raises(CmxError, match="unknown plane"):
        _emit("ns3-topology", _ctx("cm384", plane="nope"))


def test_ns3_defaults_to_the_scale_up_plane() -> None:
    # every plane would give RDMA paths as short as UB's: traffic would mix the planes
    assert _ns3(_ctx("cm384")) == _ns3(_ctx("cm384", plane="ub"))


def test_ns3_hosts_are_the_npus_only() -> None:
    ctx = _ctx("h800", plane="nvlink,ib,storage", unroutable="warn")
    g = ctx.graph
    total, nswitch, _ = (int(x) for x in _ns3(ctx)[0].split())
    fabric = [n for n, d in g.nodes(data=True) if d["category"] == "switch"]
    nics = [n for n, d in g.nodes(data=True) if d["category"] == "nic"
            and any(g.nodes[m]["category"] == "accelerator" for m in g[n])]
    # CPUs (and the CPU's storage NIC) are dropped, not listed as switches
    assert nswitch == len(fabric) + len(nics) and total == 32 + nswitch


def test_ns3_refuses_unroutable_pairs_and_names_them() -> None:
    with pytest.raises(CmxError, match=r"cannot route 3648 of 4032 NPU pairs on plane\(s\) ici"
                       r".*first: 0 \(pod\.host\[0\]\[0\]\[0\]\.chip\[0\]\[0\]\) -> 3"):
        _emit("ns3-topology", _ctx("tpu"))
    with pytest.warns(UnroutableWarning, match="cannot route 768 of 992"):
        _emit("ns3-topology", _ctx("h800", unroutable="warn"))


def test_ns3_logical_dims_are_the_network_dimensions() -> None:
    ctx = _ctx("h800")
    net = _yaml(_emit("astra-network", ctx))
    dims = json.loads(_emit("ns3-logical-dims", ctx))
    assert dims == {"logical-dims": [str(n) for n in net["npus_count"]]} == {
        "logical-dims": ["8", "4"]}


def test_simai_header_ids_and_folded_nics() -> None:
    lines = _emit("simai-topology", _ctx("cm384")).splitlines()
    total, per_server, nvs, sws, nlinks, gpu = lines[0].split()
    ids = [int(x) for x in lines[1].split()]
    assert (per_server, gpu) == ("8", "Ascend910C") and len(lines) == 2 + int(nlinks)
    assert ids == list(range(32, int(total))) and len(ids) == int(nvs) + int(sws)
    # the NIC is folded: NPU 0 reaches an RDMA switch (after the NVSwitches) directly
    rdma = [x for x in lines[2:] if x.split()[0] == "0" and int(x.split()[1]) >= 32 + int(nvs)]
    assert rdma == [f"0 {32 + int(nvs)} 400Gbps 0.0015ms 0"]  # min rate, delays added


UNEVEN = """
plane ub "scale-up"
accelerator Npu {}
switch Sw { ports = 8 }
node Small { npu[2]: Npu }
node Big { npu[4]: Npu }
system Pod {
    a: Small
    b: Big
    sw: Sw
    link ub a.npu[*] <-> sw { bw = 28 GB/s }
    link ub b.npu[*] <-> sw { bw = 28 GB/s }
}
instance pod: Pod
"""


def test_simai_refuses_what_its_model_cannot_express(tmp_path: Path) -> None:
    with pytest.warns(UnroutableWarning, match="SimAI cannot route 3648 of 4032"):
        _emit("simai-topology", _ctx("tpu"))  # written, with a warning (default)
    with pytest.raises(CmxError, match="SimAI cannot route 3648 of 4032"):
        _emit("simai-topology", _ctx("tpu", unroutable="error"))
    path = tmp_path / "uneven.cmx"
    path.write_text(UNEVEN)
    model = cmx.compile_file(path)
    ctx = EmitContext(model, cmx.build_graph(model), None, str(path), {})
    with pytest.raises(CmxError, match=r"one gpus_per_server: the nodes hold \[2, 4\] NPUs"):
        _emit("simai-topology", ctx)


@pytest.mark.parametrize("name", ["astra-network", "astra-system", "ns3-topology"])
def test_outputs_are_deterministic(name: str) -> None:
    assert _emit(name, _ctx("cm384")) == _emit(name, _ctx("cm384"))


def test_cli_astra_network(tmp_path: Path) -> None:
    out = tmp_path / "network.yml"
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit", "astra-network",
                           str(TOPO / "cloudmatrix384.cmx"), "-D", "nodes=4", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cmx: warning:" in proc.stderr and "rdma" in proc.stderr
    assert _yaml(out.read_text())["npus_count"] == [32]
