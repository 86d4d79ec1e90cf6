"""The per-file result cache, as ruff keeps one: a file's findings are reused while its content,
the mlplint build and the settings in effect for it are unchanged.

Layout: `<cache dir>/<mlplint version>/<build fingerprint>.json`, one JSON object mapping each
checked file's absolute path to [content digest, settings digest, findings, errors]. JSON, not
pickle: the cache lives in the user's tree, and loading it must never run code. A cache that
cannot be read or written is ignored with one warning; a damaged entry is never used.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional

from mlplint import __version__
from mlplint.lint.finding import Edit, FileError, Finding, Fix, Severity
from mlplint.lint.registry import RuleInfo, rule_infos
from mlplint.lint.source import open_regular

DEFAULT_DIRECTORY = ".mlplint_cache"
_GITIGNORE = "# Created by mlplint: the whole cache folder stays out of version control.\n*\n"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by mlplint; see https://bford.info/cachedir/\n"
)


def _digest(data: bytes, size: int) -> str:
    import hashlib  # its OpenSSL binding is a few ms of start-up that --no-cache never needs

    return hashlib.blake2b(data, digest_size=size).hexdigest()


def content_digest(data: bytes) -> str:
    return _digest(data, 16)


def build_fingerprint(package_directories: list[str]) -> str:
    """What makes results of this mlplint build reusable: its version, the interpreter, LibCST's
    version and the size and modification time of every source file of mlplint (so a changed rule
    in a development checkout, whose version number has not moved, never serves old results)."""
    parts = [__version__, sys.version, _libcst_version()]
    packages = sorted({os.path.abspath(d) for d in package_directories})
    for package in packages:
        if any(package.startswith(other + os.sep) for other in packages):
            continue  # walked with the package that holds it
        for root, subdirectories, files in os.walk(package):
            subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    stat = os.stat(os.path.join(root, name))
                    parts.append(f"{root}/{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return _digest("\n".join(parts).encode(), 12)


def _libcst_version() -> str:
    """LibCST's version file, read without importing LibCST (a fully cached run never needs it)."""
    import importlib.util

    spec = importlib.util.find_spec("libcst")
    folder = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else None
    try:
        return Path(folder, "_version.py").read_text(encoding="utf-8") if folder else ""
    except OSError:
        return ""


def _finding_row(finding: Finding) -> list:
    fix = finding.fix
    fix_row = None if fix is None else [
        fix.applicability, fix.description,
        [[e.line, e.column, e.end_line, e.end_column, e.content, e.cell] for e in fix.edits],
    ]
    return [finding.code, finding.name, finding.severity.value, finding.message,
            finding.line, finding.column, finding.end_line, finding.end_column, fix_row, finding.cell]


def _typed(values: list, types: tuple[type, ...]) -> list:
    """The values, if each has its type (a cache edited by hand or by accident must not feed a
    string where the reporters sort numbers)."""
    if len(values) != len(types) or not all(type(v) is t for v, t in zip(values, types)):
        raise ValueError(f"malformed entry {values!r}")
    return values


def _cell(value) -> Optional[int]:
    if value is not None and type(value) is not int:
        raise ValueError(f"malformed cell {value!r}")
    return value


def _finding_from_row(row: list, path: str) -> Finding:
    *fields, fix_row, cell = row
    code, name, severity, message, line, column, end_line, end_column = _typed(fields, (str,) * 4 + (int,) * 4)
    fix = None
    if fix_row is not None:
        applicability, description, edits = _typed(fix_row, (str, str, list))
        fix = Fix(applicability, tuple(Edit(*_typed(edit[:5], (int, int, int, int, str)), _cell(edit[5])) for edit in edits), description)
    return Finding(code, name, Severity(severity), message, path, line, column, end_line, end_column, fix, cell=_cell(cell))


def _rule_rows() -> list[list]:
    return [[rule.code, rule.name, rule.options] for rule in rule_infos()]


def _rules_from_rows(rows) -> Optional[list[RuleInfo]]:
    """The catalogue stored by `_rule_rows` (JSON keeps no tuples: a list option is one), or None
    when it is missing or malformed (then the rules are imported)."""
    if not isinstance(rows, list):
        return None
    rules = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[1], str)
                and isinstance(row[2], dict)):
            return None
        rules.append(RuleInfo(row[0], row[1], {key: tuple(value) if isinstance(value, list) else value
                                               for key, value in row[2].items()}))
    return rules


