"""The language constructs of issue 14: comparisons and boolean operators, link guards
(``where``), parameter assertions (``assert``), conditional blocks (``if``/``else``), arrays
of size 0, the W002 warning for a pair matched from both ends, switch latency on paths, the
W003 warnings of degenerate cuts, and the illustrative machines of tests/fixtures/machines
compiled at several sizes to hand-computed counts and bisections.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.graph import cut_warnings, plane_summary, select, shortest_path

ROOT = Path(__file__).resolve().parent.parent
MACHINES = ROOT / "tests" / "fixtures" / "machines"
GB = 1e9


def _compile(text: str, **defines: str) -> cmx.Model:
    return cmx.compile_string(text, name="x.cmx", defines=defines)


def _errors(text: str, **defines: str) -> list[cmx.Diagnostic]:
    with pytest.raises(cmx.CmxError) as info:
        cmx.build_graph(_compile(text, **defines))
    return list(info.value.diagnostics)


def _links(model: cmx.Model, plane: str = "p") -> int:
    return int(plane_summary(cmx.build_graph(model))[plane]["links"])


# ---- link guards -------------------------------------------------------------------------

MESH = """param n = 4
plane p
die D {}
node N {
    d[n]: D
    link p d[i] <-> d[j] where i < j { bw = 1 GB/s }
}
instance m: N
"""


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=2, max_value=12))
def test_full_mesh_has_one_link_per_pair(n: int) -> None:
    model = _compile(MESH, n=str(n))
    g = cmx.build_graph(model)
    assert g.number_of_edges() == n * (n - 1) // 2
    assert all(d["count"] == 1 for *_, d in g.edges(data=True))
    assert model.warnings == ()


def test_full_mesh_of_one_is_empty_not_an_error() -> None:
    """The guard rejects the only binding: a degenerate size of the family, no E007."""
    g = cmx.build_graph(_compile(MESH, n="1"))
    assert g.number_of_nodes() == 2 and g.number_of_edges() == 0


def test_guard_with_boolean_operators() -> None:
    text = MESH.replace("where i < j", "where i < j and not (i == 0 or j == 3)")
    g = cmx.build_graph(_compile(text))
    # pairs of 0..3 with i < j, minus those with i = 0 or j = 3: only (1, 2)
    assert sorted(g.edges) == [("m.d[1]", "m.d[2]")]


def test_without_guard_a_mesh_written_both_ways_warns_w002() -> None:
    text = MESH.replace("where i < j", "where i != j")
    model = _compile(text)
    (w,) = model.warnings
    assert w.code == "W002" and w.span is not None and (w.span.line, w.span.col) == (6, 12)
    assert "m.d" not in w.message and "d[0] <-> d[1]" in w.message
    assert "; 5 more pairs likewise)" in w.message and "i = 1, j = 0" in w.message
    assert w.notes[0][0] == "the other end" and w.notes[0][1] is not None
    assert w.notes[0][1].col == 21
    # it still compiles to what it says: every pair twice
    assert {d["count"] for *_, d in cmx.build_graph(model).edges(data=True)} == {2}


def test_ring_of_two_warns_w002() -> None:
    model = cmx.compile_file(ROOT / "tests" / "fixtures" / "ring2.cmx")
    assert [w.code for w in model.warnings] == ["W002"]
    assert "chip[0] <-> chip[1]" in model.warnings[0].message


@pytest.mark.parametrize("guard, code, col", [
    ("where i + j", "E004", 32),        # a number, not a condition
    ("where k < j", "E018", 32),        # k has no range
    ("where i < 1 GB", "E004", 32),     # a count compared with a size
])
def test_guard_mistakes_are_located(guard: str, code: str, col: int) -> None:
    (d,) = _errors(MESH.replace("where i < j", guard))
    assert d.code == code and d.span is not None and (d.span.line, d.span.col) == (6, col)


# ---- assertions --------------------------------------------------------------------------

ASSERTED = """param boards = 2
param npus = boards * 8
assert npus % 16 == 0, "whole racks of 16 NPUs"
die D {}
instance d: D
"""


def test_assert_holds_silently() -> None:
    assert _compile(ASSERTED).warnings == ()


def test_assert_failure_at_the_define_it_depends_on() -> None:
    (d,) = _errors(ASSERTED, boards="3")
    assert d.code == "E027" and d.span is not None and d.span.file == "<-D boards=3>"
    assert d.message == ("assertion failed: whole racks of 16 NPUs (npus = 24); "
                         "from -D boards")
    assert d.notes[0][1] is not None and d.notes[0][1].line == 3


def test_assert_failure_without_define_at_the_assertion() -> None:
    (d,) = _errors(ASSERTED.replace("boards = 2", "boards = 1"))
    assert d.code == "E027" and d.span is not None and (d.span.line, d.span.col) == (3, 8)


def test_a_define_the_assertion_does_not_depend_on_is_not_blamed() -> None:
    text = ASSERTED.replace("boards = 2", "boards = 1") + "param other = 1\n"
    (d,) = _errors(text, other="2")
    assert d.span is not None and d.span.file == "x.cmx"


def test_assert_needs_a_condition() -> None:
    (d,) = _errors(ASSERTED.replace("npus % 16 == 0", "npus % 16"))
    assert d.code == "E004" and "needs true or false" in d.message


# ---- conditional blocks and size-0 arrays ------------------------------------------------

TIERED = """param nodes = 2
plane p
accelerator G {}
switch Leaf {}
node N { g[2]: G }
system S {
    node[nodes]: N
    if nodes > 2 {
        leaf[2]: Leaf
        link p node[*].g[r] <-> leaf[r] { bw = 1 GB/s }
    } else if nodes == 2 {
        link p node[0].g[i] <-> node[1].g[i] { bw = 1 GB/s }
        x_wiring = "direct"
    } else {
        x_wiring = "none"
    }
}
instance s: S
"""


@pytest.mark.parametrize("nodes, instances, links, wiring", [
    (1, 1 + 3, 0, "none"),
    (2, 1 + 2 * 3, 2, "direct"),
    (3, 1 + 3 * 3 + 2, 3 * 2, None),
])
def test_if_else_chain(nodes: int, instances: int, links: int, wiring: str | None) -> None:
    model = _compile(TIERED, nodes=str(nodes))
    g = cmx.build_graph(model)
    assert g.number_of_nodes() == instances and g.number_of_edges() == links
    assert g.nodes["s"].get("x_wiring") == wiring


def test_children_of_a_block_keep_source_order() -> None:
    text = """plane p
