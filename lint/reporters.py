"""Output formats for `mlplint check`: text (ruff's full format: a source excerpt with a caret under
the span and the fix hint), concise (one line per finding), json (the contract's schema), sarif,
github (workflow commands), and the `--statistics` table.

Reporters only format; what to report and the exit status are decided elsewhere.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional, TextIO

import click

from mlplint import __version__
from mlplint.lint.finding import FileError, Finding, Severity

_COLORS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_CONTEXT_LINES = 2  # lines shown above and below the reported span, as ruff does
_MAX_SPAN_LINES = 6  # a longer span shows its first and last lines around an ellipsis


@dataclass
class ReportContext:
    """What the reporters may need beyond the findings and errors."""

    color: bool = False
    # Source lines (no line ends) by (path, cell); cell is None outside notebooks.
    sources: dict[tuple[str, Optional[int]], list[str]] = field(default_factory=dict)
    quiet: bool = False  # -q: the findings only, no summary lines
    fixed: Optional[int] = None  # with --fix: how many findings the fixes removed


def plural(count: int, word: str) -> str:
    """A count in words: 1 finding, 2 findings, 3 info."""
    return f"{count} {word}{'' if count == 1 or word == 'info' else 's'}"


def location(f: Finding) -> str:
    cell = f"cell {f.cell}:" if f.cell is not None else ""
    return f"{f.path}:{cell}{f.line}:{f.column}"


def _echo(text: str, out: TextIO, context: ReportContext) -> None:
    click.echo(text, file=out, color=context.color)


def _header(f: Finding, context: ReportContext) -> str:
    where = click.style(f"{location(f)}:", bold=True)
    code = click.style(f.code, fg=_COLORS[f.severity], bold=True)
    marker = " [*]" if f.fix else ""
    return f"{where} {code}{marker} {f.message}"


def _runtime_line(f: Finding) -> Optional[str]:
    if f.runtime is None:
        return None
    symptoms = f" ({', '.join(f.runtime.symptoms)})" if f.runtime.symptoms else ""
    return f"probe: {f.runtime.status}{symptoms}: {f.runtime.evidence}"


def _excerpt(f: Finding, lines: list[str]) -> list[str]:
    """The span's lines with context, a gutter of line numbers and carets under the span."""
    last = min(f.end_line, len(lines))
    if not lines or f.line > len(lines):
        return []
    shown = list(range(max(1, f.line - _CONTEXT_LINES), f.line + 1))
    span = list(range(f.line + 1, last + 1))
    if len(span) > _MAX_SPAN_LINES:
        span = span[: _MAX_SPAN_LINES // 2] + [None] + span[-(_MAX_SPAN_LINES // 2):]
    shown += span + list(range(last + 1, min(len(lines), last + _CONTEXT_LINES) + 1))
    width = len(str(max(number for number in shown if number is not None)))
    gutter = click.style(" " * width + " |", fg="blue", bold=True)
    rendered = [gutter]
    for number in shown:
        if number is None:
            rendered.append(click.style(" " * width + " :", fg="blue", bold=True))
            continue
        text = lines[number - 1].expandtabs(4)
        rendered.append(click.style(f"{number:>{width}} |", fg="blue", bold=True) + (f" {text}" if text else ""))
        if number == f.line:
            source = lines[number - 1]
            start = len(source[: f.column - 1].expandtabs(4))
            end = len(source[: f.end_column - 1].expandtabs(4)) if f.end_line == f.line else len(text)
            carets = "^" * max(end - start, 1)
            label = click.style(f"{carets} {f.code}", fg=_COLORS[f.severity], bold=True)
            rendered.append(f"{gutter} {' ' * start}{label}")
    rendered.append(gutter)
    return rendered


def report_text(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext) -> None:
    """Ruff's full format: each finding, its source excerpt, its fix hint, then a summary."""
    for f in findings:
        _echo(_header(f, context), out, context)
        lines = context.sources.get((f.path, f.cell))
        for line in _excerpt(f, lines or []):
            _echo(line, out, context)
        pad = " " * (len(str(f.end_line + _CONTEXT_LINES)) + 1)
        if f.fix is not None and f.fix.description:
            applicability = "" if f.fix.applicability == "safe" else " (unsafe fix)"
            _echo(f"{pad}{click.style('= help:', bold=True)} {f.fix.description}{applicability}", out, context)
        runtime = _runtime_line(f)
        if runtime:
            _echo(f"{pad}{click.style('=', bold=True)} {runtime}", out, context)
        _echo("", out, context)
    _summary(findings, errors, out, context)


def report_concise(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext) -> None:
    """One line per finding (`path:line:col: CODE message`), then the summary."""
    for f in findings:
        _echo(_header(f, context), out, context)
        runtime = _runtime_line(f)
        if runtime:
            _echo(f"    {runtime}", out, context)
    _summary(findings, errors, out, context)


def _summary(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext) -> None:
    if context.quiet:
        return
    if context.fixed is not None and (context.fixed or findings):
        _echo(f"Fixed {plural(context.fixed, 'finding')} ({len(findings)} remaining).", out, context)
    if findings:
        counts = [
            plural(sum(1 for f in findings if f.severity is severity), severity.value)
            for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO)
            if any(f.severity is severity for f in findings)
        ]
        _echo(f"Found {plural(len(findings), 'finding')} ({', '.join(counts)}).", out, context)
        fixable = sum(1 for f in findings if f.fix)
        if fixable and context.fixed is None:
            _echo(f"[*] {fixable} fixable with {_fix_hint(findings)}.", out, context)
    elif not errors and not context.fixed:
        _echo("All checks passed!", out, context)


