"""``chakra-et``'s network: one instance of a role on one dimension (no simulator needed)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext
from supernode_dsl.emit.chakra import ChakraEtEmitter
from supernode_dsl.emit.chakra.network import instance_network
from supernode_dsl.graph import Dimension
from supernode_dsl.plan import PlanRequest, plan_deployment

TINY = Path(__file__).parent / "fixtures" / "plan" / "tiny.cmx"
#: CloudMatrix384 with unit=die and the H800 cluster, as ``collapse`` gives them (GB/s, ns).
CM384 = (Dimension("FullyConnected", 2, 270.0, 0.0, "d2d"),
         Dimension("Switch", 384, 196.0, 943.155, "ub"))
H800 = (Dimension("Switch", 8, 200.0, 1665.0, "nvlink"),
        Dimension("Switch", 256, 50.0, 1795.294, "ib"))


def test_an_instance_over_several_dimensions_is_one_switch_of_the_outermost() -> None:
    """The decode instances: 320 dies over d2d and UB; 144 GPUs over NVLink and IB."""
    cm = instance_network(CM384, range(320))
    assert cm.dimension == Dimension("Switch", 320, 196.0, 943.155, "ub")
    assert len(cm.lost) == 1 and cm.lost[0].startswith("FullyConnected of 2 from d2d")
    h8 = instance_network(H800, range(144, 288))
    assert h8.dimension == Dimension("Switch", 144, 50.0, 1795.294, "ib")
    assert "its peers are reached over ib (50 GB/s)" in h8.lost[0]


def test_an_instance_inside_one_dimension_keeps_it() -> None:
    """Eight GPUs of one node are NVLink's; both dies of one NPU are the d2d dimension."""
    assert instance_network(H800, range(8, 16)).dimension == \
        Dimension("Switch", 8, 200.0, 1665.0, "nvlink")
    both = instance_network(CM384, [6, 7])
    assert both.dimension == CM384[0] and both.lost == ()
    assert instance_network(H800, [3, 11]).dimension.source == "ib"  # same slot, two nodes


def test_part_of_a_ring_is_refused() -> None:
    torus = (Dimension("Ring", 4, 50.0, 100.0, "ici x"), Dimension("Switch", 8, 25.0, 500.0,
                                                                      "dcn"))
    assert instance_network(torus, range(4)).dimension == torus[0]
    assert instance_network(torus, range(8)).dimension.topology == "Switch"
    with pytest.raises(CmxError, match="span part of a Ring dimension"):
        instance_network(torus, [0, 1])
    with pytest.raises(CmxError, match="do not fit the network's 32 NPUs"):
        instance_network(torus, [31, 32])


def test_option_instance_picks_the_instance() -> None:
    """The tiny plan's prefill role has two instances of 4 dies: each is its own network of
    4 NPUs with one EP group of all of them; a third is an E026 error."""
    model = cmx.compile_file(TINY)
    graph = cmx.build_graph(model)
    plan = plan_deployment(model, graph, PlanRequest())

    def emit(instance: str) -> Mapping[str, bytes]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ChakraEtEmitter().emit(EmitContext(
                model, graph, plan, str(TINY), {"role": "prefill", "instance": instance})).files

    first, second = emit("1"), emit("2")
    for files, number in ((first, 1), (second, 2)):
        assert json.loads(files["comm_group.json"]) == {"1": [0, 1, 2, 3]}
        assert json.loads(files["estimate.json"])["instance"] == number
        assert b"npus_count: [4]" in files["network.yml"]
    with pytest.raises(CmxError, match="has 2 instance\\(s\\), not 3"):
        emit("3")
