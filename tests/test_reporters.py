"""The machine-readable formats: GitHub workflow commands, SARIF rules and their documentation pages."""

from __future__ import annotations

import io
import json
import urllib.parse

import pytest

from conftest import ROOT
from mlplint.lint.finding import FileError, Finding, Severity
from mlplint.lint.registry import all_rules
from mlplint.lint.reporters import ReportContext, report_github, report_sarif
from mlplint.lint.rule_docs import DOCS_FOLDER, REPOSITORY_URL, all_docs
from mlplint.probe.symptoms import SYMPTOMS


def finding(code="ML201", path="train.py", message="lr=10 is too high", **extra) -> Finding:
    return Finding(code, "extreme-learning-rate", Severity.WARNING, message, path, 2, 47, 2, 51, **extra)


def render(reporter, findings, errors=()) -> str:
    out = io.StringIO()
    reporter(list(findings), list(errors), out, ReportContext())
    return out.getvalue()


def test_github_escapes_properties_and_message():
    output = render(report_github, [finding(path="runs/a,b:c%d.py", message="50% off\r\nnext: line, end")],
                    [FileError("bad,file.py", "line one\nline two")])
    first, second = output.splitlines()
    assert first == ("::warning title=mlplint (ML201),file=runs/a%2Cb%3Ac%25d.py,line=2,col=47,endLine=2,endColumn=51"
                     "::ML201 extreme-learning-rate: 50%25 off%0D%0Anext: line, end")
    assert second == "::error title=mlplint,file=bad%2Cfile.py::line one%0Aline two"


def test_sarif_rules_carry_descriptions_help_and_a_docs_page():
    document = json.loads(render(report_sarif, [finding()]))
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    assert {rule["id"] for rule in rules} == {r.code for r in all_rules()} | set(SYMPTOMS)
    for rule in rules:
        assert rule["shortDescription"]["text"] and "\n" not in rule["shortDescription"]["text"]
        assert len(rule["fullDescription"]["text"]) >= len(rule["shortDescription"]["text"])
        assert rule["help"]["markdown"].startswith(f"# {rule['id']} {rule['name']}")
        assert "```" not in rule["help"]["text"]
        uri = urllib.parse.urlparse(rule["helpUri"])
        assert rule["helpUri"].startswith(REPOSITORY_URL + "/blob/main/")
        page = ROOT / uri.path.split("/blob/main/", 1)[1]
        assert page.is_file(), f"{rule['id']}: helpUri names {page}, which is not in the repository"
    ml401 = next(rule for rule in rules if rule["id"] == "ML401")
    assert "## Why is this bad?" in ml401["help"]["markdown"] and "Use instead:" in ml401["help"]["text"]


def test_sarif_results_point_at_rules_in_the_list_including_probe_symptoms():
    symptom = Finding("ML910", "unscaled-input-features", Severity.WARNING, "feature scales differ 3800x",
                      "train.py", 1, 1, 1, 1)
    document = json.loads(render(report_sarif, [finding(), symptom]))
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    assert [r["ruleId"] for r in run["results"]] == ["ML201", "ML910"]


def test_docs_pages_are_up_to_date(update_snapshots):
    """docs/rules/ is generated from the docstrings (`python -m mlplint.lint.rule_docs`)."""
    folder = ROOT / DOCS_FOLDER
    docs = all_docs()
    if update_snapshots:
        from mlplint.lint.rule_docs import write_pages

        write_pages(folder)
    stale = [doc.code for doc in docs if not (folder / f"{doc.code}.md").is_file()
             or (folder / f"{doc.code}.md").read_text(encoding="utf-8") != doc.markdown]
    from mlplint.lint.rule_docs import index_markdown

    if (folder / "README.md").read_text(encoding="utf-8") != index_markdown(docs):
        stale.append("README.md")
    assert not stale, f"stale pages {stale}: run `python -m mlplint.lint.rule_docs docs/rules`"
    assert sorted(p.stem for p in folder.glob("ML*.md")) == sorted(doc.code for doc in docs)


@pytest.mark.parametrize("code", ["ML401", "ML902"])
def test_docs_page_content(code):
    text = (ROOT / DOCS_FOLDER / f"{code}.md").read_text()
    assert text.startswith(f"# {code} ")
    assert ("## What it does" in text) if code < "ML9" else ("## What it detects" in text)
