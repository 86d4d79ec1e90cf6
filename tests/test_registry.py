"""The rule catalog: unique codes and names, codes from the contract, a fixture per code."""

from __future__ import annotations

import re

from conftest import ROOT
from mlplint.lint.registry import all_rules
from mlplint.probe.symptoms import SYMPTOMS

CONTRACT_CODES = {
    "ML101", "ML102", "ML103", "ML104", "ML105", "ML106", "ML107", "ML108",
    "ML201", "ML202", "ML203", "ML204", "ML205", "ML206", "ML207", "ML208", "ML209", "ML210", "ML211", "ML212", "ML213",
    "ML214", "ML215",
    "ML301", "ML302", "ML303", "ML304", "ML305", "ML306", "ML307", "ML308", "ML309", "ML310",
    "ML401", "ML402", "ML403", "ML404", "ML405", "ML406", "ML407", "ML501", "ML502", "ML503",
    *(f"ML9{number:02d}" for number in range(1, 45)),  # runtime symptoms ML901-ML944
}


def test_codes_and_names_are_distinct():
    rules = all_rules()
    assert len({r.code for r in rules}) == len(rules)
    names = [r.name for r in rules] + [s.name for s in SYMPTOMS.values()]
    assert len(set(names)) == len(names)


def test_codes_come_from_the_contract():
    for rule in all_rules():
        assert rule.code in CONTRACT_CODES, rule.code
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name


def test_symptom_codes_come_from_the_contract():
    assert set(SYMPTOMS) <= CONTRACT_CODES


def test_every_rule_has_a_fixture():
    for rule in all_rules():
        assert (ROOT / "fixtures" / "lint" / f"{rule.code}.py").is_file(), f"missing fixtures/lint/{rule.code}.py"


def test_declared_symptoms_exist():
    for rule in all_rules():
        for code in rule.symptoms:
            assert code in SYMPTOMS, f"{rule.code} declares unknown symptom {code}"


def test_rule_modules_are_named_after_their_problem():
    for rule in all_rules():
        module = rule.__module__.rsplit(".", 1)[-1]
        assert module == rule.name.replace("-", "_"), f"{rule.code} lives in {module}.py"


def test_readme_lists_every_rule_with_its_severity():
    readme = (ROOT / "README.md").read_text()
    for rule in all_rules():
        assert f"| {rule.code} | {rule.name} | {rule.severity.value} |" in readme, f"README table lacks {rule.code}"
    for symptom in SYMPTOMS.values():
        assert f"{symptom.code} {symptom.name}" in readme, f"README lacks {symptom.code}"
