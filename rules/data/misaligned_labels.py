from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint.facts.core import nodes_within
from mlplint.lint.facts.data import CONVERTERS, RANDOM_GENERATORS
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

IN_PLACE_SHUFFLES = {"numpy.random.shuffle", "random.shuffle"}
# Calls returning their (first) argument's rows in a new order.
REORDERING_CALLS = {"numpy.random.permutation", "sklearn.utils.shuffle", "numpy.sort", "builtins.sorted"}
REORDERING_METHODS = {"sample", "sort_values", "sort_index", "reindex"}
# Index arrays that put rows in a new order (used as `X[perm]`).
PERMUTATIONS = {"torch.randperm", "numpy.random.permutation", "numpy.argsort", "torch.argsort", "numpy.random.choice"}
ROW_PRESERVING_METHODS = {
    "astype", "float", "double", "long", "to", "cuda", "cpu", "numpy", "to_numpy", "values", "copy", "clone",
    "detach", "reshape", "view", "unsqueeze", "squeeze", "contiguous",
}
_MAX_CHAIN = 24
# Attributes that hold an object's rows: a tensor's or DataFrame's values, a dataset's samples and
# labels (scikit-learn's Bunch: data, target, images; torchvision datasets: data, targets).
ROW_ATTRIBUTES = {"values", "data", "T", "target", "targets", "images"}


