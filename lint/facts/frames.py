"""Lambda calls followed in their own context.

`f = lambda a: torch.tensor(a, dtype=torch.float32)` called as `f(features)` and `f(price)`: a
walk that follows `f(price)` into the lambda's body must read `a` as `price`, not as every argument
`f` is ever given (the features and the targets would blur into one value). The data and value
range walks enter a frame for each lambda call they follow and key their memos by the frames they
are in, so each call site is resolved once; a lambda's body is one expression, so this stays
linear in the file.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import libcst as cst

from mlplint.lint.facts.core import ScriptFacts


class LambdaFrames:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._frames: tuple[tuple[cst.Call, cst.Lambda], ...] = ()  # innermost last

    @property
    def key(self) -> tuple[cst.Call, ...]:
        """The lambda calls the walk is inside, for memo keys."""
        return tuple(call for call, _ in self._frames)

    def lambdas_called(self, call: cst.Call) -> list[cst.Lambda]:
        """The lambdas `call` runs that the walk is not already inside (a recursive lambda is not followed)."""
        active = {function for _, function in self._frames}
        return [function for function in self.facts.bound_lambdas(call.func) if function not in active]

    @contextlib.contextmanager
    def entered(self, call: cst.Call, function: cst.Lambda) -> Iterator[None]:
        saved = self._frames
        self._frames = saved + ((call, function),)
        try:
            yield
        finally:
            self._frames = saved

    @contextlib.contextmanager
    def argument_for(self, param: cst.Param) -> Iterator[Optional[cst.BaseExpression]]:
        """Inside the frame of the lambda that owns `param`: the expression its call passes (or
        the default), with the walk back in the caller's frames; None outside such a frame."""
        saved = self._frames
        for index in range(len(saved) - 1, -1, -1):
            call, function = saved[index]
            if any(p is param for p in (*function.params.posonly_params, *function.params.params, *function.params.kwonly_params)):
                self._frames = saved[:index]
                try:
                    yield self.facts.argument_for(call, function, param) or param.default
                finally:
                    self._frames = saved
                return
        yield None
