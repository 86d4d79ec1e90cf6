"""Jupyter notebooks as Python modules, and the way back.

The code cells, in order, form one module (names defined in earlier cells resolve in later ones).
IPython magics and shell lines (`%time`, `!pip install`, `files = !ls`, `obj?`) become `pass`
lines at their indentation, so line numbers stay put and the module parses; a cell that starts
with a non-Python cell magic (`%%bash`, `%%writefile`) is left out. Findings are mapped to the
cell's 1-based position among all cells (markdown included, as ruff and Jupyter number them) with
cell-relative lines; fixes are written into the cells and the notebook is serialised with the
layout it had (indent, key order, escaping, trailing newline), outputs and metadata untouched.

The notebook format is plain JSON (nbformat 4), so this reads it with `json` alone.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from mlplint.lint.finding import Edit, FileError, Finding
from mlplint.lint.source import SourceError, split_lines

# Cell magics whose body is Python (the list ruff uses); any other cell magic makes the cell foreign.
PYTHON_CELL_MAGICS = {"capture", "debug", "prun", "pypy", "python", "python3", "time", "timeit"}

_LINE_MAGIC = re.compile(
    r"""^\s*(?:
        [%!?]                              # %time f(), !pip install x, ?obj
      | [\w.,\s\[\]()]+?=\s*[%!]           # files = !ls, t = %timeit -o f()
      | [\w.]+\s*\?{1,2}\s*$               # obj?, obj??
    )""",
    re.VERBOSE,
)
_CELL_MAGIC = re.compile(r"^\s*%%(?P<name>\w+)")
_COMPILE_FLAGS = ast.PyCF_ONLY_AST | getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_LINE_REFERENCE = re.compile(r"\bline (\d+)\b")  # "CrossEntropyLoss (line 43)" in a rule's message
# A line no cell can contain, used to find the cells again in the text that fixes are applied to.
_BOUNDARY = "#\x00mlplint-cell-boundary\x00\n"


def decode_notebook(data: bytes) -> str:
    """A notebook file's bytes as text (JSON is UTF-8), or a SourceError saying why not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SourceError(f"not a valid notebook: not UTF-8 text at byte {error.start}") from None


@dataclass(frozen=True)
class CodeCell:
    cell: int  # 1-based position among all the notebook's cells
    first_line: int  # line of the module where the cell starts
    lines: tuple[str, ...]  # the cell's own lines, magics included, each ending in "\n"
    magic_lines: frozenset[int]  # cell-relative lines replaced by `pass` in the module
    ends_with_newline: bool  # whether the cell's source ended with "\n" (the module always does)


def _python_lines(lines: list[str]) -> Optional[list[int]]:
    """The 1-based lines of a cell that are magics or shell commands, or None when the whole
    cell is in another language."""
    first = next((line for line in lines if line.strip()), "")
    cell_magic = _CELL_MAGIC.match(first)
    if cell_magic:
        if cell_magic.group("name") not in PYTHON_CELL_MAGICS:
            return None
        magic = [lines.index(first) + 1]
        body_start = magic[0]
    else:
        magic, body_start = [], 0
    body = "".join(lines[body_start:])
    try:
        compile(body, "<cell>", "exec", _COMPILE_FLAGS)
        return magic  # valid Python as it is: a line starting with `%` is a continued modulo
    except (SyntaxError, ValueError):
        pass
    continued = False
    for number, line in enumerate(lines[body_start:], start=body_start + 1):
        if continued or _LINE_MAGIC.match(line):
            magic.append(number)
            continued = line.rstrip("\n").endswith("\\")
    return magic


def _cell_source(cell: dict, position: int) -> str:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    if isinstance(source, str):
        return source
    raise SourceError(f"not a valid notebook: cell {position} has a 'source' that is neither text nor a list of lines")


@dataclass(frozen=True)
class _Layout:
    """How the notebook's JSON was written, so that writing it back changes only the cells."""

    indent: Optional[str]
    separators: tuple[str, str]
    ensure_ascii: bool
    trailing_newline: bool
    line_ending: str

    @classmethod
    def of(cls, text: str) -> "_Layout":
        indent_match = re.match(r"\{[ \t]*\r?\n([ \t]+)\S", text)
        indent = indent_match.group(1) if indent_match else None
        if indent is not None:
            separators = (",", ": ")
        else:
            separators = (", ", ": ") if re.search(r'"\s*:\s', text) else (",", ":")
        escaped = re.search(r"\\u(?:00[89a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]|[1-9a-fA-F][0-9a-fA-F]{2})[0-9a-fA-F]", text)
        ensure_ascii = bool(escaped) and text.isascii()
        line_ending = "\r\n" if "\r\n" in text else "\n"
        return cls(indent, separators, ensure_ascii, text.endswith("\n"), line_ending)

    def dumps(self, document: Any) -> str:
        text = json.dumps(document, indent=self.indent, separators=self.separators, ensure_ascii=self.ensure_ascii)
        text = text + "\n" if self.trailing_newline else text
        return text.replace("\n", self.line_ending) if self.line_ending != "\n" else text