class ResultCache:
    """Results of earlier runs, read on the first lookup and written back by `save()`."""

    def __init__(self, directory: Path, fingerprint: str, warn: Callable[[str], None]):
        self.directory = directory
        self.file = directory / __version__ / f"{fingerprint}.json"
        self._warn = warn
        self._warned = False
        self._entries: Optional[dict[str, list]] = None
        self._rules: Optional[list[RuleInfo]] = None
        self._dirty = False

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self._warn(message)

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            self._entries = {}
            try:
                with open_regular(self.file) as handle:  # a FIFO or device there is damage, not a wait
                    document = json.load(handle)
                if not isinstance(document, dict) or not isinstance(document.get("entries"), dict):
                    raise ValueError("not an mlplint cache")
                self._entries = document["entries"]
                self._rules = _rules_from_rows(document.get("rules"))
            except (FileNotFoundError, NotADirectoryError):
                pass  # nothing cached yet (or nowhere to cache: save() says so)
            except (OSError, ValueError) as error:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                self._warn_once(f"ignoring the unreadable cache {self.file} ({reason}); every file is checked afresh")
                self._dirty = True  # replace it with a sound one
        return self._entries

    def rule_catalogue(self) -> Optional[list[RuleInfo]]:
        """The codes, names and options of the rules of this build, as the run that wrote the
        cache found them: with them, files that are all cached are served without importing a rule."""
        self._load()
        return self._rules

    def lookup(self, path: str, digest: str, settings_key: str) -> Optional[tuple[list[Finding], list[FileError], list[str]]]:
        """The findings, errors and warnings stored for this path, content and settings, told
        under `path` as spelled in this run; None on a miss."""
        entry = self._load().get(os.path.abspath(path))
        if entry is None:
            return None
        try:
            stored_digest, stored_settings, finding_rows, error_messages, warning_tails = entry
            if stored_digest != digest or stored_settings != settings_key:
                return None
            findings = [_finding_from_row(row, path) for row in finding_rows]
            errors = [FileError(path, _typed([message], (str,))[0]) for message in error_messages]
            warnings = [path + _typed([tail], (str,))[0] for tail in warning_tails]
        except (TypeError, ValueError, KeyError, IndexError) as error:
            self._warn_once(f"ignoring the damaged cache {self.file} ({type(error).__name__}: {error}); every file is checked afresh")
            self._entries.clear()
            self._dirty = True
            return None
        return findings, errors, warnings

    def store(self, path: str, digest: str, settings_key: str, findings: list[Finding], errors: list[FileError],
              warnings: list[str]) -> None:
        """Remember a file's outcome; its warnings each start with `path` (kept without it). A
        warning that does not is not cached, and neither is the file."""
        if not all(w.startswith(path) for w in warnings):
            return
        self._load()[os.path.abspath(path)] = [
            digest, settings_key, [_finding_row(f) for f in findings], [e.message for e in errors],
            [w[len(path):] for w in warnings],
        ]
        self._dirty = True

    def save(self) -> None:
        """Write the entries back (dropping files that no longer exist), atomically, so a run that
        is interrupted or races another leaves a complete cache behind."""
        if not self._dirty or self._entries is None:
            return
        entries = {path: entry for path, entry in self._entries.items() if os.path.exists(path)}
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            for name, text in ((".gitignore", _GITIGNORE), ("CACHEDIR.TAG", _CACHEDIR_TAG)):
                marker = self.directory / name
                if not marker.exists():
                    marker.write_text(text, encoding="utf-8")
            import tempfile

            descriptor, temporary = tempfile.mkstemp(dir=self.file.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    json.dump({"mlplint": __version__, "rules": _rule_rows(), "entries": entries}, handle, separators=(",", ":"))
                os.replace(temporary, self.file)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:
            reason = error.strerror or str(error)
            self._warn_once(f"cannot write the cache in {self.directory} ({reason}); results are not cached")
            return
        self._dirty = False
