"""`mlplint server`: the static checker as a language server (LSP over stdio, built on pygls).

Python documents are checked when opened and saved, and after changes once the typing pauses
(`debounce`, 0.05 s by default), re-parsing only the top-level statements whose text changed
since the document's last check (lint/incremental.py); notebook documents (LSP 3.17 notebook sync, where the client
offers it) are checked as one module made of their code cells in order, with each finding
published on its cell. Each diagnostic links to its rule's page (`codeDescription`). Every
finding with a fix gets a quick fix, labelled when unsafe, and every finding a "disable for this
line" action that writes `# noqa: CODE`; `source.fixAll.mlplint` applies the safe fixes. The configuration is the CLI's: the nearest pyproject.toml with
[tool.mlplint] (or `config` in the initialization options), read again when it changes.

Initialization options: {"config": "path/to/pyproject.toml", "debounce": 0.05}.

The server answers `initialize` before it imports the checker (LibCST and the rules, most of its
start-up): that import runs on a thread once the client is initialized, and the first check
finds it done or waits for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import io
import re
import threading
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

from mlplint import __version__
from mlplint.lint.config import ConfigError, ConfigResolver, Settings
from mlplint.lint.finding import Edit, FileError, FileResult, Finding, Severity
from mlplint.lint.rule_docs import help_uri
from mlplint.lint.suppression import _NOQA as NOQA_COMMENT

if TYPE_CHECKING:
    from mlplint.lint.incremental import StatementCache

SOURCE = "mlplint"
FIX_ALL = f"{types.CodeActionKind.SourceFixAll.value}.{SOURCE}"
_SEVERITIES = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFO: types.DiagnosticSeverity.Information,
}
_ERROR_POSITION = re.compile(r"line (\d+), column (\d+)")
_CONFIG_FILES = ("pyproject.toml", "mlplint.toml")
_MAGIC = re.compile(r"^(\s*)[%!]")


# ----------------------------------------------------------------- notebooks


@dataclass(frozen=True)
class NotebookModule:
    """The code cells of a notebook document as one module, in cell order, and the way back to
    cell coordinates. An adapter for the language server: line magics and shell lines become
    `pass`, as the CLI's notebook support does for .ipynb files."""

    cell_uris: tuple[str, ...]
    first_lines: tuple[int, ...]  # module line where each cell starts
    line_counts: tuple[int, ...]
    text: str

    @classmethod
    def of(cls, cells: list[tuple[str, str]]) -> "NotebookModule":
        uris, firsts, counts, parts, line = [], [], [], [], 1
        for uri, source in cells:
            lines = source.splitlines(keepends=True) or ["\n"]
            lines[-1] = lines[-1] if lines[-1].endswith("\n") else lines[-1] + "\n"
            parts.extend(_MAGIC.sub(r"\1pass  # ", text, count=1) if _MAGIC.match(text) else text for text in lines)
            uris.append(uri)
            firsts.append(line)
            counts.append(len(lines))
            line += len(lines)
        return cls(tuple(uris), tuple(firsts), tuple(counts), "".join(parts))

    def cell_at(self, line: int) -> int:
        """The index of the cell holding a module line."""
        index = 0
        while index + 1 < len(self.first_lines) and self.first_lines[index + 1] <= line:
            index += 1
        return index

    def locate(self, finding: Finding) -> tuple[str, Finding]:
        """The cell a finding is in, and the finding in that cell's coordinates (its fix too when
        all its edits stay inside the cell, else it goes without its fix)."""
        index = self.cell_at(finding.line)
        first, count = self.first_lines[index], self.line_counts[index]
        end_line = min(finding.end_line - first + 1, count)
        end_column = finding.end_column if finding.end_line - first + 1 <= count else 1
        fix = finding.fix
        if fix is not None:
            edits = [dataclasses.replace(e, line=e.line - first + 1, end_line=e.end_line - first + 1) for e in fix.edits]
            inside = all(1 <= e.line and (e.end_line <= count or (e.end_line == count + 1 and e.end_column == 1)) for e in edits)
            fix = dataclasses.replace(fix, edits=tuple(edits)) if inside else None
        located = dataclasses.replace(finding, line=finding.line - first + 1, end_line=end_line, end_column=end_column, fix=fix)
        return self.cell_uris[index], located


