"""`[tool.mlplint]` configuration: discovery, validation and the per-file rule selection."""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mlplint.lint.registry import RuleInfo, rule_infos
from mlplint.lint.source import open_regular
from mlplint.probe.symptoms import SYMPTOMS


class ConfigError(Exception):
    """A configuration problem; str(error) names the file and the key."""


def known_codes() -> list[str]:
    return sorted([rule.code for rule in rule_infos()] + list(SYMPTOMS))


def parse_selectors(value: Any, key: str, source: str, warnings: Optional[list[str]] = None) -> list[str]:
    """Codes or prefixes from a list or a comma-separated string. An unknown one is an error, or,
    when a warnings list is given (configuration files, which may be written for a newer mlplint),
    a warning there and left out."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ConfigError(f"{source}: '{key}' must be a list of rule codes, got {value!r}")
    codes = known_codes()
    selectors = []
    for item in items:
        selector = item.upper()
        if not selector or (selector != "ALL" and not any(code.startswith(selector) for code in codes)):
            message = f"{source}: '{key}' has unknown rule code or prefix '{item}'"
            if warnings is None:
                raise ConfigError(message)
            warnings.append(message + "; ignored")
            continue
        selectors.append("" if selector == "ALL" else selector)
    return selectors


def parse_selection(value: Any, key: str, source: str, warnings: Optional[list[str]] = None) -> list[str]:
    """parse_selectors for `select`, which must keep a rule: an empty selection, or one whose
    every code is unknown (a typo such as ML2O1), would silently check nothing."""
    selectors = parse_selectors(value, key, source, warnings)
    if not selectors:
        raise ConfigError(f"{source}: '{key}' selects no known rule ({value!r}); name codes or prefixes such as ML2, ML401")
    return selectors


def _string_list(value: Any, key: str, source: str) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise ConfigError(f"{source}: '{key}' must be a list of glob patterns, got {value!r}")
    return value


def _matches(code: str, selectors: list[str]) -> int:
    """Length of the longest selector matching code (-1 if none): more specific wins, like ruff."""
    return max((len(s) for s in selectors if code.startswith(s)), default=-1)


def _is_threshold(value: Any) -> bool:
    """Every rule option is a size, a rate or a bound: a number >= 0 (inf allowed, as "no bound"),
    never NaN, which compares false with everything and would silently turn the check off."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _check_option(rule: RuleInfo, key: str, value: Any, source: str) -> Any:
    default = rule.options[key]
    where = f"{source}: 'tool.mlplint.{rule.name}.{key}'"
    numbers = (int, float)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, numbers):
        if not _is_threshold(value):
            raise ConfigError(f"{where} must be a number >= 0, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif isinstance(default, tuple):
        if not (isinstance(value, list) and len(value) == len(default) and all(_is_threshold(v) for v in value)):
            raise ConfigError(f"{where} must be a list of {len(default)} numbers >= 0, got {value!r}")
        if len(value) == 2 and value[0] > value[1]:
            raise ConfigError(f"{where} must be [low, high] with low <= high, got {value!r}")
        value = tuple(value)
    return value


@dataclass
class Settings:
    select: list[str] = field(default_factory=lambda: [""])
    ignore: list[str] = field(default_factory=list)
    per_file_ignores: list[tuple[str, list[str]]] = field(default_factory=list)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule code -> options
    root: Optional[Path] = None  # directory that per-file-ignores and exclude patterns are relative to
    exclude: Optional[list[str]] = None  # None: discovery's default exclusions
    extend_exclude: list[str] = field(default_factory=list)
    force_exclude: bool = False  # apply the exclusions to files named on the command line too
    respect_gitignore: bool = True
    warnings: list[str] = field(default_factory=list)  # unknown codes met while reading the file
    source: Optional[str] = None  # the configuration file these settings come from

    def enabled(self, code: str, path: str) -> bool:
        return self.selected(code, self.ignore_for(path))

    def enabled_rules(self, rules: list, path: str) -> list:
        """The rules (anything with a `code`) enabled for path, its per-file ignores matched once."""
        ignore = self.ignore_for(path)
        return [rule for rule in rules if self.selected(rule.code, ignore)]

    def ignore_for(self, path: str) -> list[str]:
        if not self.per_file_ignores:
            return self.ignore
        ignore = list(self.ignore)
        relative = self._relative(path)
        for pattern, codes in self.per_file_ignores:
            if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(os.path.basename(path), pattern):
                ignore.extend(codes)
        return ignore

    def selected(self, code: str, ignore: list[str]) -> bool:
        selected = _matches(code, self.select)
        return selected >= 0 and selected > _matches(code, ignore)

    def rule_options(self, rule: RuleInfo) -> dict[str, Any]:
        return {**rule.options, **self.options.get(rule.code, {})}

    def excluded(self, path: str, default: frozenset[str] = frozenset()) -> bool:
        """Whether an exclude / extend-exclude glob (or, without `exclude`, a default name) matches
        the path relative to the configuration's folder or its last component."""
        name = os.path.basename(os.path.normpath(path))
        patterns = (self.exclude if self.exclude is not None else []) + self.extend_exclude
        if self.exclude is None and name in default:
            return True
        relative = self._relative(path)
        return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p.rstrip("/") + "/*")
                   for p in patterns)

    def _relative(self, path: str) -> str:
        if self.root is None:
            return path.replace(os.sep, "/")
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.replace(os.sep, "/")

    def with_cli(self, select: Optional[list[str]], ignore: Optional[list[str]],
                 extend_select: Optional[list[str]] = None, extend_ignore: Optional[list[str]] = None) -> "Settings":
        """--select replaces the configured selection; --ignore and the --extend-* options add to it."""
        return dataclasses.replace(
            self,
            select=(select if select is not None else self.select) + (extend_select or []),
            ignore=self.ignore + (ignore or []) + (extend_ignore or []),
        )

    def with_exclusions(self, exclude: Optional[list[str]], extend_exclude: Optional[list[str]], cwd: Path) -> "Settings":
        """--exclude replaces the exclusions, --extend-exclude adds to them. Their patterns are
        relative to the current directory (as ruff reads them), so a pattern with a folder in it is
        rewritten relative to the configuration's folder; a bare name matches anywhere."""
        if exclude is None and not extend_exclude:
            return self
        root = self.root if self.root is not None else cwd

        def from_here(pattern: str) -> str:
            if "/" not in pattern.rstrip("/"):
                return pattern
            return Path(os.path.relpath(cwd / pattern, root)).as_posix() + ("/" if pattern.endswith("/") else "")

        return dataclasses.replace(
            self, root=root,
            exclude=[from_here(p) for p in exclude] if exclude is not None else self.exclude,
            extend_exclude=self.extend_exclude + [from_here(p) for p in extend_exclude or []],
        )


