"""The Graphviz emitters: dot (DOT text), svg and png (laid out by the dot program).

Expected numbers are computed here from the topology facts (CloudMatrix384: 48 nodes x 7 L1
chips, each with 16 uplinks of 28 GB/s to its sub-plane's L2 chips), never pasted from the
emitter's output.  Checks that need the Graphviz ``dot`` program skip when it is missing.
"""

# ruff: noqa: RUF001  (labels use the multiplication sign)

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import networkx as nx
import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, available_emitters
from supernode_dsl.emit.graphviz import (
    DOT_MISSING,
    EMITTERS,
    DotEmitter,
    PngEmitter,
    SvgEmitter,
    dot_text,
    format_bandwidth,
    template_path,
)

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"
GB = 1e9
SHIPPED = [p.name for p in sorted(TOPOLOGIES.glob("*.cmx"))]
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="the Graphviz dot program is not installed")

# Small variants keep the whole-matrix test fast (the views do not depend on the size).
DEFINES: dict[str, dict[str, str]] = {
    "h800-cluster.cmx": {"nodes": "4"},
    "deepseek-v3-h800.cmx": {"nodes": "4"},
    "tpu-v4-pod.cmx": {"nx": "4", "ny": "4", "nz": "4"},
    "cloudmatrix384-cluster.cmx": {"supernodes": "2", "nodes": "4"},
    "cloudmatrix384-scaleout.cmx": {"supernodes": "2"},
}


@cache
def graph(name: str, defines: tuple[tuple[str, str], ...] = ()) -> nx.Graph:
    return cmx.load_graph(TOPOLOGIES / name, dict(defines))


def shipped_graph(name: str) -> nx.Graph:
    return graph(name, tuple(sorted(DEFINES.get(name, {}).items())))


_EDGE = re.compile(r'^\s*"([^"]+)" -- "([^"]+)" \[(.*)\];$', re.M)
_ATTR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    """The edges of a DOT text written by the emitter (visible ones), with attributes."""
    out = []
    for tail, head, attrs in _EDGE.findall(dot):
        a = dict(_ATTR.findall(attrs))
        if a.get("style") != "invis":
            out.append((tail, head, a))
    return out


def clusters(dot: str) -> list[str]:
    return re.findall(r'subgraph "(cluster[^"]*)"', dot)


