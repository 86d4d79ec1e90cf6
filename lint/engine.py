"""Check one source text: parse once, resolve metadata, build the shared analysis, run every
enabled rule over it, then drop suppressed findings."""

from __future__ import annotations

import ast
import sys
import threading
from typing import Optional

import libcst as cst

from mlplint.lint.config import Settings
from mlplint.lint.facts import ScriptFacts
from mlplint.lint.finding import Edit, FileError, FileResult, Finding, Fix
from mlplint.lint.incremental import StatementCache
from mlplint.lint.registry import FixSpec, Report, RuleContext, all_rules
from mlplint.lint.suppression import Suppressions


# The analysis follows values through each other and LibCST walks trees recursively: a file
# CPython accepts (a flat chain of 4,000 `a + a + ...`, 2,000 `x = x.view(...)`) must not exhaust
# the stack, so each file is checked on a thread with a large stack and a matching recursion limit.
_STACK_BYTES = 512 * 1024 * 1024
_RECURSION_LIMIT = 200_000


def run_deep(function, *args):
    """Run function(*args) on a thread with the large stack and return its result. The recursion
    limit is interpreter-wide, so it is raised only while the caller waits for that thread: code
    on ordinary 8 MB stacks (json, the main thread) keeps the default guard."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed to the caller, as a future would
            outcome["error"] = error

    previous = threading.stack_size(_STACK_BYTES)
    try:
        worker = threading.Thread(target=target, name="mlplint-check", daemon=True)
        worker.start()
    finally:
        threading.stack_size(previous)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(_RECURSION_LIMIT, limit))
    try:
        worker.join()
    finally:
        sys.setrecursionlimit(limit)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def parse(text: str, path: str, statements: Optional[StatementCache] = None) -> tuple[Optional[cst.Module], Optional[ast.Module], Optional[FileError]]:
    """LibCST's and CPython's trees of a file (with statements, re-parsing only the top-level
    statements that changed since its last parse). CPython's parser runs first: it rejects what
    would crash LibCST's native parser (1,500 nested parentheses segfault it) with its own message."""
    try:
        tree = compile(text, "<source>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        return None, None, FileError(path, f"syntax error at line {error.lineno}, column {error.offset}: {error.msg}")
    except (RecursionError, MemoryError):
        return None, None, FileError(path, "file too deeply nested to parse")
    except ValueError as error:  # source CPython cannot take at all (NUL bytes)
        return None, None, FileError(path, f"cannot parse: {error}")
    try:
        return (statements.parse(text, tree) if statements is not None else cst.parse_module(text)), tree, None
    except cst.ParserSyntaxError as error:
        return None, None, FileError(path, _syntax_error_message(error))
    except (RecursionError, MemoryError):
        return None, None, FileError(path, "file too deeply nested to parse")
    except Exception as error:  # noqa: BLE001 - LibCST's checks after parsing (CSTValidationError)
        return None, None, FileError(path, _compiler_message(text, error))


def _syntax_error_message(error: cst.ParserSyntaxError) -> str:
    """LibCST rejects a file CPython accepted: syntax newer than LibCST supports."""
    message = error.message.strip().splitlines()[0] if error.message else "invalid syntax"
    return f"syntax error at line {error.raw_line}, column {error.raw_column + 1}: {message}"


def _compiler_message(text: str, error: Exception) -> str:
    """LibCST rejects code that CPython's parser accepts and its compiler rejects (`except:` before
    another handler): the compiler's message. Compiling to bytecode runs nothing."""
    import warnings

    try:
        with warnings.catch_warnings():  # the compiler's SyntaxWarnings are not ours to print
            warnings.simplefilter("ignore")
            compile(text, "<source>", "exec", dont_inherit=True)
    except SyntaxError as syntax_error:
        return f"syntax error at line {syntax_error.lineno}, column {syntax_error.offset}: {syntax_error.msg}"
    except (RecursionError, MemoryError, ValueError):
        pass
    return f"cannot parse: {error}"


def check_source(text: str, path: str, settings: Settings, statements: Optional[StatementCache] = None) -> FileResult:
    """The findings in one text; `statements` (the language server's, one per document) carries
    the unchanged top-level statements of its last check over to this one."""
    return run_deep(_check_source, text, path, settings, statements)


def _check_source(text: str, path: str, settings: Settings, statements: Optional[StatementCache] = None) -> FileResult:
    result = FileResult(path)
    module, tree, error = parse(text, path, statements)
    if module is None:
        result.errors.append(error)
        return result
    rules = settings.enabled_rules(all_rules(), path)
    if not rules:
        return result
    try:
        facts = ScriptFacts(module, path, tree, statements.generated if statements is not None else None)
    except RecursionError:
        result.errors.append(FileError(path, "file too deeply nested to analyse"))
        return result
    reports: list[tuple[type, Report]] = []
    if facts.uses_other_framework:
        return result
    if facts.is_test_module:
        rules = [rule for rule in rules if not (rule.judges_procedure or rule.judges_design)]
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
            severity=report.severity or rule.severity,
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
    edits.extend(spec.edits)
    return Fix(spec.applicability, tuple(sorted(edits, key=lambda e: (e.line, e.column))), spec.description)