class Notebook:
    """A parsed notebook: its JSON document, its code cells and the module they form."""

    def __init__(self, document: dict, layout: _Layout, code_cells: list[CodeCell], module: str):
        self.document = document
        self._layout = layout
        self.code_cells = code_cells
        self.module = module  # the Python text that is checked
        self._first_lines = [cell.first_line for cell in code_cells]

    @classmethod
    def parse(cls, text: str) -> "Notebook":
        """Raises SourceError with a one-line reason when the text is not a notebook."""
        return cls._from_document(cls._load(text), _Layout.of(text))

    @classmethod
    def from_cells(cls, cells: list[tuple[str, str]]) -> "Notebook":
        """A notebook from (cell_type, source) pairs, as an editor holds a notebook document."""
        document = {"cells": [{"cell_type": kind, "metadata": {}, "source": source} for kind, source in cells],
                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        return cls._from_document(document, _Layout(" ", (",", ": "), False, True, "\n"))

    @staticmethod
    def _load(text: str) -> dict:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise SourceError(f"not a valid notebook: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
        except RecursionError:
            raise SourceError("not a valid notebook: JSON nested too deeply") from None
        if not isinstance(document, dict):
            raise SourceError("not a valid notebook: the JSON document is not an object")
        if "cells" not in document:
            if "worksheets" in document:
                raise SourceError("nbformat 3 notebooks are not supported; convert with `jupyter nbconvert --to notebook`")
            raise SourceError("not a valid notebook: no 'cells' list")
        cells = document["cells"]
        if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
            raise SourceError("not a valid notebook: 'cells' is not a list of objects")
        return document

    @classmethod
    def _from_document(cls, document: dict, layout: _Layout) -> "Notebook":
        code_cells, module_parts, next_line = [], [], 1
        for position, cell in enumerate(document["cells"], start=1):
            if cell.get("cell_type") != "code":
                continue
            source = _cell_source(cell, position)
            if not source.strip():
                continue
            lines = split_lines(source, keepends=True)
            ends_with_newline = lines[-1].endswith("\n")
            if not ends_with_newline:
                lines[-1] += "\n"
            magic = _python_lines(lines)
            if magic is None:
                continue
            module_lines, magic_set = list(lines), set(magic)
            for number in magic:
                line = lines[number - 1]
                if number - 1 in magic_set and lines[number - 2].rstrip("\r\n").endswith("\\"):
                    module_lines[number - 1] = "\n"  # a continuation of the magic above
                else:
                    module_lines[number - 1] = line[: len(line) - len(line.lstrip(" \t"))] + "pass\n"
            code_cells.append(CodeCell(position, next_line, tuple(lines), frozenset(magic_set), ends_with_newline))
            module_parts.append("".join(module_lines))
            next_line += len(lines)
        return cls(document, layout, code_cells, "".join(module_parts))

    @property
    def language(self) -> str:
        """The kernel's language ("python" unless the metadata says otherwise)."""
        metadata = self.document.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        for key, field_name in (("language_info", "name"), ("kernelspec", "language")):
            value = metadata.get(key)
            if isinstance(value, dict) and isinstance(value.get(field_name), str):
                return value[field_name].lower()
        return "python"

    def cell_lines(self) -> dict[int, list[str]]:
        """Each code cell's lines as the user wrote them, without line ends, by cell number."""
        return {cell.cell: [line.rstrip("\r\n") for line in cell.lines] for cell in self.code_cells}

    def cell_sources(self) -> dict[int, str]:
        """Each checked code cell's source text, by cell number."""
        return {cell.cell: _source_text(cell) for cell in self.code_cells}

    # Module positions -> cell positions.

    def locate(self, line: int) -> tuple[int, int]:
        """The cell and cell-relative line of a module line."""
        cell = self._cell_at(line)
        return cell.cell, line - cell.first_line + 1

    def _cell_at(self, line: int) -> CodeCell:
        return self.code_cells[max(bisect.bisect_right(self._first_lines, line) - 1, 0)]

    def _cell_position(self, cell: CodeCell, line: int, column: int) -> tuple[int, int]:
        relative = line - cell.first_line + 1
        if relative > len(cell.lines):  # past the cell's end: its last character
            return len(cell.lines), len(cell.lines[-1].rstrip("\r\n")) + 1
        return relative, column

    def _map_edit(self, edit: Edit) -> Optional[Edit]:
        """The edit in cell coordinates, or None when it spans cells or rewrites a magic line."""
        cell = self._cell_at(edit.line)
        line, column = edit.line - cell.first_line + 1, edit.column
        end_line, end_column = edit.end_line - cell.first_line + 1, edit.end_column
        if end_line > len(cell.lines) + 1 or (end_line == len(cell.lines) + 1 and end_column > 1):
            return None
        for magic in cell.magic_lines:
            if line <= magic and (magic < end_line or (magic == end_line and end_column > 1)):
                return None
        return Edit(line, column, end_line, end_column, edit.content, cell=cell.cell)

    def to_cells(self, finding: Finding) -> Finding:
        """The finding with its cell and cell-relative positions (its fix too, when the fix stays
        inside one cell's Python lines; otherwise the finding is reported without it)."""
        cell = self._cell_at(finding.line)
        line, column = self._cell_position(cell, finding.line, finding.column)
        end_line, end_column = self._cell_position(cell, finding.end_line, finding.end_column)
        fix = finding.fix
        if fix is not None:
            edits = [self._map_edit(edit) for edit in fix.edits]
            fix = None if None in edits else dataclasses.replace(fix, edits=tuple(edits))
        message = _LINE_REFERENCE.sub(lambda match: self._line_reference(int(match.group(1)), cell), finding.message)
        return dataclasses.replace(
            finding, cell=cell.cell, line=line, column=column, end_line=end_line, end_column=end_column, fix=fix,
            message=message,
        )

    def _line_reference(self, line: int, here: CodeCell) -> str:
        """A message's "line N" (a module line) as the cell's line, naming the cell when it is another."""
        cell = self._cell_at(line)
        relative = line - cell.first_line + 1
        return f"line {relative}" if cell is here else f"cell {cell.cell}, line {relative}"

    def error_to_cells(self, error: FileError) -> FileError:
        """A syntax error's module line and column, told as the cell's."""
        match = re.match(r"syntax error at line (\d+), column (\d+)", error.message)
        if not match or not self.code_cells:
            return error
        cell = self._cell_at(int(match.group(1)))
        line, column = self._cell_position(cell, int(match.group(1)), int(match.group(2)))
        told = f"syntax error in cell {cell.cell} at line {line}, column {column}"
        return dataclasses.replace(error, message=told + error.message[match.end():])

    # Fixes back into the cells.

    def with_fixes(self, findings: list[Finding], unsafe: bool) -> tuple["Notebook", int]:
        """The notebook with the findings' fixes (cell coordinates, from to_cells) applied, and the
        number applied. Fixes are applied together on the cells joined by boundary lines, so a fix
        with edits in several cells is applied whole or not at all."""
        from mlplint.lint.fixes import apply_fixes  # it brings LibCST: only when fixing

        starts, joined, line = {}, [], 1
        for cell in self.code_cells:
            joined.append(_BOUNDARY)
            starts[cell.cell] = line + 1
            joined.extend(cell.lines)
            line += 1 + len(cell.lines)
        moved = []
        for finding in findings:
            if finding.fix is None:
                continue
            edits = tuple(
                dataclasses.replace(
                    edit, cell=None, line=starts[edit.cell] + edit.line - 1, end_line=starts[edit.cell] + edit.end_line - 1,
                )
                for edit in finding.fix.edits
            )
            moved.append(dataclasses.replace(finding, fix=dataclasses.replace(finding.fix, edits=edits)))
        text, applied = apply_fixes("".join(joined), moved, unsafe)
        if not applied:
            return self, 0
        new_sources = text.split(_BOUNDARY)[1:]
        document = json.loads(json.dumps(self.document))  # a deep copy of plain JSON data
        for cell, source in zip(self.code_cells, new_sources):
            if not cell.ends_with_newline and source.endswith("\n"):
                source = source[:-1]
            target = document["cells"][cell.cell - 1]
            if isinstance(target.get("source"), list):
                target["source"] = split_lines(source, keepends=True)
            else:
                target["source"] = source
        return Notebook._from_document(document, self._layout), applied

    def dumps(self) -> str:
        """The notebook's JSON text, in the layout it was read with."""
        return self._layout.dumps(self.document)


def _source_text(cell: CodeCell) -> str:
    text = "".join(cell.lines)
    return text if cell.ends_with_newline else text[:-1]
