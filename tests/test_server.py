"""`mlplint server` driven as an editor drives it: a pygls client starts `python -m mlplint
server` and talks LSP over its stdin/stdout (initialize, didOpen, publishDiagnostics, didChange,
codeAction, didSave, shutdown, exit)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402
from pygls.workspace import TextDocument  # noqa: E402

from conftest import ROOT  # noqa: E402

TIMEOUT = 60

SCRIPT = """\
import torch
from torch.utils.data import DataLoader

model = torch.nn.Linear(4, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
loader = DataLoader(dataset, batch_size=32, shuffle=True)
for x, y in loader:
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
"""


class Editor:
    """A language client that records what the server publishes."""

    def __init__(self, notebooks: bool = False):
        self.client = LanguageClient("mlplint-test", "1")
        self.published: asyncio.Queue = asyncio.Queue()
        self.logs: list[str] = []
        self.messages: list[str] = []
        self.notebooks = notebooks

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_publish(params: types.PublishDiagnosticsParams) -> None:
            self.published.put_nowait(params)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            self.logs.append(params.message)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)

    async def start(self, root: Path, options: dict) -> types.InitializeResult:
        await self.client.start_io(sys.executable, "-m", "mlplint", "server", cwd=str(root))
        capabilities = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                code_action=types.CodeActionClientCapabilities(), publish_diagnostics=types.PublishDiagnosticsClientCapabilities()),
            notebook_document=types.NotebookDocumentClientCapabilities(
                synchronization=types.NotebookDocumentSyncClientCapabilities()) if self.notebooks else None,
        )
        result = await asyncio.wait_for(self.client.initialize_async(types.InitializeParams(
            capabilities=capabilities, root_uri=from_fs_path(str(root)), initialization_options=options)), TIMEOUT)
        self.client.initialized(types.InitializedParams())
        return result

    async def next_for(self, uri: str) -> types.PublishDiagnosticsParams:
        while True:
            params = await asyncio.wait_for(self.published.get(), TIMEOUT)
            if params.uri == uri:
                return params

    async def stop(self) -> int:
        await asyncio.wait_for(self.client.shutdown_async(None), TIMEOUT)
        self.client.exit(None)
        await asyncio.wait_for(self.client.stop(), TIMEOUT)
        return self.client._server.returncode


def _codes(params: types.PublishDiagnosticsParams) -> list[str]:
    return sorted(str(d.code) for d in params.diagnostics)


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    document = TextDocument("file:///x.py", text)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        document.apply_change(types.TextDocumentContentChangePartial(range=edit.range, text=edit.new_text))
    return document.source


def _open(editor: Editor, uri: str, text: str, version: int = 1) -> None:
    editor.client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)))


def _code_actions(editor: Editor, uri: str, diagnostic: types.Diagnostic, only=None):
    return editor.client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=diagnostic.range,
        context=types.CodeActionContext(diagnostics=[diagnostic], only=only)))


def test_python_document_diagnostics_code_actions_and_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.mlplint]\nignore = ["ML102"]\n')
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    uri = from_fs_path(str(path))

    async def session() -> None:
        editor = Editor()
        result = await editor.start(tmp_path, {"debounce": 0.05})
        assert result.capabilities.code_action_provider is not None
        assert result.capabilities.notebook_document_sync is None  # the client did not offer it

        _open(editor, uri, SCRIPT)
        opened = await editor.next_for(uri)
        assert _codes(opened) == ["ML203"] and opened.version == 1
        adam = opened.diagnostics[0]
        assert adam.source == "mlplint" and adam.severity == types.DiagnosticSeverity.Warning
        page = adam.code_description.href  # the rule's page, as SARIF's helpUri
        assert page.endswith("/docs/rules/ML203.md") and (ROOT / "docs" / "rules" / "ML203.md").is_file()
        decay = SCRIPT.splitlines()[4].index("1e-4)")
        assert (adam.range.start.line, adam.range.start.character, adam.range.end.character) == (4, decay, decay + 4)

        # two quick edits in a row: one check, after the pause, of the latest text
        unshuffled = SCRIPT.replace("shuffle=True", "shuffle=False")
        no_zero_grad = unshuffled.replace("    optimizer.zero_grad()\n", "")
        for version, text in ((2, unshuffled), (3, no_zero_grad)):
            editor.client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        changed = await editor.next_for(uri)
        assert changed.version == 3 and _codes(changed) == ["ML202", "ML203"]  # ML102 ignored by pyproject.toml

        actions = await asyncio.wait_for(_code_actions(editor, uri, adam), TIMEOUT)
        titles = [a.title for a in actions]
        assert "Fix ML203: Use AdamW (decoupled weight decay) (unsafe)" in titles
        assert "Disable ML203 for this line" in titles
        assert not any(a.kind == "source.fixAll.mlplint" for a in actions)  # no safe fix in this file
        fix = next(a for a in actions if a.title.startswith("Fix ML203"))
        assert fix.kind == types.CodeActionKind.QuickFix and not fix.is_preferred
        fixed = _apply(no_zero_grad, fix.edit.changes[uri])
        assert "torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)" in fixed
        noqa = next(a for a in actions if a.title.startswith("Disable"))
        suppressed = _apply(no_zero_grad, noqa.edit.changes[uri])
        assert suppressed.splitlines()[4].endswith("weight_decay=1e-4)  # noqa: ML203")

        step = next(d for d in changed.diagnostics if d.code == "ML202")
        step_actions = await asyncio.wait_for(_code_actions(editor, uri, step, only=[types.CodeActionKind.QuickFix]), TIMEOUT)
        zero_grad = next(a for a in step_actions if a.title.startswith("Fix ML202"))
        assert "(unsafe)" in zero_grad.title
        assert _apply(no_zero_grad, zero_grad.edit.changes[uri]) == unshuffled

        # the suppressed text, saved: published again on save, without ML203
        editor.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=4),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=suppressed)]))
        editor.client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
        saved = await editor.next_for(uri)
        assert saved.version == 4 and _codes(saved) == ["ML202"]

        # the configuration changes on disk: the open document is checked again with it
        (tmp_path / "pyproject.toml").write_text('[tool.mlplint]\nignore = ["ML202"]\n')
        editor.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[types.FileEvent(
            uri=from_fs_path(str(tmp_path / "pyproject.toml")), type=types.FileChangeType.Changed)]))
        reconfigured = await editor.next_for(uri)
        assert _codes(reconfigured) == ["ML102"]

        editor.client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
        closed = await editor.next_for(uri)
        assert not closed.diagnostics
        assert any(re.match(r"checked .*train\.py in [\d.]+ ms \(cpu [\d.]+ ms\): \d+ findings", line) for line in editor.logs)
        assert await editor.stop() == 0

    asyncio.run(session())


def test_safe_fixes_offer_fix_all_and_a_broken_config_is_reported(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.mlplint]\nselect = ["ML5"]\n')
    evaluation = (
        "import torch\n\n\ndef evaluate(model, batches):\n"
        "    model.eval()\n    return [model(x).argmax(1) for x in batches]  # predictions\n"
    )
    uri = from_fs_path(str(tmp_path / "evaluate.py"))

    async def session() -> None:
        editor = Editor()
        result = await editor.start(tmp_path, {})
        assert result.server_info.name == "mlplint"
        _open(editor, uri, evaluation)
        opened = await editor.next_for(uri)
        assert _codes(opened) == ["ML502"]
        actions = await asyncio.wait_for(_code_actions(editor, uri, opened.diagnostics[0]), TIMEOUT)
        fix = next(a for a in actions if a.title.startswith("Fix ML502"))
        assert fix.is_preferred and "(unsafe)" not in fix.title
        fix_all = next(a for a in actions if a.kind == "source.fixAll.mlplint")
        assert "@torch.no_grad()\ndef evaluate" in _apply(evaluation, fix_all.edit.changes[uri])
        noqa = next(a for a in actions if a.title.startswith("Disable"))
        assert "# predictions  # noqa: ML502" in _apply(evaluation, noqa.edit.changes[uri])

        (tmp_path / "pyproject.toml").write_text('[tool.mlplint]\nselect = ["ML5"\n')
        editor.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[types.FileEvent(
            uri=from_fs_path(str(tmp_path / "pyproject.toml")), type=types.FileChangeType.Changed)]))
        broken = await editor.next_for(uri)
        assert not broken.diagnostics
        assert await editor.stop() == 0
        assert any("invalid TOML" in message for message in editor.messages)
        assert "mlplint 0.1.0: checks 50 ms after the typing pauses" in editor.logs  # the default debounce

    asyncio.run(session())


def test_notebook_cells_are_checked_as_one_module(tmp_path):
    notebook_uri = from_fs_path(str(tmp_path / "analysis.ipynb"))
    cells = [
        ("code", "%matplotlib inline\nimport torch.nn as nn\n\nmodel = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))\n"),
        ("markdown", "# Training"),
        ("code", "criterion = nn.CrossEntropyLoss()\nloss = criterion(model(x), y)\n"),
    ]
    cell_uris = [f"vscode-notebook-cell:{notebook_uri[7:]}#cell{index}" for index in range(len(cells))]

    async def session() -> None:
        editor = Editor(notebooks=True)
        result = await editor.start(tmp_path, {"debounce": 0.05})
        assert result.capabilities.notebook_document_sync is not None
        editor.client.notebook_document_did_open(types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(uri=notebook_uri, notebook_type="jupyter-notebook", version=1, cells=[
                types.NotebookCell(kind=types.NotebookCellKind.Code if kind == "code" else types.NotebookCellKind.Markup, document=uri)
                for (kind, _), uri in zip(cells, cell_uris)]),
            cell_text_documents=[
                types.TextDocumentItem(uri=uri, language_id="python" if kind == "code" else "markdown", version=1, text=text)
                for (kind, text), uri in zip(cells, cell_uris)]))
        first = {params.uri: params for params in [await editor.published.get() for _ in range(2)]}
        assert set(first) == {cell_uris[0], cell_uris[2]}
        assert _codes(first[cell_uris[0]]) == ["ML401"] and _codes(first[cell_uris[2]]) == []
        softmax = first[cell_uris[0]].diagnostics[0]
        assert softmax.range.start.line == 3  # in the cell's own lines, below the magic

        actions = await asyncio.wait_for(_code_actions(editor, cell_uris[0], softmax), TIMEOUT)
        fix = next(a for a in actions if a.title.startswith("Fix ML401"))
        assert "nn.Sequential(nn.Linear(4, 3))" in _apply(cells[0][1], fix.edit.changes[cell_uris[0]])

        # the loss cell becomes a prediction: the softmax is fine there
        editor.client.notebook_document_did_change(types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=notebook_uri, version=2),
            change=types.NotebookDocumentChangeEvent(cells=types.NotebookDocumentCellChanges(text_content=[
                types.NotebookDocumentCellContentChanges(
                    document=types.VersionedTextDocumentIdentifier(uri=cell_uris[2], version=2),
                    changes=[types.TextDocumentContentChangeWholeDocument(text="probabilities = model(x)\n")])]))))
        after = await editor.next_for(cell_uris[0])
        assert not after.diagnostics
        assert await editor.stop() == 0

    asyncio.run(session())


def test_a_long_debounce_waits_for_the_pause_and_a_save_checks_at_once(tmp_path):
    path = tmp_path / "train.py"
    uri = from_fs_path(str(path))

    async def session() -> None:
        editor = Editor()
        await editor.start(tmp_path, {"debounce": 600})
        _open(editor, uri, SCRIPT)
        assert _codes(await editor.next_for(uri)) == ["ML203"]
        unshuffled = SCRIPT.replace("shuffle=True", "shuffle=False")
        editor.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=unshuffled)]))
        editor.client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
        saved = await editor.next_for(uri)
        assert saved.version == 2 and _codes(saved) == ["ML102", "ML203"]
        assert await editor.stop() == 0
        assert editor.published.empty()  # the change's own check was still waiting for the pause
        assert "mlplint 0.1.0: checks 600000 ms after the typing pauses" in editor.logs

    asyncio.run(session())


def test_server_without_the_lsp_extra_says_what_to_install():
    import subprocess

    blocked = "import sys; sys.modules['pygls'] = None; sys.argv = ['mlplint', 'server']; from mlplint.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2
    assert result.stderr.strip() == "mlplint: error: the language server needs pygls: pip install 'mlplint[lsp]'"


def test_positions_are_sent_in_the_clients_utf16_units():
    from mlplint.lint.server import _range

    document = TextDocument("file:///t.py", 'label = "😀"; opt = Adam(p, weight_decay=1e-4)\n')
    column = document.lines[0].index("1e-4") + 1  # 1-based, in code points as findings count
    sent = _range(document, 1, column, 1, column + 4)
    assert (sent.start.character, sent.end.character) == (column, column + 4)  # the emoji is two UTF-16 units


def test_the_garbage_collector_waits_until_the_diagnostics_are_out():
    """A full collection walks every tree the server keeps: it must not run inside the check of an
    edit, and must run as usual once the diagnostics are published."""
    import gc

    from pygls.workspace import Workspace

    from mlplint.lint.server import MlplintServer

    server = MlplintServer()
    server.protocol._workspace = Workspace(None)  # what `initialize` sets up
    uri = "file:///project/train.py"
    server.workspace.put_text_document(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=SCRIPT))
    collector_on: dict[str, bool] = {}
    check = server._run

    def checking(text: str, path: str):
        collector_on["check"] = gc.isenabled()
        return check(text, path)

    server._run = checking
    server._publish = lambda target, findings, errors: collector_on.setdefault("publish", gc.isenabled())
    server.window_log_message = lambda params: collector_on.setdefault("after", gc.isenabled())
    assert gc.isenabled()
    server.check(uri)
    assert collector_on == {"check": False, "publish": False, "after": True}
    assert gc.isenabled()
