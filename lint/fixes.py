"""Fixes: applying findings' edits to a source text, and the helpers rules build their edits with.

A fix is a set of edits on the original text; insertions are edits whose start and end are the
same position. Fixes that would touch the same text as one already chosen wait for the next pass
(the CLI re-checks and re-fixes until nothing changes); an edit identical to one already chosen
(two findings both adding `import torch`, or wrapping the same statement) is shared, not repeated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

import libcst as cst

from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Edit, Finding
from mlplint.lint.source import line_ending, split_lines, with_newline

if TYPE_CHECKING:
    from mlplint.lint.facts import ScriptFacts

Span = tuple[int, int, str]


def _offset(line_starts: list[int], line: int, column: int) -> int:
    return line_starts[line - 1] + column - 1


def _conflicts(span: Span, chosen: list[Span]) -> bool:
    start, end, _ = span
    for other_start, other_end, _ in chosen:
        if start < other_end and other_start < end:  # overlapping text
            return True
        if start == other_start and (start == end or other_start == other_end):  # two things at one point
            return True
        if other_start < start < other_end or start < other_start < end:  # an insertion inside a replacement
            return True
    return False


def apply_fixes(text: str, findings: list[Finding], unsafe: bool) -> tuple[str, int]:
    """Apply every applicable fix that does not conflict with an earlier one; returns the new
    text and the number of fixes applied. Rules write new lines with `\n`; they get the file's
    own newline (a CRLF or CR file stays one)."""
    line_starts = [0]
    for line in split_lines(text, keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    newline = line_ending(text)
    chosen: list[Span] = []
    applied = 0
    for finding in findings:
        fix = finding.fix
        if fix is None or (fix.applicability == "unsafe" and not unsafe):
            continue
        spans = [(_offset(line_starts, e.line, e.column), _offset(line_starts, e.end_line, e.end_column), e.content)
                 for e in fix.edits]
        new = [span for span in spans if span not in chosen]
        if any(_conflicts(span, chosen) for span in new):
            continue
        chosen.extend(new)
        applied += 1
    for start, end, content in sorted(chosen, key=lambda span: (span[0], span[1]), reverse=True):
        if newline != "\n":
            content = with_newline(content, newline)
        text = text[:start] + content + text[end:]
    return text, applied


# ----------------------------------------------------------------- building edits in rules


def statement_of(facts: "ScriptFacts", node: cst.CSTNode) -> Optional[cst.BaseStatement]:
    """The statement around node that is a line of its block (a simple statement line, or a
    compound statement), None when that line is a one-line suite (`if x: a()`)."""
    for candidate in [node, *facts.ancestors(node)]:
        if isinstance(candidate, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            return candidate
        if isinstance(candidate, cst.SimpleStatementSuite):
            return None
    return None


def block_statements(facts: "ScriptFacts", statement: cst.BaseStatement) -> Optional[list[cst.BaseStatement]]:
    """The statements of the block that holds statement (the module's, or an indented block's)."""
    block = facts.parent.get(statement)
    if isinstance(block, (cst.IndentedBlock, cst.Module)):
        return list(block.body)
    return None


def indentation(facts: "ScriptFacts", statement: cst.CSTNode) -> str:
    """The whitespace in front of a statement's first line."""
    units = [block.indent if block.indent is not None else facts.module.default_indent
             for block in facts.ancestors(statement) if isinstance(block, cst.IndentedBlock)]
    return "".join(reversed(units))


def _start(facts: "ScriptFacts", node: cst.CSTNode) -> tuple[int, int]:
    position = facts.positions[node].start
    return position.line, position.column + 1


def _end(facts: "ScriptFacts", node: cst.CSTNode) -> tuple[int, int]:
    position = facts.positions[node].end
    return position.line, position.column + 1


def insert(at: tuple[int, int], content: str) -> Edit:
    return Edit(at[0], at[1], at[0], at[1], content)


def delete(start: tuple[int, int], end: tuple[int, int], content: str = "") -> Edit:
    """Replace the text from start to end (1-based line and column, end exclusive)."""
    return Edit(start[0], start[1], end[0], end[1], content)


def replace(facts: "ScriptFacts", node: cst.CSTNode, content: str) -> Edit:
    return delete(_start(facts, node), _end(facts, node), content)


def insert_line_before(facts: "ScriptFacts", statement: cst.BaseStatement, line: str) -> Edit:
    """A new line, at the statement's indentation, just above it (below its leading comments)."""
    return insert(_start(facts, statement), f"{line}\n{indentation(facts, statement)}")


