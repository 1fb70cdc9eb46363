"""Code-quality gates run with the suite: ruff and mypy clean, grammar shipped in the package."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import supernode_dsl
from supernode_dsl.parse.grammar import grammar_path

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        pytest.skip(f"{name} is not installed (pip install '.[test]')")
    return exe


def test_ruff_clean() -> None:
    result = subprocess.run([_tool("ruff"), "check", "supernode_dsl"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    result = subprocess.run([_tool("mypy"), str(ROOT / "supernode_dsl"), str(ROOT / "tests")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grammar_is_found_next_to_the_package() -> None:
    """Installed from a wheel, the grammar must come from inside the package, not the repo."""
    package_dir = Path(supernode_dsl.__file__).resolve().parent
    found = grammar_path()
    if package_dir.parent == ROOT:  # running from the source tree (editable install)
        assert found == ROOT / "grammars" / "cmx.lark"
    else:
        assert found == package_dir / "grammars" / "cmx.lark"
        assert (package_dir / "codegen").is_dir()


# ---- emitters: no private imports, no path parsing ---------------------------------------

EMIT = ROOT / "supernode_dsl" / "emit"

#: Emit modules that may import ``re``, each with what it matches (never an instance path:
#: emitters read an instance's position from the node attributes ``array``, ``indices`` and
#: ``parent``).  Paths are relative to ``supernode_dsl/emit``.
RE_ALLOWED = {
    "yamltext.py": "whether a YAML scalar may be written plain",
    "report/diagrams.py": "the cleaning of Graphviz SVG (prologue, comments, namespaces, ids)",
}
_REGEX_MODULES = frozenset({"re", "regex"})


def emit_violations(source: str, module: str) -> list[str]:
    """What the emitter ``module`` (dotted name) does against the rules: importing a private
    name (``_x``) from another module, reading one off an imported module, or importing
    ``re`` unless ``RE_ALLOWED`` lists the module."""
    tree = ast.parse(source)
    out: list[str] = []
    imported: set[str] = set()
    relative = module.removeprefix("supernode_dsl.emit.").replace(".", "/") + ".py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
                if alias.name.split(".")[0] in _REGEX_MODULES and relative not in RE_ALLOWED:
                    out.append(f"{module}:{node.lineno}: imports {alias.name}")
                if any(part.startswith("_") and not part.startswith("__")
                       for part in alias.name.split(".")):
                    out.append(f"{module}:{node.lineno}: imports private {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            source_module = node.module or ""
            if source_module.split(".")[0] in _REGEX_MODULES and relative not in RE_ALLOWED:
                out.append(f"{module}:{node.lineno}: imports from {source_module}")
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.append(f"{module}:{node.lineno}: imports private {alias.name} "
                               f"from {source_module or '.'}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in imported and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            out.append(f"{module}:{node.lineno}: uses private {node.value.id}.{node.attr}")
    return out


def _emit_modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(ROOT).with_suffix("").parts), p)
            for p in sorted(EMIT.rglob("*.py"))]


def test_emitters_import_no_private_name_and_parse_no_path() -> None:
    problems = [v for module, path in _emit_modules()
                for v in emit_violations(path.read_text(encoding="utf-8"), module)]
    assert problems == []


def test_the_regex_allow_list_names_existing_modules() -> None:
    present = {str(p.relative_to(EMIT)) for _, p in _emit_modules()}
    assert set(RE_ALLOWED) <= present


@pytest.mark.parametrize(("source", "expected"), [
    ("from supernode_dsl.emit.base import _helper\n", "imports private _helper"),
    ("from . import _x as y\n", "imports private _x"),
    ("import supernode_dsl.emit._impl\n", "imports private supernode_dsl.emit._impl"),
    ("from supernode_dsl.emit import base\nbase._secret()\n", "uses private base._secret"),
    ("import re\n", "imports re"),
    ("import re as r\n", "imports re"),
    ("from re import compile\n", "imports from re"),
])
def test_the_emitter_rules_can_fail(source: str, expected: str) -> None:
    (found,) = emit_violations(source, "supernode_dsl.emit.some_format")
    assert expected in found


def test_the_emitter_rules_allow_what_is_fine() -> None:
    fine = ("from __future__ import annotations\nimport json\n"
            "from supernode_dsl.graph import collapse\nclass C:\n"
            "    def f(self) -> None:\n        self._own = json.__name__\n")
    assert emit_violations(fine, "supernode_dsl.emit.some_format") == []
    assert emit_violations("import re\n", "supernode_dsl.emit.yamltext") == []


# ---- no assert in the package --------------------------------------------------------------


def assert_statements(source: str, name: str) -> list[str]:
    """``name:line`` of every ``assert`` statement in ``source``."""
    return [f"{name}:{node.lineno}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Assert)]


def test_the_package_has_no_assert() -> None:
    """``python -O`` removes asserts, so none may guard anything: user input is checked by
    explicit code raising a diagnostic (``supernode_dsl.contracts``), an internal invariant by
    ``contracts.present``/``narrow`` or an explicit raise."""
    found = [hit for p in sorted((ROOT / "supernode_dsl").rglob("*.py"))
             for hit in assert_statements(p.read_text(encoding="utf-8"),
                                          str(p.relative_to(ROOT)))]
    assert found == []


def test_the_assert_rule_can_fail() -> None:
    assert assert_statements("def f(x):\n    assert x > 0\n", "m.py") == ["m.py:2"]
    assert assert_statements("x = 'assert'\n", "m.py") == []
