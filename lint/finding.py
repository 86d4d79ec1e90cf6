"""The one Finding type shared by the engine, the probe and every reporter."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions; end is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str
    cell: Optional[int] = None  # notebooks: the cell the positions are relative to

    def to_json(self) -> dict:
        cell = {"cell": self.cell} if self.cell is not None else {}
        return {
            **cell,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "content": self.content,
        }


@dataclass(frozen=True)
class Fix:
    applicability: str  # "safe" | "unsafe"
    edits: tuple[Edit, ...]
    description: str = ""

    def to_json(self) -> dict:
        return {"applicability": self.applicability, "edits": [e.to_json() for e in self.edits]}


@dataclass(frozen=True)
class Runtime:
    """What a probe run says about a static finding."""

    status: str  # "confirmed" | "not-confirmed" | "inconclusive"
    symptoms: tuple[str, ...]
    evidence: str

    def to_json(self) -> dict:
        return {"status": self.status, "symptoms": list(self.symptoms), "evidence": self.evidence}


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    fix: Optional[Fix] = None
    runtime: Optional[Runtime] = field(default=None, compare=False)
    cell: Optional[int] = None  # notebooks: 1-based cell position; line and column are the cell's

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.line, self.column, self.code)

    def to_json(self) -> dict:
        cell = {"cell": self.cell} if self.cell is not None else {}
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "path": self.path,
            **cell,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
            "fix": self.fix.to_json() if self.fix else None,
            "runtime": self.runtime.to_json() if self.runtime else None,
        }


@dataclass(frozen=True)
class FileError:
    """A file that could not be checked (unreadable, not UTF-8, syntax error...)."""

    path: str
    message: str

    def to_json(self) -> dict:
        return {"path": self.path, "message": self.message}


@dataclass
class FileResult:
    """What checking one file found: its findings and the errors that stopped parts of the check."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
