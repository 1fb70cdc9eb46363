"""Golden tests, one per stage and fixture: parse (AST JSON), elaborate (model text),
graph (node-link JSON) and emit (GraphML).

Regenerate all of them with one switch: ``pytest tests/test_golden.py --regen-golden``
(or ``CMX_REGEN_GOLDEN=1``).  Inputs are compiled with the repository root as working
directory and repository-relative paths, so no golden contains an absolute path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from supernode_dsl.diagnostics import Span
from supernode_dsl.elaborate import Model, elaborate
from supernode_dsl.emit import graphml_text, node_link_text
from supernode_dsl.graph import build_graph
from supernode_dsl.parse import Program, parse_program
from supernode_dsl.units import Quantity

REPO = Path(__file__).resolve().parent.parent

#: name -> (file relative to the repository root, -D defines)
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "ring2": ("tests/fixtures/ring2.cmx", {}),
    "torus": ("tests/fixtures/torus.cmx", {}),
    "features": ("tests/fixtures/features/main.cmx", {}),
    "cm384_nodes2": ("topologies/cloudmatrix384.cmx", {"nodes": "2"}),
    "constructs": ("tests/fixtures/constructs.cmx", {}),
}

STAGES = ("parse.json", "model.txt", "node_link.json", "graphml")


# ---- parse stage: a stable JSON form of the AST -------------------------------------------
def span_text(span: Span) -> str:
    """``line:col-line:col`` (the file is implied by the enclosing FileAST)."""
    return f"{span.line}:{span.col}-{span.end_line}:{span.end_col}"


def ast_to_json(node: Any) -> Any:
    """Any AST value as plain JSON data; dataclasses carry their class name as ``_node``."""
    if isinstance(node, Span):
        return span_text(node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"_node": type(node).__name__}
        for f in dataclasses.fields(node):
            out[f.name] = ast_to_json(getattr(node, f.name))
        return out
    if isinstance(node, (tuple, list)):
        return [ast_to_json(x) for x in node]
    if isinstance(node, float) and not (node == node and abs(node) != float("inf")):
        return repr(node)  # inf/nan: keep the dump valid JSON
    if node is None or isinstance(node, (str, int, float, bool)):
        return node
    raise TypeError(f"unexpected value in AST: {type(node).__name__}")


def program_json(program: Program) -> str:
    data = {
        "main": program.main.path,
        "files": [ast_to_json(f) for f in program.files],
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# ---- elaborate stage: a stable text form of the model ---------------------------------------
def value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, Quantity):
        d = v.dim
        dims = " ".join(f"{n}^{e}" for n, e in
                        (("B", d.byte), ("s", d.second), ("op", d.op), ("W", d.watt)) if e)
        return repr(v.value) + (f" [{dims}]" if dims else "")
    raise TypeError(f"unexpected value: {type(v).__name__}")


def attrs_text(attrs: tuple[tuple[str, Any], ...]) -> str:
    return "{" + ", ".join(f"{k}={value_text(v)}" for k, v in attrs) + "}"


def model_text(model: Model) -> str:
    lines = [
        f"root {model.root_name}: {model.root.type_name} ({model.num_instances} instances)",
        "files: " + ", ".join(model.files),
    ]
    lines += [f"param {k} = {value_text(v)}" for k, v in model.params]
    lines += [f"plane {p.name} {json.dumps(p.description, ensure_ascii=False)}"
              for p in model.planes]
    lines += [f"count category {k} = {n}" for k, n in model.count_by_category().items()]
    lines += [f"count type {k} = {n}" for k, n in model.count_by_type().items()]
    instances = list(model.instances())
    paths = [""] * model.num_instances
    lines.append("instances:")
    for inst in instances:
        paths[inst.index] = inst.path
        t = inst.template
        lines.append(f"  #{inst.index} {inst.path}: {t.category} {t.type_name} "
                     f"parent={inst.parent or '-'} {attrs_text(t.attrs)}")
    lines.append("links:")
    for inst in sorted(instances, key=lambda i: i.index):
        for b in inst.template.links:
            where = f"{b.span.file}:{b.span.line}:{b.span.col}"
            lines.append(f"  bundle in {inst.path} plane={b.plane} "
                         f"link_bw={b.link_bandwidth!r} latency={b.latency!r} "
                         f"pairs={len(b.pairs)} at {where}")
            for a, c, n in b.pairs:
                lines.append(f"    {paths[inst.index + a]} <-> {paths[inst.index + c]} x{n}")
    return "\n".join(lines) + "\n"


# ---- running the stages -----------------------------------------------------------------------
def stage_texts(rel: str, defines: Mapping[str, str]) -> dict[str, str]:
    """The four stage outputs of one input (cwd must be the repository root)."""
    program = parse_program(rel)
    model = elaborate(program, dict(defines))
    g = build_graph(model)
    return {
        "parse.json": program_json(program),
        "model.txt": model_text(model),
        "node_link.json": node_link_text(g),
        "graphml": graphml_text(g),
    }


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


_ABS = re.compile(r"""(^|[\s"'(=,:])(/(home|tmp|work|usr|root|Users|var|private)\b|[A-Za-z]:\\)""")


def assert_no_absolute_paths(text: str) -> None:
    assert str(REPO) not in text
    assert str(Path.home()) not in text or str(Path.home()) in ("/", "")
    m = _ABS.search(text)
    assert m is None, f"absolute path in output: {text[max(0, m.start() - 40):m.end() + 40]!r}"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, stage: str, golden: Any, at_repo_root: Path) -> None:
    rel, defines = CASES[case]
    text = stage_texts(rel, defines)[stage]
    assert_no_absolute_paths(text)
    golden.check(f"{case}.{stage}", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_stages_repeatable_in_process(case: str, at_repo_root: Path) -> None:
    """Compiling twice in one process (caches warm) gives the same bytes at every stage."""
    rel, defines = CASES[case]
    assert stage_texts(rel, defines) == stage_texts(rel, defines)


def test_parse_dump_file_names_relative(at_repo_root: Path) -> None:
    program = parse_program(CASES["cm384_nodes2"][0])
    names = [f.path for f in program.files]
    assert names == ["topologies/lib/ascend.cmx", "topologies/cloudmatrix384.cmx"]
    assert not any(os.path.isabs(n) for n in names)


def test_every_golden_file_is_used() -> None:
    """No stale golden files are left behind after a case or stage is removed."""
    expected = {f"{c}.{s}" for c in CASES for s in STAGES}
    present = {p.name for p in (REPO / "tests" / "golden").iterdir() if p.is_file()}
    assert present <= expected, f"stale golden files: {sorted(present - expected)}"
