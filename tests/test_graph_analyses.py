"""The analyses of ``supernode_dsl.graph``: instance position, ownership, the dimension
collapse, message costs and the ``info`` summary, on small fixtures."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl import graph as sg
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.elaborate import Model
from supernode_dsl.emit import info_json

ROOT = Path(__file__).resolve().parent.parent
TOPO = ROOT / "topologies"
TINY = ROOT / "tests" / "fixtures" / "plan" / "tiny.cmx"


def _compiled(path: Path, **defines: str) -> tuple[Model, nx.Graph]:
    model = cmx.compile_file(path, defines)
    return model, cmx.build_graph(model)


@pytest.fixture(scope="module")
def tpu() -> nx.Graph:
    """The TPU v4 torus as one 4 x 4 x 4 cube (64 chips, 16 hosts)."""
    return _compiled(TOPO / "tpu-v4-pod.cmx", nx="4", ny="4", nz="4")[1]


@pytest.fixture(scope="module")
def cm2() -> tuple[Model, nx.Graph]:
    """CloudMatrix384 cut down to two nodes (16 NPUs, 32 dies)."""
    return _compiled(TOPO / "cloudmatrix384.cmx", nodes="2")


@pytest.fixture(scope="module")
def tiny() -> nx.Graph:
    return _compiled(TINY)[1]


# ---- instances -------------------------------------------------------------------------

def test_segments_and_index_vector_read_the_node_attributes(tpu: nx.Graph) -> None:
    chip = "pod.host[1][0][3].chip[0][1]"
    assert sg.segments(tpu, chip) == (("pod", ()), ("host", (1, 0, 3)), ("chip", (0, 1)))
    assert sg.index_vector(tpu, chip) == (1, 0, 3, 0, 1)
    assert sg.segments(tpu, "pod") == (("pod", ()),)
    memo: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
    for n in sg.ordered_nodes(tpu):  # the shared memo gives the same answers
        assert sg.segments(tpu, n, memo) == sg.segments(tpu, n)


def test_every_node_position_spells_its_path(cm2: tuple[Model, nx.Graph]) -> None:
    _, g = cm2
    memo: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
    for n in g.nodes:
        text = ".".join(a + "".join(f"[{i}]" for i in idx) for a, idx in sg.segments(g, n, memo))
        assert text == n


def test_unit_owner_folds_dies_into_their_accelerator(tiny: nx.Graph) -> None:
    accs = sg.npu_units(tiny, "accelerator")
    owner = sg.unit_owner(tiny, accs)
    assert owner["pod.node[1].npu[2].die[1]"] == "pod.node[1].npu[2]"
    assert owner["pod.node[1].npu[2]"] == "pod.node[1].npu[2]"
    assert "pod.node[1].sw" not in owner and "pod" not in owner


def test_ordered_nodes_and_planes(tiny: nx.Graph) -> None:
    order = sg.ordered_nodes(tiny)
    assert order[0] == "pod" and len(order) == tiny.number_of_nodes()
    assert [tiny.nodes[n]["index"] for n in order] == list(range(len(order)))
    assert sg.graph_planes(tiny) == ["ub"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 19), st.integers(0, 19)), max_size=30))
def test_union_find_matches_connected_components(pairs: list[tuple[int, int]]) -> None:
    uf = sg.UnionFind(20)
    h = nx.Graph()
    h.add_nodes_from(range(20))
    for a, b in pairs:
        uf.union(a, b)
        h.add_edge(a, b)
    expected = sorted(sorted(c) for c in nx.connected_components(h))
    assert uf.groups() == expected  # ordered by smallest member, members increasing


# ---- the dimension sg.collapse ------------------------------------------------------------

def test_tpu_cube_collapses_exactly_into_three_rings(tpu: nx.Graph) -> None:
    result = sg.collapse(tpu)
    assert [(d.topology, d.npus, d.bandwidth) for d in result.dimensions] == [
        ("Ring", 4, 50.0)] * 3
    # x is index 0 (host) and 3 (chip in tray), y is 1 and 4, z is 2: from `indices`
    assert [d.source for d in result.dimensions] == [
        "ici/index 0,3", "ici/index 1,4", "ici/index 2"]
    assert result.lost == ()
    assert len(result.units) == 64
    assert "plane pcie: links NPUs to hosts only, not used" in result.notes


def test_cloudmatrix_two_nodes_collapses_by_unit(cm2: tuple[Model, nx.Graph]) -> None:
    _, g = cm2
    acc = sg.collapse(g, "accelerator")
    assert [(d.topology, d.npus, d.source) for d in acc.dimensions] == [("Switch", 16, "ub")]
    assert acc.dimensions[0].bandwidth == pytest.approx(392.0)  # 14 links x 28 GB/s per NPU
    die = sg.collapse(g, "die")
    assert [(d.topology, d.npus, d.source) for d in die.dimensions] == [
        ("FullyConnected", 2, "d2d"), ("Switch", 16, "ub")]
    for result in (acc, die):
        assert len(result.lost) == 1 and "plane rdma" in result.lost[0]
        assert np.prod([d.npus for d in result.dimensions]) == len(result.units)


def test_direct_links_between_different_arrays_are_one_direction() -> None:
    src = """
