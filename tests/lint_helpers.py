"""Running rules in-process on source snippets."""

from __future__ import annotations

import re

from mlplint.lint.config import Settings
from mlplint.lint.engine import check_source
from mlplint.lint.finding import FileResult
from mlplint.lint.fixes import apply_fixes


def lint(source: str, select: list[str] | None = None, options: dict | None = None, path: str = "example.py") -> FileResult:
    settings = Settings(select=select if select is not None else [""], options=options or {})
    return check_source(source, path, settings)


def fixed_source(source: str, select: list[str]) -> str:
    result = lint(source, select)
    text, _ = apply_fixes(source, result.findings, unsafe=True)
    return text


_FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def doc_examples(example_section: str) -> tuple[str, str]:
    """The bad snippet and the "Use instead" snippet of a rule docstring's Example section."""
    bad_part, _, good_part = example_section.partition("Use instead:")
    bad, good = _FENCE.findall(bad_part), _FENCE.findall(good_part)
    assert len(bad) == 1 and len(good) == 1, "Example needs one bad block and one 'Use instead:' block"
    return bad[0], good[0]
