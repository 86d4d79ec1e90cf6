"""Value ranges: what values an array or tensor can hold, as far as the script states it.

`range_of(expr)` follows an expression back through assignments, tuple unpacking, function
returns, datasets, loaders and splits to the NumPy/torch draws and literals that made it, and
carries an interval through the arithmetic on the way: `rng.choice([4, 6, 8])` is [4, 8],
`cyl * 30 + rng.normal(0, 20, n)` is about [60, 300], and `np.column_stack([...])` keeps one range
per column. A normal draw counts as mean +- 3 std. Anything the walk cannot see through (a CSV
column, a scaler's output, an unknown call, a division by something that may be 0) is unknown:
`range_of` returns None and rules stay quiet.

Each (expression, path) is resolved once and memoised; an expression met again while it is being
resolved (a loop-carried update such as `x = x * 2`) is unknown, so the walk is linear in the file.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts, nodes_within
from mlplint.lint.facts.data import CONVERTERS, RANDOM_GENERATORS
from mlplint.lint.facts.frames import LambdaFrames

PathItem = Union[int, str]
_IN_PROGRESS = object()
_MAX_DEPTH = 60

# Calls whose result has the range of their first argument (values untouched).
SAME_VALUES = CONVERTERS | {
    "numpy.round", "numpy.around", "numpy.rint", "numpy.floor", "numpy.ceil", "numpy.trunc", "torch.round",
    "torch.floor", "torch.ceil", "torch.flatten", "torch.squeeze", "torch.unsqueeze", "torch.reshape",
    "numpy.reshape", "numpy.ravel", "numpy.squeeze", "numpy.expand_dims", "numpy.transpose", "numpy.sort",
    "numpy.random.permutation", "sklearn.utils.shuffle", "pandas.Series", "numpy.copy",
}
SAME_VALUE_METHODS = {
    "astype", "float", "double", "half", "bfloat16", "long", "int", "short", "type", "to", "cuda", "cpu", "numpy",
    "to_numpy", "detach", "clone", "copy", "contiguous", "view", "reshape", "unsqueeze", "squeeze", "flatten",
    "ravel", "round", "floor", "ceil", "requires_grad_", "pin_memory", "view_as", "reshape_as", "transpose",
    "permute", "t", "sample", "dropna", "head", "tail", "sort_values", "reset_index", "__array__",
}
SAME_VALUE_ATTRIBUTES = {"values", "T", "data", "mT", "real"}
BOUNDED_FUNCTIONS = {
    "torch.sigmoid": (0.0, 1.0), "torch.nn.functional.sigmoid": (0.0, 1.0), "scipy.special.expit": (0.0, 1.0),
    "torch.tanh": (-1.0, 1.0), "numpy.tanh": (-1.0, 1.0), "numpy.sin": (-1.0, 1.0), "numpy.cos": (-1.0, 1.0),
    "torch.sin": (-1.0, 1.0), "torch.cos": (-1.0, 1.0), "torch.nn.functional.softmax": (0.0, 1.0),
    "torch.softmax": (0.0, 1.0), "torch.bernoulli": (0.0, 1.0), "numpy.random.beta": (0.0, 1.0),
}
MONOTONE_FUNCTIONS: dict[str, tuple[Callable[[float], float], float]] = {
    # function, smallest argument it is defined for
    "numpy.log": (math.log, 1e-300), "torch.log": (math.log, 1e-300), "numpy.log10": (math.log10, 1e-300),
    "torch.log10": (math.log10, 1e-300), "numpy.log2": (math.log2, 1e-300), "torch.log2": (math.log2, 1e-300),
    "numpy.log1p": (math.log1p, -1 + 1e-12), "torch.log1p": (math.log1p, -1 + 1e-12),
    "numpy.sqrt": (math.sqrt, 0.0), "torch.sqrt": (math.sqrt, 0.0),
    "numpy.exp": (math.exp, -math.inf), "torch.exp": (math.exp, -math.inf),
}
STANDARD_DRAWS = {"torch.randn", "torch.randn_like", "numpy.random.randn", "numpy.random.standard_normal"}
UNIT_DRAWS = {"torch.rand", "torch.rand_like", "numpy.random.rand", "numpy.random.random", "numpy.random.random_sample"}
# Methods of a numpy Generator / RandomState, by the numpy.random function they behave like.
GENERATOR_DRAWS = {
    "normal": "numpy.random.normal", "standard_normal": "numpy.random.standard_normal", "randn": "numpy.random.randn",
    "uniform": "numpy.random.uniform", "random": "numpy.random.random", "rand": "numpy.random.rand",
    "integers": "numpy.random.integers", "randint": "numpy.random.randint", "choice": "numpy.random.choice",
    "exponential": "numpy.random.exponential", "poisson": "numpy.random.poisson", "binomial": "numpy.random.binomial",
    "beta": "numpy.random.beta", "permutation": "numpy.random.permutation",
}
COLUMN_STACKS = {"numpy.column_stack"}
AXIS_STACKS = {"numpy.stack", "torch.stack"}  # columns when stacked along axis 1 / -1
JOINS = {"numpy.concatenate", "numpy.hstack", "numpy.vstack", "torch.cat", "torch.concat", "torch.hstack", "torch.vstack"}
SIDEWAYS_JOINS = {"numpy.hstack", "torch.hstack"}
SPLITS = {"sklearn.model_selection.train_test_split", "sklearn.utils.shuffle"}
LOADER_WRAPPERS = {"builtins.iter", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "builtins.list"}


@dataclass(frozen=True)
class ValueRange:
    """Values lie in [low, high]; `columns` gives one range per column when known (a column
    stack or a DataFrame built from named arrays), with `names` for the named ones."""

    low: float
    high: float
    columns: tuple["ValueRange", ...] = ()
    names: tuple[str, ...] = ()

    @property
    def magnitude(self) -> float:
        return max(abs(self.low), abs(self.high))

    def hull(self, other: "ValueRange") -> "ValueRange":
        return ValueRange(min(self.low, other.low), max(self.high, other.high))

    def plain(self) -> "ValueRange":
        return ValueRange(self.low, self.high)

    def column(self, key: PathItem) -> Optional["ValueRange"]:
        if isinstance(key, str):
            return self.columns[self.names.index(key)] if key in self.names else None
        return self.columns[key] if -len(self.columns) <= key < len(self.columns) else None


def _point(value: float) -> ValueRange:
    return ValueRange(float(value), float(value))


def _hull(ranges: list[Optional[ValueRange]]) -> Optional[ValueRange]:
    if not ranges or any(r is None for r in ranges):
        return None
    low, high = min(r.low for r in ranges), max(r.high for r in ranges)
    return ValueRange(low, high) if math.isfinite(low) and math.isfinite(high) else None


def _with_columns(columns: list[Optional[ValueRange]], names: tuple[str, ...] = ()) -> Optional[ValueRange]:
    whole = _hull(columns)
    return ValueRange(whole.low, whole.high, tuple(c.plain() for c in columns), names) if whole else None


def _arith(operator: cst.BaseBinaryOp, a: ValueRange, b: ValueRange) -> Optional[ValueRange]:
    if isinstance(operator, cst.Add):
        return ValueRange(a.low + b.low, a.high + b.high)
    if isinstance(operator, cst.Subtract):
        return ValueRange(a.low - b.high, a.high - b.low)
    if isinstance(operator, cst.Multiply):
        products = [a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high]
        return ValueRange(min(products), max(products))
    if isinstance(operator, (cst.Divide, cst.FloorDivide)):
        if b.low <= 0 <= b.high:
            return None
        quotients = [a.low / b.low, a.low / b.high, a.high / b.low, a.high / b.high]
        return ValueRange(min(quotients), max(quotients))
    if isinstance(operator, cst.Power) and b.low == b.high and float(b.low).is_integer() and 0 <= b.low <= 8:
        exponent = int(b.low)
        values = [a.low**exponent, a.high**exponent] + ([0.0] if a.low < 0 < a.high else [])
        return ValueRange(min(values), max(values))
    return None


def _combine(operator: cst.BaseBinaryOp, a: ValueRange, b: ValueRange) -> Optional[ValueRange]:
    """Interval arithmetic, column by column when one side (or both, alike) has columns."""
    if a.columns and b.columns and len(a.columns) != len(b.columns):
        return _arith(operator, a.plain(), b.plain())
    if a.columns or b.columns:
        count = len(a.columns or b.columns)
        left = a.columns or (a,) * count
        right = b.columns or (b,) * count
        return _with_columns([_arith(operator, x, y) for x, y in zip(left, right)], a.names or b.names)
    return _arith(operator, a, b)


def _map(value: Optional[ValueRange], function: Callable[[ValueRange], Optional[ValueRange]]) -> Optional[ValueRange]:
    if value is None:
        return None
    if value.columns:
        return _with_columns([function(c) for c in value.columns], value.names)
    return function(value)


class MagnitudeAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._memo: dict[tuple, object] = {}
        self._carried: dict[cst.Name, bool] = {}
        self._depth = 0
        self._lambdas = LambdaFrames(facts)

    def range_of(self, expr: Optional[cst.BaseExpression]) -> Optional[ValueRange]:
        """The range of values expr holds, or None when the script does not state it."""
        return self._range(expr, ()) if expr is not None else None

    # ------------------------------------------------------------------ the walk

    def _range(self, expr: cst.BaseExpression, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        key = (expr, path, self._lambdas.key)
        found = self._memo.get(key)
        if found is _IN_PROGRESS or self._depth > _MAX_DEPTH:
            return None
        if key in self._memo:
            return found  # type: ignore[return-value]
        self._memo[key] = _IN_PROGRESS
        self._depth += 1
        try:
            result = self._dispatch(expr, path)
        finally:
            self._depth -= 1
        self._memo[key] = result
        return result

    def _dispatch(self, expr: cst.BaseExpression, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        facts = self.facts
        if isinstance(expr, (cst.Integer, cst.Float)):
            return self._select(_point(expr.evaluated_value), path)
        if isinstance(expr, cst.Name):
            if expr.value in ("True", "False"):
                return _point(expr.value == "True")
            return self._name(expr, path)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
            inner = self._range(expr.expression, path)
            if isinstance(expr.operator, cst.Plus):
                return inner
            return _map(inner, lambda r: ValueRange(-r.high, -r.low))
        if isinstance(expr, cst.BinaryOperation):
            left, right = self._range(expr.left, path), self._range(expr.right, path)
            return _combine(expr.operator, left, right) if left is not None and right is not None else None
        if isinstance(expr, (cst.Tuple, cst.List)):
            if path and isinstance(path[0], int):
                return self._range(expr.elements[path[0]].value, path[1:]) if -len(expr.elements) <= path[0] < len(expr.elements) else None
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return None
            return _hull([self._range(e.value, ()) for e in expr.elements])
        if isinstance(expr, cst.Dict):
            return self._frame(expr, path)
        if isinstance(expr, cst.Attribute):
            origins = [o for o in facts.origins(expr) if o is not expr]
            if origins:
                return _hull([self._range(o, path) for o in origins])
            if expr.attr.value in SAME_VALUE_ATTRIBUTES:
                return self._range(expr.value, path)
            return None
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, path)
        if isinstance(expr, cst.Call):
            return self._call(expr, path)
        return None

    @staticmethod
    def _select(value: Optional[ValueRange], path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        """Elements of an array: an int picks rows (same range), a string a named column."""
        for item in path:
            if value is None:
                return None
            if isinstance(item, str):
                value = value.column(item)
        return value

    @functools.cached_property
    def _mutated(self) -> set[str]:
        """Names whose values change in place somewhere (`X /= 255`, `X[:, 0] = ...`, `x.div_(s)`):
        their assignments do not tell their range."""
        mutated = set()
        for node in self.facts.effects.get(self.facts.module, []):
            targets: list[cst.BaseExpression] = []
            if isinstance(node, cst.AugAssign):
                targets = [node.target]
            elif isinstance(node, cst.Assign):
                targets = [t.target for t in node.targets if isinstance(t.target, cst.Subscript)]
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value.endswith("_") \
                    and not node.func.attr.value.startswith("_"):
                targets = [node.func.value]
            for target in targets:
                while isinstance(target, (cst.Subscript, cst.Attribute)):
                    target = target.value
                if isinstance(target, cst.Name):
                    mutated.add(target.value)
        return mutated

    def _name(self, name: cst.Name, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        facts = self.facts
        if name.value in self._mutated:
            return None
        found: list[Optional[ValueRange]] = []
        for node in facts.reaching_nodes(name):
            binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is not None and binding.loop:
                found.append(self._element(binding.value, binding.path + path))
            elif binding is not None:
                if self._loop_carried(node, binding.value):
                    return None
                found.append(self._range(binding.value, binding.path + path))
            elif isinstance(node, cst.Param):
                with self._lambdas.argument_for(node) as argument:
                    if argument is not None:  # a parameter of the lambda call being followed
                        found.append(self._range(argument, path))
                if argument is None:
                    origins = [o for o in facts.origins(name) if o is not name]
                    if not origins:
                        return None
                    found.extend(self._range(o, path) for o in origins)
            else:
                return None
        if len(found) == 1:
            return found[0]
        return _hull(found)

    def _loop_carried(self, target: cst.Name, value: cst.BaseExpression) -> bool:
        """`x = x * 2` inside a loop: each iteration changes the range, so no range is stated
        (answered once per assignment)."""
        if target not in self._carried:
            self._carried[target] = bool(self.facts.enclosing_loops(target)) and any(
                read.value == target.value for read in nodes_within(value, cst.Name))
        return self._carried[target]

    def _subscript(self, expr: cst.Subscript, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        facts = self.facts
        elements = expr.slice
        if len(elements) == 1 and isinstance(elements[0].slice, cst.Index):
            index = elements[0].slice.value
            key = facts.literal(index)
            if isinstance(key, (int, str)) and not isinstance(key, bool):
                return self._range(expr.value, (key,) + path)
            if isinstance(index, cst.List):  # df[["a", "b"]]
                keys = [facts.literal(e.value) for e in index.elements]
                frame = self._range(expr.value, ())
                if frame is None or not all(isinstance(k, str) for k in keys):
                    return None
                return self._select(_with_columns([frame.column(k) for k in keys], tuple(keys)), path)
            return self._range(expr.value, path)  # rows picked by an index array or a mask
        slices = [e.slice for e in elements]
        whole = self._range(expr.value, ())
        if whole is not None and len(slices) == 2 and isinstance(slices[0], cst.Slice) and isinstance(slices[1], cst.Index):
            column = facts.literal(slices[1].value)  # X[:, 0]
            if isinstance(column, int) and not isinstance(column, bool) and whole.columns:
                return self._select(whole.column(column), path)
            return self._select(whole.plain(), path)
        return self._select(whole, path)

    def _frame(self, mapping: cst.Dict, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        """`{"cyl": cyl, "disp": disp}`, as given to pandas.DataFrame: one named column each."""
        keys, columns = [], []
        for element in mapping.elements:
            key = self.facts.literal(element.key) if isinstance(element, cst.DictElement) else None
            if not isinstance(key, str):
                return None
            keys.append(key)
            columns.append(self._range(element.value, ()))
        if path and isinstance(path[0], str):
            return self._select(columns[keys.index(path[0])], path[1:]) if path[0] in keys else None
        return self._select(_with_columns(columns, tuple(keys)), path)

    # ------------------------------------------------------------------ calls

    def _call(self, call: cst.Call, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        facts = self.facts
        qualified = facts.qualname(call.func)
        if qualified is not None:
            return self._api(call, qualified, path)
        func = call.func
        if isinstance(func, cst.Attribute):
            method, receiver = func.attr.value, func.value
            if method in GENERATOR_DRAWS and any(
                isinstance(o, cst.Call) and facts.qualname(o.func) in RANDOM_GENERATORS for o in facts.origins(receiver)
            ):
                return self._select(self._draw(call, GENERATOR_DRAWS[method], generator=True), path)
            if method in SAME_VALUE_METHODS:
                return self._range(receiver, path)
            if method in ("clip", "clamp", "clip_", "clamp_"):
                return self._clip(self._range(receiver, path), call, 0)
            if method in ("mean", "median", "max", "min") and not call.args:
                whole = self._range(receiver, ())
                return whole.plain() if whole is not None else None
            if method == "abs":
                return _map(self._range(receiver, path), _absolute)
            if method == "drop":
                return self._drop(self._range(receiver, ()), call, path)
        lambdas = self._lambdas.lambdas_called(call)
        if lambdas:
            found = []
            for function in lambdas:
                with self._lambdas.entered(call, function):
                    found.append(self._range(function.body, path))
            return _hull(found)
        origins = [o for o in facts.origins(call) if o is not call]  # a local function's returns
        return _hull([self._range(o, path) for o in origins]) if origins else None

    def _api(self, call: cst.Call, qualified: str, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        facts = self.facts
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        first = args[0] if args else facts.argument(call, None, "data") or facts.argument(call, None, "input")
        if qualified in SPLITS:
            if path and isinstance(path[0], int):
                step = 2 if qualified.endswith("train_test_split") else 1
                return self._range(args[path[0] // step], path[1:]) if path[0] // step < len(args) else None
            return self._range(first, ()) if len(args) == 1 and first is not None else None
        if qualified == "pandas.DataFrame" and first is not None:
            frame = self._range(first, ())
            columns = facts.argument(call, 2, "columns")
            if frame is not None and isinstance(columns, (cst.List, cst.Tuple)) and len(frame.columns) == len(columns.elements):
                keys = tuple(facts.literal(e.value) for e in columns.elements)
                if all(isinstance(k, str) for k in keys):
                    frame = ValueRange(frame.low, frame.high, frame.columns, keys)
            return self._select(frame, path)
        if qualified in SAME_VALUES:
            return self._range(first, path) if first is not None else None
        if qualified in COLUMN_STACKS or qualified in AXIS_STACKS or qualified in JOINS:
            return self._select(self._stack(call, qualified, first), path)
        if qualified in BOUNDED_FUNCTIONS:
            return self._select(ValueRange(*BOUNDED_FUNCTIONS[qualified]), path)
        if qualified in MONOTONE_FUNCTIONS:
            function, domain = MONOTONE_FUNCTIONS[qualified]
            return _map(self._range(first, path) if first is not None else None, lambda r: _monotone(r, function, domain))
        if qualified in ("numpy.abs", "numpy.absolute", "torch.abs"):
            return _map(self._range(first, path) if first is not None else None, _absolute)
        if qualified in ("numpy.clip", "torch.clamp", "torch.clip"):
            return self._clip(self._range(first, path) if first is not None else None, call, 1)
        if qualified in ("numpy.where", "torch.where") and len(args) == 3:
            return _hull([self._range(args[1], path), self._range(args[2], path)])
        if qualified in ("numpy.maximum", "numpy.minimum", "torch.maximum", "torch.minimum") and len(args) == 2:
            a, b = self._range(args[0], path), self._range(args[1], path)
            if a is None or b is None:
                return None
            pick = max if qualified.endswith("maximum") else min
            return ValueRange(pick(a.low, b.low), pick(a.high, b.high))
        return self._select(self._fill(call, qualified, args) or self._draw(call, qualified), path)

    def _fill(self, call: cst.Call, qualified: str, args: list) -> Optional[ValueRange]:
        """Constant arrays and ranges: zeros, ones, full, arange, linspace."""
        short = qualified.rsplit(".", 1)[-1]
        if not qualified.startswith(("numpy.", "torch.")) or qualified.count(".") != 1:
            return None
        if short in ("zeros", "zeros_like", "empty_like"):
            return _point(0.0) if short != "empty_like" else None
        if short in ("ones", "ones_like"):
            return _point(1.0)
        if short in ("full", "full_like"):
            return self._number(self.facts.argument(call, 1, "fill_value"))
        if short in ("arange", "linspace"):
            bounds = [self._number(a) for a in args[:2]]
            if short == "arange" and len(args) == 1:
                bounds = [_point(0.0), bounds[0]]
            return _hull(bounds) if len(bounds) == 2 else None
        return None

    def _number(self, expr: Optional[cst.BaseExpression]) -> Optional[ValueRange]:
        value = self.facts.literal(expr) if expr is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _point(value)
        return self._range(expr, ()) if expr is not None else None

    def _draw(self, call: cst.Call, draw: str, generator: bool = False) -> Optional[ValueRange]:
        """The typical range of a random draw: mean +- 3 std for normals, the bounds otherwise."""
        facts = self.facts
        argument = lambda position, keyword: facts.argument(call, position, keyword)  # noqa: E731
        given = lambda position, keyword, default: (  # noqa: E731
            self._number(argument(position, keyword)) if argument(position, keyword) is not None else _point(default))
        if draw in STANDARD_DRAWS:
            return ValueRange(-3.0, 3.0)
        if draw in UNIT_DRAWS:
            return ValueRange(0.0, 1.0)
        if draw in ("numpy.random.normal", "torch.normal"):
            names_ = ("mean", "std") if draw == "torch.normal" else ("loc", "scale")
            centre, spread = given(0, names_[0], 0.0), given(1, names_[1], 1.0)
            if centre is None or spread is None:
                return None
            return ValueRange(centre.low - 3 * spread.magnitude, centre.high + 3 * spread.magnitude)
        if draw == "numpy.random.uniform":
            return _hull([given(0, "low", 0.0), given(1, "high", 1.0)])
        if draw in ("numpy.random.randint", "numpy.random.integers", "torch.randint"):
            return self._integers(call, draw)
        if draw == "numpy.random.choice":
            options = argument(0, "a")
            count = facts.literal(options)
            if isinstance(count, int) and not isinstance(count, bool):
                return ValueRange(0.0, float(count - 1))
            return self._range(options, ()) if options is not None else None
        if draw == "numpy.random.exponential":
            scale = given(0, "scale", 1.0)
            return ValueRange(0.0, 7 * scale.magnitude) if scale is not None else None
        if draw == "numpy.random.poisson":
            lam = given(0, "lam", 1.0)
            return ValueRange(0.0, lam.high + 4 * math.sqrt(max(lam.high, 0.0)) + 1) if lam is not None else None
        if draw == "numpy.random.binomial":
            trials = given(0, "n", 1.0)
            return ValueRange(0.0, trials.high) if trials is not None else None
        if draw == "numpy.random.permutation":
            count = facts.literal(argument(0, "x"))
            if isinstance(count, int) and not isinstance(count, bool):
                return ValueRange(0.0, float(count - 1))
            return self._range(argument(0, "x"), ()) if argument(0, "x") is not None else None
        if draw in BOUNDED_FUNCTIONS:
            return ValueRange(*BOUNDED_FUNCTIONS[draw])
        return None

    def _integers(self, call: cst.Call, draw: str) -> Optional[ValueRange]:
        """randint(low, high) / randint(high): high exclusive (torch.randint(low, high, size) or
        torch.randint(high, size))."""
        facts = self.facts
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        low, high = facts.argument(call, None, "low"), facts.argument(call, None, "high")
        if draw == "torch.randint" and low is None and high is None:
            numbers = [a for a in args if not isinstance(a, (cst.Tuple, cst.List))]
            low, high = (numbers[0], numbers[1]) if len(numbers) >= 2 else (None, numbers[0] if numbers else None)
        elif low is None and high is None:
            low, high = (args[0], args[1]) if len(args) >= 2 else (None, args[0] if args else None)
        elif high is None and low is not None:
            low, high = None, low
        bounds = [self._number(low) if low is not None else _point(0.0), self._number(high) if high is not None else None]
        if bounds[0] is None or bounds[1] is None:
            return None
        closed = facts.literal(facts.argument(call, None, "endpoint")) is True
        return ValueRange(bounds[0].low, bounds[1].high - (0 if closed else 1))

    def _stack(self, call: cst.Call, qualified: str, first: Optional[cst.BaseExpression]) -> Optional[ValueRange]:
        if not isinstance(first, (cst.List, cst.Tuple)) or any(isinstance(e, cst.StarredElement) for e in first.elements):
            return None
        parts = [self._range(e.value, ()) for e in first.elements]
        if any(p is None for p in parts):
            return None
        axis = self.facts.literal(self.facts.argument(call, 1, "dim" if qualified.startswith("torch.") else "axis"))
        if qualified in COLUMN_STACKS or (qualified in AXIS_STACKS and axis in (1, -1)):
            return _with_columns([p.plain() for p in parts])
        if qualified in SIDEWAYS_JOINS or (qualified in JOINS and axis in (1, -1)):
            return _with_columns([c for p in parts for c in (p.columns or (p,))])
        widths = {len(p.columns) for p in parts}
        if len(widths) == 1 and widths != {0}:  # rows stacked: column by column
            return _with_columns([_hull([p.columns[i] for p in parts]) for i in range(widths.pop())])
        return _hull(parts)

    def _clip(self, value: Optional[ValueRange], call: cst.Call, offset: int) -> Optional[ValueRange]:
        low = self.facts.literal(self.facts.argument(call, offset, "min") or self.facts.argument(call, None, "a_min"))
        high = self.facts.literal(self.facts.argument(call, offset + 1, "max") or self.facts.argument(call, None, "a_max"))
        numbers = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        if value is None:
            return ValueRange(float(low), float(high)) if numbers(low) and numbers(high) else None

        def clipped(r: ValueRange) -> ValueRange:
            lo = max(r.low, low) if numbers(low) else r.low
            hi = min(r.high, high) if numbers(high) else r.high
            return ValueRange(min(lo, hi), hi)
        return _map(value, clipped)

    def _drop(self, frame: Optional[ValueRange], call: cst.Call, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        """`df.drop(columns=["price"])` / `df.drop("price", axis=1)`: the other named columns."""
        if frame is None or not frame.names:
            return None
        dropped = self.facts.argument(call, None, "columns") or self.facts.argument(call, 0, "labels")
        keys = [self.facts.literal(e.value) for e in dropped.elements] if isinstance(dropped, (cst.List, cst.Tuple)) \
            else [self.facts.literal(dropped)]
        kept = [(n, c) for n, c in zip(frame.names, frame.columns) if n not in keys]
        if not kept or len(kept) == len(frame.names):
            return None
        return self._select(_with_columns([c for _, c in kept], tuple(n for n, _ in kept)), path)

    # ------------------------------------------------------------------ iteration

    def _element(self, iterable: cst.BaseExpression, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        """What a `for` target gets from iterating `iterable` (path selects inside the item)."""
        facts = self.facts
        found: list[Optional[ValueRange]] = []
        for origin in facts.origins(iterable):
            qualified = facts.qualname(origin.func) if isinstance(origin, cst.Call) else None
            args = [a.value for a in origin.args if a.keyword is None and not a.star] if isinstance(origin, cst.Call) else []
            if qualified == "builtins.enumerate" and args and path and path[0] == 1:
                found.append(self._element(args[0], path[1:]))
            elif qualified == "builtins.zip" and path and isinstance(path[0], int) and path[0] < len(args):
                found.append(self._element(args[path[0]], path[1:]))
            elif qualified in LOADER_WRAPPERS and args:
                found.append(self._element(args[0], path))
            elif qualified == names.DATALOADER:
                dataset = facts.argument(origin, 0, "dataset")
                found.append(self._dataset_item(dataset, path) if dataset is not None else None)
            elif qualified == "builtins.range":
                found.append(None)
            else:
                found.append(self._range(origin, path))  # rows of an array
        return _hull(found) if len(found) != 1 else found[0]

    def _dataset_item(self, dataset: cst.BaseExpression, path: tuple[PathItem, ...]) -> Optional[ValueRange]:
        facts = self.facts
        found: list[Optional[ValueRange]] = []
        for origin in facts.origins(dataset):
            qualified = facts.qualname(origin.func) if isinstance(origin, cst.Call) else None
            args = [a.value for a in origin.args if a.keyword is None and not a.star] if isinstance(origin, cst.Call) else []
            if qualified == "torch.utils.data.TensorDataset" and path and isinstance(path[0], int) and path[0] < len(args):
                found.append(self._range(args[path[0]], path[1:]))
            elif qualified == "torch.utils.data.Subset" and args:
                found.append(self._dataset_item(args[0], path))
            elif isinstance(origin, cst.Call) and qualified is None and facts.local_definitions(origin.func, cst.ClassDef):
                for cls in facts.local_definitions(origin.func, cst.ClassDef):
                    getitem = facts.method(cls, "__getitem__")
                    returned = facts.returns.get(getitem, []) if getitem else []
                    if not returned:
                        return None
                    found.extend(self._range(value, path) for value in returned)
            else:
                found.append(None)
        return _hull(found) if len(found) != 1 else found[0]


def _absolute(r: ValueRange) -> ValueRange:
    if r.low >= 0:
        return r.plain()
    if r.high <= 0:
        return ValueRange(-r.high, -r.low)
    return ValueRange(0.0, max(-r.low, r.high))


def _monotone(r: ValueRange, function: Callable[[float], float], domain: float) -> Optional[ValueRange]:
    if r.low < domain:
        return None
    try:
        return ValueRange(function(r.low), function(r.high))
    except (OverflowError, ValueError):
        return None
