"""The editor's symbol lookup (``lsp.symbols``) without a server: names declared inside
``if`` blocks (either branch, nested) resolve to their declarations."""

from __future__ import annotations

from pathlib import Path

import pytest

from supernode_dsl.lsp.analysis import analyse
from supernode_dsl.lsp.symbols import symbol_at

TEXT = """\
plane ub "scale-up"
param spare = true
param wide = false
die Die { hbm = 64 GB }
switch Sw { ports = 16 }
node Node {
    sw: Sw
    if spare {
        extra: Die
        if wide {
            more: Die
            link ub sw <-> more { bw = 1 GB/s }
        }
    } else {
        other: Die
        link ub sw <-> other { bw = 1 GB/s }
    }
    link ub sw <-> extra { bw = 1 GB/s }
}
instance n: Node
"""


def _line_of(text: str, needle: str) -> int:
    """1-based number of the first line holding ``needle``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("name", ["extra", "more", "other"])
def test_a_child_declared_in_an_if_block_is_found(tmp_path: Path, name: str) -> None:
    analysis = analyse(tmp_path / "n.cmx", TEXT)
    assert analysis.diagnostics == ()
    use = _line_of(TEXT, f"link ub sw <-> {name}")
    col = TEXT.splitlines()[use - 1].index(f"<-> {name}") + 5
    symbol = symbol_at(analysis, use, col)
    assert symbol is not None and symbol.kind == "instance" and symbol.declaration is not None
    declared = _line_of(TEXT, f"{name}: Die")
    assert (symbol.declaration.line, symbol.declaration.col) == (
        declared, TEXT.splitlines()[declared - 1].index(name) + 1)
    assert symbol.owner is not None and symbol.owner.name == "Node"