def _fix_hint(findings: list[Finding]) -> str:
    unsafe = any(f.fix and f.fix.applicability == "unsafe" for f in findings)
    return "`--fix --unsafe-fixes`" if unsafe else "`--fix`"


def report_json(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext) -> None:
    document = {
        "version": 1,
        "findings": [f.to_json() for f in findings],
        "errors": [e.to_json() for e in errors],
    }
    out.write(json.dumps(document, indent=2) + "\n")


_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _sarif_rules() -> list[dict]:
    from mlplint.lint.registry import parse_doc_sections
    from mlplint.lint.rule_docs import all_docs

    rules = []
    for doc in all_docs():
        sections = parse_doc_sections(doc.body)
        full = "\n\n".join(sections[s] for s in ("What it does", "Why is this bad?", "What it detects", "Why it matters")
                           if s in sections)
        rules.append({
            "id": doc.code,
            "name": doc.name,
            "shortDescription": {"text": doc.summary},
            "fullDescription": {"text": " ".join(full.split()) or doc.summary},
            "help": {"text": doc.text, "markdown": doc.markdown},
            "helpUri": doc.help_uri,
            "defaultConfiguration": {"level": _SARIF_LEVELS[doc.severity]},
        })
    return rules


def report_sarif(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext) -> None:
    rules = _sarif_rules()
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _SARIF_LEVELS[f.severity],
            "message": {"text": f.message if f.cell is None else f"cell {f.cell}: {f.message}"},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": f.path.replace("\\", "/")},
                    "region": {"startLine": f.line, "startColumn": f.column, "endLine": f.end_line, "endColumn": f.end_column},
                }
            }],
        }
        if f.cell is not None:
            result["properties"] = {"cell": f.cell}
        results.append(result)
    notifications = [
        {"level": "error", "message": {"text": f"{e.path}: {e.message}"}} for e in errors
    ]
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "mlplint", "version": __version__, "informationUri": _information_uri(),
                                "rules": rules}},
            "results": results,
            "invocations": [{"executionSuccessful": not errors, "toolExecutionNotifications": notifications}],
        }],
    }
    out.write(json.dumps(document, indent=2) + "\n")


def _information_uri() -> str:
    from mlplint.lint.rule_docs import REPOSITORY_URL

    return REPOSITORY_URL


_GITHUB_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def github_escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF are escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_escape_property(text: str) -> str:
    """A workflow command's property value: also ':' and ',', which end a property."""
    return github_escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github_command(level: str, properties: dict[str, object], message: str) -> str:
    rendered = ",".join(f"{key}={github_escape_property(str(value))}" for key, value in properties.items())
    return f"::{level} {rendered}::{github_escape_data(message)}\n"


def report_github(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext) -> None:
    for f in findings:
        title = f"mlplint ({f.code})" if f.cell is None else f"mlplint ({f.code}) in cell {f.cell}"
        properties = {"title": title, "file": f.path, "line": f.line, "col": f.column,
                      "endLine": f.end_line, "endColumn": f.end_column}
        where = "" if f.cell is None else f"cell {f.cell}: "
        out.write(_github_command(_GITHUB_LEVELS[f.severity], properties, f"{where}{f.code} {f.name}: {f.message}"))
    for e in errors:
        out.write(_github_command("error", {"title": "mlplint", "file": e.path}, e.message))


def report_statistics(findings: list[Finding], errors: list[FileError], out: TextIO, context: ReportContext,
                      as_json: bool = False) -> None:
    """One line per code, most frequent first: count, code, [*] when fixable, name."""
    counts = Counter(f.code for f in findings)
    first = {}
    for f in findings:
        first.setdefault(f.code, f)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    fixable = {code: any(f.fix is not None for f in findings if f.code == code) for code in counts}
    if as_json:
        document = [{"code": code, "name": first[code].name, "count": count, "fixable": fixable[code]}
                    for code, count in rows]
        out.write(json.dumps(document, indent=2) + "\n")
        return
    width = max((len(str(count)) for _, count in rows), default=1)
    for code, count in rows:
        marker = "[*]" if fixable[code] else "[ ]"
        _echo(f"{count:>{width}}\t{code}\t{marker} {first[code].name}", out, context)
    if not context.quiet and any(fixable.values()):
        _echo(f"[*] fixable with {_fix_hint(findings)}", out, context)


REPORTERS: dict[str, Callable[..., None]] = {
    "text": report_text,
    "concise": report_concise,
    "json": report_json,
    "sarif": report_sarif,
    "github": report_github,
}