die D {}
node N {
    a: D
    if true { b: D }
    c: D
}
instance n: N
"""
    g = cmx.build_graph(_compile(text))
    assert sorted(g.nodes, key=lambda n: g.nodes[n]["index"]) == ["n", "n.a", "n.b", "n.c"]


def test_if_condition_mistake_is_located() -> None:
    (d,) = _errors(TIERED.replace("if nodes > 2", "if nodes"))
    assert d.code == "E004" and d.span is not None and (d.span.line, d.span.col) == (8, 8)


ZERO = """param spines = 0
plane p
accelerator G {}
switch Spine {}
system S {
    g[4]: G
    spine[spines]: Spine
    link p g[*] <-> spine[*] { bw = 1 GB/s }
    link p g[i] <-> g[j] where i < j { bw = 1 GB/s }
}
instance s: S
"""


def test_size_zero_array_is_an_absent_tier() -> None:
    model = _compile(ZERO)
    assert model.num_instances == 5 and _links(model) == 6
    assert model.count_by_type() == {"G": 4, "S": 1}     # no "Spine: 0"
    with_spines = _compile(ZERO, spines="2")
    assert with_spines.num_instances == 7 and _links(with_spines) == 6 + 8


# ---- switch latency ------------------------------------------------------------------------

SWITCHED = """plane p
accelerator G {}
switch S { latency = 300 ns }
switch T { latency = 1 us }
node N {
    g[2]: G
    s: S
    t: T
    link p g[*] <-> s { bw = 100 GB/s, latency = 100 ns }
    link p s <-> t { bw = 100 GB/s, latency = 50 ns }
}
instance n: N
"""


def test_a_switch_traversal_adds_its_latency() -> None:
    g = cmx.build_graph(_compile(SWITCHED))
    through = shortest_path(g, "p", "n.g[0]", "n.g[1]")
    assert through is not None and through.hops == ("n.g[0]", "n.s", "n.g[1]")
    assert through.latency == pytest.approx(100e-9 + 300e-9 + 100e-9)
    # the end of a path is not traversed: to t, s's 300 ns but not t's own 1 us
    to_t = shortest_path(g, "p", "n.g[0]", "n.t")
    assert to_t is not None and to_t.latency == pytest.approx(100e-9 + 300e-9 + 50e-9)


def test_message_costs_count_switch_latency_like_paths() -> None:
    from supernode_dsl.graph.analysis import message_costs

    g = cmx.build_graph(_compile(SWITCHED))
    cost = message_costs(g, "p", ["n.g[0]", "n.g[1]"], 1000)
    assert cost[0, 1] == pytest.approx(500e-9 + 1000 / 100e9)


def test_astra_switch_dimension_counts_switch_latency() -> None:
    """ASTRA-sim charges a switched dimension's latency twice (NPU-switch-NPU): it is half
    the path latency, 100 + 300 + 100 ns."""
    from supernode_dsl.graph.dimensions import collapse

    (dim,) = collapse(cmx.build_graph(_compile(SWITCHED))).dimensions
    assert dim.topology == "Switch" and dim.latency == pytest.approx(500 / 2)


def test_ns3_topology_links_carry_half_a_switch_each() -> None:
    """ns-3 switches add no delay: each link to a switch carries half its traversal, so the
    path g[0] - s - g[1] is 2 x (100 + 300 / 2) ns = 500 ns, as shortest_path counts it."""
    from supernode_dsl.emit import EmitContext, available_emitters

    text = SWITCHED.replace("    link p s <-> t { bw = 100 GB/s, latency = 50 ns }\n", "")
    text = text.replace("    t: T\n", "")
    model = _compile(text)
    ctx = EmitContext(model, cmx.build_graph(model), None, "x.cmx", {})
    lines = str(available_emitters()["ns3-topology"]().emit(ctx)).splitlines()
    assert lines[2:] == ["0 2 800Gbps 0.00025ms 0", "1 2 800Gbps 0.00025ms 0"]


def test_a_slow_switch_is_avoided() -> None:
    """Two routes of equal link latency: the one through the faster switch wins."""
    text = SWITCHED.replace("link p s <-> t { bw = 100 GB/s, latency = 50 ns }",
                            "link p g[*] <-> t { bw = 100 GB/s, latency = 100 ns }")
    path = shortest_path(cmx.build_graph(_compile(text)), "p", "n.g[0]", "n.g[1]")
    assert path is not None and path.hops[1] == "n.s"


# ---- degenerate cuts -------------------------------------------------------------------------

def test_cut_warnings() -> None:
    g = cmx.build_graph(_compile(SWITCHED))
    groups = [("n.s", select(g, "n.s")), ("n.g[*]", select(g, "n.g[*]"))]
    (w,) = cut_warnings(g, "p", groups)
    assert w.code == "W003" and "'n.s' has no traffic endpoint" in w.message
    overlap = [("n", select(g, "n")), ("n.g[1]", select(g, "n.g[1]"))]
    (w,) = cut_warnings(g, "p", overlap)
    assert "share 1 endpoint(s) (e.g. n.g[1])" in w.message
    fine = [("n.g[0]", select(g, "n.g[0]")), ("n.g[1]", select(g, "n.g[1]"))]
    assert cut_warnings(g, "p", fine) == []


def test_cut_of_switches_warns_on_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "supernode_dsl", "query", "cut",
         "tests/fixtures/machines/mi300x-cluster.cmx", "cluster.leaf[*]", "cluster.node[1]",
         "--plane", "net"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "plane net: 0.00 GB/s\n"
    assert proc.stderr.startswith("cmx: warning[W003]: plane net: 'cluster.leaf[*]' has no "
                                  "traffic endpoint"), proc.stderr


# ---- the machines of issue 14, written parametrically ----------------------------------------

def _plane_is(got: tuple[int, float], links: int, bisection_gb_s: float) -> bool:
    """A plane's (links, bisection in GB/s) against the hand-computed values."""
    return got[0] == links and got[1] == pytest.approx(bisection_gb_s, rel=1e-4)


