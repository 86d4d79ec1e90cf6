"""Source ranges of nodes, the same as LibCST's PositionProvider gives, at a fraction of its cost.

PositionProvider regenerates the module's code and builds a CodeRange of CodePositions for every
node, splitting every token on newlines as it goes. Here the same code generation records only
character offsets (the syntactic range where LibCST records one, else the range with whitespace,
as PositionProvider does), for the top-level statements asked about; lines and columns are worked
out only for the nodes asked about.
"""

from __future__ import annotations

import ast
import bisect
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import libcst as cst
from libcst.metadata import CodePosition, CodeRange
from libcst._nodes.internal import CodegenState  # the state PositionProvider's own subclasses extend

_NEWLINE = re.compile(r"\r\n?|\n")  # what LibCST counts as a line break


@dataclass(frozen=False)
class _OffsetCodegenState(CodegenState):
    offset: int = 0
    spans: dict = field(default_factory=dict)  # node -> (start offset, end offset)
    starts: list = field(default_factory=list)
    popped: str = ""

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.offset += len(value)

    def pop_trailing_newline(self) -> None:
        # The newline LibCST adds to a file without one; its positions count it, as here.
        self.popped = self.tokens.pop() if self.tokens else ""

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.starts.append(self.offset)

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self.starts.pop()
        if node not in self.spans:  # the syntactic range, when the node recorded one
            self.spans[node] = (start, self.offset)

    @contextmanager
    def record_syntactic_position(self, node: cst.CSTNode, *, start_node: Optional[cst.CSTNode] = None,
                                  end_node: Optional[cst.CSTNode] = None) -> Iterator[None]:
        start = self.offset
        try:
            yield
        finally:
            end = self.offset
            if start_node is not None:
                start = self.spans[start_node][0]
            if end_node is not None:
                end = self.spans[end_node][1]
            self.spans[node] = (start, end)


class Positions:
    """`positions[node]` is the node's CodeRange (1-based lines, 0-based columns).

    Code is generated only for the top-level statements that hold the nodes asked about: where
    each top-level statement starts comes from CPython's tree of the same source (the engine's
    syntax guard), so a finding near the end of a long file does not regenerate the whole file.
    """

    def __init__(self, module: cst.Module, parent: dict, tree: Optional[ast.Module] = None,
                 generated: Optional[dict] = None):
        """generated: a record kept from an earlier tree that shares top-level statements with this one."""
        self._module = module
        self._parent = parent
        self._starts = _statement_starts(module, tree if tree is not None else ast.parse(module.code))
        # per generated root: the offsets of the nodes in it and where its lines start
        self._generated: dict[cst.CSTNode, tuple[dict, list[int]]] = generated if generated is not None else {}

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        root = self._root(node)
        if root not in self._generated:
            self._generate(root)
        spans, line_starts = self._generated[root]
        first = self._starts.get(root, 1)
        start, end = spans[node]
        return CodeRange(_position(first, line_starts, start), _position(first, line_starts, end))

    def _root(self, node: cst.CSTNode) -> cst.CSTNode:
        """The top-level statement that holds node (the module for nodes outside statements)."""
        current = node
        while current in self._parent:
            above = self._parent[current]
            if above is self._module:
                return current if current in self._starts else self._module
            current = above
        return self._module

    def _generate(self, root: cst.CSTNode) -> None:
        state = _OffsetCodegenState(default_indent=self._module.default_indent, default_newline=self._module.default_newline)
        root._codegen(state)
        text = "".join(state.tokens) + state.popped
        line_starts = [0] + [match.end() for match in _NEWLINE.finditer(text)]
        self._generated[root] = (state.spans, line_starts)


def _position(first_line: int, line_starts: list[int], offset: int) -> CodePosition:
    index = bisect.bisect_right(line_starts, offset)
    return CodePosition(first_line + index - 1, offset - line_starts[index - 1])


def _statement_starts(module: cst.Module, tree: ast.Module) -> dict[cst.CSTNode, int]:
    """The line each top-level statement's code begins on, blank and comment lines before it
    included (LibCST gives them to the statement), matched to CPython's statements in order."""
    starts: dict[cst.CSTNode, int] = {}
    statements = tree.body
    index = 0
    for statement in module.body:
        if index >= len(statements):
            break
        python = statements[index]
        decorators = getattr(python, "decorator_list", None)
        first = min([python.lineno] + [decorator.lineno for decorator in decorators or ()])
        before = len(statement.leading_lines)
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)) and statement.decorators:
            before += len(statement.decorators[0].leading_lines)
        starts[statement] = first - before
        index += len(statement.body) if isinstance(statement, cst.SimpleStatementLine) else 1
    return starts
