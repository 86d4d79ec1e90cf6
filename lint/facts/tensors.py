"""The tensor analysis: one abstract value per expression, what every rule asks about a tensor.

`value(expr)` is a TensorValue: the shape (rank and the dims that are known, `shapes`), the dtype
kind and the interval of values (`intervals`). It follows an expression back through assignments,
tuple unpacking, function returns, lambdas, datasets, loaders and splits to what made the data
(a literal, a comprehension over `range`, a draw with its sizes, a scikit-learn or torchvision
dataset, a CSV table, a model's forward pass) and carries the value forward through indexing,
arithmetic with broadcasting, `@`/`mm`/`matmul`, reshapes, joins and reductions. What the walk
cannot see through is unknown (shape None, range None), part by part, so rules stay quiet.

Each (expression, path) is resolved once and memoised, so the walk is linear in the file. An
expression met again while it is being resolved (a loop-carried `xb = xb.to(device)`) adds nothing
to a name's value; a loop-carried update's interval is unknown (`x = x * 2` changes it each time).
The creation calls (sizes of draws, fills, datasets) are read in `tensor_sources`.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Optional

import libcst as cst

from mlplint.lint.facts import intervals, names, shapes
from mlplint.lint.facts.core import ScriptFacts, nodes_within
from mlplint.lint.facts.frames import LambdaFrames
from mlplint.lint.facts.intervals import PathItem, ValueRange, absolute, combine, map_columns, point
from mlplint.lint.facts.shapes import Shape
from mlplint.lint.facts.tensor_sources import (
    AXIS_STACKS, BOUNDED_FUNCTIONS, COLUMN_STACKS, CONVERTERS, ELEMENTWISE_METHODS, JOINS,
    LOADER_WRAPPERS, MONOTONE_FUNCTIONS, RANDOM_GENERATORS, GENERATOR_DRAWS, REDUCTIONS, SAME_VALUES,
    SAME_VALUE_ATTRIBUTES, SAME_VALUE_METHODS, SHAPE_METHODS, SPLITS, CAST_METHODS, TensorValue, TensorSources, UNKNOWN, join,
    promoted_kind,
)

_MAX_DEPTH = 60
# A list filled or reordered after it is made (`targets = []`, then `targets.append([R])`).
LIST_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort"}
_IN_PROGRESS = object()
_CYCLE = TensorValue()  # met again while being resolved: contributes nothing to a join
_OPERATOR_METHODS = {
    name + suffix: operator
    for name, operator in (("add", cst.Add()), ("sub", cst.Subtract()), ("mul", cst.Multiply()), ("div", cst.Divide()), ("pow", cst.Power()))
    for suffix in ("", "_")
}


class TensorAnalysis(TensorSources):
    def __init__(self, facts: ScriptFacts):
        super().__init__(facts)
        self._memo: dict[tuple, object] = {}
        self._carried: dict[cst.Name, bool] = {}
        self._depth = 0
        self._lambdas = LambdaFrames(facts)

    def value(self, expr: Optional[cst.BaseExpression]) -> TensorValue:
        """What expr holds, as far as the script states it."""
        if expr is None:
            return UNKNOWN
        found = self._value(expr, ())
        return UNKNOWN if found is _CYCLE else found

    def range_of(self, expr: Optional[cst.BaseExpression]) -> Optional[ValueRange]:
        return self.value(expr).range

    def shape_of(self, expr: Optional[cst.BaseExpression]) -> Shape:
        return self.value(expr).shape

    # ------------------------------------------------------------------ the walk

    def _value(self, expr: cst.BaseExpression, path: tuple[PathItem, ...]) -> TensorValue:
        key = (expr, path, self._lambdas.key)
        found = self._memo.get(key)
        if found is _IN_PROGRESS:
            return _CYCLE
        if self._depth > _MAX_DEPTH:
            return UNKNOWN
        if found is not None:
            return found  # type: ignore[return-value]
        self._memo[key] = _IN_PROGRESS
        self._depth += 1
        try:
            result = self._dispatch(expr, path)
        finally:
            self._depth -= 1
        self._memo[key] = result
        return result

    def _dispatch(self, expr: cst.BaseExpression, path: tuple[PathItem, ...]) -> TensorValue:
        if type(expr) in (cst.Integer, cst.Float):
            kind = "int" if type(expr) is cst.Integer else "float"
            return self.select(TensorValue((), kind, point(expr.evaluated_value)), path)
        if type(expr) is cst.Name:
            if expr.value in ("True", "False"):
                return TensorValue((), "bool", point(expr.value == "True"))
            return self._name(expr, path)
        if type(expr) is cst.UnaryOperation and type(expr.operator) in (cst.Minus, cst.Plus):
            inner = self._value(expr.expression, path)
            if type(expr.operator) is cst.Plus:
                return inner
            return replace(inner, range=map_columns(inner.range, lambda r: ValueRange(-r.high, -r.low)))
        if type(expr) is cst.BinaryOperation:
            return self._binary(expr.operator, self._value(expr.left, path), self._value(expr.right, path))
        if type(expr) in (cst.Tuple, cst.List):
            return self._sequence(expr, path)
        if type(expr) in (cst.ListComp, cst.GeneratorExp) and not path:
            return self._comprehension(expr)
        if type(expr) is cst.Dict:
            return self._frame(expr, path)
        if type(expr) is cst.Attribute:
            return self._attribute(expr, path)
        if type(expr) is cst.Subscript:
            return self._subscript(expr, path)
        if type(expr) is cst.Call:
            return self._call(expr, path)
        return UNKNOWN

    def _binary(self, operator: cst.BaseBinaryOp, left: TensorValue, right: TensorValue) -> TensorValue:
        if isinstance(operator, cst.MatrixMultiply):
            return TensorValue(shapes.matmul(left.shape, right.shape), left.dtype if left.dtype == right.dtype else None)
        value_range = combine(operator, left.range, right.range) if left.range and right.range else None
        if isinstance(operator, cst.Divide) or "float" in (left.dtype, right.dtype):
            dtype = "float"
        else:
            dtype = "int" if left.dtype == right.dtype == "int" else None
        return TensorValue(shapes.broadcast(left.shape, right.shape), dtype, value_range)

    def _sequence(self, expr: cst.Tuple | cst.List, path: tuple[PathItem, ...]) -> TensorValue:
        """A tuple element, or a nested list of numbers as an array."""
        elements = expr.elements
        if path and isinstance(path[0], int):
            return self._value(elements[path[0]].value, path[1:]) if -len(elements) <= path[0] < len(elements) else UNKNOWN
        if any(isinstance(e, cst.StarredElement) for e in elements):
            return UNKNOWN
        items = [self._value(e.value, ()) for e in elements]
        common = join(items) if items else TensorValue((), None, None)
        shape = (len(items),) + common.shape if common.shape is not None else None
        return self.select(TensorValue(shape, promoted_kind(items), common.range), path)

    def _comprehension(self, expr: cst.ListComp | cst.GeneratorExp) -> TensorValue:
        """`[float(v) for v in range(1, 5000)]`: one element per iteration, when it is counted."""
        loop = expr.for_in
        if loop.inner_for_in is not None:
            return UNKNOWN
        count = self.facts.networks.iterations(loop.iter) if not loop.ifs else None
        item = self._value(expr.elt, ())
        shape = (count,) + item.shape if item.shape is not None else None
        return TensorValue(shape, item.dtype, item.range)

    def _frame(self, mapping: cst.Dict, path: tuple[PathItem, ...]) -> TensorValue:
        """`{"cyl": cyl, "disp": disp}`, as given to pandas.DataFrame: one named column each."""
        keys, columns = [], []
        for element in mapping.elements:
            key = self.facts.literal(element.key) if isinstance(element, cst.DictElement) else None
            if not isinstance(key, str):
                return UNKNOWN
            keys.append(key)
            columns.append(self._value(element.value, ()))
        if path and isinstance(path[0], str):
            return self.select(columns[keys.index(path[0])], path[1:]) if path[0] in keys else UNKNOWN
        rows = join([TensorValue(c.shape[:1] if c.shape else None) for c in columns]).shape
        frame = TensorValue(rows + (len(keys),) if rows else None, None,
                            intervals.with_columns([c.range for c in columns], tuple(keys)))
        return self.select(frame, path)

    @functools.cached_property
    def _mutated(self) -> set[str]:
        """Names whose values change in place somewhere (`X /= 255`, `X[:, 0] = ...`, `x.div_(s)`,
        `rows.append(row)`): their assignments do not tell their values."""
        mutated = set()
        for node in self.facts.effects.get(self.facts.module, []):
            targets: list[cst.BaseExpression] = []
            if type(node) is cst.AugAssign:
                targets = [node.target]
            elif type(node) is cst.Assign:
                targets = [t.target for t in node.targets if type(t.target) is cst.Subscript]
            elif type(node) is cst.Call and type(node.func) is cst.Attribute and (
                    node.func.attr.value.endswith("_") and not node.func.attr.value.startswith("_")
                    or node.func.attr.value in LIST_MUTATORS):
                targets = [node.func.value]
            for target in targets:
                while type(target) in (cst.Subscript, cst.Attribute):
                    target = target.value
                if type(target) is cst.Name:
                    mutated.add(target.value)
        return mutated

    def _name(self, name: cst.Name, path: tuple[PathItem, ...]) -> TensorValue:
        facts = self.facts
        if name.value in self._mutated:
            return UNKNOWN
        found: list[TensorValue] = []
        for node in facts.reaching_nodes(name):
            binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is not None and binding.loop:
                found.append(self._element(binding.value, binding.path + path))
            elif binding is not None:
                value = self._value(binding.value, binding.path + path)
                if value is not _CYCLE and self._loop_carried(node, binding.value):
                    value = replace(value, range=None)
                found.append(value)
            elif isinstance(node, cst.Param):
                with self._lambdas.argument_for(node) as argument:
                    if argument is not None:  # a parameter of the lambda call being followed
                        found.append(self._value(argument, path))
                if argument is None:
                    origins = [o for o in facts.origins(name) if o is not name]
                    if not origins:
                        return UNKNOWN
                    found.extend(self._value(o, path) for o in origins)
            else:
                return UNKNOWN
        settled = [value for value in found if value is not _CYCLE]
        if not settled:
            return _CYCLE if found else UNKNOWN
        return settled[0] if len(settled) == 1 else join(settled)

    def _loop_carried(self, target: cst.Name, value: cst.BaseExpression) -> bool:
        """`x = x * 2` inside a loop (answered once per assignment)."""
        if target not in self._carried:
            self._carried[target] = bool(self.facts.enclosing_loops(target)) and any(
                read.value == target.value for read in nodes_within(value, cst.Name))
        return self._carried[target]

    def _attribute(self, expr: cst.Attribute, path: tuple[PathItem, ...]) -> TensorValue:
        origins = [o for o in self.facts.origins(expr) if o is not expr]
        if origins:  # self.X assigned in __init__
            return join([self._value(o, path) for o in origins])
        attribute = expr.attr.value
        field = self.dataset_field(expr.value, attribute, path)
        if field is not None:
            return field
        if attribute in ("T", "mT"):
            inner = self._value(expr.value, ())
            shape = tuple(reversed(inner.shape)) if attribute == "T" and inner.shape is not None else shapes.transpose(inner.shape)
            return self.select(replace(inner, shape=shape), path)
        if attribute in SAME_VALUE_ATTRIBUTES or attribute in ("iloc", "loc"):
            return self._value(expr.value, path)
        return UNKNOWN

    def _subscript(self, expr: cst.Subscript, path: tuple[PathItem, ...]) -> TensorValue:
        facts = self.facts
        elements = expr.slice
        if len(elements) == 1 and isinstance(elements[0].slice, cst.Index):
            index = elements[0].slice.value
            key = facts.literal(index)
            if isinstance(key, (int, str)) and not isinstance(key, bool):
                return self._value(expr.value, (key,) + path)
            if isinstance(index, cst.List):  # df[["a", "b"]]
                keys = [facts.literal(e.value) for e in index.elements]
                frame = self._value(expr.value, ())
                rows = frame.shape[:1] if frame.shape else (None,)
                picked = None
                if frame.range is not None and all(isinstance(k, str) for k in keys):
                    picked = intervals.with_columns([frame.range.column(k) for k in keys], tuple(keys))
                return self.select(TensorValue(rows + (len(keys),), frame.dtype, picked), path)
        whole = self._value(expr.value, ())
        shape = self._indexed_shape(whole.shape, [e.slice for e in elements])
        value_range = whole.range
        slices = [e.slice for e in elements]
        if value_range is not None and len(slices) == 2 and isinstance(slices[0], cst.Slice) and isinstance(slices[1], cst.Index):
            column = facts.integer_literal(slices[1].value)  # X[:, 0]
            value_range = value_range.column(column) if column is not None and value_range.columns else value_range.plain()
        return self.select(TensorValue(shape, whole.dtype, value_range), path)

    def _indexed_shape(self, shape: Shape, slices: list) -> Shape:
        """`x[:, 0]` drops a dim, `x[:, :1]` keeps it (of size 1), `x[:, None]` adds one, an index
        array or mask keeps the rank with an unknown size."""
        if shape is None:
            return None
        ellipsis = [i for i, s in enumerate(slices) if isinstance(s, cst.Index) and isinstance(s.value, cst.Ellipsis)]
        taken = sum(1 for s in slices if not (isinstance(s, cst.Index) and (
            isinstance(s.value, cst.Ellipsis) or isinstance(s.value, cst.Name) and s.value.value == "None")))
        if len(ellipsis) > 1 or taken > len(shape):
            return None
        if ellipsis:
            slices = slices[:ellipsis[0]] + [cst.Slice()] * (len(shape) - taken) + slices[ellipsis[0] + 1:]
        dims, position = [], 0
        for item in slices:
            if isinstance(item, cst.Index) and isinstance(item.value, cst.Name) and item.value.value == "None":
                dims.append(1)
                continue
            dim = shape[position]
            position += 1
            if isinstance(item, cst.Slice):
                dims.append(self._slice_length(item, dim))
                continue
            if self.facts.integer_literal(item.value) is not None:
                continue  # an integer drops the dim
            dims.append(None)  # an index array or mask
        return tuple(dims) + shape[position:]

    def _slice_length(self, item: cst.Slice, dim: Optional[int]) -> Optional[int]:
        bounds = [self.facts.literal(part) if part is not None else None for part in (item.lower, item.upper, item.step)]
        if any(b is not None and (not isinstance(b, int) or isinstance(b, bool)) for b in bounds):
            return None
        if any(part is not None and b is None for part, b in zip((item.lower, item.upper, item.step), bounds)):
            return None  # a bound that is not a literal
        lower, upper, step = bounds
        if dim is not None:
            return len(range(dim)[slice(lower, upper, step)])
        if step in (None, 1) and (lower or 0) >= 0 and upper is not None and upper >= 0:
            return max(upper - (lower or 0), 0)  # `[:, :1]`: at most `upper` of an unknown dim
        if step in (None, 1) and lower is not None and lower < 0 and upper is None:
            return -lower  # `[:, -1:]`
        return None

    # ------------------------------------------------------------------ calls

    def _call(self, call: cst.Call, path: tuple[PathItem, ...]) -> TensorValue:
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
                return self.select(self.creation(call, GENERATOR_DRAWS[method]), path)
            method_value = self._method(call, method, receiver, path)
            if method_value is not None:
                return method_value
            if facts.kind_of(receiver) == "model" and method == "forward":
                return self.select(self.model_output(call, receiver, self._input_of(call)), path)
        if facts.kind_of(func) == "model":
            return self.select(self.model_output(call, func, self._input_of(call)), path)
        lambdas = self._lambdas.lambdas_called(call)
        if lambdas:
            found = []
            for function in lambdas:
                with self._lambdas.entered(call, function):
                    found.append(self._value(function.body, path))
            return join(found)
        origins = [o for o in facts.origins(call) if o is not call]  # a local function's returns
        return join([self._value(o, path) for o in origins]) if origins else UNKNOWN

    def _input_of(self, call: cst.Call) -> TensorValue:
        first = call.args[0].value if call.args and call.args[0].keyword is None and not call.args[0].star else None
        return self._value(first, ()) if first is not None else UNKNOWN

    def _method(self, call: cst.Call, method: str, receiver: cst.BaseExpression, path) -> Optional[TensorValue]:
        """`x.<method>(...)` on a tensor or array; None when the method is not one of these."""
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        if method in SHAPE_METHODS or method in CAST_METHODS:
            inner = self._value(receiver, ())
            other = self._value(args[0], ()) if args and method in ("view_as", "reshape_as", "expand_as", "type_as") else None
            starred = any(a.star for a in call.args)  # `x.view(1, *x.shape)`: dims not listed here
            shape = None if starred and method in SHAPE_METHODS else self.reshaped(inner.shape, method, args, call, other)
            return self.select(TensorValue(shape, self.cast_kind(method, call, inner.dtype), inner.range), path)
        if method in SAME_VALUE_METHODS:
            return self._value(receiver, path)
        if method in ("clip", "clamp", "clip_", "clamp_"):
            inner = self._value(receiver, path)
            return replace(inner, range=self.clipped(inner.range, call, 0))
        if method in REDUCTIONS:
            return self._reduction(call, method, self._value(receiver, ()), path)
        if method == "abs":
            inner = self._value(receiver, path)
            return replace(inner, range=map_columns(inner.range, absolute))
        if method in ("mm", "matmul", "bmm", "dot", "mv") and args:
            return self.select(self._binary(cst.MatrixMultiply(), self._value(receiver, ()), self._value(args[0], ())), path)
        if method in _OPERATOR_METHODS and args:
            return self.select(self._binary(_OPERATOR_METHODS[method], self._value(receiver, ()), self._value(args[0], ())), path)
        if method in ELEMENTWISE_METHODS:
            inner = self._value(receiver, ())
            return self.select(TensorValue(inner.shape, "float"), path)
        if method == "drop":
            return self._drop(self._value(receiver, ()), call, path)
        if method in ("transform", "fit_transform", "inverse_transform") and args and any(
                isinstance(c, str) and c.startswith("sklearn.") for c in self.facts.classes_of(receiver)):
            return self.select(TensorValue(self._value(args[0], ()).shape, "float"), path)  # a scaler keeps the shape
        return None

    def _reduction(self, call: cst.Call, method: str, inner: TensorValue, path) -> TensorValue:
        facts = self.facts
        dim_node = facts.argument(call, 0, "dim") or facts.argument(call, None, "axis")
        has_dim = dim_node is not None
        keepdim = facts.literal(facts.argument(call, 1, "keepdim") or facts.argument(call, None, "keepdims")) is True
        shape = shapes.reduce(inner.shape, facts.literal(dim_node) if has_dim else None, keepdim, has_dim)
        if method in ("max", "min", "median", "mode") and has_dim and facts.qualname(call.func) is None:
            if not path or path[0] not in (0, 1):  # (values, indices)
                return UNKNOWN
            indices = path[0] == 1
            value = TensorValue(shape, "int" if indices else inner.dtype, None if indices or not inner.range else inner.range.plain())
            return self.select(value, path[1:])
        if method.startswith("arg"):
            return self.select(TensorValue(shape, "int"), path)
        keeps_range = method in ("mean", "median", "max", "min", "amax", "amin", "nanmean")
        value_range = inner.range.plain() if keeps_range and inner.range is not None else None
        return self.select(TensorValue(shape, "float" if method in ("mean", "std", "var") else inner.dtype, value_range), path)

    def _api(self, call: cst.Call, qualified: str, path: tuple[PathItem, ...]) -> TensorValue:
        facts = self.facts
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        first = args[0] if args else facts.argument(call, None, "data") or facts.argument(call, None, "input")
        short = qualified.rsplit(".", 1)[-1]
        if qualified in ("builtins.float", "builtins.int") and first is not None:  # a Python number
            inner = self._value(first, ())
            return TensorValue(inner.shape, qualified[9:], inner.range)
        if qualified in SPLITS:
            if path and isinstance(path[0], int):
                step = 2 if qualified.endswith("train_test_split") else 1
                if path[0] // step >= len(args):
                    return UNKNOWN
                return self.select(self._value(args[path[0] // step], ()).some_rows(), path[1:])
            return self._value(first, ()) if len(args) == 1 and first is not None else UNKNOWN
        if qualified == "pandas.DataFrame" and first is not None:
            frame = self._value(first, ())
            columns = facts.argument(call, 2, "columns")
            if frame.range is not None and isinstance(columns, (cst.List, cst.Tuple)) and len(frame.range.columns) == len(columns.elements):
                keys = tuple(facts.literal(e.value) for e in columns.elements)
                if all(isinstance(k, str) for k in keys):
                    frame = replace(frame, range=ValueRange(frame.range.low, frame.range.high, frame.range.columns, keys))
            return self.select(frame, path)
        if qualified in CONVERTERS and first is not None and not self.is_size_call(call, qualified):
            inner = self._value(first, ())
            return self.select(TensorValue(inner.shape, self.converted_kind(call, qualified, inner.dtype), inner.range), path)
        if qualified in SAME_VALUES and first is not None:
            inner = self._value(first, ())
            shape = self.reshaped(inner.shape, short, args[1:], call, None) if short in SHAPE_METHODS | {"expand_dims"} else inner.shape
            return self.select(replace(inner, shape=shape), path)
        if qualified in COLUMN_STACKS or qualified in AXIS_STACKS or qualified in JOINS:
            return self.select(self._stack(call, qualified, first), path)
        if qualified in ("torch.matmul", "torch.mm", "torch.bmm", "numpy.matmul", "numpy.dot") and len(args) == 2:
            return self.select(self._binary(cst.MatrixMultiply(), self._value(args[0], ()), self._value(args[1], ())), path)
        if qualified.startswith(("torch.", "numpy.")) and short in REDUCTIONS and qualified.count(".") == 1 and first is not None:
            return self._reduction(call, short, self._value(first, ()), path)
        if qualified in BOUNDED_FUNCTIONS:
            shape = self._value(first, ()).shape if first is not None else None
            return self.select(TensorValue(shape, "float", ValueRange(*BOUNDED_FUNCTIONS[qualified])), path)
        if qualified in MONOTONE_FUNCTIONS:
            function, domain = MONOTONE_FUNCTIONS[qualified]
            inner = self._value(first, path) if first is not None else UNKNOWN
            return TensorValue(inner.shape, "float", map_columns(inner.range, lambda r: intervals.monotone(r, function, domain)))
        if qualified in ("numpy.abs", "numpy.absolute", "torch.abs"):
            inner = self._value(first, path) if first is not None else UNKNOWN
            return replace(inner, range=map_columns(inner.range, absolute))
        if qualified in ("numpy.clip", "torch.clamp", "torch.clip"):
            inner = self._value(first, path) if first is not None else UNKNOWN
            return replace(inner, range=self.clipped(inner.range, call, 1))
        if qualified in ("numpy.where", "torch.where") and len(args) == 3:
            return join([self._value(args[1], path), self._value(args[2], path)])
        if qualified in ("numpy.maximum", "numpy.minimum", "torch.maximum", "torch.minimum") and len(args) == 2:
            a, b = self._value(args[0], path), self._value(args[1], path)
            pick = max if qualified.endswith("maximum") else min
            value_range = ValueRange(pick(a.range.low, b.range.low), pick(a.range.high, b.range.high)) if a.range and b.range else None
            return TensorValue(shapes.broadcast(a.shape, b.shape), a.dtype if a.dtype == b.dtype else None, value_range)
        if qualified == "torch.nn.functional.one_hot" and first is not None:
            inner = self._value(first, ())
            classes = facts.integer_literal(facts.argument(call, 1, "num_classes"))
            width = classes if classes is not None and classes > 0 else None
            shape = inner.shape + (width,) if inner.shape is not None else None
            return self.select(TensorValue(shape, "int", ValueRange(0.0, 1.0)), path)
        if qualified.startswith(("sklearn.datasets.", "torchvision.datasets.")):
            return self.dataset_value(call, qualified, path) or UNKNOWN
        return self.select(self.creation(call, qualified), path)

    def _stack(self, call: cst.Call, qualified: str, first: Optional[cst.BaseExpression]) -> TensorValue:
        if not isinstance(first, (cst.List, cst.Tuple)) or any(isinstance(e, cst.StarredElement) for e in first.elements):
            return UNKNOWN
        parts = [self._value(e.value, ()) for e in first.elements]
        axis_node = self.facts.argument(call, 1, "dim" if qualified.startswith("torch.") else "axis")
        axis = 0 if axis_node is None else self.facts.literal(axis_node)
        part_shapes = [p.shape for p in parts]
        if qualified in COLUMN_STACKS or qualified in AXIS_STACKS:
            if qualified in COLUMN_STACKS:
                shape = shapes.stack(part_shapes, 1) if all(s is not None and len(s) == 1 for s in part_shapes) \
                    else shapes.concatenate(part_shapes, 1)
            else:
                shape = shapes.stack(part_shapes, axis)
        elif qualified in ("numpy.hstack", "torch.hstack"):
            shape = shapes.concatenate(part_shapes, 0 if all(s is not None and len(s) == 1 for s in part_shapes) else 1)
        elif qualified in ("numpy.vstack", "torch.vstack"):
            rows = [(1,) + s if s is not None and len(s) == 1 else s for s in part_shapes]
            shape = shapes.concatenate(rows, 0)
        else:
            shape = shapes.concatenate(part_shapes, axis)
        return TensorValue(shape, promoted_kind(parts), self.stacked_range(qualified, axis, [p.range for p in parts]))

    def _drop(self, frame: TensorValue, call: cst.Call, path: tuple[PathItem, ...]) -> TensorValue:
        """`df.drop(columns=["price"])` / `df.drop("price", axis=1)`: the other named columns."""
        value_range = frame.range
        if value_range is None or not value_range.names:
            return UNKNOWN
        dropped = self.facts.argument(call, None, "columns") or self.facts.argument(call, 0, "labels")
        keys = [self.facts.literal(e.value) for e in dropped.elements] if isinstance(dropped, (cst.List, cst.Tuple)) \
            else [self.facts.literal(dropped)]
        kept = [(n, c) for n, c in zip(value_range.names, value_range.columns) if n not in keys]
        if not kept or len(kept) == len(value_range.names):
            return UNKNOWN
        rows = frame.shape[:1] if frame.shape else (None,)
        kept_range = intervals.with_columns([c for _, c in kept], tuple(n for n, _ in kept))
        return self.select(TensorValue(rows + (len(kept),), frame.dtype, kept_range), path)

    # ------------------------------------------------------------------ iteration

    def _element(self, iterable: cst.BaseExpression, path: tuple[PathItem, ...]) -> TensorValue:
        """What a `for` target gets from iterating `iterable` (path selects inside the item)."""
        facts = self.facts
        found: list[TensorValue] = []
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
                found.append(self._dataset_item(dataset, path) if dataset is not None else UNKNOWN)
            elif qualified == "builtins.range":
                found.append(self.select(TensorValue((), "int", self.counted_range(args)), path))
            else:
                found.append(self._value(origin, (0,) + path))  # rows of an array
        return join(found) if len(found) != 1 else found[0]

    def _dataset_item(self, dataset: cst.BaseExpression, path: tuple[PathItem, ...]) -> TensorValue:
        """A batch: what the dataset yields (element path[0] of its item), collated along a new
        first dim of unknown size."""
        facts = self.facts
        found: list[TensorValue] = []
        for origin in facts.origins(dataset):
            qualified = facts.qualname(origin.func) if isinstance(origin, cst.Call) else None
            args = [a.value for a in origin.args if a.keyword is None and not a.star] if isinstance(origin, cst.Call) else []
            if qualified == "torch.utils.data.TensorDataset" and path and isinstance(path[0], int) and path[0] < len(args):
                found.append(self.select(self._value(args[path[0]], ()).some_rows(), path[1:]))
            elif qualified == "torch.utils.data.Subset" and args:
                found.append(self._dataset_item(args[0], path))
            elif qualified is not None and qualified.startswith(("torchvision.datasets.", "sklearn.")):
                found.append(self.dataset_value(origin, qualified, path, batch=True) or UNKNOWN)
            elif isinstance(origin, cst.Call) and qualified is None and facts.local_definitions(origin.func, cst.ClassDef):
                for cls in facts.local_definitions(origin.func, cst.ClassDef):
                    getitem = facts.method(cls, "__getitem__")
                    returned = facts.returns.get(getitem, []) if getitem else []
                    if not returned:
                        return UNKNOWN
                    for value in returned:
                        item = self._value(value, path)
                        found.append(replace(item, shape=(None,) + item.shape if item.shape is not None else None))
            else:  # a loader over a tensor or array: batches of its rows
                whole = self._value(origin, ()) if not path else UNKNOWN
                found.append(whole.some_rows() if whole.shape else UNKNOWN)
        return join(found) if len(found) != 1 else found[0]