def _machine(name: str, **defines: str) -> tuple[int, dict[str, tuple[int, float]]]:
    model = cmx.compile_file(MACHINES / name, defines=defines)
    summary = plane_summary(cmx.build_graph(model))
    return model.num_instances, {p: (int(v["links"]), float(v["bisection_bandwidth"]) / GB)
                                 for p, v in summary.items() if v["links"]}


# DGX H100 SuperPOD: a node is itself, 8 GPUs, 4 NVSwitch chips and 8 NICs (21 instances),
# 8 x 18 = 144 NVLink links (5 + 4 + 4 + 5 per GPU) and 8 GPU-NIC + 8 NIC-leaf IB links.
# One leaf per rail per SU; with sus > 1, 4 spines per rail and 32 / 4 = 8 links from each
# leaf to each spine.  IB bisection: half the GPUs at 400 Gb/s = 50 GB/s each, as long as the
# leaves' uplinks carry it (32 up per 32 down).
@pytest.mark.parametrize("defines, instances, ib, nvlink", [
    ({}, 1 + 32 * 21 + 8, (32 * 16, 16 * 8 * 50), 32 * 144),
    ({"sus": "2"}, 1 + 64 * 21 + 16 + 32, (64 * 16 + 8 * 2 * 4 * 8, 32 * 8 * 50), 64 * 144),
    # 3 SUs of 4 nodes: 12 nodes, 24 leaves, 32 spines; the first 6 nodes' GPUs inject
    # 6 x 8 x 50 GB/s, less than the leaves' 32 uplinks each
    ({"sus": "3", "nodes_per_su": "4"}, 1 + 12 * 21 + 24 + 32,
     (12 * 16 + 8 * 3 * 4 * 8, 6 * 8 * 50), 12 * 144),
])
def test_dgx_h100_superpod(defines: dict[str, str], instances: int, ib: tuple[int, int],
                           nvlink: int) -> None:
    got_instances, planes = _machine("dgx-h100-su.cmx", **defines)
    assert got_instances == instances
    assert _plane_is(planes["ib"], *ib)
    assert planes["nvlink"][0] == nvlink


