"""Finding the Python files to check under the paths given on the command line."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from mlplint.lint.finding import FileError

SKIPPED_DIRECTORIES = {
    ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".env", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "node_modules",
    "site-packages", ".eggs", ".ipynb_checkpoints",
}


@dataclass
class Discovery:
    files: list[str] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _skip_directory(parent: str, name: str) -> bool:
    if name in SKIPPED_DIRECTORIES or name.endswith(".egg-info"):
        return True
    # Any virtual environment, whatever its name.
    return os.path.exists(os.path.join(parent, name, "pyvenv.cfg"))


def discover(paths: list[str]) -> Discovery:
    found = Discovery()
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    for path in paths:
        try:
            os.stat(path)
        except FileNotFoundError:
            kind = "broken symbolic link" if os.path.islink(path) else "no such file or directory"
            found.errors.append(FileError(path, kind))
            continue
        except OSError as error:
            reason = "symbolic link loop" if error.errno == errno.ELOOP else (error.strerror or str(error))
            found.errors.append(FileError(path, reason))
            continue
        if not os.path.isdir(path):
            add(path)  # an explicitly named file is checked whatever its extension
            continue
        before = len(found.files)
        for root, directories, files in os.walk(path, onerror=None):
            directories[:] = sorted(d for d in directories if not _skip_directory(root, d))
            for name in sorted(files):
                if name.endswith((".py", ".pyi")):
                    add(os.path.join(root, name))
        if len(found.files) == before:
            found.warnings.append(f"{path}: no Python files found")
    return found
