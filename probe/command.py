"""`mlplint probe SCRIPT [-- ARGS...]`: run a script briefly under instrumentation, report symptoms.

Imported by the CLI at start-up, so it must not import torch (only the child process does)."""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Callable, Optional

import click

from mlplint.lint.engine import parse
from mlplint.lint.finding import Finding, Severity
from mlplint.lint.source import SourceError, read_source
from mlplint.probe.comparison import Comparison, MissingDependency
from mlplint.probe.confirm import reported, static_check, with_runtime
from mlplint.probe.detectors import ThresholdError, judge_all, resolve_thresholds
from mlplint.probe.live import LiveProgress
from mlplint.probe.report import error_text, json_document, report_json, report_text, symptom_rows
from mlplint.probe.runner import DEFAULT_STEPS, DEFAULT_TIMEOUT, DEVICES, ProbeError, run_probe
from mlplint.probe.stats import Stats, StatsError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _fail(message: str) -> click.exceptions.Exit:
    click.echo(f"mlplint: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_ERROR)


def _parse_thresholds(values: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """`CODE.name=value` options as {CODE: {name: value}}."""
    overrides: dict[str, dict[str, float]] = {}
    for item in values:
        key, _, value = item.partition("=")
        code, _, name = key.partition(".")
        try:
            number = float(value)
        except ValueError:
            raise click.BadParameter(f"'{item}': expected CODE.name=NUMBER, e.g. ML907.max_dead_fraction=0.6", param_hint="--threshold") from None
        if not name:
            raise click.BadParameter(f"'{item}': expected CODE.name=NUMBER", param_hint="--threshold")
        overrides.setdefault(code.upper(), {})[name] = number
    try:
        resolve_thresholds(overrides)
    except ThresholdError as error:
        raise click.BadParameter(str(error), param_hint="--threshold") from None
    return overrides


@click.command("probe", context_settings={"ignore_unknown_options": False})
@click.argument("script", required=False)
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--python", "python", default=None, metavar="PATH",
              help="Interpreter that runs SCRIPT (default: the one running mlplint); it needs torch.")
@click.option("--steps", type=click.IntRange(min=1), default=DEFAULT_STEPS, show_default=True,
              help="Stop the script after this many optimizer steps.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True,
              help="Wall-clock bound for the whole run of the script, in seconds (each --trials run gets the same).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="cpu hides accelerators from the script (CUDA_VISIBLE_DEVICES='').")
@click.option("--nproc-per-node", "nproc_per_node", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run SCRIPT through torch.distributed.run (torchrun) with N ranks, each instrumented (gloo where no GPU).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--save-stats", type=click.Path(dir_okay=False), help="Also write the raw recorded statistics to this JSON file.")
@click.option("--stats", "stats_file", type=click.Path(dir_okay=False),
              help="Judge statistics saved by --save-stats instead of running a script.")
@click.option("--threshold", "thresholds", multiple=True, metavar="CODE.NAME=VALUE",
              help="Override a detector threshold, e.g. ML907.max_dead_fraction=0.6 (see `mlplint rule ML907`).")
@click.option("--baseline", is_flag=True,
              help="Also fit scikit-learn's default MLP on the rows the run fed the model and compare (needs scikit-learn here).")
@click.option("--trials", "with_trials", is_flag=True,
              help="Re-run the script once per fix its findings have (same seed, step budget and --timeout), then once with the fixes that helped together.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report with the loss curves.")
def probe(script, script_args, python, steps, timeout, device, nproc_per_node, output_format, save_stats, stats_file, thresholds,
          baseline, with_trials, html_file) -> None:
    """Run SCRIPT for a few optimizer steps under instrumentation and report runtime symptoms.

    This EXECUTES the script (as __main__, with sys.argv = [SCRIPT, *ARGS]) in a child process.
    Pass the script's own arguments after `--`.
    """
    overrides = _parse_thresholds(thresholds)
    if nproc_per_node > 1 and (baseline or with_trials):
        raise click.UsageError("--baseline and --trials run the script as one process; they cannot be combined with --nproc-per-node")
    comparison = None
    if stats_file is not None:
        if script is not None:
            raise click.UsageError("give either SCRIPT or --stats FILE, not both")
        if baseline or with_trials:
            raise click.UsageError("--baseline and --trials run the script; they cannot judge saved --stats")
        try:
            stats = Stats.load(stats_file)
        except StatsError as error:
            raise _fail(str(error))
    else:
        if script is None:
            raise click.UsageError("missing SCRIPT (or --stats FILE)")
        try:
            _, _, syntax_error = parse(read_source(script), script)
        except SourceError as error:
            raise _fail(f"{script}: {error}")
        if syntax_error is not None:
            raise _fail(f"{script}: {syntax_error.message}")
        live = LiveProgress.for_terminal(output_format)
        try:
            comparison = Comparison(baseline, with_trials, timeout, live) if baseline or with_trials else None
        except MissingDependency as error:
            raise _fail(str(error))
        run = functools.partial(run_probe, script, script_args, steps=steps, device=device, python=python, nproc_per_node=nproc_per_node)
        started = time.monotonic()
        try:
            stats = run(timeout=timeout, trial=comparison.child_settings() if comparison else None, on_progress=live)
        except ProbeError as error:
            if comparison:
                comparison.close()
            raise _fail(str(error))
        finally:
            if live is not None:
                live.close()
        if comparison:
            comparison.run_seconds = time.monotonic() - started
        if device == "cuda" and not str(stats.data.get("device") or "").startswith("cuda"):
            click.echo(f"mlplint: warning: --device cuda, but the script ran on {stats.data.get('device') or 'an unknown device'} "
                       "(no CUDA device visible, or the script chose another)", err=True)
    if save_stats:
        try:
            stats.save(save_stats)
        except OSError as error:
            raise _fail(f"cannot write {save_stats}: {error.strerror or error}")
    judgements = judge_all(stats, overrides)
    findings, shown = _static_check(stats.data.get("script"))
    findings = with_runtime(findings, stats, judgements)
    judgements = reported(judgements, shown, findings)
    extra = None
    if stats_file is None and comparison is not None:
        with comparison:
            findings = comparison.measure(stats, findings, run, [code for code, j in judgements.items() if j.observed])
        extra = comparison.json()
    (report_json if output_format == "json" else report_text)(stats, judgements, findings, sys.stdout, extra)
    if html_file:
        from mlplint.probe.html_report import write_html

        try:
            write_html(json_document(stats, judgements, findings, extra), html_file)
        except OSError as error:
            raise _fail(f"cannot write {html_file}: {error.strerror or error}")
    reason = error_text(stats) or f"the run ended with status {stats.data.get('status')}"
    if stats.steps == 0:  # nothing could be judged: CI must not read this as a pass
        click.echo(f"mlplint: error: no optimizer step was made, nothing could be judged: {reason}", err=True)
        sys.exit(EXIT_ERROR)
    if stats.data.get("status") in ("crashed", "timeout"):  # the script is broken or hangs: never a pass
        click.echo(f"mlplint: error: the run {'timed out' if stats.data['status'] == 'timeout' else 'crashed'} "
                   f"after {stats.steps} optimizer steps: {reason}", err=True)
        sys.exit(EXIT_ERROR)
    failing = [row for row in symptom_rows(judgements) if Severity(row["severity"]).rank >= Severity.WARNING.rank]
    failing += [f for f in findings if f.severity.rank >= Severity.WARNING.rank]
    sys.exit(EXIT_FINDINGS if failing else EXIT_CLEAN)


def _static_check(script: Optional[str]) -> tuple[list[Finding], Callable[[str], bool]]:
    """The script's static findings and the symptoms its configuration and `# mlplint: disable=`
    let through; none and all when the script is not readable any more (stats judged later,
    elsewhere)."""
    if script and os.path.isfile(script):
        try:
            return static_check(script)
        except SourceError:
            pass
    return [], lambda code: True
