"""Time `mlplint server`: how soon it answers `initialize`, and how fast a warm server re-checks a
300-line training script after each edit.

Run: python benchmarks/server_recheck.py [--edits N] [--file PATH]
Starts the real server over stdio with a pygls client (the time from starting the process to the
`initialize` response is the start-up an editor waits for), opens the script (the first check warms
the imports and the rule registry up), then makes N edits one after the other, each a line of
code (`edit_7 = 7`) typed before a statement somewhere in the file, each followed by the
publishDiagnostics it triggers. Prints the median and the worst of the server's own check time
(its "checked ... in X ms (cpu Y ms)" log line; CPU time is the steadier figure on a shared
machine) and of the round trip from didChange to publishDiagnostics
less the debounce delay.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

DEBOUNCE = 0.05
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def three_hundred_line_script() -> str:
    """Realistic code: whole training scripts from the fixtures, joined until they pass 300 lines."""
    lines: list[str] = []
    for source in sorted((FIXTURES / "buggy").glob("*.py")) + sorted((FIXTURES / "clean").glob("*.py")):
        lines += source.read_text().splitlines()
        if len(lines) >= 300:
            break
    return "\n".join(lines) + "\n"


def statement_start(text: str, version: int) -> tuple[int, int]:
    """Where a statement begins (0-based line, column), spread over the file: an edit there is
    code typed inside a function or at the top level, which changes what the check sees."""
    starts = sorted({(min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))]) - 1, node.col_offset)
                     for node in ast.walk(ast.parse(text)) if isinstance(node, ast.stmt)})
    return starts[(version * 37) % len(starts)]


async def measure(text: str, edits: int) -> tuple[float, list[tuple[float, float]], list[float]]:
    client = LanguageClient("benchmark", "1")
    published: asyncio.Queue = asyncio.Queue()
    checks: list[tuple[float, float]] = []
    client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda params: published.put_nowait(time.perf_counter()))

    def on_log(params: types.LogMessageParams) -> None:
        found = re.match(r"checked .* in ([\d.]+) ms \(cpu ([\d.]+) ms\)", params.message)
        if found:
            checks.append((float(found.group(1)), float(found.group(2))))

    client.feature(types.WINDOW_LOG_MESSAGE)(on_log)
    with tempfile.TemporaryDirectory() as folder:
        uri = from_fs_path(str(Path(folder) / "train.py"))
        started = time.perf_counter()
        await client.start_io(sys.executable, "-m", "mlplint", "server", cwd=folder)
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                            initialization_options={"debounce": DEBOUNCE}))
        initialize = time.perf_counter() - started
        client.initialized(types.InitializedParams())
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
        await published.get()
        round_trips = []
        for version in range(2, edits + 2):
            line, indent = statement_start(text, version)
            inserted = f"{' ' * indent}edit_{version} = {version}\n"
            lines = text.splitlines(keepends=True)
            text = "".join(lines[:line]) + inserted + "".join(lines[line:])
            position = types.Position(line=line, character=0)
            sent = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text=inserted)]))
            received = await published.get()
            round_trips.append((received - sent - DEBOUNCE) * 1000)
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return initialize, checks[1:], round_trips  # checks[0] is the cold first check


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--file", type=Path, help="script to edit (default: 300 lines joined from the fixtures)")
    args = parser.parse_args()
    text = args.file.read_text() if args.file else three_hundred_line_script()
    initialize, checks, round_trips = asyncio.run(measure(text, args.edits))
    print(f"process start -> initialize response: {initialize * 1000:.0f} ms")
    print(f"{len(text.splitlines())}-line script, {args.edits} edits")
    walls, cpus = [wall for wall, _ in checks], [cpu for _, cpu in checks]
    print(f"server check time: median {statistics.median(walls):.1f} ms, max {max(walls):.1f} ms "
          f"(CPU time: median {statistics.median(cpus):.1f} ms, min {min(cpus):.1f} ms)")
    print(f"didChange -> publishDiagnostics, less the {DEBOUNCE * 1000:.0f} ms debounce: "
          f"median {statistics.median(round_trips):.1f} ms, max {max(round_trips):.1f} ms")


if __name__ == "__main__":
    main()
