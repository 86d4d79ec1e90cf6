"""Mixed precision: the calls of GradScaler methods (on expressions that hold a scaler), the scaled
backward passes, and whether a scaler is built disabled."""

from __future__ import annotations

import functools
from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts

_METHODS = ("scale", "unscale_", "step", "update")


class ScalerAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    def calls(self, method: str) -> list[cst.Call]:
        """`scaler.<method>(...)` calls on a GradScaler, in evaluation order."""
        return self._calls.get(method, [])

    @functools.cached_property
    def _calls(self) -> dict[str, list[cst.Call]]:
        facts = self.facts
        found: dict[str, list[cst.Call]] = {}
        for call in facts.calls:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _METHODS and facts.kind_of(func.value) == "scaler":
                found.setdefault(func.attr.value, []).append(call)
        return found

    @functools.cached_property
    def scaled_backwards(self) -> list[cst.Call]:
        """`scaler.scale(loss).backward()`, in evaluation order."""
        scaled = set(self.calls("scale"))
        return [call for call in self.facts.training.backward_calls
                if isinstance(call.func, cst.Attribute) and call.func.value in scaled]

    def in_function(self, method: str, function: Optional[cst.FunctionDef]) -> list[cst.Call]:
        """The calls of one method (or "backward" for the scaled backward passes) written in one
        function (None: at module level), in evaluation order."""
        return self._by_function.get((method, function), [])

    @functools.cached_property
    def _by_function(self) -> dict[tuple[str, Optional[cst.FunctionDef]], list[cst.Call]]:
        index: dict[tuple[str, Optional[cst.FunctionDef]], list[cst.Call]] = {}
        for method, calls in [*self._calls.items(), ("backward", self.scaled_backwards)]:
            for call in calls:
                index.setdefault((method, self.facts.enclosing_function(call)), []).append(call)
        return index

    def disabled(self, scaler: cst.BaseExpression) -> bool:
        """Every GradScaler the expression may hold is built with `enabled=False`: a no-op."""
        facts = self.facts
        built = [o for o in facts.origins(scaler) if isinstance(o, cst.Call) and facts.class_of(o) in names.GRAD_SCALERS]
        settings = [facts.argument(call, None, "enabled") for call in built]
        return bool(built) and all(value is not None and facts.literal(value) is False for value in settings)