# ----------------------------------------------------------------- the server


class MlplintServer(LanguageServer):
    def __init__(self) -> None:
        notebooks = types.NotebookDocumentSyncOptions(
            notebook_selector=[types.NotebookDocumentFilterWithCells(
                notebook="jupyter-notebook", cells=[types.NotebookCellLanguage(language="python")])],
            save=True,
        )
        super().__init__(SOURCE, __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         notebook_document_sync=notebooks)
        self.debounce = 0.05
        self.config_file: Optional[Path] = None
        self._resolver: Optional[ConfigResolver] = None
        self._reported_config_errors: set[str] = set()
        self._pending: dict[str, asyncio.TimerHandle] = {}  # target uri -> scheduled check
        self._checked: dict[str, list[Finding]] = {}  # text document uri (a .py file, a cell) -> its published findings
        self._cells_of: dict[str, list[str]] = {}  # notebook uri -> the cell uris last published
        self._last: dict[str, tuple[str, FileResult]] = {}  # path -> the text last checked and its result
        self._statements: dict[str, "StatementCache"] = {}  # path -> its unchanged statements, kept for the next check
        self._importing: Optional[threading.Thread] = None  # imports the checker after `initialize` is answered

    def import_checker_in_background(self) -> None:
        self._importing = threading.Thread(target=_import_checker, name="mlplint-import", daemon=True)
        self._importing.start()

    def _wait_for_checker(self) -> None:
        """One thread imports the rules: a check that comes first waits for it (two threads
        importing the same modules at once could deadlock on Python's import locks)."""
        if self._importing is not None:
            self._importing.join()

    # ------------------------------------------------------------- configuration

    def settings_for(self, path: str) -> Optional[Settings]:
        try:
            if self._resolver is None:
                self._resolver = ConfigResolver(self.config_file)
            return self._resolver.for_path(path)
        except ConfigError as error:
            message = str(error)
            if message not in self._reported_config_errors:
                self._reported_config_errors.add(message)
                self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"mlplint: {message}"))
            return None

    def configuration_changed(self) -> None:
        self._resolver = None
        self._reported_config_errors.clear()
        self._last.clear()
        for target in {self._target_of(uri) for uri in self._checked}:
            self.check(target)

    # ------------------------------------------------------------- checking

    def _target_of(self, uri: str) -> str:
        """The document a text document is checked as part of: its notebook, or itself."""
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        return notebook.uri if notebook is not None else uri

    def schedule(self, target: str) -> None:
        """Check target once changes have paused for `debounce` seconds."""
        self.cancel(target)
        self._pending[target] = asyncio.get_running_loop().call_later(self.debounce, self.check, target)

    def cancel(self, target: str) -> None:
        handle = self._pending.pop(target, None)
        if handle is not None:
            handle.cancel()

    def flush(self, uri: str) -> None:
        """Run the pending check of a document now (a code action must see the current text)."""
        target = self._target_of(uri)
        if target in self._pending:
            self.check(target)

    def check(self, target: str) -> None:
        self.cancel(target)
        self._wait_for_checker()
        notebook = self.workspace.get_notebook_document(notebook_uri=target)
        started, started_cpu = time.perf_counter(), time.process_time()
        # A full pass of the cyclic garbage collector walks every object the server keeps (the
        # trees of open documents): 40-120 ms, at whatever allocation crosses its threshold. It
        # waits until the diagnostics are out, and then runs as usual.
        collecting = gc.isenabled()
        gc.disable()
        try:
            if notebook is not None:
                count = self._check_notebook(notebook)
            else:
                result = self._run(self.workspace.get_text_document(target).source, to_fs_path(target) or target)
                findings, errors = (result.findings, result.errors) if result is not None else ([], [])
                self._publish(target, findings, errors)
                count = len(findings)
        finally:
            if collecting:
                gc.enable()
        elapsed, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000
        self.window_log_message(types.LogMessageParams(
            type=types.MessageType.Log, message=f"checked {target} in {elapsed:.1f} ms (cpu {cpu:.1f} ms): {count} findings"))

    def _run(self, text: str, path: str) -> Optional[FileResult]:
        settings = self.settings_for(path)
        if settings is None:
            return None
        last = self._last.get(path)
        if last is not None and last[0] == text:
            return last[1]  # saved as it was last checked, or re-opened
        from mlplint.lint.engine import check_source  # imported at start-up, in the background
        from mlplint.lint.incremental import StatementCache

        result = check_source(text, path, settings, self._statements.setdefault(path, StatementCache()))
        self._last[path] = (text, result)
        return result

    def _check_notebook(self, notebook: types.NotebookDocument) -> int:
        cells = [cell.document for cell in notebook.cells if cell.kind == types.NotebookCellKind.Code]
        module = NotebookModule.of([(uri, self.workspace.get_text_document(uri).source) for uri in cells])
        result = self._run(module.text, to_fs_path(notebook.uri) or notebook.uri)
        by_cell: dict[str, list[Finding]] = {uri: [] for uri in cells}
        for finding in result.findings if result is not None else []:
            uri, located = module.locate(finding)
            by_cell[uri].append(located)
        errors_by_cell: dict[str, list[FileError]] = {}
        for error in result.errors if result is not None else []:
            uri, message = self._error_in_cell(module, error)
            errors_by_cell.setdefault(uri, []).append(message)
        for uri in set(self._cells_of.get(notebook.uri, [])) - set(cells):
            self._publish(uri, [], [])  # a cell that was deleted or turned into markdown
        self._cells_of[notebook.uri] = cells
        for uri in cells:
            self._publish(uri, by_cell[uri], errors_by_cell.get(uri, []))
        return sum(len(found) for found in by_cell.values())

    @staticmethod
    def _error_in_cell(module: NotebookModule, error: FileError) -> tuple[str, FileError]:
        match = _ERROR_POSITION.search(error.message)
        if match is None or not module.cell_uris:
            return (module.cell_uris[0] if module.cell_uris else ""), error
        index = module.cell_at(int(match.group(1)))
        line = int(match.group(1)) - module.first_lines[index] + 1
        message = error.message[: match.start()] + f"line {line}, column {match.group(2)}" + error.message[match.end():]
        return module.cell_uris[index], FileError(error.path, message)

    # ------------------------------------------------------------- publishing

    def _publish(self, uri: str, findings: list[Finding], errors: list[FileError]) -> None:
        document = self.workspace.get_text_document(uri)
        diagnostics = [self._diagnostic(document, finding) for finding in findings]
        for error in errors:
            if error.message.startswith("internal error"):
                self.window_log_message(types.LogMessageParams(type=types.MessageType.Error, message=f"{uri}: {error.message}"))
                continue
            match = _ERROR_POSITION.search(error.message)
            line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
            diagnostics.append(types.Diagnostic(
                range=_range(document, line, column, line, column + 1), message=error.message,
                severity=types.DiagnosticSeverity.Error, source=SOURCE))
        self._checked[uri] = findings
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=document.version))

    @staticmethod
    def _diagnostic(document: TextDocument, finding: Finding) -> types.Diagnostic:
        return types.Diagnostic(
            range=_range(document, finding.line, finding.column, finding.end_line, finding.end_column),
            message=finding.message,
            severity=_SEVERITIES[finding.severity],
            code=finding.code,
            code_description=types.CodeDescription(href=help_uri(finding.code)),
            source=SOURCE,
        )

    def forget(self, uri: str) -> None:
        self._checked.pop(uri, None)
        self._last.pop(to_fs_path(uri) or uri, None)
        self._statements.pop(to_fs_path(uri) or uri, None)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # ------------------------------------------------------------- code actions

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        self._wait_for_checker()
        self.flush(uri)
        findings = self._checked.get(uri)
        if findings is None:
            return []
        document = self.workspace.get_text_document(uri)
        wanted = params.context.only
        actions: list[types.CodeAction] = []
        if _kind_wanted(wanted, types.CodeActionKind.QuickFix):
            requested = _server_range(document, params.range)
            for finding in findings:
                if not requested.overlaps(_finding_range(finding)):
                    continue
                diagnostic = self._diagnostic(document, finding)
                if finding.fix is not None:
                    actions.append(self._fix_action(document, finding, diagnostic))
                noqa = _noqa_edit(document, finding)
                if noqa is not None:
                    actions.append(types.CodeAction(
                        title=f"Disable {finding.code} for this line", kind=types.CodeActionKind.QuickFix,
                        diagnostics=[diagnostic], edit=_workspace_edit(document, [noqa])))
        if _kind_wanted(wanted, FIX_ALL):
            from mlplint.lint.fixes import apply_fixes

            fixed, applied = apply_fixes(document.source, findings, unsafe=False)
            if applied:
                whole = Edit(1, 1, len(document.lines) + 1, 1, fixed)
                actions.append(types.CodeAction(title="mlplint: fix all safe findings", kind=FIX_ALL,
                                                edit=_workspace_edit(document, [whole])))
        return actions

    @staticmethod
    def _fix_action(document: TextDocument, finding: Finding, diagnostic: types.Diagnostic) -> types.CodeAction:
        fix = finding.fix
        what = fix.description or "apply the fix"
        label = f"Fix {finding.code}: {what}" + (" (unsafe)" if fix.applicability == "unsafe" else "")
        return types.CodeAction(title=label, kind=types.CodeActionKind.QuickFix, diagnostics=[diagnostic],
                                is_preferred=fix.applicability == "safe",
                                edit=_workspace_edit(document, list(fix.edits)))


