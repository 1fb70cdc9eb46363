"""``cmx lsp`` driven by a real LSP client (pygls's) over stdio: initialize, diagnostics as
published for unsaved text (in the document and through an import), hover, go to definition
into an imported file, completion, shutdown and exit.

One server process serves the whole module (the client runs on an event loop in a thread),
so the file takes about a second and a half.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = pytest.importorskip("lsprotocol.types")
client_mod = pytest.importorskip("pygls.lsp.client")
uris = pytest.importorskip("pygls.uris")

R = TypeVar("R")

LIB = """\
plane ub "scale-up"

param link_bw = 28 GB/s   # one UB link

die Die { hbm = 64 GB }

accelerator Npu {
    die[2]: Die
    link ub die[0] <-> die[1] { bw = 2 * link_bw }
}
"""

MAIN = """\
import "lib/parts.cmx"

param nodes = 4

node Node {
    npu[8]: Npu
    sw: Sw
    link ub npu[*].die[*] <-> sw { bw = link_bw }
}

switch Sw { ports = 16 }

system Pod {
    node[nodes]: Node
}

instance pod: Pod
"""

# E004: a time where a bandwidth is needed
BROKEN = MAIN.replace("{ bw = link_bw }", "{ bw = 5 ns }")


def where(text: str, line_has: str, word: str) -> tuple[int, int]:
    """0-based line and column of ``word`` on the first line containing ``line_has``."""
    n, line = next((n, ln) for n, ln in enumerate(text.splitlines()) if line_has in ln)
    return n, line.index(word)


class Session:
    """A pygls client on its own event loop thread, talking to ``python -m supernode_dsl
    lsp``; ``run`` waits for a coroutine on that loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = client_mod.LanguageClient("cmx-test", "1")
        self.published: dict[str, list[Any]] = {}
        self.arrived = asyncio.Event()
        self.result: Any = None  # the server's answer to initialize

        def publish(_client: object, params: Any) -> None:
            self.published.setdefault(params.uri, []).append(params)
            self.arrived.set()

        # registered by a call: pygls's decorator is untyped (mypy --strict refuses it)
        self.client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(publish)

    def run(self, coro: Coroutine[Any, Any, R], timeout: float = 20.0) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def uri(self, name: str) -> str:
        uri: str = uris.from_fs_path(str(self.root / name))
        return uri

    async def diagnostics(self, uri: str, count: int) -> Any:
        """The ``count``-th publication for ``uri`` (waiting for it)."""
        while len(self.published.get(uri, [])) < count:
            self.arrived.clear()
            await self.arrived.wait()
        return self.published[uri][count - 1]


@pytest.fixture(scope="module")
def lsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("lsp")
    (root / "lib").mkdir()
    (root / "lib" / "parts.cmx").write_text(LIB)
    (root / "main.cmx").write_text("# the editor's unsaved text differs from this file\n")
    s = Session(root)
    s.run(s.client.start_io(sys.executable, "-m", "supernode_dsl", "lsp", cwd=str(root)))
    s.result = s.run(s.client.initialize_async(T.InitializeParams(
        capabilities=T.ClientCapabilities(), root_uri=uris.from_fs_path(str(root)))))
    s.client.initialized(T.InitializedParams())
    yield s
    if not s.client.stopped:
        s.run(s.client.shutdown_async(None))
        s.client.exit(None)
        s.run(s.client.stop())
    s.loop.call_soon_threadsafe(s.loop.stop)


def _open(s: Session, name: str, text: str) -> None:
    s.client.text_document_did_open(T.DidOpenTextDocumentParams(
        text_document=T.TextDocumentItem(uri=s.uri(name), language_id="cmx", version=1, text=text)))


def _at(line: int, col: int) -> Any:
    return T.Position(line=line, character=col)


def test_initialize_announces_the_features(lsp: Session) -> None:
    caps = lsp.result.capabilities
    assert caps.hover_provider and caps.definition_provider
    assert caps.completion_provider is not None
    assert lsp.result.server_info.name == "cmx"


