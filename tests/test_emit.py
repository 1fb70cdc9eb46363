"""The emitter plugin framework: discovery (built-ins and entry points), `cmx emit`, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

import supernode_dsl as cmx
from supernode_dsl.diagnostics import CmxError
from supernode_dsl.emit import EmitContext, Emitter, available_emitters, base

ROOT = Path(__file__).resolve().parent.parent
CM384 = ROOT / "topologies" / "cloudmatrix384.cmx"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supernode_dsl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


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
    g = nx.node_link_graph(json.loads(out.read_text()))
    assert g.number_of_nodes() == cmx.load_graph(CM384, {"nodes": "2"}).number_of_nodes()


def test_emit_list_names_every_format() -> None:
    r = _run("emit", "--list")
    assert r.returncode == 0
    for name in available_emitters():
        assert f"  {name} " in r.stdout


def test_emit_errors(tmp_path: Path) -> None:
    r = _run("emit", "no-such-format", str(CM384), "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "error[E026]" in r.stderr and "Traceback" not in r.stderr  # usage
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


def test_builtins_are_registered_only_in_builtin() -> None:
    """pyproject.toml declares no entry point for a built-in emitter (BUILTIN is the one
    registry), and every built-in is found without entry points."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get(base.ENTRY_POINT_GROUP, {})
    assert not [v for v in declared.values() if v.startswith("supernode_dsl.")]
    from supernode_dsl.emit.builtin import BUILTIN

    assert {cls.name for cls in BUILTIN} <= set(available_emitters())
    assert len({cls.name for cls in BUILTIN}) == len(BUILTIN)
    assert "report" in {cls.name for cls in BUILTIN}


def _docs_block(lang: str) -> str:
    """The first ``lang`` code block of the "Writing an emitter" part of docs/emitters.md."""
    text = (ROOT / "docs" / "emitters.md").read_text(encoding="utf-8")
    part = text[text.index("## Writing an emitter"):]
    found = re.search(rf"```{lang}\n(.*?)```", part, re.S)
    assert found is not None
    return found.group(1)


def test_the_documented_plugin_works_from_its_own_package(tmp_path: Path) -> None:
    """The emitter and entry point of docs/emitters.md, installed as a package of its own
    (a dist-info on the path): listed with its option, run, and its options checked."""
    entry = tomllib.loads(_docs_block("toml"))["project"]["entry-points"][base.ENTRY_POINT_GROUP]
    ((name, target),) = entry.items()
    module = target.split(":")[0]
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True)
    (path.parent / "__init__.py").write_text("")
    path.write_text(_docs_block("python"))
    info = tmp_path / "my_package-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{base.ENTRY_POINT_GROUP}]\n{name} = {target}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    listed = _run("emit", "--list", env=env)
    assert listed.returncode == 0 and f"  {name} " in listed.stdout
    assert "-O label=TEXT  text before the number (default: instances)" in listed.stdout
    ring = ROOT / "tests" / "fixtures" / "ring2.cmx"
    r = _run("emit", name, str(ring), "-O", "label=chips", "-o", "-", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "chips: 3\n"              # the pair and its two chips
    r = _run("emit", name, str(ring), "-O", "colour=red", "-o", "-", env=env)
    assert r.returncode == 2 and "'instance-count' has no option 'colour'" in r.stderr
