"""The `mlplint` command line."""

from __future__ import annotations

import difflib
import inspect
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TextIO

import click

from mlplint import __version__
from mlplint.lint.config import ConfigError, ConfigResolver, Settings, known_codes, parse_selectors
from mlplint.lint.discovery import discover
from mlplint.lint.engine import FileResult, check_source
from mlplint.lint.finding import FileError, Severity
from mlplint.lint.fixes import apply_fixes
from mlplint.lint.notebook import Notebook, decode_notebook, is_notebook
from mlplint.lint.registry import all_rules, rule_by_code
from mlplint.lint.reporters import REPORTERS, ReportContext, plural, report_statistics
from mlplint.lint.source import SourceError, decode_source, read_bytes, split_lines
from mlplint.lint.suppression import Suppressions
from mlplint.probe.symptoms import SYMPTOMS

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
_MAX_FIX_PASSES = 5
_FILES_PER_WORKER = 16


def _guarded(function, *args):
    """Config problems found while checking (a pyproject.toml deeper in the tree) end the run."""
    try:
        return function(*args)
    except ConfigError as error:
        raise fail(str(error))


def fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"mlplint: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlplint")
def cli() -> None:
    """Find what makes a PyTorch training script train badly.

    `mlplint check` reads the source without running it; `mlplint probe` runs the script
    briefly under instrumentation and reports what actually happens.
    """


def _selectors(value: Optional[str], option: str) -> Optional[list[str]]:
    if value is None:
        return None
    try:
        return parse_selectors(value, option, "command line")
    except ConfigError as error:
        raise click.UsageError(str(error).replace("command line: ", "")) from None


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


_resolver_cache: dict[Optional[Path], ConfigResolver] = {}


def _resolver(config_file: Optional[Path]) -> ConfigResolver:
    resolver = _resolver_cache.get(config_file)
    if resolver is None:
        resolver = _resolver_cache[config_file] = ConfigResolver(config_file)
    return resolver


def _settings(path: str, options: CheckOptions) -> Settings:
    return _resolver(options.config_file).for_path(path).with_cli(
        options.select, options.ignore, options.extend_select, options.extend_ignore)


def _noqa_warnings(text: str, path: str, where: Callable[[int], str]) -> list[str]:
    """Warnings for `# noqa:` / `# mlplint: disable=` codes that name no rule (ML...)."""
    lowered = text.lower()
    if "noqa" not in lowered and "mlplint:" not in lowered:
        return []
    known = set(known_codes())
    return [f"{path}:{where(line)}: unknown rule code '{code}' in `{directive}`"
            for line, code, directive in Suppressions.from_source(text).unknown_codes(known)]


def _unified_diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=name, tofile=name)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _check_python(text: str, path: str, settings: Settings, options: CheckOptions) -> CheckedFile:
    warnings = [f"{path}: empty file, nothing to check"] if not text.strip() else []
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
    return decode_notebook(data) if is_notebook(path) else decode_source(data)


def check_path(path: str, options: CheckOptions) -> CheckedFile:
    """Read, check and (with --fix) rewrite one file; runs in a worker process for big trees."""
    try:
        text = _decode(read_bytes(path), path)
    except SourceError as error:
        return CheckedFile(FileResult(path, errors=[FileError(path, str(error))]))
    checked = check_text(text, path, options)
    if options.fix and not options.diff and checked.fixed is not None:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(checked.fixed)
    return checked


def check_paths(paths: list[str], options: CheckOptions) -> list[CheckedFile]:
    """Check files, on every core when there are enough of them to pay for the workers."""
    workers = min(os.cpu_count() or 1, len(paths) // _FILES_PER_WORKER)
    if workers < 2:
        return [check_path(path, options) for path in paths]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check_path, paths, [options] * len(paths), chunksize=4))


