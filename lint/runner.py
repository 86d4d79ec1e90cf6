"""Checking many files: the settings in effect for each, the result cache, and a pool of worker
processes for inputs big enough to pay for one.

Files are read here (so the cache key is the content that is checked), looked up in the cache, and
the misses are checked in this process or, when there is enough work, in worker processes fed
largest files first, in chunks (the engine, the rules and LibCST are imported on the first miss). A worker that dies (a segmentation fault in a native parser, the
out-of-memory killer) costs only the file it was checking: that file gets a one-line error and the
rest of its chunk goes to a fresh worker. Results come back in the order of the input paths.
"""

from __future__ import annotations

import codecs
import io
import tokenize
import faulthandler
import gc
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from mlplint.lint.cache import DEFAULT_DIRECTORY as DEFAULT_CACHE_DIRECTORY, ResultCache, build_fingerprint, content_digest
from mlplint.lint.config import ConfigResolver, Settings, known_codes, project_root
from mlplint.lint.finding import FileError, FileResult
from mlplint.lint.registry import rule_infos, use_catalogue
from mlplint.lint.source import SourceError, decode_source, is_notebook, read_bytes, split_lines
from mlplint.lint.suppression import Suppressions

if TYPE_CHECKING:
    from mlplint.lint.notebook import Notebook

_MAX_FIX_PASSES = 5
# Below this much source a pool costs more than it saves: forking a worker takes milliseconds,
# spawning one (no fork on macOS and Windows) re-imports mlplint, about half a second.
_PARALLEL_MIN_BYTES = {"fork": 16 * 1024, "spawn": 256 * 1024}
_CHUNKS_PER_WORKER = 6
_GC_THRESHOLD = 100_000


@dataclass(frozen=True)
class CheckOptions:
    config_file: Optional[Path]
    select: Optional[list[str]]
    ignore: Optional[list[str]]
    fix: bool
    unsafe_fixes: bool
    extend_select: Optional[list[str]] = None
    extend_ignore: Optional[list[str]] = None
    diff: bool = False  # compute the fixes as with fix, but only to show them

    @property
    def fixing(self) -> bool:
        return self.fix or self.diff


@dataclass
class CheckedFile:
    result: FileResult
    fixed: Optional[str] = None  # the new text, when fixes changed it
    warnings: list[str] = field(default_factory=list)
    fixed_count: int = 0  # fixes applied
    diff: str = ""  # with diff: the changes as a unified diff
    sources: dict[Optional[int], list[str]] = field(default_factory=dict)  # cell -> lines, for excerpts
    config: Optional[str] = None  # the configuration file that applied
    cacheable: bool = True  # False when the outcome depends on more than the text and settings
    written_digest: Optional[str] = None  # with --fix: the digest of the fixed bytes now in the file


_resolver_cache: dict[Optional[Path], ConfigResolver] = {}


def _resolver(config_file: Optional[Path]) -> ConfigResolver:
    resolver = _resolver_cache.get(config_file)
    if resolver is None:
        resolver = _resolver_cache[config_file] = ConfigResolver(config_file)
    return resolver


# (configuration's settings, options) -> the settings with the command line's selection applied:
# one object per configuration, so what is derived from it below is derived once per run.
_with_cli: dict[tuple[int, int], tuple[Settings, CheckOptions, Settings]] = {}


def _settings(path: str, options: CheckOptions) -> Settings:
    configured = _resolver(options.config_file).for_path(path)
    entry = _with_cli.get((id(configured), id(options)))
    if entry is None or entry[0] is not configured or entry[1] is not options:
        entry = _with_cli[id(configured), id(options)] = (configured, options, configured.with_cli(
            options.select, options.ignore, options.extend_select, options.extend_ignore))
    return entry[2]