def dot_parses(dot: str) -> None:
    """dot -Tplain lays the text out without an error or warning."""
    done = subprocess.run(["dot", "-Tplain"], input=dot.encode(), capture_output=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b"Warning" not in done.stderr and b"Error" not in done.stderr, done.stderr.decode()
    assert done.stdout.startswith(b"graph ")


def ctx(g: nx.Graph, **options: str) -> EmitContext:
    model = cmx.compile_string("instance x: Empty\nnode Empty {}\n")  # unused by the emitters
    return EmitContext(model, g, options=options)


# ---- registration and helpers -----------------------------------------------------------

def test_emitters_are_registered_with_their_options() -> None:
    assert [e.name for e in EMITTERS] == ["dot", "svg", "png"]
    found = available_emitters()
    for cls in EMITTERS:
        assert found[cls.name] is cls
        assert {o.name for o in cls.options} == {"view", "node", "plane", "dims"}
    assert (DotEmitter.suffix, SvgEmitter.suffix, PngEmitter.suffix) == (".dot", ".svg", ".png")


def test_template_path_and_bandwidth_format() -> None:
    assert template_path("cm384.node[3].npu[5].die[1]") == "cm384.node[*].npu[*].die[*]"
    assert template_path("cm384.l2[6][15]") == "cm384.l2[*][*]"
    assert format_bandwidth(48 * 7 * 16 * 28 * GB) == "150.5 TB/s"
    assert format_bandwidth(28 * GB) == "28 GB/s"
    assert format_bandwidth(160 * GB / 7) == "22.86 GB/s"
    assert format_bandwidth(2e15) == "2 PB/s"


# ---- the supernode view of CloudMatrix384 -----------------------------------------------

@pytest.mark.parametrize(("name", "defines", "tier", "count"), [
    ("cloudmatrix384.cmx", (), "cm384.l2[*][*]", 7),
    ("cloudmatrix384-cluster.cmx", (("supernodes", "2"), ("nodes", "4")),
     "cluster.sn[*].l2[*][*]", 7),
])
def test_split_tiers_are_one_node_with_ports_in_index_order(
        name: str, defines: tuple[tuple[str, str], ...], tier: str, count: int) -> None:
    """dot reorders sibling boxes in a cluster whatever the hints; the cells of one
    HTML-table node it keeps in order, so a split tier is one node, one port per index."""
    dot = dot_text(graph(name, defines))
    (line,) = [ln for ln in dot.splitlines() if ln.strip().startswith(f'"{tier}" [label=<')]
    ports = re.findall(r'<td port="p(\d+)"[^>]*>([^<]*)<br/>', line)
    assert [int(k) for k, _ in ports] == list(range(count))
    assert [text.rsplit(".", 1)[-1] for _, text in ports] == [f"l2[{j}][*]" for j in range(count)]
    # every edge to the tier ends at its member's cell; no box of a member is left
    to_tier = [a for _t, h, a in edges(dot) if h == tier]
    assert sorted(a["headport"] for a in to_tier) == sorted(f"p{j}:n" for j in range(count))
    assert not re.search(r'"[^"]*l2\[0\]\[\*\]" \[', dot)


def test_cloudmatrix_supernode_view_totals() -> None:
    dot = dot_text(graph("cloudmatrix384.cmx"))
    assert 'subgraph "cluster:cm384.node[*]"' in dot
    assert "node[*]: 48 × CM384Node" in dot
    # the L2 tier is split into its 7 sub-planes of 16 chips
    # (one HTML-table node, one cell per sub-plane)
    for j in range(7):
        assert f'<td port="p{j}" bgcolor="#E6E6E6">cm384.l2[{j}][*]<br/>16 × UBSwitchL2</td>' in dot
    es = edges(dot)
    to_l2 = [a for t, h, a in es if t.startswith("cm384.node[*].") and h.startswith("cm384.l2[")]
    assert [a["headport"] for a in to_l2] == [f"p{j}:n" for j in range(7)]
    assert len(to_l2) == 7 and {a["cmx_plane"] for a in to_l2} == {"ub"}
    total = sum(float(a["cmx_bandwidth"]) for a in to_l2)
    assert total == pytest.approx(48 * 7 * 16 * 28 * GB)   # 150.5 TB/s
    assert sum(int(a["cmx_links"]) for a in to_l2) == 48 * 7 * 16
    assert all(a["label"] == "768 × 28 GB/s\\n= 21.5 TB/s" for a in to_l2)
    # in-node UB die <-> L1: 16 dies x 7 L1 x 28 GB/s per node, labelled per node
    (die_l1,) = [a for t, h, a in es
                 if (t, h) == ("cm384.node[*].npu[*]", "cm384.node[*].l1[*]")]
    assert die_l1["label"] == "112 × 28 GB/s\\n= 3.136 TB/s per node"
    assert float(die_l1["cmx_bandwidth"]) == pytest.approx(48 * 16 * 7 * 28 * GB)
    assert die_l1["cmx_scope"] == "cm384.node[*]"
    # RDMA: one 400 Gbps port per NIC to its rail leaf; VPC: one per DPU
    (rdma,) = [a for t, h, a in es if h == "cm384.rdma_leaf[*]"]
    assert float(rdma["cmx_bandwidth"]) == pytest.approx(48 * 8 * 50 * GB)
    (vpc,) = [a for t, h, a in es if h == "cm384.vpc_switch"]
    assert float(vpc["cmx_bandwidth"]) == pytest.approx(48 * 50 * GB)
    # colours differ per plane; the legend names every plane
    colours = {a["cmx_plane"]: a["color"] for _t, _h, a in es}
    assert len(set(colours.values())) == len(colours) == 4
    for plane in ("d2d", "ub", "rdma", "vpc"):
        assert f"{plane}: " in dot.split("node [", 1)[0]


def test_links_inside_a_box_are_stated_in_its_label_not_on_a_loop() -> None:
    """A TPU v4 pod of 4 x 4 x 4 chips (hosts of 2 x 2): a 3-D torus has 3 links per chip,
    192; 4 of them per host are on the board (64), the other 128 join hosts."""
    dot = dot_text(shipped_graph("tpu-v4-pod.cmx"))
    assert ("ici inside: 128 × 50 GB/s = 6.4 TB/s\\nici inside: 4 × 50 GB/s = 200 GB/s "
            "per host") in dot
    (loop,) = [a for t, h, a in edges(dot) if t == h]
    assert "label" not in loop and "xlabel" not in loop
    assert int(loop["cmx_links"]) == 192 and float(loop["cmx_bandwidth"]) == 192 * 50 * GB
    # CloudMatrix384: the dies of an NPU and the CPUs of a node
    cm = dot_text(graph("cloudmatrix384.cmx"))
    assert "d2d inside: 270 GB/s per npu" in cm
    assert "ub inside: 6 × 28 GB/s = 168 GB/s per node" in cm
    assert "xlabel" not in cm


def test_every_link_is_counted_once_in_the_supernode_view() -> None:
    g = graph("cloudmatrix384.cmx")
    es = edges(dot_text(g))
    assert sum(int(a["cmx_links"]) for *_x, a in es) == sum(
        int(d["count"]) for *_u, d in g.edges(data=True))
    assert sum(float(a["cmx_bandwidth"]) for *_x, a in es) == pytest.approx(
        sum(float(d["bandwidth"]) for *_u, d in g.edges(data=True)))


def test_plane_view_keeps_one_plane() -> None:
    g = graph("cloudmatrix384.cmx")
    dot = dot_text(g, "plane", plane="ub")
    es = edges(dot)
    assert es and {a["cmx_plane"] for *_x, a in es} == {"ub"}
    assert "rdma_leaf" not in dot and "vpc_switch" not in dot and "dpu" not in dot
    assert sum(float(a["cmx_bandwidth"]) for *_x, a in es) == pytest.approx(sum(
        float(d["bandwidth"]) for *_u, d in g.edges(data=True) if d["plane"] == "ub"))
    # -O plane=... alone selects the plane view
    assert DotEmitter().emit(ctx(g, plane="ub")) == dot


def test_node_view_of_cloudmatrix_node_3() -> None:
    g = graph("cloudmatrix384.cmx")
    dot = DotEmitter().emit(ctx(g, node="3"))
    assert dot == dot_text(g, "node", "3") == dot_text(g, "node", "cm384.node[3]")
    assert 'subgraph "cluster:cm384.node[3]"' in dot
    assert "cm384.node[4]" not in dot
    # the 8 NPUs are one HTML-table node, two rows of 4 in index order, a port per die
    (line,) = [ln for ln in dot.splitlines()
               if ln.strip().startswith('"table:cm384.node[3].npu[*]" [label=<')]
    assert re.findall(r"npu\[(\d)\]: Ascend910C", line) == [str(j) for j in range(8)]
    assert [r.count("Ascend910C") for r in line.split("</tr></table></td></tr>")[:-1]] == [4, 4]
    assert len(re.findall(r'<td port="c\d+"[^>]*>die\[[01]\]</td>', line)) == 16
    es = edges(dot)
    # the 16 x 7 die-L1 links are one edge between the two groups
    (mesh,) = [a for *_x, a in es if a["label"].startswith("every die ↔ every l1")]
    assert mesh["cmx_links"] == "112" and mesh["lhead"] == "cluster:cm384.node[3].l1[*]"
    assert float(mesh["cmx_bandwidth"]) == pytest.approx(16 * 7 * 28 * GB)
    # each L1 chip has its 16 uplinks to its own sub-plane
    for j in range(7):
        (up,) = [a for t, h, a in es if t == f"cm384.node[3].l1[{j}]"]
        assert up["label"] == "16 × 28 GB/s\\n= 448 GB/s"
    # the CPUs' NUMA full mesh (4 CPUs, 6 links of 28 GB/s): in the group's title
    assert 'label="cpu[0..3]: 4 × Kunpeng920; ub full mesh, every pair: 6 × 28 GB/s = ' \
        f'{format_bandwidth(6 * 28 * GB)}"' in dot
    assert not [t for t, h, _a in es if "cpu[" in t and "cpu[" in h]
    # d2d die-die: said in each NPU's cell, not drawn as an edge; the plane is in the legend
    assert line.count("d2d inside: 270 GB/s") == 8
    assert not [a for *_x, a in es if a["cmx_plane"] == "d2d"]
    assert "d2d: on-package" in dot.split("node [", 1)[0]
    assert mesh["tailport"].startswith("c")
    # each NPU's 2 dies to its own NIC (200 Gbps each): one edge between the two groups
    (rdma,) = [a for *_x, a in es if a["label"].startswith("npu[k] ↔ nic[k]")]
    assert rdma["label"] == "npu[k] ↔ nic[k]\\n2 × 25 GB/s\\n= 50 GB/s per npu"
    assert rdma["cmx_links"] == "16" and float(rdma["cmx_bandwidth"]) == 16 * 25 * GB
    assert rdma["ltail"] == "cluster:cm384.node[3].npu[*]"
    assert rdma["lhead"] == "cluster:cm384.node[3].nic[*]"
    assert "25 GB/s" not in [a["label"] for *_x, a in es]


def test_node_view_states_a_full_mesh_in_the_group_title() -> None:
    """UB-Mesh board: 8 NPUs, every pair linked once (28 links of 50 GB/s): one line in the
    group's title, not 28 arcs whose labels covered each other."""
    dot = dot_text(graph("ubmesh-rack.cmx"), "node")
    n = 8
    pairs = n * (n - 1) // 2
    assert (f"npu[0..7]: 8 × Npu; ub full mesh, every pair: {pairs} × 50 GB/s = "
            f"{format_bandwidth(pairs * 50 * GB)}") in dot
    inside = [(t, h) for t, h, a in edges(dot) if not h.startswith("outside:")]
    assert inside == []
    assert "ub: UB-Mesh" in dot.split("node [", 1)[0]


def test_node_view_names_a_2d_group_per_dimension() -> None:
    dot = dot_text(graph("tpu-v4-pod.cmx", (("nx", "4"), ("ny", "4"), ("nz", "4"))), "node")
    assert 'label="chip[0..1][0..1]: 4 × TPUv4"' in dot


def test_gb200_rack_and_tray_clusters() -> None:
    g = graph("gb200-nvl72.cmx")
    dot = dot_text(g)
    assert {"cluster:nvl72", "cluster:nvl72.tray[*]"} <= set(clusters(dot))
    # the switch tray holds one box: drawn as that box, titled (an edge ran through the
    # cluster's title)
    assert "cluster:nvl72.swtray[*]" not in clusters(dot)
    assert '"nvl72.swtray[*].chip[*]" [label="swtray[*]: 9 × NVLinkSwitchTray\\nchip[*]\\n' \
        '2 × NVLink5Switch"' in dot
    (nvl,) = [a for *_x, a in edges(dot) if a["cmx_plane"] == "nvlink"]
    assert float(nvl["cmx_bandwidth"]) == pytest.approx(72 * 18 * 50 * GB)
    node = dot_text(g, "node")
    # a tray's GPUs are one table node; a link to a GPU itself ends at the GPU's cell
    (line,) = [ln for ln in node.splitlines() if '"table:nvl72.tray[0].gpu[*]" [label=<' in ln]
    gpu0 = re.search(r'<td port="(c\d+)"[^>]*><table[^>]*><tr><td[^>]*>gpu\[0\]:', line)
    assert gpu0 is not None
    (c2c,) = [a for *_x, a in edges(node) if a["tooltip"].startswith(
        "c2c: nvl72.tray[0].gpu[0] -- nvl72.tray[0].cpu[0]")]
    assert c2c["tailport"] == gpu0.group(1)


def test_grid_view_draws_the_tpu_torus_as_its_grid() -> None:
    """TPU v4 with 8 x 8 x 4 chips: hosts host[4][4][4] (2 x 2 chips each).  The slice
    z = 0 is a 4 x 4 grid of hosts; each host has 2 links to each of its 4 neighbours in x
    and y (one per chip on that side), wrap-around included: 2 x 16 pairs, 8 of them wrap."""
    g = graph("tpu-v4-pod.cmx", (("nx", "8"), ("ny", "8"), ("nz", "4")))
    dot = dot_text(g, "grid")
    assert "grid of pod.host[*][*][*]: index 0 down, index 1 across, index 2 = 0" in dot
    pos = dict(re.findall(r'"(pod\.host\[\d\]\[\d\]\[0\])" \[.*pos="([-\d.,]+)!"', dot))
    assert len(pos) == 16
    xs = sorted({float(p.split(",")[0]) for p in pos.values()})
    ys = sorted({float(p.split(",")[1]) for p in pos.values()})
    assert len(xs) == len(ys) == 4                       # an exact 4 x 4 grid
    x0, y0 = (float(v) for v in pos["pod.host[0][0][0]"].split(","))
    x1, y1 = (float(v) for v in pos["pod.host[1][2][0]"].split(","))
    # row 1, column 2 (positions are written to 0.01 inch)
    assert (x1, y1) == pytest.approx((x0 + 2 * (xs[1] - xs[0]), y0 - (ys[-1] - ys[-2])),
                                     abs=0.02)
    es = edges(dot)
    assert len(es) == 32 and all(a["cmx_links"] == "2" for *_x, a in es)
    assert sum(1 for *_x, a in es if a.get("style") == "dashed") == 8
    assert ("pod.host[0][0][0]", "pod.host[3][0][0]") in {(t, h) for t, h, _a in es}
    # the same figures for every host are said once: on-board links, z links, PCIe
    assert ("each element: ici inside: 4 × 50 GB/s = 200 GB/s; ici out of this slice: "
            "8 × 50 GB/s = 400 GB/s; pcie inside: 4 × 15.75 GB/s = 63.02 GB/s") in dot
    assert "index 0 neighbours: 2 × 50 GB/s = 100 GB/s" in dot
    # another plane of the torus: y down, z across (x = 0)
    yz = dot_text(g, "grid", dims="1,2")
    assert "index 1 down, index 2 across, index 0 = 0" in yz and len(edges(yz)) == 32
    if HAVE_DOT:
        dot_parses(dot)


@pytest.mark.parametrize(("name", "dims", "message"), [
    ("cloudmatrix384.cmx", "0,1", "no array of two or more dimensions whose elements are linked"),
    ("tpu-v4-pod.cmx", "0,3", "the array has dimensions 0..2"),
    ("tpu-v4-pod.cmx", "x", "give two dimensions"),
])
def test_grid_view_errors_are_e026(name: str, dims: str, message: str) -> None:
    with pytest.raises(CmxError) as err:
        dot_text(shipped_graph(name), "grid", dims=dims)
    (diag,) = err.value.diagnostics
    assert diag.code == "E026" and message in diag.message


# ---- every view on every shipped topology -------------------------------------------------

GRIDS = {"tpu-v4-pod.cmx"}   # the shipped machines with a torus or mesh drawn as a grid


@pytest.mark.parametrize("name", SHIPPED)
def test_every_view_works_on_every_topology(name: str) -> None:
    g = shipped_graph(name)
    planes = [p for p in g.graph["planes"] if any(
        d["plane"] == p for *_u, d in g.edges(data=True))]
    views = [("supernode", "0", None), ("node", "0", None),
             *(("plane", "0", p) for p in planes)]
    try:
        dot_text(g, "grid")
        views.append(("grid", "0", None))
    except CmxError as err:   # no linked array of 2 or more dimensions: said, not drawn
        assert "view=grid: the topology has no array" in err.diagnostics[0].message
        assert name not in GRIDS
    else:
        assert name in GRIDS
    for view, node, plane in views:
        dot = dot_text(g, view, node, plane)
        assert dot == dot_text(g, view, node, plane)          # deterministic
        assert dot.startswith("// ") and dot.rstrip().endswith("}")
        assert dot.count("{") == dot.count("}")
        assert edges(dot), (name, view, plane)
        if HAVE_DOT:
            dot_parses(dot)


def test_output_is_deterministic_across_fresh_graphs() -> None:
    a = cmx.load_graph(TOPOLOGIES / "cloudmatrix384.cmx")
    b = cmx.load_graph(TOPOLOGIES / "cloudmatrix384.cmx")
    for view, plane in (("supernode", None), ("node", None), ("plane", "rdma")):
        assert dot_text(a, view, "5", plane) == dot_text(b, view, "5", plane)


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"view": "tree"}, "view='tree'"),
    ({"view": "plane"}, "view=plane needs -O plane=NAME"),
    ({"plane": "nvlink"}, "plane='nvlink'"),
    ({"node": "48"}, "node=48: the topology has 48 node instances"),
    ({"node": "cm384.nope"}, "node='cm384.nope'"),
])
def test_bad_options_are_e026(options: dict[str, str], message: str) -> None:
    with pytest.raises(CmxError) as err:
        DotEmitter().emit(ctx(graph("cloudmatrix384.cmx"), **options))
    (diag,) = err.value.diagnostics
    assert diag.code == "E026" and message in diag.message


