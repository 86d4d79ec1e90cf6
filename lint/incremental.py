"""Re-checking an edited file without re-parsing what did not change (the language server).

A file is cut before each top-level statement (where CPython's tree of the new text says it
begins), and each piece is parsed on its own by LibCST, or taken from the last check when its
text is unchanged. Parsed alone, a piece keeps the blank and comment lines that follow its
statement in its module footer; the whole file's parse gives them to the next statement, so they
move there. What comes out is the tree `libcst.parse_module` gives for the whole text, with the
unchanged statements the very same objects as before, so that what was worked out from them
(their source positions) can be kept too. Whenever the pieces cannot be put together exactly
(a piece that does not parse alone, indentation or line endings that differ between pieces), the
whole text is parsed.
"""

from __future__ import annotations

import ast
from typing import Optional

import libcst as cst

from mlplint.lint.source import split_lines

_COMPOUND_WITH_BLOCK = (cst.FunctionDef, cst.ClassDef, cst.If, cst.For, cst.While, cst.With, cst.Try, cst.TryStar, cst.Match)


class StatementCache:
    """The top-level statements of one document's last check, by the text they were parsed from,
    and the positions generated for them (the engine's Positions fills `generated`)."""

    def __init__(self) -> None:
        self._pieces: dict[str, list[cst.Module]] = {}  # a piece's text -> its parses alone, one per occurrence
        self._moved: dict[tuple[cst.CSTNode, tuple[cst.EmptyLine, ...]], cst.CSTNode] = {}  # (statement, lines moved in) -> statement with them
        self.generated: dict[cst.CSTNode, object] = {}  # top-level statement -> Positions' record of it
        self.reused = 0  # statements taken from the last check, in the last parse

    def parse(self, text: str, tree: ast.Module) -> cst.Module:
        """The LibCST tree of text, whose CPython tree is `tree`; raises what parse_module raises."""
        module = self._from_pieces(text, tree)
        if module is None:
            self._pieces, self._moved, self.generated, self.reused = {}, {}, {}, 0
            return cst.parse_module(text)
        kept = set(module.body)
        self.generated = {root: record for root, record in self.generated.items() if root in kept}
        return module

    def _from_pieces(self, text: str, tree: ast.Module) -> Optional[cst.Module]:
        lines = split_lines(text, keepends=True)
        cuts = _cuts(tree, lines)
        if not cuts:
            return None
        bounds = [0, *cuts, len(lines)]
        # A text that occurs twice (the same import in two joined scripts) gets two parses: a node
        # must stand at one place in the tree.
        unused = {piece: list(modules) for piece, modules in self._pieces.items()}
        pieces: dict[str, list[cst.Module]] = {}
        parsed: list[cst.Module] = []
        reused = 0
        for begin, end in zip(bounds, bounds[1:]):
            piece = "".join(lines[begin:end])
            earlier = unused.get(piece)
            if earlier:
                module = earlier.pop()
                reused += 1
            else:
                try:
                    module = cst.parse_module(piece)
                except Exception:  # noqa: BLE001 - the whole text's parse gives the error
                    return None
            if not module.body:
                return None
            pieces.setdefault(piece, []).append(module)
            parsed.append(module)
        indent = next((m.default_indent for m in parsed if any(map(_has_indented_body, m.body))), parsed[0].default_indent)
        newline = parsed[0].default_newline
        if any(m.default_newline != newline or (any(isinstance(b, _COMPOUND_WITH_BLOCK) for b in m.body) and m.default_indent != indent)
               for m in parsed):
            return None
        moved: dict = {}
        body = []
        carried: tuple[cst.EmptyLine, ...] = ()
        for module in parsed:
            statement, *rest = module.body
            if carried:
                key = (statement, carried)  # the very lines: the previous piece's, so they stand once in the tree
                statement = moved[key] = self._moved.get(key) or statement.with_changes(
                    leading_lines=(*carried, *statement.leading_lines))
            body += [statement, *rest]
            carried = tuple(module.footer)
        self._pieces, self._moved, self.reused = pieces, moved, reused
        last = parsed[-1]
        return cst.Module(body=body, header=parsed[0].header, footer=last.footer, encoding=last.encoding,
                          default_indent=indent, default_newline=newline, has_trailing_newline=last.has_trailing_newline)


def _cuts(tree: ast.Module, lines: list[str]) -> list[int]:
    """The line indexes where the text can be cut: before a top-level statement whose previous
    statement is followed only by empty lines and comments at the first column (which both the
    whole file's parse and the piece's own give to the next statement). An indented comment or a
    line of spaces after a block may belong to the block: the text is not cut there."""
    cuts = []
    statements = tree.body
    for previous, statement in zip(statements, statements[1:]):
        begin = _first_line(statement) - 1
        if begin <= (previous.end_lineno or 0) - 1:
            continue  # on the same line (`a = 1; b = 2`)
        tail = lines[previous.end_lineno:begin]
        if all(line in ("\n", "\r\n", "\r") or line.startswith("#") for line in tail):
            cuts.append(begin)
    return cuts


def _first_line(statement: ast.stmt) -> int:
    decorators = getattr(statement, "decorator_list", None) or ()
    return min([statement.lineno, *(decorator.lineno for decorator in decorators)])


def _has_indented_body(statement: cst.CSTNode) -> bool:
    return isinstance(statement, _COMPOUND_WITH_BLOCK) and isinstance(getattr(statement, "body", None), cst.IndentedBlock)