_TOP_KEYS = {"select", "ignore", "extend-select", "extend-ignore", "per-file-ignores", "exclude", "extend-exclude",
             "force-exclude", "respect-gitignore"}


def settings_from_table(table: dict, source: str, root: Optional[Path]) -> Settings:
    settings = Settings(root=root, source=source)
    warnings = settings.warnings
    rules_by_name = {rule.name: rule for rule in rule_infos()}
    extend_select: list[str] = []
    for key, value in table.items():
        if key == "select":
            settings.select = parse_selection(value, key, source, warnings)
        elif key == "extend-select":
            extend_select = parse_selectors(value, key, source, warnings)
        elif key in ("ignore", "extend-ignore"):
            settings.ignore = settings.ignore + parse_selectors(value, key, source, warnings)
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: 'per-file-ignores' must be a table of glob = [codes]")
            settings.per_file_ignores = [
                (pattern, parse_selectors(codes, f"per-file-ignores.{pattern}", source, warnings))
                for pattern, codes in value.items()
            ]
        elif key == "exclude":
            settings.exclude = _string_list(value, key, source)
        elif key == "extend-exclude":
            settings.extend_exclude = _string_list(value, key, source)
        elif key in ("force-exclude", "respect-gitignore"):
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
            setattr(settings, key.replace("-", "_"), value)
        elif key in rules_by_name and isinstance(value, dict):
            rule = rules_by_name[key]
            for option, option_value in value.items():
                if option not in rule.options:
                    known = ", ".join(sorted(rule.options)) or "none"
                    raise ConfigError(f"{source}: unknown option 'tool.mlplint.{key}.{option}' (known: {known})")
                settings.options.setdefault(rule.code, {})[option] = _check_option(rule, option, option_value, source)
        else:
            expected = ", ".join(sorted(_TOP_KEYS)) + ", or a rule name with options"
            raise ConfigError(f"{source}: unknown key 'tool.mlplint.{key}' (expected {expected})")
    settings.select = settings.select + extend_select
    return settings


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):  # imported here: a project without a config file never needs it
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open_regular(path) as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid UTF-8 text (byte {error.start}); TOML files must be UTF-8") from None
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from None


def _tool_table(data: dict, path: Path) -> dict:
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table, got {tool!r}")
    return tool


def _settings_from_document(data: dict, path: Path) -> Settings:
    if path.name == "pyproject.toml" or "tool" in data:
        table = _tool_table(data, path).get("mlplint", {})
    else:
        table = data  # a dedicated mlplint.toml holds the keys at the top level
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'tool.mlplint' must be a table")
    return settings_from_table(table, str(path), path.parent)


def load_config_file(path: Path) -> Settings:
    return _settings_from_document(_read_toml(path), path)


class ConfigResolver:
    """Finds the nearest pyproject.toml with a [tool.mlplint] table above each checked file."""

    def __init__(self, explicit: Optional[Path] = None):
        self._explicit = load_config_file(explicit) if explicit is not None else None
        self._by_directory: dict[Path, Settings] = {}

    def for_path(self, path: str) -> Settings:
        if self._explicit is not None:
            return self._explicit
        directory = Path(path).resolve().parent if path != "-" else Path.cwd().resolve()
        return self.for_directory(directory)

    def for_directory(self, directory: Path) -> Settings:
        """The settings that apply to the files of a folder (given as an absolute path)."""
        if self._explicit is not None:
            return self._explicit
        if directory in self._by_directory:
            return self._by_directory[directory]
        found = _mlplint_pyproject(directory)
        settings = _settings_from_document(*found) if found is not None else None
        if settings is None:
            settings = Settings() if directory.parent == directory else self.for_directory(directory.parent)
        self._by_directory[directory] = settings
        return settings


def _mlplint_pyproject(directory: Path) -> Optional[tuple[dict, Path]]:
    """The pyproject.toml of this folder (its document and path), when it has a [tool.mlplint] table."""
    candidate = directory / "pyproject.toml"
    if candidate.is_file():
        document = _read_toml(candidate)
        if "mlplint" in _tool_table(document, candidate):
            return document, candidate
    return None


def project_root(explicit: Optional[Path]) -> Path:
    """The folder of the configuration in effect for the current directory (the explicit file, or
    the nearest pyproject.toml with [tool.mlplint]), else the current directory, as ruff places
    .ruff_cache. Found without reading the settings, which need the rules' catalogue."""
    if explicit is not None:
        return explicit.parent
    cwd = Path.cwd().resolve()
    for directory in (cwd, *cwd.parents):
        if _mlplint_pyproject(directory) is not None:
            return directory
    return cwd
