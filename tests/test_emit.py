"""The emitter plugin framework: discovery (built-ins and entry points), `cmx emit`, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, Emitter, available_emitters, base

ROOT = Path(__file__).resolve().parent.parent
CM384 = ROOT / "topologies" / "cloudmatrix384.cmx"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_every_emitter_is_well_formed() -> None:
    emitters = available_emitters()
    assert {"node-link", "graphml"} <= set(emitters)
    for name, cls in emitters.items():
        assert cls.name == name and name == name.lower() and " " not in name
        assert cls.description and "\n" not in cls.description
        assert all(o.name and o.help and "\n" not in o.describe() for o in cls.options)
        assert len({o.name for o in cls.options}) == len(cls.options)


class _ThirdParty(Emitter):
    name = "third-party-count"
    description = "number of instances (a plugin from another package)"

    def emit(self, ctx: EmitContext) -> str:
        return f"{ctx.graph.number_of_nodes()}\n"


class _FakeEntryPoint:
    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def load(self) -> Any:
        if isinstance(self.obj, Exception):
            raise self.obj
        return self.obj


def test_third_party_emitters_come_from_the_entry_point_group(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake(group: str) -> list[_FakeEntryPoint]:
        seen.append(group)
        return [_FakeEntryPoint(_ThirdParty), _FakeEntryPoint(ImportError("broken plugin")),
                _FakeEntryPoint(object)]

    monkeypatch.setattr(base, "entry_points", fake)
    emitters = available_emitters()
    assert seen == ["supernode_dsl.emitters"]
    assert emitters["third-party-count"] is _ThirdParty     # found
    assert "node-link" in emitters                          # built-ins kept; broken ones skipped


def test_node_link_through_cmx_emit_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    r = _run("emit", "node-link", str(CM384), "-D", "nodes=2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    g = nx.node_link_graph(json.loads(out.read_text()), edges="links")
    assert g.number_of_nodes() == cmx.load_graph(CM384, {"nodes": "2"}).number_of_nodes()


def test_emit_list_names_every_format() -> None:
    r = _run("emit", "--list")
    assert r.returncode == 0
    for name in available_emitters():
        assert f"  {name} " in r.stdout


def test_emit_errors(tmp_path: Path) -> None:
    r = _run("emit", "no-such-format", str(CM384), "-o", str(tmp_path / "x"))
    assert r.returncode == 1 and "error[E026]" in r.stderr and "Traceback" not in r.stderr
    r = _run("emit", "graphml", str(CM384), "-O", "colour=red", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "has no option 'colour'" in r.stderr   # usage
    r = _run("emit", "graphml", str(CM384))
    assert r.returncode == 2            # usage: -o is required
    assert not (tmp_path / "x").exists()


def test_require_plan_is_an_e026() -> None:
    model = cmx.compile_file(CM384, {"nodes": "1"})
    ctx = EmitContext(model, cmx.build_graph(model))
    with pytest.raises(CmxError) as exc:
        ctx.require_plan("some-format")
    assert exc.value.codes == ["E026"] and "--plan" in str(exc.value)
