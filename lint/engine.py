"""Check one source text: parse once, resolve metadata, build the shared analysis, run every
enabled rule over it, then drop suppressed findings."""

from __future__ import annotations

import ast

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst
from libcst.metadata import MetadataWrapper

from mlplint.lint.config import Settings
from mlplint.lint.facts import ScriptFacts
from mlplint.lint.finding import Edit, FileError, Finding, Fix
from mlplint.lint.registry import FixSpec, Report, RuleContext, all_rules
from mlplint.lint.suppression import Suppressions


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)


# CPython's own limits on nesting; LibCST's native parser has none and overflows its stack
# (a segmentation fault that would take the whole run down) on inputs CPython rejects.
_NESTING_LIMITS = ("too many nested parentheses", "too many levels of indentation")


def _too_deeply_nested(text: str) -> Optional[str]:
    """Why CPython refuses the text for its nesting (None when it does not), found by CPython's
    parser, which is hardened against deep inputs and costs a small fraction of LibCST's parse."""
    try:
        ast.parse(text)
    except SyntaxError as error:
        if error.msg in _NESTING_LIMITS:
            return f"syntax error at line {error.lineno}, column {error.offset}: {error.msg}"
    except (RecursionError, MemoryError):
        return "file too deeply nested to parse"
    except ValueError:
        pass
    return None


def parse(text: str, path: str) -> tuple[Optional[cst.Module], Optional[FileError]]:
    nesting = _too_deeply_nested(text)
    if nesting is not None:
        return None, FileError(path, nesting)
    try:
        return cst.parse_module(text), None
    except cst.ParserSyntaxError as error:
        return None, FileError(path, _syntax_error_message(text, error))
    except (RecursionError, MemoryError):
        return None, FileError(path, "file too deeply nested to parse")


def _syntax_error_message(text: str, error: cst.ParserSyntaxError) -> str:
    """CPython's own diagnosis when it has one (the message users know), else LibCST's."""
    try:
        compile(text, "<source>", "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as python_error:
        line, column = python_error.lineno or error.raw_line, python_error.offset or error.raw_column + 1
        return f"syntax error at line {line}, column {column}: {python_error.msg}"
    except (ValueError, RecursionError, MemoryError):
        pass
    message = error.message.strip().splitlines()[0] if error.message else "invalid syntax"
    return f"syntax error at line {error.raw_line}, column {error.raw_column + 1}: {message}"


def check_source(text: str, path: str, settings: Settings) -> FileResult:
    result = FileResult(path)
    module, error = parse(text, path)
    if module is None:
        result.errors.append(error)
        return result
    rules = [rule for rule in all_rules() if settings.enabled(rule.code, path)]
    if not rules:
        return result
    try:
        facts = ScriptFacts(MetadataWrapper(module, unsafe_skip_copy=True))
    except RecursionError:
        result.errors.append(FileError(path, "file too deeply nested to analyse"))
        return result
    reports: list[tuple[type, Report]] = []
    for rule in rules:
        context = RuleContext(facts, settings.rule_options(rule))
        try:
            rule().check(context)
        except Exception as exc:  # one broken rule must not hide the others' findings
            result.errors.append(FileError(path, f"internal error in {rule.code} ({type(exc).__name__}: {exc}); please report it"))
            continue
        reports.extend((rule, report) for report in context.reports)
    if not reports:
        return result
    positions = facts.positions
    suppressions = Suppressions.from_source(text)
    seen = set()
    for rule, report in reports:
        span = positions[report.node]
        finding = Finding(
            code=rule.code,
            name=rule.name,
            severity=rule.severity,
            message=report.message,
            path=path,
            line=span.start.line,
            column=span.start.column + 1,
            end_line=span.end.line,
            end_column=span.end.column + 1,
            fix=_to_fix(report.fix, positions) if report.fix else None,
        )
        key = (finding.code, finding.line, finding.column, finding.end_line, finding.end_column)
        if key in seen or suppressions.suppresses(finding.code, finding.line, finding.end_line):
            continue
        seen.add(key)
        result.findings.append(finding)
    result.findings.sort(key=lambda f: f.sort_key)
    return result


def _to_fix(spec: FixSpec, positions) -> Fix:
    edits = []
    for node, content in spec.replacements:
        span = positions[node]
        edits.append(Edit(span.start.line, span.start.column + 1, span.end.line, span.end.column + 1, content))
    return Fix(spec.applicability, tuple(edits), spec.description)
