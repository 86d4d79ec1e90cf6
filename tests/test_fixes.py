"""Fix pairs: fixtures/fix/<CODE>.in.py becomes <CODE>.out.py through the CLI's `--fix` (with
`--unsafe-fixes` for unsafe fixes); the fixed file re-parses, re-checks without that code's
findings, gains no finding of another code, and fixing it again changes nothing."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from conftest import ROOT, run_cli
from lint_helpers import fixed_source, lint
from mlplint.lint.finding import Edit, Finding, Fix, Severity
from mlplint.lint.fixes import apply_fixes
from mlplint.lint.registry import Invalid, all_rules, rule_by_code

FIXTURES = ROOT / "fixtures" / "fix"
PAIRS = sorted(FIXTURES.glob("*.in.py"))


def _code(path) -> str:
    return path.name.split(".")[0]


@pytest.mark.parametrize("source", PAIRS, ids=[_code(p) for p in PAIRS])
def test_fix_produces_expected_source(source, tmp_path):
    code = _code(source)
    expected = (FIXTURES / f"{code}.out.py").read_text()
    findings = lint(source.read_text(), [code]).findings
    assert findings and all(f.fix is not None for f in findings), "every finding of the fixture has a fix"
    applicabilities = {f.fix.applicability for f in findings}
    assert len(applicabilities) == 1, f"{code} mixes safe and unsafe fixes in one fixture"
    target = tmp_path / "train.py"
    shutil.copy(source, target)
    safe_only = run_cli("check", "--select", code, "--fix", "train.py", cwd=tmp_path)
    if applicabilities == {"unsafe"}:
        assert safe_only.returncode == 1 and target.read_text() == source.read_text(), "unsafe fixes need --unsafe-fixes"
        result = run_cli("check", "--select", code, "--fix", "--unsafe-fixes", "train.py", cwd=tmp_path)
    else:
        result = safe_only
    assert target.read_text() == expected
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    compile(expected, "train.py", "exec")


@pytest.mark.parametrize("source", PAIRS, ids=[_code(p) for p in PAIRS])
def test_fixed_source_is_stable_and_adds_no_findings(source):
    code = _code(source)
    expected = (FIXTURES / f"{code}.out.py").read_text()
    assert fixed_source(expected, [code]) == expected, "fixing the fixed file again changes it"
    before = Counter(f.code for f in lint(source.read_text()).findings if f.code != code)
    after = Counter(f.code for f in lint(expected).findings)
    assert code not in after
    assert not after - before, f"the fix introduced {dict(after - before)}"


@pytest.mark.parametrize("source", PAIRS, ids=[_code(p) for p in PAIRS])
def test_fixed_rule_documents_fix_safety(source):
    assert rule_by_code(_code(source)).doc_sections().get("Fix safety")


@pytest.mark.parametrize("rule", all_rules(), ids=[r.code for r in all_rules()])
def test_every_fixable_rule_has_a_fix_pair(rule):
    examples = [e if isinstance(e, Invalid) else Invalid(e) for e in rule.INVALID]
    fixable = any(f.fix is not None for e in examples for f in lint(e.code, [rule.code]).findings)
    assert fixable == (FIXTURES / f"{rule.code}.in.py").exists(), \
        f"{rule.code}: a rule with a fix needs fixtures/fix/{rule.code}.in.py / .out.py (and only such a rule)"


def _finding(edits: list[Edit], applicability: str = "safe") -> Finding:
    return Finding("ML999", "test", Severity.WARNING, "m", "t.py", 1, 1, 1, 1, Fix(applicability, tuple(edits)))


def test_identical_edits_of_two_fixes_are_applied_once():
    import_torch = Edit(1, 1, 1, 1, "import torch\n")
    text, applied = apply_fixes("a\nb\n", [_finding([import_torch, Edit(1, 1, 1, 2, "A")]),
                                           _finding([import_torch, Edit(2, 1, 2, 2, "B")])], unsafe=False)
    assert (text, applied) == ("import torch\nA\nB\n", 2)


def test_conflicting_fixes_wait_for_the_next_pass():
    two_insertions_at_one_point = [_finding([Edit(1, 1, 1, 1, "x")]), _finding([Edit(1, 1, 1, 1, "y")])]
    assert apply_fixes("a\n", two_insertions_at_one_point, unsafe=False) == ("xa\n", 1)
    insertion_inside_replacement = [_finding([Edit(1, 1, 1, 4, "XYZ")]), _finding([Edit(1, 2, 1, 2, "-")])]
    assert apply_fixes("abc\n", insertion_inside_replacement, unsafe=False) == ("XYZ\n", 1)
    unsafe_skipped = [_finding([Edit(1, 1, 1, 2, "Q")], "unsafe")]
    assert apply_fixes("abc\n", unsafe_skipped, unsafe=False) == ("abc\n", 0)