def test_dgx_h100_one_node_nvlink_bisection() -> None:
    # 4 | 4 GPUs, each with 18 links of 25 GB/s to the switches: 4 x 450 GB/s
    _, planes = _machine("dgx-h100-su.cmx", nodes_per_su="1")
    assert _plane_is(planes["nvlink"], 144, 4 * 18 * 25)


# MI300X: a node is itself, 8 GPUs and 8 NICs (17 instances), a full mesh of 28 Infinity
# Fabric links of 64 GB/s and 8 GPU-NIC links; with nodes > 1, 8 leaves and 8 NIC-leaf links
# per node.  Net bisection: half the GPUs at 50 GB/s; with one node the plane joins nothing.
@pytest.mark.parametrize("nodes, instances, net, xgmi", [
    (1, 1 + 17, (8, 0), (28, 16 * 64)),          # 4 | 4 GPUs: 16 links cross
    (2, 1 + 2 * 17 + 8, (2 * 16, 8 * 50), (56, 0)),
    (4, 1 + 4 * 17 + 8, (4 * 16, 16 * 50), (112, 0)),
])
def test_mi300x_cluster(nodes: int, instances: int, net: tuple[int, int],
                        xgmi: tuple[int, int]) -> None:
    got_instances, planes = _machine("mi300x-cluster.cmx", nodes=str(nodes))
    assert got_instances == instances
    assert _plane_is(planes["net"], *net)
    assert _plane_is(planes["xgmi"], *xgmi)


def test_mi300x_too_many_nodes_is_located_at_the_define() -> None:
    with pytest.raises(cmx.CmxError) as info:
        cmx.compile_file(MACHINES / "mi300x-cluster.cmx", defines={"nodes": "65"})
    (d,) = info.value.diagnostics
    assert d.code == "E027" and d.span is not None and d.span.file == "<-D nodes=65>"


# ---- syntax mistakes around the new constructs ------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("param a = 1\nassert a > 0\n", 'an assertion needs a message: `assert CONDITION, "message"`'),
    ("die D {}\nnode N {\n  if true { param q = 1 }\n}\ninstance n: N\n",
     "an `if` block cannot declare a parameter"),
])
def test_syntax_hints(text: str, message: str) -> None:
    with pytest.raises(cmx.CmxError) as info:
        _compile(text)
    (d,) = info.value.diagnostics
    assert d.code == "E001" and d.message.startswith(message)


def test_assert_message_skips_a_name_that_and_never_evaluated() -> None:
    text = 'param a = 1\nassert a > 1 and zzz > 1, "m"\ndie D {}\ninstance d: D\n'
    (d,) = _errors(text)
    assert d.code == "E027" and d.message == "assertion failed: m (a = 1)"


def test_assert_on_a_defaulted_type_parameter_blames_the_define() -> None:
    text = """param routers = 4
switch R {}
board Group {
    param a = routers
    assert a >= 2, "a group has 2 routers or more"
    r[a]: R
}
instance g: Group
"""
    assert _compile(text).num_instances == 5
    (d,) = _errors(text, routers="1")
    assert d.span is not None and d.span.file == "<-D routers=1>"
    assert d.message == "assertion failed: a group has 2 routers or more (a = 1); from -D routers"