def _noqa_warnings(text: str, path: str, where: Callable[[int], str]) -> list[str]:
    """Warnings for `# noqa:` / `# mlplint: ...` codes that name no rule (ML...), and for the
    first `# mlplint:` comment that is no directive (a bare `# mlplint: disable` does nothing)."""
    lowered = text.lower()
    if "noqa" not in lowered and "mlplint:" not in lowered:
        return []
    suppressions = Suppressions.from_source(text)
    known = set(known_codes())
    warnings = [f"{path}:{where(line)}: unknown rule code '{code}' in `{directive}`"
                for line, code, directive in suppressions.unknown_codes(known)]
    for line, comment in suppressions.unknown_directives[:1]:
        warnings.append(f"{path}:{where(line)}: unknown directive `{comment}`, ignored (for the whole file: "
                        "`# mlplint: noqa`, `# mlplint: noqa: ML201` or `# mlplint: disable=ML201`)")
    return warnings


def _unified_diff(before: str, after: str, name: str) -> str:
    import difflib  # only for --diff

    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=name, tofile=name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def check_source(text: str, path: str, settings: Settings) -> FileResult:
    """The engine's check, imported on the first file that is not served from the cache."""
    from mlplint.lint import engine

    return engine.check_source(text, path, settings)


def _check_python(text: str, path: str, settings: Settings, options: CheckOptions) -> CheckedFile:
    from mlplint.lint.fixes import apply_fixes

    empty = not text.strip() and os.path.basename(path) != "__init__.py"  # a package's marker is empty by design
    warnings = [f"{path}: empty file, nothing to check"] if empty else []
    warnings += _noqa_warnings(text, path, str)
    result = check_source(text, path, settings)
    fixed, count = text, 0
    if options.fixing:
        for _ in range(_MAX_FIX_PASSES):
            new_text, applied = apply_fixes(fixed, result.findings, options.unsafe_fixes)
            if not applied:
                break
            fixed, count = new_text, count + applied
            result = check_source(fixed, path, settings)
    checked = CheckedFile(result, warnings=warnings, fixed_count=count, config=settings.source)
    if fixed != text:
        checked.fixed = fixed
        checked.diff = _unified_diff(text, fixed, path) if options.diff else ""
    if result.findings:
        checked.sources = {None: split_lines(fixed)}
    return checked


def _check_cells(notebook: Notebook, path: str, settings: Settings) -> FileResult:
    module_result = check_source(notebook.module, path, settings)
    findings = sorted((notebook.to_cells(f) for f in module_result.findings), key=lambda f: f.sort_key)
    return FileResult(path, findings, [notebook.error_to_cells(e) for e in module_result.errors])


def _check_notebook(text: str, path: str, settings: Settings, options: CheckOptions) -> CheckedFile:
    from mlplint.lint.notebook import Notebook  # its parser is needed only for notebooks

    try:
        notebook = Notebook.parse(text)
    except SourceError as error:
        return CheckedFile(FileResult(path, errors=[FileError(path, str(error))]))
    if notebook.language != "python":
        return CheckedFile(FileResult(path), warnings=[f"{path}: a {notebook.language} notebook, not Python; skipped"])
    warnings = [] if notebook.code_cells else [f"{path}: no code cells, nothing to check"]

    def where(line: int) -> str:
        cell, cell_line = notebook.locate(line)
        return f"cell {cell}:{cell_line}"

    warnings += _noqa_warnings(notebook.module, path, where)
    original = notebook
    result = _check_cells(notebook, path, settings)
    count = 0
    if options.fixing:
        for _ in range(_MAX_FIX_PASSES):
            fixed_notebook, applied = notebook.with_fixes(result.findings, options.unsafe_fixes)
            if not applied:
                break
            notebook, count = fixed_notebook, count + applied
            result = _check_cells(notebook, path, settings)
    checked = CheckedFile(result, warnings=warnings, fixed_count=count, config=settings.source,
                          sources=notebook.cell_lines() if result.findings else {})
    if notebook is not original:
        checked.fixed = notebook.dumps()
        if options.diff:
            before, after = original.cell_sources(), notebook.cell_sources()
            checked.diff = "".join(_unified_diff(before[cell], after[cell], f"{path}:cell {cell}")
                                   for cell in before if before[cell] != after.get(cell))
    return checked