def test_diagnostics_as_you_type(lsp: Session) -> None:
    uri = lsp.uri("main.cmx")
    _open(lsp, "main.cmx", BROKEN)
    first = lsp.run(lsp.diagnostics(uri, 1))
    (d,) = first.diagnostics
    assert d.code == "E004" and d.severity == T.DiagnosticSeverity.Error
    assert "needs a bandwidth" in d.message
    line, col = where(BROKEN, "5 ns", "5 ns")
    assert (d.range.start.line, d.range.start.character) == (line, col)
    assert (d.range.end.line, d.range.end.character) == (line, col + len("5 ns"))
    # the fix typed in the editor (not saved) clears it
    lsp.client.text_document_did_change(T.DidChangeTextDocumentParams(
        text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[T.TextDocumentContentChangeWholeDocument(text=MAIN)]))
    second = lsp.run(lsp.diagnostics(uri, 2))
    assert len(second.diagnostics) == 0 and second.version == 2


def test_error_in_an_imported_file_is_shown_on_the_import(lsp: Session) -> None:
    uri = lsp.uri("bad.cmx")
    text = 'import "lib/broken.cmx"\n\nnode N { d: D }\ninstance n: N\n'
    (lsp.root / "lib" / "broken.cmx").write_text("die D { hbm = 64 GBs }\n")
    _open(lsp, "bad.cmx", text)
    (d,) = lsp.run(lsp.diagnostics(uri, 1)).diagnostics
    assert d.code == "E004" and "lib/broken.cmx:1:18: unknown unit" in d.message
    assert (d.range.start.line, d.range.start.character, d.range.end.character) == (0, 0, 23)
    rel = d.related_information[0].location
    assert rel.uri == lsp.uri("lib/broken.cmx")
    assert (rel.range.start.line, rel.range.start.character) == (0, 17)


def test_warnings_are_published_as_warnings(lsp: Session) -> None:
    text = ('plane ub "u"\nparam i = 0\ndie D { hbm = 1 GB }\n'
            'node N {\n    d[3]: D\n    link ub d[i] <-> d[(i + 1) % 3] { bw = 1 GB/s }\n}\n'
            'instance n: N\n')
    _open(lsp, "warn.cmx", text)
    (d,) = lsp.run(lsp.diagnostics(lsp.uri("warn.cmx"), 1)).diagnostics
    assert d.code == "W001" and d.severity == T.DiagnosticSeverity.Warning
    line, col = where(text, "link ub", "i]")
    assert (d.range.start.line, d.range.start.character, d.range.end.character) == (
        line, col, col + 1)


def test_an_unsaved_imported_buffer_is_read_instead_of_the_disk(lsp: Session) -> None:
    # lib/unsaved.cmx exists only in the editor
    _open(lsp, "lib/unsaved.cmx", 'plane ub "u"\ndie D { hbm = 1 GB }\n')
    _open(lsp, "uses.cmx", 'import "lib/unsaved.cmx"\nnode N { d: D, e: D\n'
          '  link ub d <-> e { bw = 1 GB/s } }\ninstance n: N\n')
    assert len(lsp.run(lsp.diagnostics(lsp.uri("uses.cmx"), 1)).diagnostics) == 0


def _hover(lsp: Session, line_has: str, word: str) -> str:
    h = lsp.run(lsp.client.text_document_hover_async(T.HoverParams(
        text_document=T.TextDocumentIdentifier(uri=lsp.uri("main.cmx")),
        position=_at(*where(MAIN, line_has, word)))))
    assert h is not None
    value: str = h.contents.value
    return value


def test_hover_gives_kind_value_in_units_and_instance_count(lsp: Session) -> None:
    _open(lsp, "main.cmx", MAIN)
    # `link_bw` used in main.cmx, declared in the imported file
    assert "**parameter** `link_bw` = 28 GB/s" in _hover(lsp, "link ub", "link_bw")
    # `npu[8]: Npu` in Node, 4 nodes
    assert "32 instances in the model (8 per `Node`)" in _hover(lsp, "npu[8]", "npu")
    # the type Npu (imported): its category and count
    assert "**accelerator** `Npu`: 32 instances" in _hover(lsp, "npu[8]", "Npu")
    # the link's bandwidth attribute, resolved
    assert "`bw` (a bandwidth" in _hover(lsp, "link ub", "bw")
    assert "= 28 GB/s" in _hover(lsp, "link ub", "bw")


