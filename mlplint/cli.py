"""The `mlplint` command line."""

from __future__ import annotations

import inspect
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import click

from mlplint import __version__
from mlplint.lint.config import ConfigError, ConfigResolver, parse_selectors
from mlplint.lint.discovery import discover
from mlplint.lint.engine import FileResult, check_source
from mlplint.lint.finding import FileError, Finding, Severity
from mlplint.lint.fixes import apply_fixes
from mlplint.lint.registry import all_rules, rule_by_code
from mlplint.lint.reporters import REPORTERS
from mlplint.lint.source import SourceError, decode_source, read_source
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


@dataclass
class CheckedFile:
    result: FileResult
    fixed: Optional[str] = None
    warnings: list[str] = field(default_factory=list)


_resolver_cache: dict[Optional[Path], ConfigResolver] = {}


def check_text(text: str, path: str, options: CheckOptions) -> CheckedFile:
    """Check one text; with fix, apply fixes until none applies."""
    resolver = _resolver_cache.get(options.config_file)
    if resolver is None:
        resolver = _resolver_cache[options.config_file] = ConfigResolver(options.config_file)
    settings = resolver.for_path(path).with_cli(options.select, options.ignore)
    result = check_source(text, path, settings)
    warnings = [f"{path}: empty file, nothing to check"] if not text.strip() else []
    if not options.fix:
        return CheckedFile(result, warnings=warnings)
    fixed = text
    for _ in range(_MAX_FIX_PASSES):
        fixed, applied = apply_fixes(fixed, result.findings, options.unsafe_fixes)
        if not applied:
            break
        result = check_source(fixed, path, settings)
    return CheckedFile(result, fixed, warnings)


def check_path(path: str, options: CheckOptions) -> CheckedFile:
    """Read, check and (with --fix) rewrite one file; runs in a worker process for big trees."""
    try:
        text = read_source(path)
    except SourceError as error:
        return CheckedFile(FileResult(path, errors=[FileError(path, str(error))]))
    checked = check_text(text, path, options)
    if checked.fixed is not None and checked.fixed != text:
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


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--select", help="Comma-separated rule codes or prefixes to enable (ML2, ML401).")
@click.option("--ignore", help="Comma-separated rule codes or prefixes to disable.")
@click.option("--format", "output_format", type=click.Choice(sorted(REPORTERS)), default="text", show_default=True)
@click.option("--stdin-filename", help="Read source from stdin ('-' as the path) and report it under this name.")
@click.option("--probe", "with_probe", is_flag=True, help="Also run each script under the runtime probe (executes it): confirm findings, report symptoms.")
@click.option("--fix", is_flag=True, help="Apply safe fixes to the files.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix, also apply fixes that may change behaviour.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="Config file (default: nearest pyproject.toml with [tool.mlplint]).")
@click.option("--exit-zero", is_flag=True, help="Report findings but exit 0.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default="warning", show_default=True,
              help="Lowest severity that makes the exit status 1.")
def check(paths, select, ignore, output_format, stdin_filename, with_probe, fix, unsafe_fixes, config_file, exit_zero, fail_on):
    """Statically check PyTorch training scripts (never runs them)."""
    options = CheckOptions(config_file, _selectors(select, "--select"), _selectors(ignore, "--ignore"), fix, unsafe_fixes)
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
            text = decode_source(click.get_binary_stream("stdin").read())
        except SourceError as error:
            errors.append(FileError(name, str(error)))
        else:
            checked.append(_guarded(check_text, text, name, options))
            stdin_fixed = checked[-1].fixed
    discovery = discover([p for p in paths if p != "-"])
    errors.extend(discovery.errors)
    checked.extend(_guarded(check_paths, discovery.files, options))
    for warning in discovery.warnings + [w for c in checked for w in c.warnings]:
        click.echo(f"mlplint: warning: {warning}", err=True)
    findings = [f for c in checked for f in c.result.findings]
    errors.extend(e for c in checked for e in c.result.errors)

    if with_probe:
        from mlplint.probe.confirm import attach_runtime  # imported only when asked: it runs scripts

        def enabled(code: str, path: str) -> bool:
            return _resolver_cache[config_file].for_path(path).with_cli(options.select, options.ignore).enabled(code, path)

        from mlplint.probe.live import LiveProgress

        live = LiveProgress.for_terminal(output_format)

        def warn(line: str) -> None:
            if live is not None:
                live.close()
            click.echo(f"mlplint: warning: {line}", err=True)

        try:
            findings = attach_runtime(findings, [c.result.path for c in checked if c.result.path in discovery.files], enabled,
                                      warn=warn, progress=live)
        finally:
            if live is not None:
                live.close()
    findings.sort(key=lambda f: f.sort_key)
    for error in errors:
        click.echo(f"mlplint: error: {error.path}: {error.message}", err=True)
    if stdin_fixed is not None:
        sys.stdout.write(stdin_fixed)
        REPORTERS[output_format](findings, errors, sys.stderr)
    else:
        REPORTERS[output_format](findings, errors, sys.stdout)
    threshold = Severity(fail_on).rank
    if errors:
        sys.exit(EXIT_ERROR)
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
