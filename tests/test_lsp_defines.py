"""``cmx lsp -D``: the editor checks documents with the same global-parameter overrides as
``cmx check -D``, applied to the documents that declare the parameter and ignored by the
others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from supernode_dsl.lsp.analysis import Analysis, analyse
from supernode_dsl.units import Quantity

DOC = """\
plane ub "u"
param nodes = 4
die D { hbm = 1 GB }
node N { d[2]: D
  link ub d[0] <-> d[1] { bw = 1 GB/s } }
system S { node[nodes]: N }
instance s: S
"""


def _nodes(result: Analysis) -> float:
    assert result.model is not None
    value = dict(result.model.params)["nodes"]
    assert isinstance(value, Quantity)
    return value.value


def test_a_define_overrides_the_documents_parameter(tmp_path: Path) -> None:
    path = tmp_path / "main.cmx"
    path.write_text(DOC)
    plain = analyse(path, DOC)
    assert plain.diagnostics == () and _nodes(plain) == 4
    assert _nodes(analyse(path, DOC, defines={"nodes": "6"})) == 6
    # a value the file refuses is shown as `cmx check -D nodes=-1` reports it
    bad = analyse(path, DOC, defines={"nodes": "-1"})
    assert bad.model is None and bad.diagnostics
    check = subprocess.run([sys.executable, "-m", "supernode_dsl", "check", str(path),
                            "-D", "nodes=-1"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and f"error[{bad.diagnostics[0].code}]" in check.stderr


def test_a_define_of_another_files_parameter_is_ignored(tmp_path: Path) -> None:
    # an editor opens files of many machines: -D supernodes=2 is not an error in this one
    result = analyse(tmp_path / "main.cmx", DOC, defines={"supernodes": "2", "nodes": "5"})
    assert result.diagnostics == () and _nodes(result) == 5


def test_a_malformed_define_is_a_usage_error_before_the_server_starts() -> None:
    proc = subprocess.run([sys.executable, "-m", "supernode_dsl", "lsp", "-D", "nodes"],
                          input="", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "error[E015]: -D 'nodes': write -D name=value" in \
        proc.stderr
    assert "Traceback" not in proc.stderr