def _kind_wanted(only: Optional[list[str]], kind: Union[str, types.CodeActionKind]) -> bool:
    """Whether a code action kind was asked for: every kind when the client sets no `only`; a
    requested `source.fixAll` also covers `source.fixAll.mlplint`."""
    kind = kind.value if isinstance(kind, types.CodeActionKind) else kind
    if only is None:
        return True
    return any(kind == asked or kind.startswith(f"{asked}.") for asked in (str(getattr(o, "value", o)) for o in only))


# ----------------------------------------------------------------- positions


def _server_range(document: TextDocument, client: types.Range) -> ServerTextRange:
    return document.range_from_client_units(client)


def _finding_range(finding: Finding) -> ServerTextRange:
    return ServerTextRange(ServerTextPosition(finding.line - 1, finding.column - 1),
                           ServerTextPosition(finding.end_line - 1, finding.end_column - 1))


def _range(document: TextDocument, line: int, column: int, end_line: int, end_column: int) -> types.Range:
    """1-based code point positions as an LSP range in the client's units (UTF-16 by default)."""
    server = ServerTextRange(ServerTextPosition(line - 1, column - 1), ServerTextPosition(end_line - 1, end_column - 1))
    return document.range_to_client_units(server)


def _workspace_edit(document: TextDocument, edits: list[Edit]) -> types.WorkspaceEdit:
    text_edits = [types.TextEdit(range=_range(document, e.line, e.column, e.end_line, e.end_column), new_text=e.content)
                  for e in edits]
    return types.WorkspaceEdit(changes={document.uri: text_edits})


