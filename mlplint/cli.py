"""The `mlplint` command line."""

from __future__ import annotations

import atexit
import os
import re
import sys
import time
from pathlib import Path
from typing import NoReturn, Optional, TextIO

import click

from mlplint import __version__
from mlplint.lint.config import ConfigError, ConfigResolver, parse_selection, parse_selectors
from mlplint.lint.discovery import discover
from mlplint.lint.finding import FileError, Severity
from mlplint.lint.registry import all_rules, rule_by_code
from mlplint.lint.reporters import REPORTERS, ReportContext, plural, report_statistics
from mlplint.lint.runner import CheckedFile, Checker, CheckOptions, _decode, _resolver, _resolver_cache, _settings, check_text, open_cache
from mlplint.lint.source import SourceError, is_notebook
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
    parse = parse_selection if option == "--select" else parse_selectors
    try:
        return parse(value, option, "command line")
    except ConfigError as error:
        raise click.UsageError(str(error).replace("command line: ", "")) from None


def _globs(value: Optional[str]) -> Optional[list[str]]:
    return None if value is None else [glob.strip() for glob in value.split(",") if glob.strip()]


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
@click.option("--exclude", help="Comma-separated globs to skip in folder walks, replacing the configured and default exclusions.")
@click.option("--extend-exclude", help="Comma-separated globs to skip in folder walks, besides the configured ones.")
@click.option("--force-exclude", is_flag=True, help="Apply the configured exclusions to files named on the command line too (for pre-commit).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="Config file (default: nearest pyproject.toml with [tool.mlplint]).")
@click.option("--exit-zero", is_flag=True, help="Report findings but exit 0.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info"]), default="warning", show_default=True,
              help="Lowest severity that makes the exit status 1.")
@click.option("--no-cache", is_flag=True, envvar="MLPLINT_NO_CACHE", help="Check every file afresh; read and write no cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MLPLINT_CACHE_DIR",
              help="Where to keep per-file results (default: .mlplint_cache at the project root).")
@click.option("--quiet", "-q", is_flag=True, help="Print the findings only: no summary, no warnings.")
@click.option("--verbose", "-v", is_flag=True, help="Also say which files were checked, under which configuration, and how long it took.")
def check(paths, select, ignore, extend_select, extend_ignore, output_format, stdin_filename, with_probe, fix,
          unsafe_fixes, diff, statistics, output_file, color_choice, exclude, extend_exclude, force_exclude, config_file, exit_zero, fail_on, no_cache, cache_dir, quiet, verbose):
    """Statically check PyTorch training scripts and notebooks (never runs them)."""
    started = time.perf_counter()
    # The cache first: it holds the rules' catalogue that reading the selection and the configuration needs
    cache = None if no_cache else _guarded(open_cache, cache_dir, config_file, lambda line: click.echo(f"mlplint: warning: {line}", err=True))
    options = CheckOptions(
        config_file, _selectors(select, "--select"), _selectors(ignore, "--ignore"), fix, unsafe_fixes,
        _selectors(extend_select, "--extend-select"), _selectors(extend_ignore, "--extend-ignore"), diff,
    )
    try:
        _resolver_cache[config_file] = ConfigResolver(config_file)
    except ConfigError as error:
        raise fail(str(error))
    checker = Checker(options, cache)
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
    exclusions = _globs(exclude), _globs(extend_exclude), Path.cwd()

    def settings_for(directory: Path):
        return _resolver(config_file).for_directory(directory).with_exclusions(*exclusions)

    discovery = _guarded(discover, [p for p in paths if p != "-"], settings_for, force_exclude)
    errors.extend(discovery.errors)
    checked.extend(_guarded(checker.check_files, discovery.files))
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
        from mlplint.probe.live import LiveProgress

        live = LiveProgress.for_terminal(output_format)

        def warn(line: str) -> None:
            if live is not None:
                live.close()
            click.echo(f"mlplint: warning: {line}", err=True)

        try:
            findings = attach_runtime(findings, scripts, enabled, warn=warn, progress=live)
        finally:
            if live is not None:
                live.close()
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
        import inspect

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


_RULES_WIDTH = 100


def _gist(summary: str) -> str:
    """What a rule looks for, short: its summary's first clause without the asides in brackets."""
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z`])", summary, maxsplit=1)[0]
    clause = re.split(r":\s|\s-\s", re.sub(r"\s+\([^()]+\)", "", sentence), maxsplit=1)[0].rstrip(".")
    return re.sub(r"^(?:Finds|Checks) (\S)", lambda match: match.group(1).upper(), clause)


def _wrapped(text: str, width: int, indent: int) -> str:
    """text in at most two lines of width characters (cut with an ellipsis), the second indented."""
    import textwrap

    lines = textwrap.wrap(text, width, break_on_hyphens=False, max_lines=2, placeholder=" ...")
    return ("\n" + " " * indent).join(lines)


@cli.command("rules")
def rules_command() -> None:
    """List every static rule and runtime symptom with its gist (`mlplint rule CODE` says more)."""
    rows = [(r.code, r.name, r.severity.value, r.summary()) for r in all_rules()]
    rows += [(s.code, s.name, s.severity.value, s.summary) for s in SYMPTOMS.values()]
    width = max(len(name) for _, name, _, _ in rows)
    indent = len(f"ML000  {'':<{width}}  {'warning'}  ")
    for code, name, severity, summary in rows:
        click.echo(f"{code}  {name:<{width}}  {severity:<7}  {_wrapped(_gist(summary), _RULES_WIDTH - indent, indent)}")


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


def main() -> None:
    try:
        cli(prog_name="mlplint")
    except SystemExit as exit:
        _end_process(exit.code)
    except KeyboardInterrupt:
        click.echo("mlplint: interrupted", err=True)
        _end_process(EXIT_ERROR)
    except ConfigError as error:  # a bad configuration met by a command that does not catch it (probe)
        click.echo(f"mlplint: error: {error}", err=True)
        _end_process(EXIT_ERROR)
    except Exception as exc:  # the contract: internal errors exit 2 with a one-line reason
        click.echo(f"mlplint: internal error: {type(exc).__name__}: {exc}", err=True)
        if os.environ.get("MLPLINT_DEBUG"):
            raise
        _end_process(EXIT_ERROR)
    _end_process(EXIT_CLEAN)


def _end_process(status) -> NoReturn:
    """Exit once the report is out, without the interpreter's teardown: freeing every LibCST
    class and tree object costs about 30 ms, a tenth of checking a small file. atexit handlers
    still run and the standard streams are flushed; every file mlplint writes is closed by then.
    Under a profiler or tracer (cProfile, a debugger) the interpreter exits normally, so they can
    write their results."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(status)
    if status is None:
        code = EXIT_CLEAN
    elif isinstance(status, int):
        code = status
    else:  # sys.exit("message")
        print(status, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`mlplint check | head`)
            pass
    os._exit(code)