def check_text(text: str, path: str, options: CheckOptions) -> CheckedFile:
    """Check one text (a notebook's JSON when the name ends in .ipynb); with fix or diff, apply
    fixes until none applies."""
    settings = _settings(path, options)
    check = _check_notebook if is_notebook(path) else _check_python
    checked = check(text, path, settings, options)
    checked.warnings[:0] = settings.warnings
    return checked


def _decode(data: bytes, path: str) -> str:
    if is_notebook(path):
        from mlplint.lint.notebook import decode_notebook

        return decode_notebook(data)
    return decode_source(data)


def check_path(path: str, options: CheckOptions, text: Optional[str] = None) -> CheckedFile:
    """Read (unless given the text), check and (with --fix) rewrite one file. An internal error
    while checking becomes an error of this file, never the end of the run."""
    try:
        text = _decode(read_bytes(path), path) if text is None else text
    except SourceError as error:
        return CheckedFile(FileResult(path, errors=[FileError(path, str(error))]))
    try:
        checked = check_text(text, path, options)
    except Exception as exc:  # noqa: BLE001 - one file must not end the run
        message = f"internal error ({type(exc).__name__}: {exc}); please report it"
        return CheckedFile(FileResult(path, errors=[FileError(path, message)]), cacheable=False)
    if options.fix and not options.diff and checked.fixed is not None:
        try:
            data = checked.fixed.encode("utf-8") if is_notebook(path) else _encode_like(checked.fixed, read_bytes(path))
            with open(path, "wb") as handle:
                handle.write(data)
            checked.written_digest = content_digest(data)
        except (OSError, SourceError, UnicodeEncodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            checked.result.errors.append(FileError(path, f"cannot write the fixes: {reason}"))
            checked.fixed = None
            checked.cacheable = False
    return checked


def _encode_like(text: str, original: bytes) -> bytes:
    """The fixed text in the file's own encoding, with its UTF-8 BOM if it had one, so that only
    the edits change (a latin-1 file stays latin-1 under its coding line)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(original).readline)
    except SyntaxError:
        encoding = "utf-8"
    bom = codecs.BOM_UTF8 if original.startswith(codecs.BOM_UTF8) else b""
    return bom + text.encode("utf-8" if encoding == "utf-8-sig" else encoding)


@dataclass(frozen=True)
class _Task:
    index: int
    path: str
    text: str


def _check_task(task: _Task, options: CheckOptions) -> CheckedFile:
    return check_path(task.path, options, task.text)


_settings_keys: dict[tuple[int, tuple[str, ...]], tuple[Settings, str]] = {}


def settings_key(settings: Settings, path: str) -> str:
    """The settings in effect for one file, as a stable digest: the rules enabled for it and their
    options (what else a configuration holds, such as exclusions, cannot change a file's result).
    Computed once per settings and set of ignored codes."""
    ignore = settings.ignore_for(path)
    entry = _settings_keys.get((id(settings), tuple(ignore)))
    if entry is None or entry[0] is not settings:
        enabled = [rule for rule in rule_infos() if settings.selected(rule.code, ignore)]
        digest = content_digest(repr([(rule.code, sorted(settings.rule_options(rule).items())) for rule in enabled]).encode())
        entry = _settings_keys[id(settings), tuple(ignore)] = (settings, digest)
    return entry[1]


def _digest_on_disk(checked: CheckedFile, read_digest: str) -> Optional[str]:
    """The digest of the bytes a result describes, if they are the file's content now: the bytes
    read when nothing was fixed, the bytes written by --fix; None for a preview of fixed text
    (--diff, or fixes that could not be written), which must never be cached as the file's result."""
    if checked.fixed is None:
        return read_digest
    return checked.written_digest


def open_cache(directory: Optional[Path], config_file: Optional[Path], warn: Callable[[str], None]) -> ResultCache:
    """The result cache in directory (default: .mlplint_cache at the project root). Its catalogue of
    the rules, when it has one, is handed to the registry before any configuration is read, so a
    run whose files are all cached never imports the rules or LibCST."""
    import mlplint
    import mlplint.lint
    import mlplint.rules

    sources = [*mlplint.__path__, *mlplint.lint.__path__, *mlplint.rules.__path__]
    directory = directory if directory is not None else project_root(config_file) / DEFAULT_CACHE_DIRECTORY
    cache = ResultCache(directory, build_fingerprint(sources), warn)
    catalogue = cache.rule_catalogue()
    if catalogue is not None:
        use_catalogue(catalogue)
    return cache


def _has_fix_to_apply(findings, options: CheckOptions) -> bool:
    return any(f.fix and (options.unsafe_fixes or f.fix.applicability == "safe") for f in findings)


class Checker:
    """One `mlplint check` run over files: configuration, cache and workers."""

    def __init__(self, options: CheckOptions, cache: Optional[ResultCache] = None, workers: Optional[int] = None):
        self.options = options
        self.cache = cache
        self.workers = workers if workers is not None else _available_cores()

    def settings_for(self, path: str) -> Settings:
        return _settings(path, self.options)

    def check_text(self, text: str, path: str) -> CheckedFile:
        """Source that is not a file on disk (stdin): checked here, never cached."""
        return check_text(text, path, self.options)

    def check_files(self, paths: list[str]) -> list[CheckedFile]:
        _collect_garbage_less_often()
        checked: list[Optional[CheckedFile]] = [None] * len(paths)
        tasks: list[_Task] = []
        keys: dict[int, tuple[str, str, int]] = {}  # index -> (content digest, settings key, settings warnings)
        for index, path in enumerate(paths):
            try:
                data = read_bytes(path)
                text = _decode(data, path)
            except SourceError as error:
                checked[index] = CheckedFile(FileResult(path, errors=[FileError(path, str(error))]))
                continue
            if self.cache is not None:
                settings = self.settings_for(path)
                keys[index] = (content_digest(data), settings_key(settings, path), len(settings.warnings))
                hit = self.cache.lookup(path, *keys[index][:2])
                if hit is not None and not (self.options.fixing and _has_fix_to_apply(hit[0], self.options)):
                    checked[index] = self._from_cache(text, path, settings, *hit)
                    continue
            tasks.append(_Task(index, path, text))
        for index, result in self._run(tasks).items():
            checked[index] = result
            if self.cache is not None and result.cacheable and index in keys:
                read_digest, key, settings_warnings = keys[index]
                digest = _digest_on_disk(result, read_digest)
                if digest is None:
                    continue
                own_warnings = result.warnings[settings_warnings:]  # check_text put the settings' warnings first
                self.cache.store(paths[index], digest, key, result.result.findings, result.result.errors, own_warnings)
        if self.cache is not None:
            self.cache.save()
        return checked  # type: ignore[return-value]

    @staticmethod
    def _from_cache(text: str, path: str, settings: Settings, findings: list, errors: list, warnings: list[str]) -> CheckedFile:
        """What checking would have said, from a cached result: the same warnings and excerpts."""
        sources: dict = {}
        if findings and is_notebook(path):
            from mlplint.lint.notebook import Notebook

            sources = Notebook.parse(text).cell_lines()
        elif findings:
            sources = {None: split_lines(text)}
        return CheckedFile(FileResult(path, findings, errors), warnings=[*settings.warnings, *warnings], sources=sources,
                           config=settings.source)

    def _run(self, tasks: list[_Task]) -> dict[int, CheckedFile]:
        if self.workers >= 2 and len(tasks) >= 2:
            method = _start_method()
            if sum(len(task.text) for task in tasks) >= _PARALLEL_MIN_BYTES[method]:
                return _Pool(self.options, method, self.workers).run(tasks)
        return {task.index: _check_task(task, self.options) for task in tasks}


def _collect_garbage_less_often() -> None:
    """A syntax tree is hundreds of thousands of objects made in one go; with the default
    thresholds the cyclic collector runs hundreds of times per file for about 5% of a check.
    Collect young objects every 100,000 allocations instead of 700, as mypy does."""
    threshold, *older = gc.get_threshold()
    if 0 < threshold < _GC_THRESHOLD:
        gc.set_threshold(_GC_THRESHOLD, *older)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_method() -> str:
    """fork where it is safe (workers inherit the imported rules and start in milliseconds);
    spawn on macOS, where forking is unsafe, and on Windows, where it does not exist."""
    import multiprocessing

    if sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def _chunks(tasks: list[_Task], workers: int) -> list[list[_Task]]:
    """Largest files first (the run ends when its slowest file does), grouped so that each worker
    gets several chunks to balance the load while small files travel many to a message."""
    ordered = sorted(tasks, key=lambda task: len(task.text), reverse=True)
    target = sum(len(task.text) for task in tasks) / (workers * _CHUNKS_PER_WORKER)
    chunks: list[list[_Task]] = []
    current: list[_Task] = []
    current_size = 0
    for task in ordered:
        if current and current_size + len(task.text) > target:
            chunks.append(current)
            current, current_size = [], 0
        current.append(task)
        current_size += len(task.text)
    if current:
        chunks.append(current)
    return chunks


def _serve(connection, options: CheckOptions) -> None:
    """A worker: check each task of each chunk received, sending every result as it is ready."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    faulthandler.disable()  # a crash is reported by the parent, in one line
    _collect_garbage_less_often()  # inherited when forked, not when spawned
    try:
        while True:
            chunk = connection.recv()
            if chunk is None:
                return
            for task in chunk:
                connection.send((task.index, _check_task(task, options)))
    except (EOFError, BrokenPipeError):
        return  # the parent has gone


def _crash_message(exitcode: Optional[int]) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        cause = f"killed by {name}"
    else:
        cause = f"exit status {exitcode}"
    return f"mlplint crashed checking this file (worker process {cause}); please report it"


class _Worker:
    def __init__(self, context, options: CheckOptions):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, options), daemon=True)
        self.process.start()
        child.close()
        self.in_flight: deque[_Task] = deque()

    def send(self, chunk: list[_Task]) -> None:
        self.in_flight.extend(chunk)
        self.connection.send(chunk)

    def stop(self) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.connection.close()
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class _Pool:
    def __init__(self, options: CheckOptions, method: str, workers: int):
        import multiprocessing

        self.context = multiprocessing.get_context(method)
        self.options = options
        self.size = workers

    def run(self, tasks: list[_Task]) -> dict[int, CheckedFile]:
        import multiprocessing.connection

        pending = deque(_chunks(tasks, self.size))
        results: dict[int, CheckedFile] = {}
        workers: list[_Worker] = []
        try:
            while pending or any(worker.in_flight for worker in workers):
                for worker in workers:
                    if not worker.in_flight and pending:
                        worker.send(pending.popleft())
                while pending and len(workers) < self.size:
                    workers.append(_Worker(self.context, self.options))
                    workers[-1].send(pending.popleft())
                busy = {worker.connection: worker for worker in workers if worker.in_flight}
                for connection in multiprocessing.connection.wait(list(busy)):
                    worker = busy[connection]
                    try:
                        index, checked = connection.recv()
                    except (EOFError, OSError):
                        self._bury(worker, workers, pending, results)
                        continue
                    results[index] = checked
                    worker.in_flight.popleft()
        finally:
            for worker in workers:
                worker.stop()
        return results

    @staticmethod
    def _bury(worker: _Worker, workers: list[_Worker], pending: deque, results: dict[int, CheckedFile]) -> None:
        """A worker died: the file it was on gets the error, the rest of its chunk is re-queued."""
        worker.connection.close()
        worker.process.join()
        workers.remove(worker)
        culprit = worker.in_flight.popleft()
        message = _crash_message(worker.process.exitcode)
        results[culprit.index] = CheckedFile(FileResult(culprit.path, errors=[FileError(culprit.path, message)]), cacheable=False)
        if worker.in_flight:
            pending.appendleft(list(worker.in_flight))
