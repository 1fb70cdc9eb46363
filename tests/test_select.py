"""Query selectors (``graph.select``): the grammar's reference syntax, matched on the nodes'
``array`` and ``indices``."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supernode_dsl as cmx
from supernode_dsl.diagnostics import render
from supernode_dsl.graph import PatternError, select

SRC = """
plane p
die D { }
accelerator A { die[2]: D }
switch S { }
node N { a[4]: A
         s: S
         link p a[*].die[*] <-> s { bw = 10 GB/s } }
system X { node[3]: N
           l2[2][3]: S
           link p node[i].s <-> l2[*][i] { bw = 10 GB/s } }
instance x: X
"""


@pytest.fixture(scope="module")
def g() -> nx.Graph:
    return cmx.build_graph(cmx.compile_string(SRC))


@pytest.mark.parametrize(("pattern", "expected"), [
    ("x.node[1].a[2]", ["x.node[1].a[2]"]),
    ("node[1].a[2]", ["x.node[1].a[2]"]),                      # root name left out
    ("node[0:2].s", ["x.node[0].s", "x.node[1].s"]),           # lo:hi is lo .. hi-1
    ("node[*].a[3].die[1]", [f"x.node[{i}].a[3].die[1]" for i in range(3)]),
    ("l2[1][*]", [f"x.l2[1][{j}]" for j in range(3)]),
    ("l2[*][2]", ["x.l2[0][2]", "x.l2[1][2]"]),
    ("node[2 - 1].a[1 + 1]", ["x.node[1].a[2]"]),              # constant expressions
    (" node[ 0 ] . s ", ["x.node[0].s"]),                      # blanks as in a .cmx file
])
def test_valid_selectors(g: nx.Graph, pattern: str, expected: list[str]) -> None:
    assert select(g, pattern) == expected


def test_out_of_range_and_wrong_shape_match_nothing(g: nx.Graph) -> None:
    assert select(g, "node") == []  # node is an array: it takes one index
    assert select(g, "node[7]") == []
    assert select(g, "node[0][0]") == []
    assert select(g, "node[0].nope") == []


@pytest.mark.parametrize(("pattern", "col", "words"), [
    ("node[", 6, "unexpected end of the selector"),
    ("node[1:]", 8, "unexpected ']'"),
    ("1node", 1, "unexpected '1'; expected a name"),
    ("node[0]..a", 9, "expected a name"),
    ("node[0] s", 9, "unexpected 's'"),
    ("node[x]", 6, "'x' is not a number"),
    ("node[-1]", 6, "must be at least 0"),
    ("node[1.5]", 6, "whole number"),
    ("node[2:1]", 5, "range [2:1] is empty"),
    ("node[3 GB]", 6, "plain number"),
    ("", 1, "unexpected end of the selector"),
])
def test_malformed_selectors_are_located_e020(g: nx.Graph, pattern: str, col: int,
                                              words: str) -> None:
    with pytest.raises(PatternError) as err:
        select(g, pattern)
    diag = err.value.diagnostic
    assert diag.code == "E020"
    assert words in diag.message and str(err.value) == diag.message
    assert diag.span is not None and (diag.span.line, diag.span.col) == (1, col)
    assert render(diag).startswith(f"<selector>:1:{col}: error[E020]: ")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2), st.integers(0, 3), st.integers(0, 1))
def test_an_instance_path_selects_itself(g: nx.Graph, node: int, acc: int, die: int) -> None:
    path = f"x.node[{node}].a[{acc}].die[{die}]"
    assert select(g, path) == [path]
    assert select(g, path.removeprefix("x.")) == [path]
