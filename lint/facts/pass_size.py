"""How much data an evaluation pass runs on, which is what a pass with autograd on costs: every
batch of a loader (in a loop that trains nothing), a tensor of known size, one batch drawn from a
loader, or data whose size the analysis cannot see. ML502 ranks its findings by it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from mlplint.lint.facts.core import ScriptFacts

if TYPE_CHECKING:
    from mlplint.lint.facts.evaluation import EvaluationPass

# A handful of samples (a plot, a smoke test, a few noise vectors), and what is large at once.
HANDFUL_ROWS = 16
SMALL_ELEMENTS = 100_000
LARGE_ROWS = 1_000
LARGE_ELEMENTS = 1_000_000
_MAX_STEPS = 20


@dataclass(frozen=True)
class PassSize:
    large: bool  # worth a warning: every batch of a loader, a large tensor, or a size not seen
    description: str  # "every batch of `test_loader`", "a 1×3×32×32 input"...


class PassSizes:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._cache: dict[cst.Call, PassSize] = {}

    def of(self, found: "EvaluationPass") -> PassSize:
        cached = self._cache.get(found.call)
        if cached is None:
            cached = self._cache[found.call] = self._size(found)
        return cached

    def _size(self, found: "EvaluationPass") -> PassSize:
        """A loop over data that trains nothing around the pass (or around a call of its
        function): large. Else the input's size: small (a handful of rows, or few values),
        large, or in between like a batch, which costs when the pass runs again and again (in a
        loop, each epoch) and not when it runs once. A size the analysis cannot see is large."""
        facts = self.facts
        loops = list(facts.training.loops_around(found.call))
        data_loop = next((loop for loop in loops if self._iterates_data(loop) and not self._trains(loop)), None)
        if data_loop is not None:
            return PassSize(True, f"every batch of `{_code(facts, data_loop.iter)}`")  # type: ignore[union-attr]
        shape = facts.tensors.shape_of(found.input)
        if shape and shape[0] is not None:
            known = all(isinstance(d, int) for d in shape)
            elements = math.prod(shape) if known else None  # type: ignore[arg-type]
            dims = "×".join(str(d) if isinstance(d, int) else "?" for d in shape)
            if shape[0] >= LARGE_ROWS or elements is not None and elements >= LARGE_ELEMENTS:  # type: ignore[operator]
                return PassSize(True, f"a {dims} input at once")
            small = shape[0] <= HANDFUL_ROWS or elements is not None and elements < SMALL_ELEMENTS  # type: ignore[operator]
            return PassSize(not small and bool(loops), f"a {dims} input" + (", again in a loop" if loops and not small else ""))
        drawn = self._drawn_from(found.input)
        if drawn is not None:
            if loops:
                return PassSize(True, f"a batch of `{drawn}`, again in a loop")
            return PassSize(False, f"one batch of `{drawn}`")
        what = f"`{_code(facts, found.input)}`" if found.input is not None else "its inputs"
        return PassSize(True, f"{what} (size unknown)")

    def _trains(self, loop: cst.CSTNode) -> bool:
        training = self.facts.training
        return any(training.is_backward(n) or training.is_optimizer_step(n) for n in training.reachable(loop))

    def _iterates_data(self, loop: cst.CSTNode) -> bool:
        """A `for` loop over anything but a count (`range(n)`) or a literal collection: a
        loader, a dataset, a list of batches; `range(len(data))` walks data by index."""
        if not isinstance(loop, cst.For):
            return False
        iterable = self._unwrapped(loop.iter)
        if isinstance(iterable, (cst.List, cst.Tuple, cst.Set, cst.Dict)):
            return False
        if isinstance(iterable, cst.Call):
            qualified = self.facts.qualname(iterable.func)
            if qualified == "builtins.range":
                return any(isinstance(a.value, cst.Call) and self.facts.qualname(a.value.func) == "builtins.len" for a in iterable.args)
            if isinstance(iterable.func, cst.Attribute) and iterable.func.attr.value in ("items", "keys", "values"):
                return False
        return True

    def _unwrapped(self, iterable: cst.BaseExpression) -> cst.BaseExpression:
        """The iterable inside `enumerate(...)`, `tqdm(...)`, `iter(...)`."""
        while isinstance(iterable, cst.Call) and iterable.args and self.facts.qualname(iterable.func) in (
                "builtins.enumerate", "builtins.iter", "builtins.reversed", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm"):
            iterable = iterable.args[0].value
        return iterable

    def _drawn_from(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """What the batch an input comes from was drawn from: `test_loader` for `images` after
        `images, labels = next(iter(test_loader))` (or `dataiter.next()`), through moves, casts
        and reshapes; the iterable of a data loop for its last batch used after the loop."""
        facts = self.facts
        for _ in range(_MAX_STEPS):
            if isinstance(expr, cst.Call):
                func = expr.func
                if facts.qualname(func) == "builtins.next" and expr.args:
                    return self._iterated(expr.args[0].value)
                if isinstance(func, cst.Attribute) and func.attr.value in ("next", "__next__"):
                    return self._iterated(func.value)
                if isinstance(func, cst.Attribute) and facts.qualname(func) is None:
                    expr = func.value  # `x.cuda()`, `x.type(Tensor)`, `x.view(n, -1)`
                elif facts.qualname(func) is not None and expr.args:
                    expr = expr.args[0].value  # `Variable(x)`, `torch.from_numpy(x)`, `np.clip(x, 0, 1)`
                else:
                    return None
            elif isinstance(expr, (cst.Attribute, cst.Subscript)):
                expr = expr.value  # `x.data`, `batch["A"]`
            elif isinstance(expr, cst.BinaryOperation):
                expr = expr.left  # `images + noise`
            elif isinstance(expr, cst.Name):
                bindings = [facts.bindings.get(node) for node in facts.reaching_nodes(expr)]
                if len(bindings) != 1 or bindings[0] is None:
                    return None
                binding = bindings[0]
                if binding.loop:
                    loop = facts.parent.get(binding.value)
                    return _code(facts, self._unwrapped(binding.value)) if isinstance(loop, cst.For) and self._iterates_data(loop) else None
                expr = binding.value
            else:
                return None
        return None

    def _iterated(self, iterator: cst.BaseExpression) -> str:
        """`test_loader` for `iter(test_loader)`, or for `dataiter` bound to it."""
        if isinstance(iterator, cst.Name):
            bindings = [self.facts.bindings.get(node) for node in self.facts.reaching_nodes(iterator)]
            if len(bindings) == 1 and bindings[0] is not None and not bindings[0].loop:
                iterator = bindings[0].value
        return _code(self.facts, self._unwrapped(iterator))


def _code(facts: ScriptFacts, expr: cst.CSTNode) -> str:
    text = " ".join(facts.module.code_for_node(expr).split())
    return text if len(text) <= 40 else text[:37] + "..."