@register
class MisalignedLabels(Rule):
    """
    ## What it does
    Finds features whose rows are put in a new order, or a random subset of them taken, while the
    labels they are later paired with (`TensorDataset(X, y)`, `train_test_split(X, y)`,
    `zip(X, y)`, `.fit(X, y)`) keep theirs: `np.random.shuffle(X)`, `rng.shuffle(X)`,
    `X = X[torch.randperm(n)]`, `X = np.random.permutation(X)`, `X = df.sample(frac=1)`, `np.sort(X)`,
    `X.sort_values(...)`, `X = X[idx]` with a random `idx`.

    Shuffling features and labels together (`perm = torch.randperm(n); X, y = X[perm], y[perm]`,
    `X, y = sklearn.utils.shuffle(X, y)`), shuffling one array that holds both and splitting it
    afterwards, and shuffling the labels on purpose (a permutation test) stay quiet, and so does
    a script that reorders the labels in some other way of its own, or whose labels come through
    a step the analysis cannot follow.

    ## Why is this bad?
    After the shuffle, row i of the features belongs to one sample and row i of the labels to
    another: the labels are noise with respect to the inputs. Training still runs and the loss
    still falls a little (the model learns the label frequencies), so the bug looks like a model
    that cannot learn, with accuracy at chance level.

    ## Example
    ```python
    import numpy as np
    import torch
    from torch.utils.data import TensorDataset

    X, y = np.load("X.npy"), np.load("y.npy")
    np.random.shuffle(X)
    dataset = TensorDataset(torch.tensor(X), torch.tensor(y))
    ```

    Use instead:
    ```python
    import numpy as np
    import torch
    from torch.utils.data import TensorDataset

    X, y = np.load("X.npy"), np.load("y.npy")
    perm = np.random.permutation(len(X))
    X, y = X[perm], y[perm]
    dataset = TensorDataset(torch.tensor(X), torch.tensor(y))
    ```
    """

    code = "ML106"
    name = "misaligned-labels"
    severity = Severity.ERROR
    symptoms = ("ML932", "ML904", "ML912")

    VALID = [
        # shuffled together
        """
import torch
from torch.utils.data import TensorDataset
perm = torch.randperm(len(X))
X, y = X[perm], y[perm]
ds = TensorDataset(X, y)
""",
        "from sklearn.utils import shuffle\nfrom sklearn.model_selection import train_test_split\nX, y = shuffle(X, y, random_state=0)\nparts = train_test_split(X, y)\n",
        # one array holding both, shuffled, then split into features and labels
        """
import numpy as np
data = np.loadtxt("data.csv", delimiter=",")
np.random.shuffle(data)
X, y = data[:, :-1], data[:, -1]
for xi, yi in zip(X, y):
    pass
""",
        # a permutation test: the labels are shuffled on purpose
        """
import numpy as np
rng = np.random.default_rng(0)
y_perm = y.copy()
rng.shuffle(y_perm)
clf.fit(X, y_perm)
""",
        # labels computed from the features after the shuffle
        """
import numpy as np
np.random.shuffle(X)
y = (X[:, 0] > 0).astype(int)
model.fit(X, y)
""",
        # the same seed before each shuffle keeps the rows together
        """
import numpy as np
np.random.seed(0)
np.random.shuffle(X)
np.random.seed(0)
np.random.shuffle(y)
ds = TensorDataset(torch.tensor(X), torch.tensor(y))
""",
    ]
    INVALID = [
        # features and labels taken from a scikit-learn dataset's attributes
        Invalid(
            """
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset
digits = load_digits()
X = digits.data.astype(np.float32) / 16.0
y = digits.target.astype(np.int64)
np.random.shuffle(X)
dataset = TensorDataset(torch.tensor(X), torch.tensor(y))
""",
            line=9,
        ),
        Invalid(
            """
import numpy as np
import torch
from torch.utils.data import TensorDataset
X = np.load("X.npy")
y = np.load("y.npy")
np.random.shuffle(X)
ds = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
""",
            line=7,
            message="`y`",
        ),
        Invalid(
            """
import torch
features, labels = torch.load("features.pt"), torch.load("labels.pt")
idx = torch.randperm(features.shape[0])
features = features[idx]
for xb, yb in zip(features.split(32), labels.split(32)):
    pass
ds = torch.utils.data.TensorDataset(features, labels)
""",
            line=5,
        ),
        Invalid(
            """
import pandas as pd
from sklearn.model_selection import train_test_split
df = pd.read_csv("train.csv")
X = df.drop(columns=["label"])
y = df["label"]
X = X.sample(frac=1.0, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X.values, y.values)
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        reported = set()
        for call in facts.calls:
            pair = self._pair(ctx, call)
            if pair is None:
                continue
            features, labels = pair
            moved = [node for node, when in self._reorders(ctx, features) if facts.order_of(when) < facts.order_of(call)]
            if not moved or self._reorders(ctx, labels) or not self._traced(ctx, labels) \
                    or features.value in self._mentioned(ctx, labels):
                continue
            for key in moved:
                if id(key) in reported:
                    continue
                reported.add(id(key))
                ctx.report(key, f"this reorders the rows of `{features.value}` but not those of `{labels.value}`, which "
                                f"line {facts.line_of(call)} pairs with them: each sample now gets another sample's label; "
                                "shuffle both with one permutation (perm = np.random.permutation(len(X)); "
                                "X, y = X[perm], y[perm])")

    def _pair(self, ctx: RuleContext, call: cst.Call) -> Optional[tuple[cst.Name, cst.Name]]:
        """(features, labels) as the Names a call pairs row by row."""
        facts = ctx.facts
        qualified = facts.qualname(call.func)
        args = [a.value for a in call.args if a.keyword is None and not a.star]
        paired = qualified in ("torch.utils.data.TensorDataset", "sklearn.model_selection.train_test_split", "builtins.zip")
        paired = paired or (qualified is None and isinstance(call.func, cst.Attribute) and call.func.attr.value == "fit")
        if not paired or len(args) < 2:
            return None
        features, labels = _base_name(facts, args[0]), _base_name(facts, args[1])
        if features is None or labels is None or features.value == labels.value:
            return None
        return features, labels

    def _in_place_shuffles(self, ctx: RuleContext) -> dict[cst.CSTNode, list[cst.Call]]:
        """In-place shuffles (`np.random.shuffle(X)`, `rng.shuffle(X)`), by the binding of the
        array they shuffle; computed once per file (a rule instance checks one file)."""
        if not hasattr(self, "_shuffles"):
            facts = ctx.facts
            self._shuffles: dict[cst.CSTNode, list[cst.Call]] = {}
            for call in facts.calls:
                if not call.args or not isinstance(call.args[0].value, cst.Name):
                    continue
                qualified = facts.qualname(call.func)
                generator = qualified is None and isinstance(call.func, cst.Attribute) and call.func.attr.value == "shuffle" \
                    and any(isinstance(o, cst.Call) and facts.qualname(o.func) in RANDOM_GENERATORS for o in facts.origins(call.func.value))
                if qualified in IN_PLACE_SHUFFLES or generator:
                    for node in facts.reaching_nodes(call.args[0].value):
                        self._shuffles.setdefault(node, []).append(call)
        return self._shuffles

    def _reorders(self, ctx: RuleContext, name: cst.Name) -> list[tuple[cst.CSTNode, cst.Call]]:
        """What put the rows of the array a Name holds in a new order, walking back through its
        assignments: in-place shuffles, reordering calls, and indexing by a permutation; each as
        (the expression that reorders, the call that makes the new order)."""
        facts = ctx.facts
        shuffles = self._in_place_shuffles(ctx)
        found: list[tuple[cst.CSTNode, cst.Call]] = []
        todo, seen = [name], set()
        while todo and len(seen) < _MAX_CHAIN:
            current = todo.pop()
            for node in facts.reaching_nodes(current):
                if node in seen:
                    continue
                seen.add(node)
                found.extend((shuffle, shuffle) for shuffle in shuffles.get(node, []))
                binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
                if binding is None or binding.loop:
                    continue
                value = _tuple_element(binding.value, binding.path)
                reordering, source = self._reordering(ctx, value)
                if reordering is not None:
                    found.append(reordering)
                if source is not None:
                    todo.append(source)
        return found

    def _reordering(self, ctx: RuleContext, value: Optional[cst.BaseExpression]) -> tuple[Optional[tuple[cst.CSTNode, cst.Call]], Optional[cst.Name]]:
        """(the reordering a value applies, if any; the Name it is computed from, to walk on)."""
        facts = ctx.facts
        if isinstance(value, cst.Subscript):
            base = _base_name(facts, value.value)
            if len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index):
                index = value.slice[0].slice.value
                for origin in facts.origins(index):
                    if isinstance(origin, cst.Call) and self._is_permutation(ctx, origin):
                        return (value, origin), base
            return None, base
        if isinstance(value, cst.Call):
            qualified = facts.qualname(value.func)
            first = value.args[0].value if value.args else None
            if qualified in REORDERING_CALLS and first is not None and facts.literal(first) is None:
                return (value, value), _base_name(facts, first)
            if qualified is None and isinstance(value.func, cst.Attribute):
                method = value.func.attr.value
                if method in REORDERING_METHODS and (method != "sample" or facts.argument(value, None, "frac") is not None):
                    return (value, value), _base_name(facts, value.func.value)
                if method == "permutation" and first is not None and facts.literal(first) is None:
                    return (value, value), _base_name(facts, first)
            return None, _base_name(facts, value)
        return None, _base_name(facts, value) if value is not None else None

    @staticmethod
    def _is_permutation(ctx: RuleContext, call: cst.Call) -> bool:
        facts = ctx.facts
        qualified = facts.qualname(call.func)
        if qualified in PERMUTATIONS:
            return qualified != "numpy.random.choice" or facts.literal(facts.argument(call, None, "replace")) is False
        return qualified is None and isinstance(call.func, cst.Attribute) and call.func.attr.value == "permutation"

    def _traced(self, ctx: RuleContext, name: cst.Name) -> bool:
        """Whether the labels' chain of assignments ends at where the data is made (an API call
        such as np.load, a literal, a parameter-free source): otherwise a reordering may hide in
        a step the walk cannot see through, and the rule stays quiet."""
        facts = ctx.facts
        todo, seen = [name], set()
        while todo and len(seen) < _MAX_CHAIN:
            current = todo.pop()
            nodes = facts.reaching_nodes(current)
            if not nodes:
                return False
            for node in nodes:
                if node in seen:
                    continue
                seen.add(node)
                binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
                if binding is None or binding.loop:
                    return False
                value = _tuple_element(binding.value, binding.path)
                _, source = self._reordering(ctx, value)
                if source is not None:
                    todo.append(source)
                elif not (isinstance(value, cst.Call) and facts.qualname(value.func) is not None):
                    return False
        return not todo

    def _mentioned(self, ctx: RuleContext, name: cst.Name) -> set[str]:
        """Names the values assigned along a Name's chain read (is `y` computed from `X`?)."""
        facts = ctx.facts
        mentioned: set[str] = set()
        todo, seen = [name], set()
        while todo and len(seen) < _MAX_CHAIN:
            current = todo.pop()
            for node in facts.reaching_nodes(current):
                binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
                if node in seen or binding is None:
                    continue
                seen.add(node)
                for read in nodes_within(binding.value, cst.Name):
                    mentioned.add(read.value)
                    todo.append(read)
        return mentioned


def _tuple_element(value: cst.BaseExpression, path: tuple[int, ...]) -> cst.BaseExpression:
    """The element an unpacking target gets from a literal tuple; the call itself otherwise."""
    for index in path:
        if not isinstance(value, (cst.Tuple, cst.List)) or index >= len(value.elements):
            return value
        value = value.elements[index].value
    return value


def _base_name(facts, expr: cst.BaseExpression) -> Optional[cst.Name]:
    """The variable behind row-preserving wrappers: `torch.tensor(X).float()`, `X.values`, `X.split(32)`."""
    for _ in range(_MAX_CHAIN):
        if isinstance(expr, cst.Name):
            return expr
        if isinstance(expr, cst.BinaryOperation):  # elementwise arithmetic keeps the rows: `price / 1e5`
            expr = expr.left if facts.literal(expr.left) is None else expr.right
        elif isinstance(expr, cst.Attribute) and expr.attr.value in ROW_ATTRIBUTES:
            expr = expr.value
        elif isinstance(expr, cst.Call) and facts.qualname(expr.func) in CONVERTERS and expr.args:
            expr = expr.args[0].value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and facts.qualname(expr.func) is None \
                and expr.func.attr.value in ROW_PRESERVING_METHODS | {"split", "chunk"}:
            expr = expr.func.value
        else:
            return None
    return None
