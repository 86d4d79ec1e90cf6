"""The rule base class, the registry decorator and rule discovery."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

from mlplint.lint.finding import Edit, Severity

if TYPE_CHECKING:  # LibCST is imported with the rules: a run whose files are all cached never needs it
    import libcst as cst

    from mlplint.lint.facts import ScriptFacts


@dataclass(frozen=True)
class Invalid:
    """An example that must fire: optionally on a given line, with a message fragment, the
    severity of that finding when it is not the rule's own, and the source it turns into once the
    rule's fix is applied."""

    code: str
    line: Optional[int] = None
    message: Optional[str] = None
    fixed: Optional[str] = None
    severity: Optional[Severity] = None


@dataclass(frozen=True)
class Report:
    node: cst.CSTNode
    message: str
    fix: Optional["FixSpec"] = None
    severity: Optional[Severity] = None  # lower than the rule's own for a milder case (None: the rule's)


@dataclass(frozen=True)
class FixSpec:
    """A fix expressed on CST nodes (each replaced by a text); the engine turns it into
    line/column edits. `edits` adds ready-made ones, such as insertions (see lint/fixes.py)."""

    applicability: str  # "safe" | "unsafe"
    replacements: tuple[tuple[cst.CSTNode, str], ...]
    description: str = ""
    edits: tuple[Edit, ...] = ()


class RuleContext:
    def __init__(self, facts: "ScriptFacts", options: dict[str, Any]):
        self.facts = facts
        self.options = options
        self.reports: list[Report] = []

    def report(self, node: cst.CSTNode, message: str, fix: Optional[FixSpec] = None,
               severity: Optional[Severity] = None) -> None:
        self.reports.append(Report(node, message, fix, severity))


class Rule:
    """Base class: subclasses set the class attributes and implement `check`."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    # Runtime symptoms (ML9xx) whose presence in a probe run confirms this rule's finding. The first
    # is the direct observation of the rule's hypothesis: only a run that made it and found it
    # healthy makes the finding `not-confirmed`.
    symptoms: ClassVar[tuple[str, ...]] = ()
    # Configurable thresholds: option name -> default value (documented in the docstring).
    options: ClassVar[dict[str, Any]] = {}
    # Rules that judge a training or evaluation procedure stay quiet in test modules, which check
    # behaviour on toy inputs and are not training scripts.
    judges_procedure: ClassVar[bool] = False
    # Rules that judge a hyperparameter or an architecture, which a test picks for the test's
    # sake (a tiny lr, two Linear layers in a row), stay quiet in test modules too.
    judges_design: ClassVar[bool] = False
    VALID: ClassVar[list[str]] = []
    INVALID: ClassVar[list[Union[str, Invalid]]] = []

    def check(self, ctx: RuleContext) -> None:
        raise NotImplementedError

    @classmethod
    def symptoms_for(cls, message: str) -> tuple[str, ...]:
        """The symptoms that test one finding (by its message), direct observation first: a rule
        with several hypotheses (a Dropout rate, a weight decay) narrows `symptoms` to the one
        the finding states."""
        return cls.symptoms

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        return parse_doc_sections(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        what = cls.doc_sections().get("What it does", "")
        return " ".join(what.split("\n\n")[0].split())


_SECTION = re.compile(r"^## (?P<title>.+?)\s*$", re.MULTILINE)


def parse_doc_sections(doc: str) -> dict[str, str]:
    """Split a rule docstring into its '## Section' blocks."""
    import inspect  # only the docs need it

    text = inspect.cleandoc(doc)
    matches = list(_SECTION.finditer(text))
    sections = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        sections[match.group("title")] = text[match.end() : end].strip()
    return sections


_REGISTRY: dict[str, type[Rule]] = {}


def register(rule: type[Rule]) -> type[Rule]:
    if rule.code in _REGISTRY and _REGISTRY[rule.code] is not rule:
        raise ValueError(f"duplicate rule code {rule.code}")
    _REGISTRY[rule.code] = rule
    return rule


_discovered = False


def all_rules() -> list[type[Rule]]:
    """Every registered rule, sorted by code (imports every module under mlplint.rules on the
    first call; the walk of the package costs milliseconds, too much to repeat for every file)."""
    global _discovered
    if not _discovered:
        import mlplint.rules as package

        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
        _discovered = True
    return [_REGISTRY[code] for code in sorted(_REGISTRY)]


@dataclass(frozen=True)
class RuleInfo:
    """What the configuration and the cache key need of a rule, without importing it (and LibCST)."""

    code: str
    name: str
    options: dict[str, Any]


_catalogue: Optional[list[RuleInfo]] = None


def rule_infos() -> list[RuleInfo]:
    """Every rule's code, name and options: from the catalogue of this same build handed in by
    the result cache (`use_catalogue`) while the rules are not imported, else read off the rules."""
    if _catalogue is not None and not _discovered:
        return _catalogue
    return [RuleInfo(rule.code, rule.name, rule.options) for rule in all_rules()]


def use_catalogue(infos: list[RuleInfo]) -> None:
    global _catalogue
    _catalogue = infos


def rule_by_code(code: str) -> Optional[type[Rule]]:
    return {rule.code: rule for rule in all_rules()}.get(code.upper())
