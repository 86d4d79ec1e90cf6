"""Precision and recall on realistic training scripts.

fixtures/clean/ holds correct scripts in many styles: not one warning or error may fire there.
fixtures/buggy/ holds scripts with classic mistakes; each starts with `# expect: CODE, ...`
(the codes a perfect linter reports), optionally followed by `# lines: CODE=LINE, ...`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT
from lint_helpers import lint
from mlplint.lint.finding import Severity

CLEAN = sorted((ROOT / "fixtures" / "clean").glob("*.py"))
BUGGY = sorted((ROOT / "fixtures" / "buggy").glob("*.py"))


def test_corpus_is_large_enough():
    assert len(CLEAN) >= 15 and len(BUGGY) >= 15


@pytest.mark.parametrize("script", CLEAN, ids=[p.stem for p in CLEAN])
def test_correct_script_has_no_warning_or_error(script: Path):
    result = lint(script.read_text(), path=script.name)
    assert not result.errors
    loud = [f"{f.line}: {f.code} {f.message}" for f in result.findings if f.severity.rank >= Severity.WARNING.rank]
    assert loud == []


def _expectations(text: str) -> tuple[set[str], dict[str, int]]:
    lines = text.splitlines()
    codes = set(re.findall(r"ML\d{3}", lines[0])) if lines[0].startswith("# expect:") else set()
    where = {}
    if len(lines) > 1 and lines[1].startswith("# lines:"):
        where = {code: int(line) for code, line in re.findall(r"(ML\d{3})\s*=\s*(\d+)", lines[1])}
    return codes, where


@pytest.mark.parametrize("script", BUGGY, ids=[p.stem for p in BUGGY])
def test_buggy_script_reports_exactly_its_bugs(script: Path):
    text = script.read_text()
    expected, where = _expectations(text)
    assert expected, f"{script.name} lacks its '# expect:' line"
    result = lint(text, path=script.name)
    assert not result.errors
    found = {f.code for f in result.findings}
    loud = {f.code for f in result.findings if f.severity.rank >= Severity.WARNING.rank}
    assert expected <= found, f"missed {sorted(expected - found)}"
    assert loud <= expected, f"unexpected {sorted(loud - expected)}: " + "; ".join(
        f"{f.line}: {f.code} {f.message}" for f in result.findings if f.code not in expected)
    for code, line in where.items():
        assert line in {f.line for f in result.findings if f.code == code}, f"{code} not reported on line {line}"
