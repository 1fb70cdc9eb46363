"""Start-up: each command imports only what it uses (a property, not a timing).

``cmx check`` and ``cmx compile`` parse, elaborate and build the graph: they need lark,
networkx and click, and none of scipy (the analyses), numpy, jsonschema (plan validation)
or jinja2 (templated emitters).  ``benchmarks/startup.py`` measures what this buys.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
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
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def imported(*args: str) -> set[str]:
    """The modules in ``sys.modules`` after ``cmx ARGS`` ran in a fresh process."""
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
    tops = {m.split(".")[0] for m in mods}
    assert {"lark", "networkx", "click"} <= tops
    assert not tops & {"scipy", "numpy", "jsonschema", "jinja2", "rich"}, args
    assert {"supernode_dsl.emit.jsontext", "supernode_dsl.graph.build"} <= mods  # the control
    # nor the emitters' interface and options, nor the graph analyses they do not run
    assert not mods & {"supernode_dsl.emit.base", "supernode_dsl.emit.options",
                       "supernode_dsl.graph.dimensions", "supernode_dsl.graph.routing",
                       "supernode_dsl.plan"}, args


def test_info_imports_scipy_but_not_plan_libraries() -> None:
    """The control: the probe does see the imports of a command that needs them."""
    mods = {m.split(".")[0] for m in imported("info", "--json", "topologies/gb200-nvl72.cmx")}
    assert {"scipy", "numpy"} <= mods
    assert not mods & {"jsonschema", "jinja2"}


@pytest.mark.parametrize("package", ["supernode_dsl.emit", "supernode_dsl.graph"])
def test_every_name_of_a_lazy_package_resolves(package: str) -> None:
    """Each name in ``__all__`` is found (imported from its module on first use), as the
    module defines it; an unknown name is an AttributeError."""
    mod = importlib.import_module(package)
    for name in mod.__all__:
        value = getattr(mod, name)
        assert not isinstance(value, types.ModuleType), name
    assert not hasattr(mod, "nothing_of_that_name")


_GC_PROBE = """
import gc, sys
from supernode_dsl import cli
sys.argv = ["cmx", "check", "topologies/gb200-nvl72.cmx"]
try:
    cli.console() if {console} else cli.main(sys.argv[1:])
except SystemExit as stop:
    assert not stop.code, stop.code
print(gc.get_freeze_count(), gc.isenabled(), file=sys.stderr)
"""


@pytest.mark.parametrize("console", [True, False])
def test_only_the_process_entry_point_freezes_the_collector(console: bool) -> None:
    """``console()`` (the ``cmx`` script) freezes the imported modules out of the cyclic
    collector's walks; ``main()``, which a program may call, leaves its collector alone."""
    proc = subprocess.run([sys.executable, "-c", _GC_PROBE.format(console=console)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    frozen, enabled = proc.stderr.split()[-2:]
    assert (int(frozen) > 10_000) is console
    assert enabled == "True"



def test_the_cmx_script_and_python_m_run_the_entry_point() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cmx"] == "supernode_dsl.cli:console"
    assert "console()" in (ROOT / "supernode_dsl" / "__main__.py").read_text()