def insert_line_after(facts: "ScriptFacts", statement: cst.SimpleStatementLine, line: str) -> Edit:
    """A new line, at the statement's indentation, just below it (its trailing comment stays)."""
    comment = statement.trailing_whitespace.comment
    return insert(_end(facts, comment if comment is not None else statement), f"\n{indentation(facts, statement)}{line}")


def wrap_in_block(facts: "ScriptFacts", statement: cst.BaseStatement, header: str) -> list[Edit]:
    """Edits that put statement under a new `header:` line at its indentation, indenting each of
    its lines one level; blank lines and the inside of multi-line strings keep their text."""
    unit = facts.module.default_indent
    first, _ = _start(facts, statement)
    last = facts.positions[statement].end.line
    lines = facts.source_lines
    kept = {line for line in range(first + 1, last + 1) if line <= len(lines) and not lines[line - 1].strip()}
    for node in nodes_within(statement, (cst.SimpleString, cst.FormattedString)):
        span = facts.positions[node]
        kept.update(range(span.start.line + 1, span.end.line + 1))
    edits = [insert(_start(facts, statement), f"{header}\n{indentation(facts, statement)}{unit}")]
    edits += [insert((line, 1), unit) for line in range(first + 1, last + 1) if line not in kept]
    return edits


def wrap_expression(facts: "ScriptFacts", expr: cst.BaseExpression, before: str, after: str) -> list[Edit]:
    """Text inserted around an expression: `nn.ModuleList(` + `[...]` + `)`."""
    return [insert(_start(facts, expr), before), insert(_end(facts, expr), after)]


def replace_call_with_argument(facts: "ScriptFacts", call: cst.Call, argument: cst.BaseExpression) -> Optional[list[Edit]]:
    """`F.softmax(x, dim=1)` -> `x`: delete the call's text around one of its arguments, keeping
    that argument's text (comments included); parenthesised where the context needs it."""
    if call.lpar or call.rpar:
        return None
    atomic = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.SimpleString, cst.Integer, cst.Float,
              cst.List, cst.Dict, cst.Set, cst.ConcatenatedString, cst.FormattedString)
    loose = (cst.Return, cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Arg, cst.Element, cst.Expr)  # no operator around
    bare = isinstance(argument, atomic) or bool(getattr(argument, "lpar", ())) or isinstance(facts.parent.get(call), loose)
    opening, closing = ("", "") if bare else ("(", ")")
    return [delete(_start(facts, call), _start(facts, argument), opening),
            delete(_end(facts, argument), _end(facts, call), closing)]


def drop_method_call(facts: "ScriptFacts", call: cst.Call) -> Optional[list[Edit]]:
    """`model(x).softmax(1)` -> `model(x)`."""
    if call.lpar or not isinstance(call.func, cst.Attribute):
        return None
    return [delete(_end(facts, call.func.value), _end(facts, call))]


Item = Union[cst.Arg, cst.Element]


def delete_item(facts: "ScriptFacts", items: list[Item], index: int) -> Optional[list[Edit]]:
    """Remove one element of an argument list or a list display with its comma; an element on a
    line of its own goes with its line. None for the only element."""
    if len(items) < 2:
        return None
    item = items[index]
    if index + 1 < len(items):
        return [delete(_start(facts, item), _start(facts, items[index + 1]))]
    previous = items[index - 1]
    item_start, item_end = facts.positions[item].start.line, facts.positions[item].end.line
    closing_line = facts.positions[facts.parent[item]].end.line
    if facts.positions[previous].end.line < item_start and closing_line > item_end:
        return [delete((item_start, 1), (item_end + 1, 1))]
    return [delete(_end(facts, previous.value), _end(facts, item.value))]


def spelling(facts: "ScriptFacts", qualified: str) -> Optional[str]:
    """How to write a qualified name (`torch.nn.ModuleList`) with the module's own imports
    (`nn.ModuleList`), None when no import makes it reachable."""
    spellings = facts.import_spellings
    prefixes = [name for name in spellings if qualified == name or qualified.startswith(name + ".")]
    if not prefixes:
        return None
    longest = max(prefixes, key=len)
    return spellings[longest] + qualified[len(longest):]


def torch_import(facts: "ScriptFacts") -> Optional[Edit]:
    """An `import torch` line above the module's first import, or None when there is no import to
    put it next to (the module is not a torch script we understand)."""
    for statement in facts.module.body:
        if isinstance(statement, cst.SimpleStatementLine) and any(
                isinstance(small, (cst.Import, cst.ImportFrom)) and not _is_future(facts, small) for small in statement.body):
            return insert_line_before(facts, statement, "import torch")
    return None


def _is_future(facts: "ScriptFacts", small: cst.BaseSmallStatement) -> bool:
    return isinstance(small, cst.ImportFrom) and small.module is not None and \
        facts.module.code_for_node(small.module) == "__future__"
