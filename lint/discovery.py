"""Finding the files to check (Python files and Jupyter notebooks) under the paths given on the
command line: folders are walked honouring `.gitignore` files and the configuration's `exclude` /
`extend-exclude` globs, as ruff does; only regular files are read."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from mlplint.lint.config import Settings
from mlplint.lint.finding import FileError

if TYPE_CHECKING:
    import pathspec

# Skipped in folder walks unless the configuration sets its own `exclude` (ruff's defaults).
DEFAULT_EXCLUDES = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".env", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".mlplint_cache", "build", "dist", "node_modules",
    "site-packages", ".eggs", ".ipynb_checkpoints", "__pypackages__", "_build", "buck-out",
})
CHECKED_SUFFIXES = (".py", ".pyi", ".ipynb")


@dataclass
class Discovery:
    files: list[str] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _GitIgnores:
    """The .gitignore files (and .git/info/exclude) that apply in each folder of a walk; deeper
    files override shallower ones and a negated pattern (`!keep.py`) re-includes, as in git.
    Inside a git repository the files from its root down apply; outside one, those from the
    walked folder down."""

    def __init__(self, walked: Path):
        self._top = next((d for d in (walked, *walked.parents) if (d / ".git").exists()), walked)
        self._by_directory: dict[Path, tuple[tuple[Path, "pathspec.PathSpec"], ...]] = {}

    @staticmethod
    def _load(path: Path) -> Optional["pathspec.PathSpec"]:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        import pathspec  # imported only where there is a .gitignore (70 ms on a loaded machine)

        return pathspec.GitIgnoreSpec.from_lines(lines)

    def specs(self, directory: Path) -> tuple[tuple[Path, "pathspec.PathSpec"], ...]:
        """The specs for a folder: its parents' (up to the repository root), then its own."""
        if directory in self._by_directory:
            return self._by_directory[directory]
        inherited: tuple = ()
        if directory == self._top or directory.parent == directory:
            exclude = self._load(directory / ".git" / "info" / "exclude")
            inherited = ((directory, exclude),) if exclude is not None else ()
        else:
            inherited = self.specs(directory.parent)
        own = self._load(directory / ".gitignore")
        specs = inherited + ((directory, own),) if own is not None else inherited
        self._by_directory[directory] = specs
        return specs

    def ignored(self, path: Path, is_directory: bool) -> bool:
        verdict = False
        for base, spec in self.specs(path.parent):
            relative = path.relative_to(base).as_posix() + ("/" if is_directory else "")
            include = spec.check_file(relative).include
            if include is not None:
                verdict = include
        return verdict


def _is_virtual_environment(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


def _excluded_with_folders(path: str, settings: Settings) -> bool:
    """Whether a named file, or a folder it sits in below the configuration's folder (or the
    working directory), is excluded: `build/x.py` is, when `build` is."""
    resolved = Path(path).resolve()
    base = (settings.root or Path.cwd()).resolve()
    try:
        parts = resolved.relative_to(base).parts
    except ValueError:
        parts = (resolved.name,)
        base = resolved.parent
    return any(settings.excluded(str(base.joinpath(*parts[: end])), DEFAULT_EXCLUDES) for end in range(1, len(parts) + 1))


def discover(paths: list[str], settings_for: Callable[[Path], Settings] = lambda directory: Settings(),
             force_exclude: bool = False) -> Discovery:
    """The files to check under `paths`; settings_for gives the configuration of a folder
    (absolute path), whose exclusions apply to what the walk finds there, and to files named in
    `paths` with force_exclude (or the configuration's `force-exclude`), as pre-commit needs."""
    found = Discovery()
    seen: set[str] = set()

    def add(path: str, mode: int) -> None:
        if not stat.S_ISREG(mode):
            found.warnings.append(f"{path}: not a regular file, skipped")
            return
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            kind = "broken symbolic link" if os.path.islink(path) else "no such file or directory"
            found.errors.append(FileError(path, kind))
            continue
        except OSError as error:
            reason = "symbolic link loop" if error.errno == errno.ELOOP else (error.strerror or str(error))
            found.errors.append(FileError(path, reason))
            continue
        if not stat.S_ISDIR(mode):
            settings = settings_for(Path(path).resolve().parent)
            if not ((force_exclude or settings.force_exclude) and _excluded_with_folders(path, settings)):
                add(path, mode)  # an explicitly named file is checked whatever its extension
            continue
        before = len(found.files)
        gitignores = _GitIgnores(Path(path).resolve())
        for root, directories, files in os.walk(path):
            absolute_root = Path(root).resolve()
            settings = settings_for(absolute_root)

            def skipped(name: str, is_directory: bool) -> bool:
                full = os.path.join(root, name)
                if settings.excluded(full, DEFAULT_EXCLUDES):
                    return True
                if is_directory and _is_virtual_environment(full):
                    return True
                return settings.respect_gitignore and gitignores.ignored(absolute_root / name, is_directory)

            directories[:] = sorted(d for d in directories if not skipped(d, True))
            for name in sorted(files):
                if name.endswith(CHECKED_SUFFIXES) and not skipped(name, False):
                    full = os.path.join(root, name)
                    try:
                        add(full, os.stat(full).st_mode)
                    except OSError:
                        found.warnings.append(f"{full}: cannot be read (broken symbolic link?), skipped")
        if len(found.files) == before:
            found.warnings.append(f"{path}: no Python files or notebooks found")
    return found
