"""Start-up: each command imports only what it uses (a property, not a timing).

``cmx check`` and ``cmx compile`` parse, elaborate and build the graph: they need lark,
networkx and click, and none of scipy (the analyses), numpy, jsonschema (plan validation)
or jinja2 (templated emitters).  ``benchmarks/startup.py`` measures what this buys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys
from supernode_dsl.cli import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    assert not stop.code, stop.code
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def imported(*args: str) -> set[str]:
    """The top-level modules in ``sys.modules`` after ``cmx ARGS`` ran in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [
    ("check", "topologies/cloudmatrix384.cmx"),
    ("compile", "topologies/gb200-nvl72.cmx", "-o", "-"),
])
def test_graph_commands_import_no_analysis_libraries(args: tuple[str, ...]) -> None:
    mods = imported(*args)
    assert {"lark", "networkx", "click"} <= mods
    assert not mods & {"scipy", "numpy", "jsonschema", "jinja2", "rich"}, args


def test_info_imports_scipy_but_not_plan_libraries() -> None:
    """The control: the probe does see the imports of a command that needs them."""
    mods = imported("info", "--json", "topologies/gb200-nvl72.cmx")
    assert {"scipy", "numpy"} <= mods
    assert not mods & {"jsonschema", "jinja2"}
