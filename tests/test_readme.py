"""The README as a script: every command of its ```sh blocks runs as written.

Each command runs with ``bash`` in one fresh temporary directory (so outputs such as
``plan.json`` are made by earlier commands, as a reader following the tour makes them) that
holds only a link to the repository's ``topologies/``, with this interpreter's ``bin/`` (the
installed ``cmx``) first on ``PATH``.  A comment line ``#   TEXT`` right after a command is
its documented output and must appear in what it prints.  The first two blocks (install,
and ``bash .ci/run``) are what ``.ci/run`` itself does on a clean clone, so they are not run
here.  Commands that draw with Graphviz need ``dot`` and are skipped without it.

The tour takes about a minute of CPU, so it runs only with ``--run-readme`` (or
``CMX_README=1``); ``.ci/run`` runs it after the suite, in its fresh virtual environment.
The parser is checked always.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOT_HERE = ("python3 -m venv ", "bash .ci/run")  # what .ci/run does on a clean clone


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    expected: tuple[str, ...]


def readme_commands(text: str) -> list[Command]:
    """The commands of the ```sh blocks of ``text``, with their documented output lines."""
    out: list[Command] = []
    block = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("```"):
            block = line == "```sh"
            continue
        if not block or not line:
            continue
        if line.startswith("#   ") and out and out[-1].line >= number - 1 - len(out[-1].expected):
            prev = out[-1]
            out[-1] = Command(prev.line, prev.text, (*prev.expected, line[4:].strip()))
        elif not line.startswith("#"):
            out.append(Command(number, line.split("  #")[0].strip(), ()))
    return out


def test_readme_parser_finds_the_tour() -> None:
    cmds = readme_commands(README.read_text(encoding="utf-8"))
    texts = [c.text for c in cmds]
    assert texts[0].startswith("python3 -m venv ") and texts[1] == "bash .ci/run"
    assert "cmx check topologies/cloudmatrix384.cmx" in texts
    check = next(c for c in cmds if c.text == "cmx check topologies/cloudmatrix384.cmx")
    assert check.expected == ("topologies/cloudmatrix384.cmx: ok: 2,282 instances, "
                              "14,016 link bundles on 4 planes",)
    # every file a command reads is shipped or made by an earlier command
    assert any(t.startswith("cmx loads synth") and "-o loads.json" in t for t in texts)


def _wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("--run-readme")) or os.environ.get("CMX_README") == "1"


def test_every_readme_command_runs(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if not _wanted(request.config):
        pytest.skip("the README tour takes a minute: run with --run-readme or CMX_README=1")
    (tmp_path / "topologies").symlink_to(ROOT / "topologies")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("COLUMNS", None)
    for cmd in readme_commands(README.read_text(encoding="utf-8")):
        if cmd.text.startswith(NOT_HERE):
            continue
        if " emit png " in cmd.text and shutil.which("dot") is None:
            continue
        proc = subprocess.run(["bash", "-c", cmd.text], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        said = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"README.md:{cmd.line}: {cmd.text}\n{said[-3000:]}"
        assert "Traceback" not in said, f"README.md:{cmd.line}: {cmd.text}\n{said}"
        for want in cmd.expected:
            assert want in said, f"README.md:{cmd.line}: {cmd.text}: expected {want!r}\n{said}"
