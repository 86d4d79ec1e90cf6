"""How much data an evaluation pass runs on, which is what a pass with autograd on costs: every
batch of a loader (in a loop that trains nothing), a tensor of known size, one batch drawn from a
loader, or data whose size the analysis cannot see. ML502 ranks its findings by it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import libcst as cst

from mlplint.lint.facts.core import ScriptFacts
from mlplint.lint.facts.index import terminal_name

if TYPE_CHECKING:
    from mlplint.lint.facts.evaluation import EvaluationPass

# A handful of samples (a plot, a smoke test, a few noise vectors: fewer rows than a usual
# minibatch, or few values), and what is large at once.
MINIBATCH_ROWS = 32
SMALL_ELEMENTS = 100_000
LARGE_ROWS = 1_000
LARGE_ELEMENTS = 1_000_000
_MAX_STEPS = 20
WRAPPERS = {"builtins.enumerate", "builtins.iter", "builtins.reversed", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm"}
# Inputs drawn on the spot rather than read: noise for a generator (a fill is not one: it is often
# a buffer the script fills with data).
GENERATED = ("numpy.random.", "torch.rand", "torch.normal")
# Last resort for an iterable the analysis cannot resolve (a parameter nobody passes).
DATA_NAME = re.compile(r"(loader|dataset|(^|_)(data|dl|ds|batches)$)", re.IGNORECASE)


@dataclass(frozen=True)
class PassSize:
    large: bool  # worth a warning: every batch of a loader, a large tensor, or a size not seen
    description: str  # "every batch of `test_loader`", "a 1×3×32×32 input"...


class PassSizes:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._cache: dict[cst.Call, PassSize] = {}
        self._sources: dict[tuple[cst.BaseExpression, tuple[int, ...]], Optional[tuple[str, Any]]] = {}

    def of(self, found: "EvaluationPass") -> PassSize:
        cached = self._cache.get(found.call)
        if cached is None:
            cached = self._cache[found.call] = self._size(found)
        return cached

    def _size(self, found: "EvaluationPass") -> PassSize:
        """A loop over data that trains nothing around the pass (or around a call of its
        function): large. Else the input's size: small (a handful of rows, or few values),
        large, or in between like a batch, which costs when the pass runs again and again (in a
        loop, each epoch) and not when it runs once. Random noise of a size the analysis cannot
        see is a sample's few latent vectors; other inputs of a size it cannot see are large."""
        facts = self.facts
        loops = list(facts.training.loops_around(found.call))
        for loop in loops:
            kind = self._iterated_kind(loop)
            if kind is not None and not self.facts.training.trains_in(loop):
                return PassSize(True, f"every {kind} of `{_code(facts, self._unwrapped(loop.iter))}`")  # type: ignore[attr-defined]
        source = self._source(found.input, _MAX_STEPS) if found.input is not None else None
        if source is not None and source[0] == "shape":
            shape = source[1]
            known = all(isinstance(d, int) for d in shape)
            elements = math.prod(shape) if known else None  # type: ignore[arg-type]
            dims = "×".join(str(d) if isinstance(d, int) else "?" for d in shape)
            if shape[0] >= LARGE_ROWS or elements is not None and elements >= LARGE_ELEMENTS:  # type: ignore[operator]
                return PassSize(True, f"a {dims} input at once")
            small = shape[0] < MINIBATCH_ROWS or elements is not None and elements < SMALL_ELEMENTS  # type: ignore[operator]
            return PassSize(not small and bool(loops), f"a {dims} input" + (" in a loop" if loops and not small else ""))
        if source is not None and source[0] == "generated":
            return PassSize(False, f"`{source[1]}()` values")
        if source is not None:
            if loops:
                return PassSize(True, f"a batch of `{source[1]}` in a loop")
            return PassSize(False, f"one batch of `{source[1]}`")
        what = f"`{_code(facts, found.input)}`" if found.input is not None else "its inputs"
        return PassSize(True, f"{what} (size unknown)")

    def _iterated_kind(self, loop: cst.CSTNode) -> Optional[str]:
        """"batch" for a `for` loop over a loader, "item" over a dataset (a local Dataset class,
        `range(len(data))`), None over anything else (a count, a string, a list of settings).
        An iterable the analysis cannot resolve counts by its name (`val_loader`, `dataset`)."""
        if not isinstance(loop, cst.For):
            return None
        facts = self.facts
        iterables = [self._unwrapped(loop.iter)]
        if isinstance(iterables[0], cst.Call) and facts.qualname(iterables[0].func) == "builtins.zip":
            iterables = [self._unwrapped(arg.value) for arg in iterables[0].args]
        for iterable in iterables:
            if isinstance(iterable, cst.Call) and facts.qualname(iterable.func) == "builtins.range":
                if any(isinstance(a.value, cst.Call) and facts.qualname(a.value.func) == "builtins.len" for a in iterable.args):
                    return "item"
                continue
            for origin in facts.origins(iterable):
                if facts.kind_of(origin) == "loader":
                    return "batch"
                if isinstance(origin, cst.Call):
                    qualified = facts.qualname(origin.func)
                    if qualified is not None and qualified.startswith(("torchvision.datasets.", "torch.utils.data.")):
                        return "item"
                    if any(facts.method(cls, "__getitem__") for cls in facts.local_definitions(origin.func, cst.ClassDef)):
                        return "item"
                elif isinstance(origin, (cst.Name, cst.Attribute)) and DATA_NAME.search(terminal_name(origin)):
                    name = terminal_name(origin).lower()
                    return "batch" if "load" in name or name.endswith("dl") else "item"
        return None

    def _unwrapped(self, iterable: cst.BaseExpression) -> cst.BaseExpression:
        """The iterable inside `enumerate(...)`, `tqdm(...)`, `iter(...)`."""
        while isinstance(iterable, cst.Call) and iterable.args and self.facts.qualname(iterable.func) in WRAPPERS:
            iterable = iterable.args[0].value
        return iterable

    def _source(self, expr: cst.BaseExpression, steps: int, path: tuple[int, ...] = ()) -> Optional[tuple[str, Any]]:
        """How large an input is: ("shape", (25, 1, 28, 28)) where the tensor analysis knows its
        rows, else where it comes from: ("batch", "test_loader") for `images` after
        `images, labels = next(iter(test_loader))` (or `dataiter.next()`), or the last batch of a
        data loop used after it; ("generated", "np.random.normal") for noise. Followed
        through moves, casts, reshapes, arithmetic, models (an output has its input's rows),
        element access, unpacking (`path`) and local functions' returns. None when it cannot tell."""
        key = (expr, path)
        if key in self._sources:
            return self._sources[key]
        self._sources[key] = None  # met again while being answered: adds nothing
        found = self._sources[key] = self._compute_source(expr, steps, path)
        return found

    def _compute_source(self, expr: cst.BaseExpression, steps: int, path: tuple[int, ...]) -> Optional[tuple[str, Any]]:
        facts = self.facts
        if steps == 0:
            return None
        shape = facts.tensors.shape_of(expr) if not path else None
        if shape and shape[0] is not None:
            return "shape", shape
        if isinstance(expr, (cst.Tuple, cst.List)) and path:
            return self._source(expr.elements[path[0]].value, steps - 1, path[1:]) if path[0] < len(expr.elements) else None
        if isinstance(expr, cst.Call):
            func, qualified = expr.func, facts.qualname(expr.func)
            if qualified == "builtins.next" and expr.args:
                return "batch", self._iterated(expr.args[0].value)
            if isinstance(func, cst.Attribute) and func.attr.value in ("next", "__next__"):
                return "batch", self._iterated(func.value)
            if qualified is not None and qualified.startswith(GENERATED):
                return "generated", facts.spelling(func)
            functions = facts.local_definitions(func, cst.FunctionDef)
            if functions:
                found = {self._source(value, steps - 1, path) for f in functions for value in facts.returns.get(f, [])}
                return found.pop() if len(found) == 1 else None
            if isinstance(func, cst.Attribute) and qualified is None:
                return self._source(func.value, steps - 1)  # `x.cuda()`, `x.type(Tensor)`, `x.view(n, -1)`
            if expr.args and not facts.local_definitions(func, cst.ClassDef):
                return self._source(expr.args[0].value, steps - 1)  # `Variable(x)`, `FloatTensor(x)`, `generator(z)`
            return None
        if isinstance(expr, (cst.Attribute, cst.Subscript)):
            return self._source(expr.value, steps - 1)  # `x.data`, `batch["A"]`
        if isinstance(expr, cst.BinaryOperation):
            return self._source(expr.left, steps - 1) or self._source(expr.right, steps - 1)  # `images + noise`, `0.75 * noise`
        if not isinstance(expr, cst.Name):
            return None
        found = set()
        for node in facts.reaching_nodes(expr):
            binding = facts.bindings.get(node)
            if binding is None:
                return None
            if binding.loop:
                loop = facts.parent.get(binding.value)
                if loop is None or self._iterated_kind(loop) is None:
                    return None
                found.add(("batch", _code(facts, self._unwrapped(binding.value))))
            else:
                found.add(self._source(binding.value, steps - 1, binding.path + path))
        return found.pop() if len(found) == 1 else None

    def _iterated(self, iterator: cst.BaseExpression) -> str:
        """`test_loader` for `iter(test_loader)`, or for `dataiter` bound to it."""
        if isinstance(iterator, cst.Name):
            bindings = [self.facts.bindings.get(node) for node in self.facts.reaching_nodes(iterator)]
            if len(bindings) == 1 and bindings[0] is not None and not bindings[0].loop:
                iterator = bindings[0].value
        return _code(self.facts, self._unwrapped(iterator))


def _code(facts: ScriptFacts, expr: cst.CSTNode) -> str:
    text = " ".join(facts.spelling(expr).split())
    return text if len(text) <= 40 else text[:37] + "..."
