"""Data provenance: where the tensors that reach a model or a loss come from, and what was done
to them on the way (scaling, dtype casts, reshapes, splits, datasets and loaders).

`lineages(expr)` walks backwards from an expression to the places its data is made (a dataset
loader, a random generator, a model's forward call...) and returns one Lineage per source, with
the operations applied between the source and the expression in forward order. Anything the
walk cannot see through ends in an `unknown` source, so rules stay quiet on it. What a tensor is
(shape, dtype, values) is the tensor analysis's (`tensors.py`); this walk answers where its data
comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Union

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts, nodes_within
from mlplint.lint.facts.frames import LambdaFrames
from mlplint.lint.facts.models import SHAPE_FUNCTIONS, SHAPE_METHODS
from mlplint.lint.facts.tensor_sources import CONVERTERS, GENERATOR_DRAWS, RANDOM_GENERATORS, TEXT_TABLE_READERS

PathItem = Union[int, str]  # a tuple element, or a named field (`bunch.data`, `bunch["target"]`)

# scikit-learn datasets: (largest feature magnitude, target kind). Feature maxima measured on the
# shipped data; "labels" are integer class ids, "continuous" real-valued regression targets.
SKLEARN_DATASETS = {
    "load_breast_cancer": (4254.0, "labels"), "load_wine": (1680.0, "labels"),
    "load_iris": (7.9, "labels"), "load_digits": (16.0, "labels"),
    "fetch_california_housing": (35682.0, "continuous"), "load_diabetes": (0.2, "continuous"),
    "fetch_covtype": (7173.0, "labels"), "load_linnerud": (250.0, "continuous"),
    "fetch_kddcup99": (6.9e8, "labels"), "load_boston": (711.0, "continuous"),
}
# Generators: X is roughly standard normal; the target kind follows the task.
SKLEARN_GENERATORS = {
    "make_classification": "labels", "make_blobs": "labels", "make_moons": "labels",
    "make_circles": "labels", "make_gaussian_quantiles": "labels", "make_hastie_10_2": "labels",
    "make_multilabel_classification": "labels",
    "make_regression": "continuous", "make_friedman1": "continuous", "make_friedman2": "continuous",
    "make_friedman3": "continuous", "make_sparse_uncorrelated": "continuous",
}
TORCHVISION_IMAGE_DATASETS = ("torchvision.datasets.",)
SCALERS = {
    "sklearn.preprocessing.StandardScaler", "sklearn.preprocessing.MinMaxScaler",
    "sklearn.preprocessing.RobustScaler", "sklearn.preprocessing.MaxAbsScaler",
    "sklearn.preprocessing.Normalizer", "sklearn.preprocessing.QuantileTransformer",
    "sklearn.preprocessing.PowerTransformer", "sklearn.pipeline.make_pipeline", "sklearn.pipeline.Pipeline",
    "sklearn.compose.ColumnTransformer", "sklearn.compose.make_column_transformer",
}
SCALING_FUNCTIONS = {
    "sklearn.preprocessing.scale", "sklearn.preprocessing.normalize", "sklearn.preprocessing.minmax_scale",
    "sklearn.preprocessing.robust_scale", "sklearn.preprocessing.maxabs_scale",
    "sklearn.preprocessing.quantile_transform", "sklearn.preprocessing.power_transform",
    "torch.nn.functional.normalize", "torch.nn.functional.layer_norm", "torch.nn.functional.batch_norm",
    "numpy.log", "numpy.log1p", "numpy.log10", "numpy.sqrt", "torch.log", "torch.log1p", "torch.tanh",
    "scipy.stats.zscore", "torchvision.transforms.functional.normalize",
}
CONCATENATIONS = {"torch.cat", "torch.stack", "numpy.concatenate", "numpy.vstack", "numpy.stack", "numpy.hstack", "numpy.column_stack"}
RANDOM_STANDARD = {"torch.randn", "torch.randn_like", "torch.normal", "numpy.random.randn", "numpy.random.normal", "numpy.random.standard_normal"}
RANDOM_UNIT = {"torch.rand", "torch.rand_like", "numpy.random.rand", "numpy.random.random", "numpy.random.uniform"}
RANDOM_INTEGERS = {"torch.randint", "numpy.random.randint", "numpy.random.integers", "numpy.random.choice"}
# Generator methods followed as draws; `rng.choice([4, 6, 8])` picks values, not class ids.
GENERATOR_METHODS = {method: draw for method, draw in GENERATOR_DRAWS.items() if method != "choice"}
ARGMAX = {"torch.argmax", "numpy.argmax", "torch.max"}
TRANSPARENT_METHODS = {
    "to", "cuda", "cpu", "numpy", "to_numpy", "copy", "clone", "detach", "contiguous", "requires_grad_",
    "pin_memory", "share_memory_", "values", "T", "t", "squeeze_", "sample", "dropna", "fillna", "drop",
}
DTYPE_METHODS = {"float", "double", "half", "bfloat16", "long", "int", "short", "astype", "type"}
_MAX_DEPTH = 40


@dataclass(frozen=True)
class Source:
    """Where data is made."""

    node: cst.CSTNode
    kind: str  # "features", "labels", "continuous", "images", "model-output", "unknown"
    description: str = ""
    magnitude: Optional[float] = None  # largest absolute value, when known


@dataclass(frozen=True)
class Lineage:
    source: Source
    ops: tuple[tuple[str, cst.CSTNode], ...] = ()  # in forward order, from the source to the use

    @property
    def scaled(self) -> bool:
        return any(op == "scale" for op, _ in self.ops)

    @property
    def split(self) -> Optional[str]:
        """"train" or "test" when the data went through train_test_split (the last split counts)."""
        parts = [op[6:] for op, _ in self.ops if op.startswith("split-")]
        return parts[-1] if parts else None

    @property
    def one_hot(self) -> bool:
        return any(op == "one-hot" for op, _ in self.ops)

    @property
    def magnitude(self) -> Optional[float]:
        magnitude = self.source.magnitude
        for op, node in self.ops:
            if op.startswith("times:") and magnitude is not None:
                magnitude *= float(op[6:])
        return magnitude


class DataAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._cache: dict[tuple, tuple[Lineage, ...]] = {}
        self._lambdas = LambdaFrames(facts)

    def lineages(self, expr: cst.BaseExpression) -> tuple[Lineage, ...]:
        return self._trace(expr, (), 0)

    # ------------------------------------------------------------------ the walk

    def _trace(self, expr: cst.BaseExpression, path: tuple[PathItem, ...], depth: int) -> tuple[Lineage, ...]:
        key = (expr, path, self._lambdas.key)
        if key in self._cache:
            return self._cache[key]
        if depth > _MAX_DEPTH:
            return (Lineage(Source(expr, "unknown")),)
        self._cache[key] = (Lineage(Source(expr, "unknown")),)  # cycle guard
        found = tuple(dict.fromkeys(self._dispatch(expr, path, depth + 1))) or (Lineage(Source(expr, "unknown")),)
        self._cache[key] = found
        return found

    def _dispatch(self, expr, path, depth) -> list[Lineage]:
        if isinstance(expr, cst.Name):
            return self._name(expr, path, depth)
        if isinstance(expr, cst.Attribute):
            return self._attribute(expr, path, depth)
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, path, depth)
        if isinstance(expr, cst.Call):
            return self._call(expr, path, depth)
        if isinstance(expr, cst.BinaryOperation):
            return self._binary(expr, path, depth)
        if isinstance(expr, (cst.Tuple, cst.List)) and path and isinstance(path[0], int) and path[0] < len(expr.elements):
            return list(self._trace(expr.elements[path[0]].value, path[1:], depth))
        return []

    def _then(self, lineages, op: str, node: cst.CSTNode) -> list[Lineage]:
        return [replace(lineage, ops=lineage.ops + ((op, node),)) for lineage in lineages]

    def _name(self, name: cst.Name, path, depth) -> list[Lineage]:
        found: list[Lineage] = []
        for node in self.facts.reaching_nodes(name):
            binding = self.facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is not None and binding.loop:
                found.extend(self._element(binding.value, binding.path + path, depth))
            elif binding is not None:
                found.extend(self._trace(binding.value, binding.path + path, depth))
            elif isinstance(node, cst.Param):
                with self._lambdas.argument_for(node) as argument:
                    if argument is not None:  # a parameter of the lambda call being followed
                        found.extend(self._trace(argument, path, depth))
                if argument is None:
                    origins = [o for o in self.facts.origins(name) if o is not name]
                    for origin in origins:
                        found.extend(self._trace(origin, path, depth))
        return found

    def _attribute(self, expr: cst.Attribute, path, depth) -> list[Lineage]:
        attribute = expr.attr.value
        origins = [o for o in self.facts.origins(expr) if o is not expr]
        if origins:  # self.X assigned in __init__
            return [lineage for origin in origins for lineage in self._trace(origin, path, depth)]
        if attribute in TRANSPARENT_METHODS:
            return list(self._trace(expr.value, path, depth))
        if attribute in ("data", "target", "targets", "train_data", "train_labels", "images", "labels", "frame"):
            return list(self._trace(expr.value, (attribute,) + path, depth))
        return []

    def _subscript(self, expr: cst.Subscript, path, depth) -> list[Lineage]:
        elements = expr.slice
        if len(elements) == 1 and isinstance(elements[0].slice, cst.Index):
            index = elements[0].slice.value
            key = self.facts.literal(index)
            if isinstance(key, (int, str)) and not isinstance(key, bool):
                base = self._trace(expr.value, (key,) + path, depth)
                if all(l.source.kind != "unknown" for l in base) or isinstance(key, int):
                    return list(base)
                return [Lineage(Source(expr, "unknown"))]  # a column of a frame, of unknown scale
            if isinstance(index, cst.List):  # df[["a", "b"]]
                base = self._trace(expr.value, path, depth)
                if all(l.source.kind == "unknown" for l in base):  # columns of the same (say CSV) data
                    return list(base)
                return [Lineage(Source(expr, "unknown"))]  # scale unknown
        return list(self._trace(expr.value, path, depth))  # rows, columns or an index array

    def _binary(self, expr: cst.BinaryOperation, path, depth) -> list[Lineage]:
        facts = self.facts
        left = self._trace(expr.left, path, depth)
        right_value = facts.literal(expr.right)
        if isinstance(expr.operator, (cst.Divide, cst.FloorDivide)):
            if not isinstance(right_value, (int, float)) or abs(right_value) >= 10:
                return self._then(left, "scale", expr)
            return list(left)
        if isinstance(expr.operator, cst.Multiply):
            for data, other in ((expr.left, expr.right), (expr.right, expr.left)):
                factor = self._largest_factor(other)
                if factor is not None:
                    return self._then(self._trace(data, path, depth), f"times:{factor}", expr)
            return []
        if isinstance(expr.operator, (cst.Add, cst.Subtract)):
            if isinstance(facts.literal(expr.left), (int, float)):  # `1.5 + 3 * area`: the array's lineage
                return list(self._trace(expr.right, path, depth))
            if isinstance(right_value, (int, float)):  # `labels - 1`: still class ids
                return list(left)
            # two arrays combined (`x0 + 2 * v`): whatever they were, the result is no class id
            return [replace(l, source=replace(l.source, kind="unknown")) if l.source.kind == "labels" else l for l in left]
        return []

    def _largest_factor(self, expr: cst.BaseExpression) -> Optional[float]:
        """|factor| of a literal number, or the largest of a per-column literal
        (`torch.tensor([1000., 0.001, 50.])`), else None."""
        if isinstance(expr, cst.Call) and self.facts.qualname(expr.func) in CONVERTERS and expr.args:
            expr = expr.args[0].value
        elements = expr.elements if isinstance(expr, (cst.List, cst.Tuple)) else ()
        values = [self.facts.literal(e.value) for e in elements] if elements else [self.facts.literal(expr)]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return float(max(abs(v) for v in values))
        return None

    def _call(self, call: cst.Call, path, depth) -> list[Lineage]:
        facts = self.facts
        qualified = facts.qualname(call.func)
        if qualified is not None:
            return self._api_call(call, qualified, path, depth)
        func = call.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver = func.value
            receiver_classes = facts.classes_of(receiver)
            if method in ("fit_transform", "transform") and call.args:
                if any(isinstance(c, str) and c in SCALERS for c in receiver_classes):
                    return self._then(self._trace(call.args[0].value, path, depth), "scale", call)
                if any(isinstance(c, str) and c.startswith("sklearn.") for c in receiver_classes):
                    return [Lineage(Source(call, "unknown"))]
            if method in TRANSPARENT_METHODS or method in DTYPE_METHODS or method in SHAPE_METHODS:
                return list(self._trace(receiver, path, depth))
            if method == "argmax":
                return [Lineage(Source(call, "labels", "argmax"))]
            if method in GENERATOR_METHODS and any(
                isinstance(o, cst.Call) and facts.qualname(o.func) in RANDOM_GENERATORS for o in facts.origins(receiver)
            ):
                return self._api_call(call, GENERATOR_METHODS[method], path, depth)
            if facts.kind_of(receiver) == "model" and method == "forward":
                return self._model_output(call, receiver)
        if facts.kind_of(func) == "model":
            return self._model_output(call, func)
        lambdas = self._lambdas.lambdas_called(call)
        if lambdas:
            found = []
            for function in lambdas:
                with self._lambdas.entered(call, function):
                    found.extend(self._trace(function.body, path, depth))
            return found
        origins = [o for o in facts.origins(call) if o is not call]
        return [lineage for origin in origins for lineage in self._trace(origin, path, depth)]

    def _api_call(self, call: cst.Call, qualified: str, path, depth) -> list[Lineage]:
        short = qualified.rsplit(".", 1)[-1]
        first = call.args[0].value if call.args and not call.args[0].keyword else None
        if qualified in CONVERTERS and first is not None or qualified in SHAPE_FUNCTIONS and first is not None:
            return list(self._trace(first, path, depth))
        if qualified in TEXT_TABLE_READERS:
            return [Lineage(Source(call, "unknown"))]  # rows by columns, of unknown scale
        if qualified == "pandas.DataFrame" and first is not None:
            if path and isinstance(path[0], str):  # one named column
                return [Lineage(Source(call, "unknown"))]
            return list(self._trace(first, path, depth))
        if qualified in SCALING_FUNCTIONS and first is not None:
            return self._then(self._trace(first, path, depth), "scale", call)
        if qualified in CONCATENATIONS and first is not None and isinstance(first, (cst.List, cst.Tuple)):
            return [l for e in first.elements for l in self._trace(e.value, path, depth)]
        if qualified == "torch.nn.functional.one_hot" and first is not None:
            return self._then(self._trace(first, path, depth), "one-hot", call)
        if qualified.startswith("sklearn.model_selection.train_test_split"):
            arrays = [a.value for a in call.args if a.keyword is None and not a.star]
            if path and isinstance(path[0], int) and path[0] // 2 < len(arrays):
                part = "split-test" if path[0] % 2 else "split-train"
                return self._then(self._trace(arrays[path[0] // 2], path[1:], depth), part, call)
            return []
        if qualified.startswith("sklearn.datasets."):
            return self._sklearn_dataset(call, short, path)
        if qualified.startswith(TORCHVISION_IMAGE_DATASETS):
            return self._torchvision_dataset(call, path)
        if qualified in RANDOM_STANDARD | RANDOM_UNIT:
            return [Lineage(Source(call, "features", f"{short}() random data", self._random_magnitude(call, qualified)))]
        if qualified in RANDOM_INTEGERS:
            high = self._random_high(call, qualified)
            return [Lineage(Source(call, "labels", short, float(high) if high is not None else None))]
        if qualified in ARGMAX:
            return [Lineage(Source(call, "labels", short))]
        return []

    def _element(self, iterable: cst.BaseExpression, path, depth) -> list[Lineage]:
        """What a `for` target gets from iterating `iterable` (path selects inside the item)."""
        facts = self.facts
        for origin in facts.origins(iterable):
            if not isinstance(origin, cst.Call):
                continue
            qualified = facts.qualname(origin.func)
            args = [a.value for a in origin.args if a.keyword is None and not a.star]
            if qualified == "builtins.enumerate" and args and path and path[0] == 1:
                return self._element(args[0], path[1:], depth)
            if qualified == "builtins.zip" and path and isinstance(path[0], int) and path[0] < len(args):
                return self._element(args[path[0]], path[1:], depth)
            if qualified in ("builtins.iter", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm") and args:
                return self._element(args[0], path, depth)
            if qualified == names.DATALOADER:
                dataset = facts.argument(origin, 0, "dataset")
                return self._dataset_item(dataset, path, depth) if dataset is not None else []
        return []

    def _dataset_item(self, dataset: cst.BaseExpression, path, depth) -> list[Lineage]:
        """A batch of a dataset's items: element `path[0]` of what the dataset yields."""
        facts = self.facts
        found: list[Lineage] = []
        for origin in facts.origins(dataset):
            if not isinstance(origin, cst.Call):
                continue
            qualified = facts.qualname(origin.func)
            args = [a.value for a in origin.args if a.keyword is None and not a.star]
            if qualified == "torch.utils.data.TensorDataset" and path and isinstance(path[0], int) and path[0] < len(args):
                found.extend(self._trace(args[path[0]], path[1:], depth))
            elif qualified == "torch.utils.data.Subset" and args:
                found.extend(self._dataset_item(args[0], path, depth))
            elif qualified is not None and qualified.startswith(TORCHVISION_IMAGE_DATASETS):
                found.extend(self._torchvision_dataset(origin, path))
            elif qualified is None:
                for cls in facts.local_definitions(origin.func, cst.ClassDef):
                    getitem = facts.method(cls, "__getitem__")
                    for value in facts.returns.get(getitem, []) if getitem else []:
                        found.extend(self._trace(value, path, depth))
        return found

    # ------------------------------------------------------------------ sources

    def _sklearn_dataset(self, call: cst.Call, short: str, path) -> list[Lineage]:
        if short in SKLEARN_DATASETS:
            magnitude, target_kind = SKLEARN_DATASETS[short]
        elif short in SKLEARN_GENERATORS:
            magnitude, target_kind = 6.0, SKLEARN_GENERATORS[short]
        else:
            return []
        field = path[0] if path else None
        if field in (0, "data", "frame"):
            if len(path) > 1 and isinstance(path[1], str):  # `as_frame=True`: one named column
                return [Lineage(Source(call, "unknown"))]
            return [Lineage(Source(call, "features", f"{short}() features", magnitude))]
        if field in (1, "target"):
            return [Lineage(Source(call, target_kind, f"{short}() targets"))]
        return []

    def _torchvision_dataset(self, call: cst.Call, path) -> list[Lineage]:
        short = self.facts.qualname(call.func).rsplit(".", 1)[-1]
        field = path[0] if path else None
        if field in ("data", "train_data"):  # raw uint8 pixels
            return [Lineage(Source(call, "images", f"{short}.data pixels", 255.0))]
        if field in (1, "targets", "train_labels", "labels"):
            return [Lineage(Source(call, "labels", f"{short} labels"))]
        if field == 0:
            transform = self.facts.argument(call, None, "transform")
            scaled = transform is not None and self._transform_scales(transform)
            return [Lineage(Source(call, "images" if scaled else "unknown", f"{short} images", 1.0 if scaled else None))]
        return []

    def _transform_scales(self, transform: cst.BaseExpression) -> bool:
        """True when a torchvision transform pipeline converts to [0, 1] or normalises."""
        return any(
            isinstance(node, cst.Call) and (self.facts.qualname(node.func) or "").rsplit(".", 1)[-1]
            in ("ToTensor", "Normalize", "ToDtype", "ConvertImageDtype")
            for origin in self.facts.origins(transform)
            for node in nodes_within(origin, cst.Call)
        )

    @staticmethod
    def _model_output(call: cst.Call, model: cst.BaseExpression) -> list[Lineage]:
        return [Lineage(Source(call, "model-output", "model output"))]

    # ------------------------------------------------------------------ helpers

    def _random_magnitude(self, call: cst.Call, qualified: str) -> Optional[float]:
        """Largest typical |value| of a random draw: |mean| + 3 std for a normal, the larger bound
        for a uniform; None when a location or scale is not a literal."""
        if qualified in ("torch.normal", "numpy.random.normal"):
            names = ("mean", "std") if qualified == "torch.normal" else ("loc", "scale")
            bounds = [self.facts.argument(call, i, name) for i, name in enumerate(names)]
            defaults = (0.0, 1.0)
        elif qualified == "numpy.random.uniform":
            bounds = [self.facts.argument(call, i, name) for i, name in enumerate(("low", "high"))]
            defaults = (0.0, 1.0)
        else:
            return 3.0 if qualified in RANDOM_STANDARD else 1.0
        values = [default if bound is None else self.facts.literal(bound) for bound, default in zip(bounds, defaults)]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        first, second = (abs(float(v)) for v in values)
        return first + 3 * second if qualified != "numpy.random.uniform" else max(first, second)

    def _random_high(self, call: cst.Call, qualified: str) -> Optional[int]:
        args = [a.value for a in call.args if a.keyword is None]
        if qualified == "numpy.random.choice":
            return None
        high = self.facts.argument(call, None, "high")
        if high is None and len(args) >= 2 and not isinstance(args[1], (cst.Tuple, cst.List)):
            high = args[1]
        elif high is None and args:
            high = args[0]
        return self.facts.integer_literal(high)
