"""Code-quality gates run with the suite: ruff and mypy clean, grammar shipped in the package."""

from __future__ import annotations

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
