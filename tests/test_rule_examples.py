"""Every rule's VALID/INVALID examples and docstring examples, turned into test cases."""

from __future__ import annotations

import pytest

from lint_helpers import doc_examples, fixed_source, lint
from mlplint.lint.registry import Invalid, all_rules

RULES = all_rules()


def _cases(kind: str) -> list:
    return [
        pytest.param(rule, example, id=f"{rule.code}-{kind}-{index}")
        for rule in RULES
        for index, example in enumerate(rule.VALID if kind == "valid" else rule.INVALID, start=1)
    ]


@pytest.mark.parametrize("rule, source", _cases("valid"))
def test_valid_example_stays_quiet(rule, source):
    result = lint(source, select=[rule.code])
    assert not result.errors
    assert result.findings == [], [f.message for f in result.findings]


@pytest.mark.parametrize("rule, example", _cases("invalid"))
def test_invalid_example_fires(rule, example):
    example = example if isinstance(example, Invalid) else Invalid(example)
    result = lint(example.code, select=[rule.code])
    assert not result.errors
    assert result.findings, f"{rule.code} did not fire"
    assert all(f.code == rule.code for f in result.findings)
    if example.line is not None:
        assert example.line in [f.line for f in result.findings]
    if example.message is not None:
        assert any(example.message in f.message for f in result.findings)
    reported = [f for f in result.findings if example.line is None or f.line == example.line]
    assert {f.severity for f in reported} == {example.severity or rule.severity}
    if example.fixed is not None:
        assert fixed_source(example.code, [rule.code]) == example.fixed


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_docstring_has_sections(rule):
    sections = rule.doc_sections()
    for title in ("What it does", "Why is this bad?", "Example"):
        assert sections.get(title), f"{rule.code} docstring lacks '## {title}'"
    has_fix = any(isinstance(e, Invalid) and e.fixed is not None for e in rule.INVALID)
    if has_fix:
        assert sections.get("Fix safety"), f"{rule.code} has a fix but no '## Fix safety'"
    assert rule.VALID and rule.INVALID, f"{rule.code} needs VALID and INVALID examples"


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_docstring_example_behaves(rule):
    bad, good = doc_examples(rule.doc_sections()["Example"])
    assert [f.code for f in lint(bad, select=[rule.code]).findings], f"{rule.code}: docstring example does not fire"
    assert lint(good, select=[rule.code]).findings == [], f"{rule.code}: 'Use instead' example fires"