def _noqa_edit(document: TextDocument, finding: Finding) -> Optional[Edit]:
    """`# noqa: CODE` at the end of the finding's first line (or its last, when the first ends
    inside a string), added to the codes of a `# noqa:` comment already there."""
    comments, in_string = {}, set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(document.source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token
            elif token.type == tokenize.STRING and token.end[0] > token.start[0]:
                in_string.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return None
    lines = document.lines
    line = next((n for n in (finding.line, finding.end_line) if n not in in_string and n <= len(lines)
                 and not lines[n - 1].rstrip().endswith("\\")), None)  # no comment after a backslash
    if line is None:
        return None
    comment = comments.get(line)
    existing = NOQA_COMMENT.search(comment.string) if comment is not None else None
    if existing is not None and existing.group("codes"):
        column = comment.start[1] + existing.end() + 1
        return Edit(line, column, line, column, f", {finding.code}")
    text = document.lines[line - 1].rstrip("\r\n")
    column = len(text.rstrip()) + 1
    return Edit(line, column, line, len(text) + 1, f"  # noqa: {finding.code}")


# ----------------------------------------------------------------- wiring


def build_server() -> MlplintServer:
    server = MlplintServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: MlplintServer, params: types.InitializeParams) -> None:
        options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        if isinstance(options.get("config"), str):
            ls.config_file = Path(options["config"])
        if isinstance(options.get("debounce"), (int, float)) and options["debounce"] >= 0:
            ls.debounce = float(options["debounce"])

    @server.feature(types.INITIALIZED)
    def initialized(ls: MlplintServer, params: types.InitializedParams) -> None:
        ls.import_checker_in_background()
        ls.window_log_message(types.LogMessageParams(
            type=types.MessageType.Info, message=f"mlplint {__version__}: checks {ls.debounce * 1000:g} ms after the typing pauses"))
        watched = ls.client_capabilities.workspace and ls.client_capabilities.workspace.did_change_watched_files
        if watched and watched.dynamic_registration:
            watchers = [types.FileSystemWatcher(glob_pattern=f"**/{name}") for name in _CONFIG_FILES]
            ls.client_register_capability(types.RegistrationParams(registrations=[types.Registration(
                id="mlplint-config", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers))]))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: MlplintServer, params: types.DidOpenTextDocumentParams) -> None:
        if _is_python(params.text_document.uri, params.text_document.language_id):
            ls.check(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: MlplintServer, params: types.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri in ls._checked:
            ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: MlplintServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri.rsplit("/", 1)[-1] in _CONFIG_FILES:
            ls.configuration_changed()
        elif uri in ls._checked:
            ls.check(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: MlplintServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.cancel(params.text_document.uri)
        ls.forget(params.text_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_open(ls: MlplintServer, params: types.DidOpenNotebookDocumentParams) -> None:
        ls.check(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_change(ls: MlplintServer, params: types.DidChangeNotebookDocumentParams) -> None:
        ls.schedule(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
    def notebook_save(ls: MlplintServer, params: types.DidSaveNotebookDocumentParams) -> None:
        ls.check(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_close(ls: MlplintServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.cancel(params.notebook_document.uri)
        ls.forget(params.notebook_document.uri)
        for cell in ls._cells_of.pop(params.notebook_document.uri, []):
            ls.forget(cell)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched_files(ls: MlplintServer, params: types.DidChangeWatchedFilesParams) -> None:
        if any(change.uri.rsplit("/", 1)[-1] in _CONFIG_FILES for change in params.changes):
            ls.configuration_changed()

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL]))
    def code_action(ls: MlplintServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return ls.code_actions(params)

    return server


def _import_checker() -> None:
    """Import the engine and the rules (LibCST with them) off the main thread, after `initialize`
    has been answered."""
    from mlplint.lint import engine, fixes  # noqa: F401
    from mlplint.lint.registry import all_rules

    all_rules()


def _is_python(uri: str, language_id: Optional[str]) -> bool:
    return language_id == "python" or uri.endswith((".py", ".pyi"))


def serve() -> None:
    build_server().start_io()
