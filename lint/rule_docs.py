"""Documentation of every code (static rules and probe symptoms) as Markdown, one page each.

The pages under docs/rules/ are generated from the rule docstrings and the detector docstrings
(`python -m mlplint.lint.rule_docs docs/rules`; a test fails when they are stale). SARIF output
links each rule to its page and carries the same text as the rule's help.
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from mlplint.lint.finding import Severity
from mlplint.lint.registry import all_rules

REPOSITORY_URL = "https://github.com/mlplint/mlplint"
DOCS_FOLDER = "docs/rules"


def help_uri(code: str) -> str:
    """The address of a code's documentation page (SARIF's helpUri, the editor's codeDescription)."""
    return f"{REPOSITORY_URL}/blob/main/{DOCS_FOLDER}/{code}.md"


@dataclass(frozen=True)
class CodeDoc:
    code: str
    name: str
    severity: Severity
    summary: str  # one line
    body: str  # Markdown, without the title

    @property
    def help_uri(self) -> str:
        return help_uri(self.code)

    @property
    def markdown(self) -> str:
        return f"# {self.code} {self.name} ({self.severity.value})\n\n{self.body}\n"

    @property
    def text(self) -> str:
        """The Markdown with its markup dropped: headings, code fences and backticks."""
        text = re.sub(r"^```\w*\n", "", self.body, flags=re.MULTILINE)
        text = re.sub(r"^## ", "", text, flags=re.MULTILINE)
        return text.replace("`", "")


_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!etc)(?:[.;](?=\s+[A-Z(`]|\s*$)|:(?=\s))")


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph, without the closing full stop (a one-line summary)."""
    match = _SENTENCE_END.search(text)
    return (text[: match.start()] if match else text).strip()


def all_docs() -> list[CodeDoc]:
    from mlplint.probe.detectors import detector_doc
    from mlplint.probe.symptoms import SYMPTOMS

    docs = []
    for rule in all_rules():
        body = inspect.cleandoc(rule.__doc__ or "")
        if rule.symptoms:
            confirming = ", ".join(f"[{s}]({s}.md) {SYMPTOMS[s].name}" for s in rule.symptoms)
            body += f"\n\n## Confirmed at runtime by\n{confirming}"
        docs.append(CodeDoc(rule.code, rule.name, rule.severity, first_sentence(rule.summary()), body))
    for symptom in SYMPTOMS.values():
        body = f"Runtime symptom, reported by `mlplint probe`: {symptom.summary}."
        detail = detector_doc(symptom.code)
        if detail:
            body += "\n\n" + detail
        docs.append(CodeDoc(symptom.code, symptom.name, symptom.severity, symptom.summary, body))
    return docs


def index_markdown(docs: list[CodeDoc]) -> str:
    """docs/rules/README.md: every code with its name, severity and one-line summary."""
    rows = [f"| [{d.code}]({d.code}.md) | {d.name} | {d.severity.value} | {d.summary} |" for d in docs]
    return (
        "# mlplint rules and symptoms\n\n"
        "Generated from the docstrings by `python -m mlplint.lint.rule_docs docs/rules`; "
        "`mlplint rule CODE` prints the same text.\n\n"
        "| code | name | severity | what it finds |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def write_pages(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    docs = all_docs()
    written = []
    for doc in docs:
        page = folder / f"{doc.code}.md"
        page.write_text(doc.markdown, encoding="utf-8")
        written.append(page)
    index = folder / "README.md"
    index.write_text(index_markdown(docs), encoding="utf-8")
    return written + [index]


if __name__ == "__main__":
    pages = write_pages(Path(sys.argv[1] if len(sys.argv) > 1 else DOCS_FOLDER))
    print(f"wrote {len(pages)} pages")
