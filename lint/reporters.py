"""Output formats for `mlplint check`: text (ruff-like), json (the contract's schema), sarif, github.

Reporters only format; what to report and the exit status are decided elsewhere.
"""

from __future__ import annotations

import json
from typing import Callable, Optional, TextIO

import click

from mlplint import __version__
from mlplint.lint.finding import FileError, Finding, Severity
from mlplint.lint.registry import all_rules

_COLORS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 or word == 'info' else 's'}"


def report_text(findings: list[Finding], errors: list[FileError], out: TextIO, color: Optional[bool] = None) -> None:
    for f in findings:
        location = click.style(f"{f.path}:{f.line}:{f.column}:", bold=True)
        code = click.style(f.code, fg=_COLORS[f.severity], bold=True)
        marker = " [*]" if f.fix else ""
        click.echo(f"{location} {code}{marker} {f.message}", file=out, color=color)
        if f.runtime is not None:
            symptoms = f" ({', '.join(f.runtime.symptoms)})" if f.runtime.symptoms else ""
            click.echo(f"    probe: {f.runtime.status}{symptoms}: {f.runtime.evidence}", file=out, color=color)
    if findings:
        counts = [
            _plural(sum(1 for f in findings if f.severity is severity), severity.value)
            for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO)
            if any(f.severity is severity for f in findings)
        ]
        click.echo(f"Found {_plural(len(findings), 'finding')} ({', '.join(counts)}).", file=out, color=color)
        fixable = sum(1 for f in findings if f.fix)
        if fixable:
            safe = sum(1 for f in findings if f.fix and f.fix.applicability == "safe")
            hint = "`--fix`" if safe == fixable else "`--fix --unsafe-fixes`"
            click.echo(f"[*] {fixable} fixable with {hint}.", file=out, color=color)
    elif not errors:
        click.echo("All checks passed!", file=out, color=color)


def report_json(findings: list[Finding], errors: list[FileError], out: TextIO, color: Optional[bool] = None) -> None:
    document = {
        "version": 1,
        "findings": [f.to_json() for f in findings],
        "errors": [e.to_json() for e in errors],
    }
    out.write(json.dumps(document, indent=2) + "\n")


_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def report_sarif(findings: list[Finding], errors: list[FileError], out: TextIO, color: Optional[bool] = None) -> None:
    rules = [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.summary()},
            "helpUri": f"https://github.com/mlplint/mlplint#{rule.code.lower()}",
            "defaultConfiguration": {"level": _SARIF_LEVELS[rule.severity]},
        }
        for rule in all_rules()
    ]
    results = [
        {
            "ruleId": f.code,
            "level": _SARIF_LEVELS[f.severity],
            "message": {"text": f.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": f.path.replace("\\", "/")},
                    "region": {"startLine": f.line, "startColumn": f.column, "endLine": f.end_line, "endColumn": f.end_column},
                }
            }],
        }
        for f in findings
    ]
    notifications = [
        {"level": "error", "message": {"text": f"{e.path}: {e.message}"}} for e in errors
    ]
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "mlplint", "version": __version__, "rules": rules}},
            "results": results,
            "invocations": [{"executionSuccessful": not errors, "toolExecutionNotifications": notifications}],
        }],
    }
    out.write(json.dumps(document, indent=2) + "\n")


_GITHUB_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _github_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def report_github(findings: list[Finding], errors: list[FileError], out: TextIO, color: Optional[bool] = None) -> None:
    for f in findings:
        out.write(
            f"::{_GITHUB_LEVELS[f.severity]} title=mlplint ({f.code}),file={f.path},line={f.line},col={f.column},"
            f"endLine={f.end_line},endColumn={f.end_column}::{_github_escape(f'{f.code} {f.name}: {f.message}')}\n"
        )
    for e in errors:
        out.write(f"::error title=mlplint,file={e.path}::{_github_escape(e.message)}\n")


REPORTERS: dict[str, Callable[..., None]] = {
    "text": report_text,
    "json": report_json,
    "sarif": report_sarif,
    "github": report_github,
}
