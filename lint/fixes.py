"""Applying findings' fixes to a source text."""

from __future__ import annotations

from mlplint.lint.finding import Finding


def _offset(line_starts: list[int], line: int, column: int) -> int:
    return line_starts[line - 1] + column - 1


def apply_fixes(text: str, findings: list[Finding], unsafe: bool) -> tuple[str, int]:
    """Apply every applicable fix whose edits do not overlap an earlier one; returns the new text
    and the number of fixes applied."""
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    chosen: list[tuple[int, int, str]] = []
    applied = 0
    for finding in findings:
        fix = finding.fix
        if fix is None or (fix.applicability == "unsafe" and not unsafe):
            continue
        spans = [(_offset(line_starts, e.line, e.column), _offset(line_starts, e.end_line, e.end_column), e.content)
                 for e in fix.edits]
        if any(start < other_end and other_start < end for start, end, _ in spans for other_start, other_end, _ in chosen):
            continue
        chosen.extend(spans)
        applied += 1
    for start, end, content in sorted(chosen, reverse=True):
        text = text[:start] + content + text[end:]
    return text, applied

