"""Where tensors are made, for the tensor analysis (`tensors.py`): the abstract value itself, the
creation calls (draws, fills, ranges, datasets, CSV tables, a model's forward pass) with the
shape their size arguments give and the values they can hold, and the shape-only methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import libcst as cst

from mlplint.lint.facts import intervals, models, names, shapes
from mlplint.lint.facts.core import ScriptFacts
from mlplint.lint.facts.intervals import PathItem, ValueRange, hull, point
from mlplint.lint.facts.literals import is_integer
from mlplint.lint.facts.shapes import Shape


@dataclass(frozen=True)
class TensorValue:
    """What an expression holds: shape (None: rank unknown), dtype kind ("float", "int", "bool"
    or None) and the interval of its values (None: not stated)."""

    shape: Shape = None
    dtype: Optional[str] = None
    range: Optional[ValueRange] = None

    def some_rows(self) -> "TensorValue":
        """The same value with an unknown number of rows (a split's part, a loader's batch)."""
        return replace(self, shape=(None,) + self.shape[1:] if self.shape else None)


UNKNOWN = TensorValue()


def join(values: Sequence[TensorValue]) -> TensorValue:
    """What several possible values have in common."""
    if not values:
        return UNKNOWN
    shape = values[0].shape
    for value in values[1:]:
        shape = shapes.join(shape, value.shape)
    kinds = {value.dtype for value in values}
    return TensorValue(shape, kinds.pop() if len(kinds) == 1 else None, hull([value.range for value in values]))


def promoted_kind(values: Sequence[TensorValue]) -> Optional[str]:
    """The dtype kind of an array built from several values: float wins, else the one they share."""
    kinds = {value.dtype for value in values}
    return "float" if "float" in kinds else (kinds.pop() if len(kinds) == 1 else None)


CONVERTERS = {
    "torch.tensor", "torch.as_tensor", "torch.from_numpy", "torch.Tensor", "torch.FloatTensor",
    "torch.DoubleTensor", "torch.LongTensor", "torch.IntTensor", "numpy.array", "numpy.asarray",
    "numpy.float32", "numpy.float64", "numpy.ascontiguousarray", "torch.autograd.Variable",
}
FLOAT_CONVERTERS = {"torch.Tensor", "torch.FloatTensor", "torch.DoubleTensor", "numpy.float32", "numpy.float64"}
INTEGER_CONVERTERS = {"torch.LongTensor", "torch.IntTensor"}
# Calls whose result has the values of their first argument (the shape may change).
SAME_VALUES = {
    "numpy.round", "numpy.around", "numpy.rint", "numpy.floor", "numpy.ceil", "numpy.trunc", "torch.round",
    "torch.floor", "torch.ceil", "torch.flatten", "torch.squeeze", "torch.unsqueeze", "torch.reshape",
    "numpy.reshape", "numpy.ravel", "numpy.squeeze", "numpy.expand_dims", "numpy.transpose", "numpy.sort",
    "numpy.random.permutation", "sklearn.utils.shuffle", "pandas.Series", "numpy.copy", "torch.t", "torch.transpose",
    "torch.permute",
}
SHAPE_METHODS = models.SHAPE_METHODS | {"ravel", "t", "expand", "expand_as", "swapaxes", "squeeze_", "unsqueeze_"}
SAME_VALUE_METHODS = {
    "cuda", "cpu", "numpy", "to_numpy", "detach", "clone", "copy", "contiguous", "round", "floor", "ceil",
    "requires_grad_", "pin_memory", "sample", "dropna", "head", "tail", "sort_values", "reset_index", "__array__",
}
SAME_VALUE_ATTRIBUTES = {"values", "data", "real"}
ELEMENTWISE_METHODS = {"sigmoid", "tanh", "relu", "exp", "log", "sqrt", "softmax", "log_softmax", "sin", "cos"}
REDUCTIONS = {
    "sum", "mean", "max", "min", "median", "mode", "std", "var", "prod", "amax", "amin", "argmax", "argmin",
    "nanmean", "norm", "logsumexp",
}
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
INTEGER_DRAWS = {"numpy.random.randint", "numpy.random.integers", "torch.randint", "torch.randint_like"}
RANDOM_GENERATORS = {"numpy.random.default_rng", "numpy.random.RandomState", "numpy.random.Generator"}
# Methods of a numpy Generator / RandomState, by the numpy.random function they behave like.
GENERATOR_DRAWS = {
    "normal": "numpy.random.normal", "standard_normal": "numpy.random.standard_normal", "randn": "numpy.random.randn",
    "uniform": "numpy.random.uniform", "random": "numpy.random.random", "rand": "numpy.random.rand",
    "integers": "numpy.random.integers", "randint": "numpy.random.randint", "choice": "numpy.random.choice",
    "exponential": "numpy.random.exponential", "poisson": "numpy.random.poisson", "binomial": "numpy.random.binomial",
    "beta": "numpy.random.beta", "permutation": "numpy.random.permutation",
}
# Where the size is given, by position after the draw's own parameters (numpy: `size`).
_SIZE_POSITION = {
    "numpy.random.normal": 2, "numpy.random.uniform": 2, "numpy.random.randint": 2, "numpy.random.integers": 2,
    "numpy.random.choice": 1, "numpy.random.exponential": 1, "numpy.random.poisson": 1, "numpy.random.binomial": 2,
    "numpy.random.beta": 2, "numpy.random.random": 0, "numpy.random.standard_normal": 0, "numpy.random.random_sample": 0,
    "torch.normal": 2, "torch.full": 0, "numpy.full": 0, "numpy.zeros": 0, "numpy.ones": 0, "numpy.empty": 0,
}
_VARIADIC_SIZES = {
    "torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty", "numpy.random.randn", "numpy.random.rand",
    "torch.Tensor", "torch.FloatTensor", "torch.DoubleTensor", "torch.LongTensor", "torch.IntTensor",
}
COLUMN_STACKS = {"numpy.column_stack"}
AXIS_STACKS = {"numpy.stack", "torch.stack"}
JOINS = {"numpy.concatenate", "numpy.hstack", "numpy.vstack", "torch.cat", "torch.concat", "torch.hstack", "torch.vstack"}
SIDEWAYS_JOINS = {"numpy.hstack", "torch.hstack"}
SPLITS = {"sklearn.model_selection.train_test_split", "sklearn.utils.shuffle"}
LOADER_WRAPPERS = {"builtins.iter", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "builtins.list"}
TEXT_TABLE_READERS = {"numpy.loadtxt", "numpy.genfromtxt"}
INTEGER_DTYPES = {"torch.long", "torch.int64", "torch.int32", "torch.int", "torch.uint8", "numpy.int64", "numpy.int32", "numpy.uint8", "builtins.int"}
FLOAT_DTYPES = {"torch.float", "torch.float32", "torch.float64", "torch.double", "torch.half", "torch.float16",
                "torch.bfloat16", "numpy.float32", "numpy.float64", "builtins.float"}
_MNIST_LIKE = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST", "QMNIST")
_CAST_METHODS = {"float": "float", "double": "float", "half": "float", "bfloat16": "float", "long": "int", "int": "int",
                 "short": "int", "bool": "bool"}
CAST_METHODS = set(_CAST_METHODS) | {"astype", "type", "to"}  # methods that may change the dtype only
_DATASET_FIELDS = {"data", "target", "targets", "train_data", "train_labels", "labels", "frame"}


class TensorSources:
    """The creation side of the analysis; `_value` is the walk (`tensors.TensorAnalysis`)."""

    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    def _value(self, expr: cst.BaseExpression, path: tuple[PathItem, ...]) -> TensorValue:
        raise NotImplementedError

    @staticmethod
    def select(value: TensorValue, path: tuple[PathItem, ...]) -> TensorValue:
        """Elements of an array: an int indexes the first dim, a string picks a named column."""
        for item in path:
            if isinstance(item, str):
                column = value.range.column(item) if value.range is not None else None
                rows = value.shape[:1] if value.shape is not None and len(value.shape) == 2 else None
                value = TensorValue(rows, value.dtype, column)
            else:
                value = replace(value, shape=value.shape[1:] if value.shape else None)
        return value

    # ------------------------------------------------------------------ dtypes

    def dtype_kind(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        if expr is None:
            return None
        qualified, literal = self.facts.qualname(expr), self.facts.literal(expr)
        if qualified in INTEGER_DTYPES or (isinstance(literal, str) and literal.startswith(("int", "long", "uint"))):
            return "int"
        if qualified in FLOAT_DTYPES or (isinstance(literal, str) and literal.startswith("float")):
            return "float"
        if qualified in ("torch.bool", "builtins.bool", "numpy.bool_"):
            return "bool"
        return None

    def cast_kind(self, method: str, call: cst.Call, current: Optional[str]) -> Optional[str]:
        if method in _CAST_METHODS:
            return _CAST_METHODS[method]
        if method in ("astype", "type", "to"):
            dtype = self.facts.argument(call, None, "dtype") or (call.args[0].value if call.args else None)
            return self.dtype_kind(dtype) or (current if method == "to" else None)
        return current

    def converted_kind(self, call: cst.Call, qualified: str, current: Optional[str]) -> Optional[str]:
        given = self.dtype_kind(self.facts.argument(call, None, "dtype"))
        if given:
            return given
        if qualified in FLOAT_CONVERTERS:
            return "float"
        return "int" if qualified in INTEGER_CONVERTERS else current

    def is_size_call(self, call: cst.Call, qualified: str) -> bool:
        """`torch.Tensor(3, 4)`: sizes, not data."""
        first = call.args[0].value if call.args else None
        return qualified in _VARIADIC_SIZES and self.facts.integer_literal(first) is not None

    # ------------------------------------------------------------------ shapes

    def _dims(self, args: Sequence[cst.BaseExpression]) -> Optional[list[object]]:
        """Literal dims (None where not literal); a single tuple/list/`x.shape` argument is unpacked."""
        if len(args) == 1:
            only = args[0]
            if isinstance(only, (cst.Tuple, cst.List)):
                if any(isinstance(e, cst.StarredElement) for e in only.elements):
                    return None
                args = [e.value for e in only.elements]
            elif isinstance(only, cst.Attribute) and only.attr.value == "shape":
                shape = self._value(only.value, ()).shape
                return list(shape) if shape is not None else None
        values = [self.facts.literal(a) for a in args]
        return [v if is_integer(v) else None for v in values]

    def size_shape(self, call: cst.Call, qualified: str) -> Shape:
        """The shape a creation call's size arguments give."""
        facts = self.facts
        if qualified.endswith("_like"):
            like = call.args[0].value if call.args else None
            return self._value(like, ()).shape if like is not None else None
        size = facts.argument(call, None, "size")
        if size is None and qualified in ("torch.randint",):
            tuples = [a.value for a in call.args if a.keyword is None and isinstance(a.value, (cst.Tuple, cst.List))]
            size = tuples[0] if tuples else None
        elif size is None and qualified in _SIZE_POSITION:
            size = facts.argument(call, _SIZE_POSITION[qualified], "shape")
        elif size is None and qualified in _VARIADIC_SIZES:
            args = [a.value for a in call.args if a.keyword is None]
            if any(a.star for a in call.args) or not args:
                return None
            dims = self._dims(args)
            return tuple(dims) if dims is not None else None  # type: ignore[arg-type]
        if size is None:
            return () if qualified.startswith("numpy.random.") else None
        dims = self._dims([size])
        return tuple(dims) if dims is not None else None  # type: ignore[arg-type]

    def reshaped(self, shape: Shape, method: str, args: list, call: cst.Call, other: Optional[TensorValue]) -> Shape:
        """The shape after `x.<method>(*args)` (or `torch.<method>(x, *args)`)."""
        literal = self.facts.literal
        if method in ("view", "reshape") and args:
            dims = self._dims(args)
            return shapes.reshape(shape, dims) if dims is not None else None
        if method in ("view_as", "reshape_as", "expand_as"):
            return other.shape if other is not None else None
        if method in ("unsqueeze", "unsqueeze_", "expand_dims") and args:
            return shapes.unsqueeze(shape, literal(args[0]))
        if method in ("squeeze", "squeeze_"):
            dim = args[0] if args else self.facts.argument(call, None, "dim")
            return shapes.squeeze(shape) if dim is None else shapes.squeeze(shape, literal(dim), all_dims=False)
        if method == "flatten":
            start = args[0] if args else self.facts.argument(call, None, "start_dim")
            end = args[1] if len(args) > 1 else self.facts.argument(call, None, "end_dim")
            return shapes.flatten(shape, literal(start) if start is not None else 0, literal(end) if end is not None else -1)
        if method == "ravel":
            return shapes.flatten(shape)
        if method in ("t", "transpose", "swapaxes"):
            if not args:
                return shapes.transpose(shape) if shape is not None and len(shape) <= 2 else None
            return shapes.transpose(shape, *[literal(a) for a in args[:2]]) if len(args) >= 2 else None
        if method == "permute":
            order = self._dims(args)
            return shapes.permute(shape, order) if order is not None else None
        if method == "expand":
            dims = self._dims(args)
            if dims is None or shape is None or len(dims) < len(shape):
                return None
            own = (None,) * (len(dims) - len(shape)) + shape
            return tuple(o if d == -1 else d for d, o in zip(dims, own))
        return shape  # casts, `to`, `contiguous`

    # ------------------------------------------------------------------ creation

    def creation(self, call: cst.Call, qualified: str) -> TensorValue:
        """Draws, fills, ranges and text tables."""
        short = qualified.rsplit(".", 1)[-1]
        if qualified in TEXT_TABLE_READERS:
            plain = self.facts.argument(call, None, "usecols") is None and self.facts.argument(call, None, "unpack") is None
            return TensorValue((None, None) if plain else None, "float")
        if qualified == "pandas.read_csv":
            return TensorValue((None, None))
        if qualified in CONVERTERS:  # `torch.Tensor(3, 4)`
            return TensorValue(self.size_shape(call, qualified), self.converted_kind(call, qualified, "float"))
        value_range = self.fill_range(call, qualified) or self.draw_range(call, qualified)
        if short in ("arange", "linspace", "eye") and qualified.count(".") == 1:
            return TensorValue(self._counted_shape(call, short), "int" if short == "arange" and value_range and
                               all(float(b).is_integer() for b in (value_range.low, value_range.high)) else "float", value_range)
        known = short in ("zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like") \
            and qualified.count(".") == 1 or value_range is not None
        if not known:
            return UNKNOWN
        dtype = self.dtype_kind(self.facts.argument(call, None, "dtype"))
        if dtype is None:
            dtype = "int" if qualified in INTEGER_DRAWS or qualified == "numpy.random.choice" else "float"
        return TensorValue(self.size_shape(call, qualified), dtype, value_range)

    def _counted_shape(self, call: cst.Call, short: str) -> Shape:
        args = [self.facts.literal(a.value) for a in call.args if a.keyword is None]
        if short == "eye":
            n = args[0] if args else None
            m = args[1] if len(args) > 1 else n
            return (n if is_integer(n) else None, m if is_integer(m) else None)
        if short == "linspace":
            steps = args[2] if len(args) > 2 else self.facts.literal(self.facts.argument(call, None, "steps") or self.facts.argument(call, None, "num"))
            numpy_default = len(args) == 2 and (self.facts.qualname(call.func) or "").startswith("numpy.")
            return (steps if is_integer(steps) else (50 if numpy_default else None),)
        numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if len(numbers) != len(args) or not 1 <= len(numbers) <= 3:
            return (None,)
        bounds = [0] + numbers if len(numbers) == 1 else numbers
        start, stop, step = (bounds + [1])[:3]
        return (max(math.ceil((stop - start) / step), 0),) if step else (None,)

    def counted_range(self, args: list[cst.BaseExpression]) -> Optional[ValueRange]:
        """The values `range(*args)` yields, when its bounds are literal."""
        bounds = [self.facts.literal(a) for a in args]
        if not 1 <= len(bounds) <= 3 or not all(is_integer(b) for b in bounds):
            return None
        values = range(*bounds) if bounds[-1] != 0 or len(bounds) < 3 else range(0)
        return ValueRange(float(min(values)), float(max(values))) if len(values) else None

    def _number(self, expr: Optional[cst.BaseExpression]) -> Optional[ValueRange]:
        value = self.facts.literal(expr) if expr is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return point(value)
        return self._value(expr, ()).range if expr is not None else None

    def fill_range(self, call: cst.Call, qualified: str) -> Optional[ValueRange]:
        """Constant arrays and ranges: zeros, ones, full, arange, linspace."""
        short = qualified.rsplit(".", 1)[-1]
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        if not qualified.startswith(("numpy.", "torch.")) or qualified.count(".") != 1:
            return None
        if short in ("zeros", "zeros_like"):
            return point(0.0)
        if short in ("ones", "ones_like"):
            return point(1.0)
        if short in ("full", "full_like"):
            return self._number(self.facts.argument(call, 1, "fill_value"))
        if short == "eye":
            return ValueRange(0.0, 1.0)
        if short in ("arange", "linspace"):
            bounds = [self._number(a) for a in args[:2]]
            if short == "arange" and len(args) == 1:
                bounds = [point(0.0), bounds[0]]
            return hull(bounds) if len(bounds) == 2 else None
        return None

    def draw_range(self, call: cst.Call, draw: str) -> Optional[ValueRange]:
        """The typical range of a random draw: mean +- 3 std for normals, the bounds otherwise."""
        facts = self.facts
        argument = lambda position, keyword: facts.argument(call, position, keyword)  # noqa: E731
        given = lambda position, keyword, default: (  # noqa: E731
            self._number(argument(position, keyword)) if argument(position, keyword) is not None else point(default))
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
            return hull([given(0, "low", 0.0), given(1, "high", 1.0)])
        if draw in INTEGER_DRAWS:
            return self._integers(call, draw)
        if draw == "numpy.random.choice":
            options = argument(0, "a")
            count = facts.literal(options)
            if is_integer(count):
                return ValueRange(0.0, float(count - 1))
            return self._value(options, ()).range if options is not None else None
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
            if is_integer(count):
                return ValueRange(0.0, float(count - 1))
            return self._value(argument(0, "x"), ()).range if argument(0, "x") is not None else None
        if draw in BOUNDED_FUNCTIONS:
            return ValueRange(*BOUNDED_FUNCTIONS[draw])
        return None

    def _integers(self, call: cst.Call, draw: str) -> Optional[ValueRange]:
        """randint(low, high) / randint(high): high exclusive (torch.randint(low, high, size) or
        torch.randint(high, size))."""
        facts = self.facts
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        low, high = facts.argument(call, None, "low"), facts.argument(call, None, "high")
        if draw.startswith("torch.randint") and low is None and high is None:
            numbers = [a for a in args if not isinstance(a, (cst.Tuple, cst.List))][int(draw.endswith("_like")):]
            low, high = (numbers[0], numbers[1]) if len(numbers) >= 2 else (None, numbers[0] if numbers else None)
        elif low is None and high is None:
            low, high = (args[0], args[1]) if len(args) >= 2 else (None, args[0] if args else None)
        elif high is None and low is not None:
            low, high = None, low
        bounds = [self._number(low) if low is not None else point(0.0), self._number(high) if high is not None else None]
        if bounds[0] is None or bounds[1] is None:
            return None
        closed = facts.literal(facts.argument(call, None, "endpoint")) is True
        return ValueRange(bounds[0].low, bounds[1].high - (0 if closed else 1))

    def clipped(self, value: Optional[ValueRange], call: cst.Call, offset: int) -> Optional[ValueRange]:
        low = self.facts.literal(self.facts.argument(call, offset, "min") or self.facts.argument(call, None, "a_min"))
        high = self.facts.literal(self.facts.argument(call, offset + 1, "max") or self.facts.argument(call, None, "a_max"))
        numbers = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        if value is None:
            return ValueRange(float(low), float(high)) if numbers(low) and numbers(high) else None

        def clip(r: ValueRange) -> ValueRange:
            lo = max(r.low, low) if numbers(low) else r.low
            hi = min(r.high, high) if numbers(high) else r.high
            return ValueRange(min(lo, hi), hi)
        return intervals.map_columns(value, clip)

    @staticmethod
    def stacked_range(qualified: str, axis: object, parts: list[Optional[ValueRange]]) -> Optional[ValueRange]:
        if any(p is None for p in parts) or not parts:
            return None
        if qualified in COLUMN_STACKS or (qualified in AXIS_STACKS and axis in (1, -1)):
            return intervals.with_columns([p.plain() for p in parts])  # type: ignore[union-attr]
        if qualified in SIDEWAYS_JOINS or (qualified in JOINS and axis in (1, -1)):
            return intervals.with_columns([c for p in parts for c in (p.columns or (p,))])  # type: ignore[union-attr]
        widths = {len(p.columns) for p in parts}  # type: ignore[union-attr]
        if len(widths) == 1 and widths != {0}:  # rows stacked: column by column
            return intervals.with_columns([hull([p.columns[i] for p in parts]) for i in range(widths.pop())])  # type: ignore[union-attr]
        return hull(parts)

    # ------------------------------------------------------------------ datasets and models

    def dataset_value(self, call: cst.Call, qualified: str, path: tuple[PathItem, ...], batch: bool = False) -> Optional[TensorValue]:
        """A field of a scikit-learn or torchvision dataset (`path[0]`: 0/1 of `return_X_y`,
        `data`, `target`...), or a loader's batch of a torchvision dataset; None when not one."""
        short = qualified.rsplit(".", 1)[-1]
        field = path[0] if path else None
        rest = path[1:]
        if qualified.startswith("sklearn.datasets."):
            if field in (0, "data", "frame"):
                if rest and isinstance(rest[0], str):  # `as_frame=True`: one named column
                    return TensorValue((None,))
                return self.select(TensorValue((None, None), "float"), rest)
            if field in (1, "target"):
                targets = self.facts.argument(call, None, "n_targets")
                return self.select(TensorValue((None,) if targets is None else None), rest)
            return UNKNOWN
        if not qualified.startswith("torchvision.datasets."):
            return None
        if field in ("data", "train_data") and not batch:
            rank = 3 if short in _MNIST_LIKE else 4 if short.startswith("CIFAR") else None
            return self.select(TensorValue((None,) * rank if rank else None, "int", ValueRange(0.0, 255.0)), rest)
        if field in ("targets", "train_labels", "labels") and not batch or field == 1 and batch:
            return self.select(TensorValue((None,), "int"), rest)
        if field == 0 and batch:
            return self.select(TensorValue((None, None, None, None), "float"), rest)
        return UNKNOWN

    def model_output(self, call: cst.Call, model: cst.BaseExpression, given: TensorValue) -> TensorValue:
        """The output of a model's forward pass: the last Linear layer's `out_features` as the last
        dim (an output activation keeps it), through the reshapes forward() applies."""
        facts = self.facts
        network = facts.networks.network_of(model)
        if network is not None and network.output_ops:
            last = network.output_ops[-1]
            if all(op.activation is not None for op in network.output_ops):
                last = next((op for op in reversed(network.ops) if op.activation is None), None)
            layer = last.call if last is not None and last.api in names.LINEAR_LAYERS else None
        else:
            layer = next((o for o in facts.origins(model) if isinstance(o, cst.Call)
                          and facts.qualname(o.func) in names.LINEAR_LAYERS), None)
        if layer is None:
            return UNKNOWN
        out = facts.literal(facts.argument(layer, 1 if facts.qualname(layer.func) != "torch.nn.Bilinear" else 2, "out_features"))
        if not is_integer(out):
            return UNKNOWN
        batch = given.shape[:-1] if given.shape else (None,)
        shape: Shape = batch + (out,)
        for reshape in network.output_reshapes if network is not None else ():
            shape = self._reshape_call(shape, reshape)
        return TensorValue(shape, "float")

    def _reshape_call(self, shape: Shape, call: cst.Call) -> Shape:
        args = [a.value for a in call.args if a.keyword is None]
        qualified = self.facts.qualname(call.func)
        if qualified is not None:
            return self.reshaped(shape, qualified.rsplit(".", 1)[-1], args[1:], call, None)
        return self.reshaped(shape, call.func.attr.value, args, call, None)  # type: ignore[attr-defined]

    def dataset_field(self, receiver: cst.BaseExpression, attribute: str, path: tuple[PathItem, ...]) -> Optional[TensorValue]:
        """`bunch.data`, `mnist.targets`: a field of a dataset object; None when the receiver is not one."""
        if attribute not in _DATASET_FIELDS:
            return None
        for origin in self.facts.origins(receiver):
            qualified = self.facts.qualname(origin.func) if isinstance(origin, cst.Call) else None
            if qualified is not None and qualified.startswith(("sklearn.datasets.", "torchvision.datasets.")):
                return self.dataset_value(origin, qualified, (attribute,) + path)
        return None
