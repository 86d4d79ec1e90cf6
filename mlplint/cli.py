"""The `mlplint` command line."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Optional

import click

from mlplint import __version__
from mlplint.lint.cache import DEFAULT_DIRECTORY as DEFAULT_CACHE_DIRECTORY
from mlplint.lint.config import ConfigError, parse_selectors
from mlplint.lint.discovery import discover
from mlplint.lint.finding import FileError, Severity
from mlplint.lint.registry import all_rules, rule_by_code
from mlplint.lint.reporters import REPORTERS
from mlplint.lint.runner import CheckedFile, Checker, CheckOptions
from mlplint.lint.source import SourceError, decode_source
from mlplint.probe.symptoms import SYMPTOMS

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _guarded(function, *args):
    """Config problems found while checking (a pyproject.toml deeper in the tree) end the run."""
    try:
        return function(*args)
    except ConfigError as error:
        raise fail(str(error))


def fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"mlplint: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_ERROR)


class _Commands(click.Group):
    """Subcommands whose modules are imported only when they run (`check` never loads the probe)."""

    lazy = {"probe": "mlplint.probe.command"}

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            return getattr(importlib.import_module(self.lazy[name]), name)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--no-cache", is_flag=True, envvar="MLPLINT_NO_CACHE", help="Check every file afresh; read and write no cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MLPLINT_CACHE_DIR",
              help=f"Where to keep per-file results (default: {DEFAULT_CACHE_DIRECTORY} at the project root; env MLPLINT_CACHE_DIR).")
def check(paths, select, ignore, output_format, stdin_filename, with_probe, fix, unsafe_fixes, config_file, exit_zero, fail_on, no_cache, cache_dir):
    """Statically check PyTorch training scripts (never runs them)."""
    options = CheckOptions(config_file, _selectors(select, "--select"), _selectors(ignore, "--ignore"), fix, unsafe_fixes)
    try:
        checker = Checker(options)
    except ConfigError as error:
        raise fail(str(error))
    if not no_cache:
        _guarded(checker.use_cache, cache_dir, lambda line: click.echo(f"mlplint: warning: {line}", err=True))
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
            checked.append(_guarded(checker.check_text, text, name))
            stdin_fixed = checked[-1].fixed
    discovery = discover([p for p in paths if p != "-"])
    errors.extend(discovery.errors)
    checked.extend(_guarded(checker.check_files, discovery.files))
    for warning in discovery.warnings + [w for c in checked for w in c.warnings]:
        click.echo(f"mlplint: warning: {warning}", err=True)
    findings = [f for c in checked for f in c.result.findings]
    errors.extend(e for c in checked for e in c.result.errors)

    if with_probe:
        from mlplint.probe.confirm import attach_runtime  # imported only when asked: it runs scripts

        def enabled(code: str, path: str) -> bool:
            return checker.settings_for(path).enabled(code, path)

        findings = attach_runtime(
            findings, [c.result.path for c in checked if c.result.path in discovery.files], enabled,
            warn=lambda line: click.echo(f"mlplint: warning: {line}", err=True),
        )
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