def use_color(choice: str, stream: TextIO) -> bool:
    """--color always/never wins; auto honours NO_COLOR, then FORCE_COLOR, then asks the terminal."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "").lower() not in ("", "0", "false"):
        return True
    return stream.isatty()


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--select", help="Comma-separated rule codes or prefixes to enable (ML2, ML401), replacing the configured selection.")
@click.option("--ignore", help="Comma-separated rule codes or prefixes to disable.")
@click.option("--extend-select", help="Codes or prefixes to enable in addition to the configured selection.")
@click.option("--extend-ignore", help="Codes or prefixes to disable in addition to the configured ones.")
@click.option("--format", "output_format", type=click.Choice(sorted(REPORTERS)), default="text", show_default=True,
              help="text: each finding with a source excerpt (ruff's full format); concise: one line each.")
@click.option("--stdin-filename", help="Read source from stdin ('-' as the path) and report it under this name.")
@click.option("--probe", "with_probe", is_flag=True, help="Also run each script under the runtime probe (executes it): confirm findings, report symptoms.")
@click.option("--fix", is_flag=True, help="Apply safe fixes to the files.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix or --diff, also apply fixes that may change behaviour.")
@click.option("--diff", is_flag=True, help="Show the fixes as a unified diff and write nothing; exit 1 when there are fixes.")
@click.option("--statistics", is_flag=True, help="One line per code: count, code, [*] when fixable, name.")
@click.option("--output-file", "-o", type=click.Path(dir_okay=False, writable=True), help="Write the report to this file instead of stdout.")
@click.option("--color", "color_choice", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the text output (auto: on a terminal, unless NO_COLOR is set or FORCE_COLOR asks for it).")
@click.option("--force-exclude", is_flag=True, help="Apply the configured exclusions to files named on the command line too (for pre-commit).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="Config file (default: nearest pyproject.toml with [tool.mlplint]).")
@click.option("--exit-zero", is_flag=True, help="Report findings but exit 0.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default="warning", show_default=True,
              help="Lowest severity that makes the exit status 1.")
@click.option("--quiet", "-q", is_flag=True, help="Print the findings only: no summary, no warnings.")
@click.option("--verbose", "-v", is_flag=True, help="Also say which files were checked, under which configuration, and how long it took.")
def check(paths, select, ignore, extend_select, extend_ignore, output_format, stdin_filename, with_probe, fix,
          unsafe_fixes, diff, statistics, output_file, color_choice, force_exclude, config_file, exit_zero, fail_on, quiet, verbose):
    """Statically check PyTorch training scripts and notebooks (never runs them)."""
    started = time.perf_counter()
    options = CheckOptions(
        config_file, _selectors(select, "--select"), _selectors(ignore, "--ignore"), fix, unsafe_fixes,
        _selectors(extend_select, "--extend-select"), _selectors(extend_ignore, "--extend-ignore"), diff,
    )
    try:
        _resolver_cache[config_file] = ConfigResolver(config_file)
    except ConfigError as error:
        raise fail(str(error))
    paths = list(paths) or (["-"] if stdin_filename else ["."])
    checked: list[CheckedFile] = []
    errors: list[FileError] = []
    stdin_fixed = None
    if "-" in paths:
        name = stdin_filename or "-"
        try:
            text = _decode(sys.stdin.buffer.read(), name)
        except SourceError as error:
            errors.append(FileError(name, str(error)))
        else:
            checked.append(_guarded(check_text, text, name, options))
            if fix and not diff:  # the source goes to stdout, fixed or not, as ruff does
                stdin_fixed = checked[-1].fixed if checked[-1].fixed is not None else text
    discovery = _guarded(discover, [p for p in paths if p != "-"], _resolver(config_file).for_directory, force_exclude)
    errors.extend(discovery.errors)
    checked.extend(_guarded(check_paths, discovery.files, options))
    warnings = discovery.warnings + [w for c in checked for w in c.warnings]
    if not quiet:
        for warning in dict.fromkeys(warnings):  # each once, in order
            click.echo(f"mlplint: warning: {warning}", err=True)
    findings = [f for c in checked for f in c.result.findings]
    errors.extend(e for c in checked for e in c.result.errors)

    if with_probe:
        from mlplint.probe.confirm import attach_runtime  # imported only when asked: it runs scripts

        def enabled(code: str, path: str) -> bool:
            return _settings(path, options).enabled(code, path)

        scripts = [c.result.path for c in checked if c.result.path in discovery.files and not is_notebook(c.result.path)]
        for path in (c.result.path for c in checked if is_notebook(c.result.path)):
            click.echo(f"mlplint: warning: {path}: notebooks are not probed (run the notebook's code as a script)", err=True)
        findings = attach_runtime(
            findings, scripts, enabled,
            warn=lambda line: click.echo(f"mlplint: warning: {line}", err=True),
        )
    findings.sort(key=lambda f: f.sort_key)
    for error in errors:
        click.echo(f"mlplint: error: {error.path}: {error.message}", err=True)
    if verbose:
        for c in checked:
            config = c.config or "default settings"
            click.echo(f"mlplint: checked {c.result.path} ({config}): {plural(len(c.result.findings), 'finding')}", err=True)
        click.echo(f"mlplint: checked {plural(len(checked), 'file')} in {time.perf_counter() - started:.2f} s", err=True)

    fixed_count = sum(c.fixed_count for c in checked)
    try:
        out = open(output_file, "w", encoding="utf-8") if output_file else (sys.stderr if stdin_fixed is not None else sys.stdout)
    except OSError as error:
        raise fail(f"cannot write the report to {output_file}: {error.strerror or error}")
    try:
        context = ReportContext(
            color=use_color(color_choice, out), quiet=quiet,
            sources={(c.result.path, cell): lines for c in checked for cell, lines in c.sources.items()},
            fixed=fixed_count if fix and not diff else None,
        )
        if stdin_fixed is not None:
            sys.stdout.write(stdin_fixed)
        if diff:
            for c in checked:
                out.write(c.diff)
            if not quiet:
                fixable = sum(1 for c in checked if c.diff)
                summary = f"Would fix {plural(fixed_count, 'finding')} in {plural(fixable, 'file')}." if fixed_count else "No fixes available."
                click.echo(summary, err=True)
        elif statistics:
            report_statistics(findings, errors, out, context, as_json=output_format == "json")
        else:
            REPORTERS[output_format](findings, errors, out, context)
            if context.fixed is not None and output_format not in ("text", "concise") and not quiet:
                click.echo(f"Fixed {plural(fixed_count, 'finding')} ({len(findings)} remaining).", err=True)
    finally:
        if output_file:
            out.close()
    threshold = Severity(fail_on).rank
    if errors:
        sys.exit(EXIT_ERROR)
    if diff:
        sys.exit(EXIT_FINDINGS if fixed_count and not exit_zero else EXIT_CLEAN)
    if not exit_zero and any(f.severity.rank >= threshold for f in findings):
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_CLEAN)


@cli.command("rule")
@click.argument("code")
def rule_command(code: str) -> None:
    """Explain one rule or symptom: what it looks for, why it matters, an example and the fix."""
    rule = rule_by_code(code)
    if rule is not None:
        click.echo(f"{rule.code} {rule.name} ({rule.severity.value})\n")
        click.echo(inspect.cleandoc(rule.__doc__ or ""))
        if rule.symptoms:
            confirming = ", ".join(f"{s} {SYMPTOMS[s].name}" for s in rule.symptoms)
            click.echo(f"\n## Confirmed at runtime by\n{confirming}")
        if rule.options:
            click.echo("\n## Options")
            for option, default in rule.options.items():
                shown = list(default) if isinstance(default, tuple) else default
                click.echo(f"[tool.mlplint.{rule.name}] {option} = {shown!r}")
        return
    symptom = SYMPTOMS.get(code.upper())
    if symptom is None:
        raise fail(f"unknown rule code '{code}' (see `mlplint rules`)")
    click.echo(f"{symptom.code} {symptom.name} ({symptom.severity.value}, runtime symptom)\n\n{symptom.summary}")
    from mlplint.probe.detectors import detector_doc

    doc = detector_doc(symptom.code)
    if doc:
        click.echo("\n" + doc)


@cli.command("rules")
def rules_command() -> None:
    """List every static rule and runtime symptom."""
    rows = [(r.code, r.name, r.severity.value, r.summary()) for r in all_rules()]
    rows += [(s.code, s.name, s.severity.value, s.summary) for s in SYMPTOMS.values()]
    width = max(len(name) for _, name, _, _ in rows)
    for code, name, severity, summary in rows:
        click.echo(f"{code}  {name:<{width}}  {severity:<7}  {summary}")


@cli.command("server")
def server_command() -> None:
    """Run the language server (LSP over stdio) that editors start; needs `mlplint[lsp]`."""
    try:
        from mlplint.lint.server import serve
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise fail("the language server needs pygls: pip install 'mlplint[lsp]'")
    serve()


from mlplint.probe.command import probe as probe_command  # noqa: E402  (torch-free: torch runs in the child)

cli.add_command(probe_command)


def main() -> None:
    try:
        cli(prog_name="mlplint")
    except KeyboardInterrupt:
        click.echo("mlplint: interrupted", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # the contract: internal errors exit 2 with a one-line reason
        click.echo(f"mlplint: internal error: {type(exc).__name__}: {exc}", err=True)
        if os.environ.get("MLPLINT_DEBUG"):
            raise
        sys.exit(EXIT_ERROR)
