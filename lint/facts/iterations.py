"""How many times a loop runs, when the script states it: `range(8)`, `range(1, n)` with a
constant n, a list literal, `zip(dims, dims[1:])`, `enumerate(...)`, `len(...)` of those."""

from __future__ import annotations

from typing import Optional

import libcst as cst


class IterationCounts:
    """Mixed into the analyses that count layers built in a loop or elements of a comprehension;
    reads `self.facts`."""

    def iterations(self, iterable: cst.BaseExpression) -> Optional[int]:
        """How many times a loop over `iterable` runs, when literal: `range(8)`, `range(1, n)`
        with a constant n, a list literal, `zip(dims, dims[1:])`, `enumerate(...)`."""
        sizes = [self._size(origin) for origin in self.facts.origins(iterable)]
        return sizes[0] if sizes and all(s is not None and s == sizes[0] for s in sizes) else None

    def _size(self, expr: cst.BaseExpression) -> Optional[int]:
        facts = self.facts
        if isinstance(expr, (cst.List, cst.Tuple)):
            return None if any(isinstance(e, cst.StarredElement) for e in expr.elements) else len(expr.elements)
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Slice):
            whole = self.iterations(expr.value)
            part = expr.slice[0].slice
            bounds = [self._integer(b) if b is not None else None for b in (part.lower, part.upper, part.step)]
            if whole is None or any(b is None and given is not None for b, given in zip(bounds, (part.lower, part.upper, part.step))):
                return None
            return len(range(whole)[slice(*bounds)])
        if not isinstance(expr, cst.Call):
            return None
        qualified = facts.qualname(expr.func)
        args = [a.value for a in expr.args if a.keyword is None and not a.star]
        if qualified == "builtins.range" and 1 <= len(args) <= 3:
            bounds = [self._integer(a) for a in args]
            return len(range(*bounds)) if all(b is not None for b in bounds) and bounds[-1] != 0 else None
        if qualified in ("builtins.enumerate", "builtins.reversed", "builtins.list", "builtins.tuple") and args:
            return self.iterations(args[0])
        if qualified == "builtins.zip" and args:
            sizes = [self.iterations(a) for a in args]
            return min(sizes) if all(s is not None for s in sizes) else None
        return None

    def _integer(self, expr: cst.BaseExpression) -> Optional[int]:
        value = self.facts.integer_literal(expr)
        if value is not None:
            return value
        if isinstance(expr, cst.Call) and self.facts.qualname(expr.func) == "builtins.len" and expr.args:
            return self.iterations(expr.args[0].value)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract, cst.Multiply)):
            left, right = self._integer(expr.left), self._integer(expr.right)
            if left is None or right is None:
                return None
            if isinstance(expr.operator, cst.Add):
                return left + right
            return left - right if isinstance(expr.operator, cst.Subtract) else left * right
        return None