def _definition(lsp: Session, line_has: str, word: str) -> Any:
    return lsp.run(lsp.client.text_document_definition_async(T.DefinitionParams(
        text_document=T.TextDocumentIdentifier(uri=lsp.uri("main.cmx")),
        position=_at(*where(MAIN, line_has, word)))))


def test_definition_across_imports(lsp: Session) -> None:
    _open(lsp, "main.cmx", MAIN)
    lib = lsp.uri("lib/parts.cmx")

    def at(d: Any) -> tuple[str, int, int, int]:
        r = d.range
        return d.uri, r.start.line, r.start.character, r.end.character

    # the type Npu -> `accelerator Npu {` in lib/parts.cmx
    n, c = where(LIB, "accelerator Npu", "Npu")
    assert at(_definition(lsp, "npu[8]", "Npu")) == (lib, n, c, c + 3)
    # the plane ub -> `plane ub` in lib/parts.cmx
    n, c = where(LIB, "plane ub", "ub")
    assert at(_definition(lsp, "link ub", "ub")) == (lib, n, c, c + 2)
    # npu[*].die -> `die[2]: Die` inside Npu in lib/parts.cmx
    n, c = where(LIB, "die[2]", "die")
    assert at(_definition(lsp, "link ub", "die")) == (lib, n, c, c + 3)
    # the global parameter link_bw, declared in the imported file
    n, c = where(LIB, "param link_bw", "link_bw")
    assert at(_definition(lsp, "link ub", "link_bw")) == (lib, n, c, c + 7)
    # nodes -> `param nodes` in main.cmx
    n, c = where(MAIN, "param nodes", "nodes")
    assert at(_definition(lsp, "node[nodes]", "nodes]")) == (lsp.uri("main.cmx"), n, c, c + 5)
    # the import statement -> the imported file
    assert _definition(lsp, "import", "lib").uri == lib


def _labels(lsp: Session, line: int, col: int) -> dict[str, Any]:
    result = lsp.run(lsp.client.text_document_completion_async(T.CompletionParams(
        text_document=T.TextDocumentIdentifier(uri=lsp.uri("main.cmx")),
        position=_at(line, col))))
    return {item.label: item.kind for item in result.items}


def test_completion_of_planes_types_parameters_and_keywords(lsp: Session) -> None:
    text = MAIN.replace("    sw: Sw\n", "    sw: S\n    link \n")
    lsp.client.text_document_did_change(T.DidChangeTextDocumentParams(
        text_document=T.VersionedTextDocumentIdentifier(uri=lsp.uri("main.cmx"), version=10),
        content_changes=[T.TextDocumentContentChangeWholeDocument(text=text)]))
    assert _labels(lsp, 7, 9) == {"ub": T.CompletionItemKind.EnumMember}
    types = _labels(lsp, 6, 9)
    assert {"Sw", "Npu", "Die", "Node", "Pod"} <= set(types)
    assert types["Npu"] == T.CompletionItemKind.Class
    top = _labels(lsp, 3, 0)
    assert top["nodes"] == T.CompletionItemKind.Variable
    assert top["link_bw"] == T.CompletionItemKind.Variable
    assert top["switch"] == T.CompletionItemKind.Keyword
    assert top["import"] == T.CompletionItemKind.Keyword


def test_cmx_lsp_without_pygls_says_what_to_install() -> None:
    """`cmx check` never imports pygls; `cmx lsp` without it names the extra, exit 1."""
    code = ("import sys; import supernode_dsl.cli as c; assert 'pygls' not in sys.modules; "
            "sys.modules['pygls'] = None; c.main(['lsp'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'supernode-dsl[lsp]'" in proc.stderr


def test_shutdown_and_exit(lsp: Session) -> None:
    assert lsp.run(lsp.client.shutdown_async(None)) is None
    lsp.client.exit(None)
    lsp.run(lsp.client.stop())
    assert lsp.client._server.returncode == 0
