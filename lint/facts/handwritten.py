"""Losses written by hand: `((pred - y) ** 2).mean()`, `torch.abs(pred - y).sum()`,
`(pred - y).pow(2).mean()`, `torch.mean(torch.square(pred - y))`.

Found once per file from the indexed calls (each reduction looks at its own operand only), so
rules that check library losses can check these the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from mlplint.lint.facts.core import ScriptFacts

REDUCTIONS = {"torch.mean", "torch.sum"}
ABSOLUTE = {"torch.abs", "torch.absolute"}
SQUARE = {"torch.square"}


@dataclass(frozen=True)
class HandWrittenLoss:
    node: cst.Call  # the reduction (`.mean()`, `torch.sum(...)`)
    kind: str  # "squared" or "absolute"
    first: cst.BaseExpression  # the operands of the difference, as written: first - second
    second: cst.BaseExpression


class HandWrittenLosses:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    @functools.cached_property
    def all(self) -> list[HandWrittenLoss]:
        found = []
        for call in self.facts.calls:
            operand = self._reduced(call)
            loss = self._error(operand) if operand is not None else None
            if loss is not None:
                found.append(HandWrittenLoss(call, *loss))
        return found

    def _reduced(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        qualified = self.facts.qualname(call.func)
        if qualified in REDUCTIONS and call.args:
            return call.args[0].value
        if qualified is None and isinstance(call.func, cst.Attribute) and call.func.attr.value in ("mean", "sum"):
            return call.func.value
        return None

    def _error(self, expr: cst.BaseExpression) -> Optional[tuple[str, cst.BaseExpression, cst.BaseExpression]]:
        """(kind, first, second) when expr is a squared or absolute difference (through one variable)."""
        facts = self.facts
        for origin in facts.origins(expr):
            inner, kind = None, None
            if isinstance(origin, cst.BinaryOperation) and isinstance(origin.operator, cst.Power) \
                    and facts.literal(origin.right) == 2:
                inner, kind = origin.left, "squared"
            elif isinstance(origin, cst.Call) and origin.args and facts.qualname(origin.func) in ABSOLUTE | SQUARE:
                inner = origin.args[0].value
                kind = "squared" if facts.qualname(origin.func) in SQUARE else "absolute"
            elif isinstance(origin, cst.Call) and isinstance(origin.func, cst.Attribute) and facts.qualname(origin.func) is None:
                method = origin.func.attr.value
                if method == "abs" and not origin.args:
                    inner, kind = origin.func.value, "absolute"
                elif method in ("pow", "square") and (method == "square" or facts.literal(origin.args[0].value if origin.args else None) == 2):
                    inner, kind = origin.func.value, "squared"
            if inner is None:
                continue
            for difference in facts.origins(inner):
                if isinstance(difference, cst.BinaryOperation) and isinstance(difference.operator, cst.Subtract):
                    return kind, difference.left, difference.right
        return None
