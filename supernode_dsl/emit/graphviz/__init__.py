"""Graphviz drawings of a compiled graph: ``dot`` (DOT text), ``svg`` and ``png``.

Three views, chosen with ``-O view=...`` (see ``docs/emitters-graphviz.md``):

* ``supernode`` (default): the whole machine collapsed.  Instances are grouped by their
  *template path* (the path with indices replaced by ``[*]``, e.g. ``cm384.node[*].l1[*]``).
  Container instances (categories ``system``, ``rack``, ``node``, ``board``) that have children
  become clusters, one per template ("48 x CM384Node"); every other instance becomes one box
  per template that also holds its descendants (an NPU box holds its dies).  A switch array
  with two or more dimensions is split by its first index when that gives 2 to 16 boxes (the
  L2 tier of CloudMatrix384 becomes 7 sub-plane boxes of 16, drawn as the cells of one
  HTML-table node so that they stay in index order).  Edges are aggregated per pair
  of boxes, plane and *scope*: links whose lowest common ancestor is a replicated instance
  (inside one node, one NPU) are labelled per replica ("per node"), the others with the
  machine-wide total.
* ``node``: one ``node`` instance in detail (``-O node=K``: the K-th instance of category
  ``node`` in instance order, default 0, or an instance path).  Every instance inside it is
  drawn; links leaving it go to collapsed boxes of the outside, keyed as in the supernode
  view.  A bundle of more than 8 links that joins every member of one sibling group to every
  member of another (16 dies x 7 L1 switches) is drawn as one edge between the two groups;
  a full mesh inside a group of 4 or more is said in the group's title; a group whose
  members have only leaf children (8 NPUs of 2 dies) is one HTML-table node, a cell and
  port per member and child, in index order.
* ``plane``: the supernode view restricted to one plane (``-O plane=NAME``); boxes and
  clusters without a link of that plane are left out.  ``-O plane=NAME`` alone selects this
  view; with ``view=node`` it filters the node view.

Every edge carries machine-readable attributes that renderers ignore: ``cmx_plane``,
``cmx_links`` (parallel links in the aggregate, whole machine), ``cmx_bandwidth`` (B/s one
direction, whole machine, a Python float ``repr``) and ``cmx_scope`` (the template a
per-replica label refers to, or ``""``).  Colours are per plane, in declaration order; the
legend is the graph label.  Same graph and options, same bytes.

Modules: :mod:`~.common` (the machine model, labels, DOT quoting), :mod:`~.supernode` (the
supernode view and its plane variant), :mod:`~.node` (the node view), :mod:`~.dot`
(:func:`dot_text`: a view as DOT text), :mod:`~.run` (running ``dot``) and
:mod:`~.emitters` (the ``dot``, ``svg`` and ``png`` emitters).
"""

from supernode_dsl.emit.graphviz.common import format_bandwidth, template_path
from supernode_dsl.emit.graphviz.dot import VIEWS, dot_text
from supernode_dsl.emit.graphviz.emitters import EMITTERS, DotEmitter, PngEmitter, SvgEmitter
from supernode_dsl.emit.graphviz.run import DOT_MISSING, run_dot

__all__ = [
    "DOT_MISSING",
    "EMITTERS",
    "VIEWS",
    "DotEmitter",
    "PngEmitter",
    "SvgEmitter",
    "dot_text",
    "format_bandwidth",
    "run_dot",
    "template_path",
]