plane p
accelerator A { }
node N { a[2]: A
         b[2]: A
         link p a[i] <-> b[i] { bw = 10 GB/s }
         link p a[0] <-> a[1] { bw = 10 GB/s } }
instance n: N
"""
    result = sg.collapse(cmx.build_graph(cmx.compile_string(src)))
    assert sorted(d.source for d in result.dimensions) == ["p/index -1", "p/index 0"]


def test_collapse_errors_are_e026(tiny: nx.Graph) -> None:
    with pytest.raises(CmxError) as err:
        sg.collapse(tiny, "rack")
    assert err.value.codes == ["E026"]
    lonely = cmx.build_graph(cmx.compile_string("accelerator A { }\nnode N { a[2]: A }\n"
                                                "instance n: N\n"))
    with pytest.raises(CmxError, match="no plane joins two NPUs"):
        sg.collapse(lonely)


# ---- message costs ---------------------------------------------------------------------

def test_message_costs_symmetric_zero_diagonal_and_path_based(tiny: nx.Graph) -> None:
    dies = [n for n in sg.ordered_nodes(tiny) if tiny.nodes[n]["category"] == "die"]
    cost = sg.message_costs(tiny, "ub", dies, 7680)
    assert cost.shape == (16, 16)
    assert np.array_equal(cost, cost.T)
    assert np.all(np.diag(cost) == 0.0)
    assert np.all(cost[~np.eye(16, dtype=bool)] > 0)
    for a, b in itertools.combinations(range(16), 2):
        path = sg.shortest_path(tiny, "ub", dies[a], dies[b])
        assert path is not None
        expected = path.latency + 7680 / path.bottleneck_bandwidth
        assert cost[a, b] == pytest.approx(expected, rel=1e-12)


def test_message_costs_errors(tiny: nx.Graph) -> None:
    dies = [n for n in sg.ordered_nodes(tiny) if tiny.nodes[n]["category"] == "die"]
    with pytest.raises(CmxError, match="no plane 'nvlink'"):
        sg.message_costs(tiny, "nvlink", dies, 1)
    with pytest.raises(CmxError, match="does not reach device 'pod'"):
        sg.message_costs(tiny, "ub", ["pod"], 1)
    assert sg.busiest_plane(tiny, dies) == "ub"
    with pytest.raises(CmxError, match="not in the compiled graph"):
        sg.busiest_plane(tiny, ["pod.nope"])


def test_message_costs_of_a_disconnected_pair() -> None:
    src = ("plane p\naccelerator A { }\nnode N { a[4]: A\n"
           "link p a[0] <-> a[1] { bw = 1 GB/s }\nlink p a[2] <-> a[3] { bw = 1 GB/s } }\n"
           "instance n: N\n")
    g = cmx.build_graph(cmx.compile_string(src))
    with pytest.raises(CmxError, match=r"does not join 'n.a\[0\]' and 'n.a\[2\]'"):
        sg.message_costs(g, "p", ["n.a[0]", "n.a[2]"], 1)
    ok = sg.message_costs(g, "p", ["n.a[1]", "n.a[0]"], 10**9)
    assert ok[0, 1] == ok[1, 0] == pytest.approx(1.0)  # 1 GB over 1 GB/s, no latency


# ---- the info summary ------------------------------------------------------------------

def test_summary_fields_and_json(cm2: tuple[Model, nx.Graph]) -> None:
    model, g = cm2
    s = sg.summarize(model, g)
    assert (s.name, s.root_type, s.instances) == ("cm384", "CloudMatrix384",
                                                  model.num_instances)
    assert s.link_bundles == g.number_of_edges()
    assert dict(s.by_category)["accelerator"] == 16
    assert [p.name for p in s.planes] == list(g.graph["planes"])
    assert dict(s.params)["nodes"] == 2 and isinstance(dict(s.params)["nodes"], int)
    data = s.to_json()
    assert set(data) == {"name", "root_type", "instances", "counts", "planes", "params",
                         "schema_version"}
    assert data["planes"]["ub"]["links"] == next(p.links for p in s.planes if p.name == "ub")
    assert json.loads(info_json(data)) == data
    quick = sg.summarize(model, g, bandwidth=False)
    assert quick.planes == () and quick.by_type == s.by_type