def test_missing_dot_program_is_e026(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    g = graph("gb200-nvl72.cmx")
    assert DotEmitter().emit(ctx(g))                       # DOT text needs no program
    for cls in (SvgEmitter, PngEmitter):
        with pytest.raises(CmxError) as err:
            cls().emit(ctx(g))
        (diag,) = err.value.diagnostics
        assert diag.code == "E026" and diag.message == DOT_MISSING
    assert DOT_MISSING == ("the Graphviz 'dot' program is not installed "
                           "(Debian: apt-get install graphviz)")


# ---- svg and png ----------------------------------------------------------------------------

@needs_dot
def test_svg_and_png_are_produced() -> None:
    g = graph("cloudmatrix384.cmx")
    svg = SvgEmitter().emit(ctx(g, plane="ub"))
    assert isinstance(svg, str) and "<svg" in svg and "150.5" not in svg.split("<svg")[0]
    assert "21.5 TB/s" in svg
    assert svg == SvgEmitter().emit(ctx(g, plane="ub"))
    png = PngEmitter().emit(ctx(g, node="0"))
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


@needs_dot
def test_cmx_emit_png_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cm384.png"
    done = subprocess.run([sys.executable, "-m", "supernode_dsl", "emit", "png",
                           str(TOPOLOGIES / "h800-cluster.cmx"), "-D", "nodes=4",
                           "-O", "view=node", "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
