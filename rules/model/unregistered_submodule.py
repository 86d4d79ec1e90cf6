from __future__ import annotations

from typing import Optional, Union

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register

REGISTERING_CONTAINERS = names.MODULE_CONTAINERS | {names.SEQUENTIAL}
REGISTERING_METHODS = {"add_module", "register_module", "register_parameter", "register_buffer"}
PARAMETER = "torch.nn.Parameter"


@register
class UnregisteredSubmodule(Rule):
    """
    ## What it does
    Finds layers (or `nn.Parameter`s) that an `nn.Module` keeps in a plain Python list, tuple or
    dict attribute: `self.layers = [nn.Linear(...), ...]`, a list comprehension, a list built with
    `self.layers.append(...)`, or `self.heads = {"a": nn.Linear(...)}`. `nn.ModuleList`,
    `nn.ModuleDict`, `nn.Sequential`, `nn.ParameterList` and `nn.ParameterDict` stay quiet, as do
    lists that are wrapped later (`self.layers = nn.ModuleList(self.layers)`), lists of modules
    also registered elsewhere (`[self.fc1, self.fc2]`), and classes that register them with
    `add_module`/`register_module` or override `parameters()`.

    ## Why is this bad?
    `nn.Module` registers a submodule only when it is assigned directly as an attribute or held by
    a module container. Layers in a plain list are invisible to `model.parameters()`, so the
    optimizer never updates them: they keep their random initial weights while the loss still
    goes down a little through the other layers. `.to(device)`, `.eval()`, `state_dict()` and
    `.apply()` skip them too, so the model may also crash on GPU or save incomplete checkpoints.

    ## Example
    ```python
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(10, 64), nn.Linear(64, 64)]
            self.out = nn.Linear(64, 1)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(10, 64), nn.Linear(64, 64)])
            self.out = nn.Linear(64, 1)
    ```

    ## Fix safety
    The fix wraps the list or dict in `nn.ModuleList(...)` / `nn.ModuleDict(...)` (the Parameter
    containers for `nn.Parameter`s), or turns the empty `[]` / `{}` that `append` or item
    assignment fills into an empty container of that kind. It is unsafe: the layers start being
    trained, moved and saved, so checkpoints gain keys and code that treats the attribute as a
    plain list (`self.layers + [...]`, `json.dumps`) must change with it.
    """

    code = "ML304"
    name = "unregistered-submodule"
    severity = Severity.ERROR
    symptoms = ("ML918",)

    VALID = [
        # unpacking a helper's result keeps no tuple of modules
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, feature_info = create_stem(3, 64)
        self.global_pool, self.fc = create_classifier(64, 10)
        self.head, self.norm = nn.Linear(64, 10), nn.LayerNorm(64)
    def forward(self, x):
        return self.fc(self.global_pool(self.stem(x)))
""",
        # ModuleList and ModuleDict register their modules
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 1), "b": nn.Linear(8, 2)})
""",
        # a plain list wrapped into a ModuleList before the end of __init__
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self, sizes=(4, 8, 8)):
        super().__init__()
        self.layers = []
        for a, b in zip(sizes, sizes[1:]):
            self.layers.append(nn.Linear(a, b))
        self.layers = nn.ModuleList(self.layers)
""",
        # a list of modules that are registered as attributes already
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)
        self.stages = [self.fc1, self.fc2]
""",
        # not an nn.Module: a plain Python holder of models
        """
import torch.nn as nn
class Ensemble:
    def __init__(self):
        self.members = [nn.Linear(4, 1) for _ in range(5)]
""",
        # a list of plain numbers or tensors is fine
        """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.sizes = [4, 8, 1]
        self.fc = nn.Linear(4, 1)
        self.register_buffer("mean", torch.zeros(4))
""",
        # registered explicitly with add_module
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [nn.Linear(8, 8) for _ in range(3)]
        for i, block in enumerate(self.blocks):
            self.add_module(f"block{i}", block)
""",
    ]
    INVALID = [
        Invalid(
            """
import torch.nn as nn
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(10, 64), nn.Linear(64, 64)]
        self.out = nn.Linear(64, 1)
""",
            line=6,
            message="nn.ModuleList",
        ),
        Invalid(
            """
from torch import nn
class MultiHead(nn.Module):
    def __init__(self, tasks):
        super().__init__()
        self.trunk = nn.Linear(16, 32)
        self.heads = {}
        for task in tasks:
            self.heads[task] = nn.Linear(32, 1)
""",
            line=9,
            message="nn.ModuleDict",
        ),
        Invalid(
            """
import torch.nn as nn
class Deep(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.blocks = []
        for _ in range(n):
            self.blocks.append(nn.Sequential(nn.Linear(32, 32), nn.ReLU()))
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x
""",
            line=8,
            message="`self.blocks`",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
class Mixture(nn.Module):
    def __init__(self, k=3):
        super().__init__()
        self.experts = [nn.Linear(8, 8) for _ in range(k)]
        self.weights = [nn.Parameter(torch.ones(8)) for _ in range(k)]
""",
            line=8,
            message="nn.ParameterList",
        ),
        # a list grown by concatenation, of a subclass of nn.Linear
        Invalid(
            """
import torch.nn as nn
class Layer(nn.Linear):
    def forward(self, x):
        return super().forward(x).relu()
class Net(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.layers = []
        for d in range(len(dims) - 1):
            self.layers = self.layers + [Layer(dims[d], dims[d + 1])]
""",
            line=11,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for owner in facts.classes:
            if not facts.is_module_class(owner) or self._registers_itself(facts, owner):
                continue
            attributes = {attr: values for (cls, attr), values in facts.self_attributes.items() if cls is owner}
            for attribute, values in attributes.items():
                if any(facts.class_of(o) in REGISTERING_CONTAINERS for v in values for o in facts.origins(v)):
                    continue
                for node, kind, held in self._plain_holdings(facts, owner, attribute, values):
                    container = "nn.ModuleDict" if kind == "dict" else "nn.ModuleList"
                    if held == PARAMETER:
                        container = container.replace("Module", "Parameter")
                    what = "nn.Parameter" if held == PARAMETER else _short(held)
                    ctx.report(
                        node,
                        f"`self.{attribute}` keeps {what} {'tensors' if held == PARAMETER else 'modules'} in a plain "
                        f"{kind}, so `{owner.name.value}` does not register them: `model.parameters()` misses their "
                        f"weights and the optimizer never trains them, and `.to(device)`, `.eval()` and `state_dict()` "
                        f"skip them; wrap it in {container}(...)",
                        fix=_registering_fix(facts, node, values, container),
                    )
                    break

    def _plain_holdings(self, facts, owner: cst.ClassDef, attribute: str, values):
        """(node to report, 'list'|'tuple'|'dict', what it holds) for each plain container holding modules."""
        for value in (part for v in values for part in _summands(v)):
            for origin in facts.origins(value):
                kind = _container_kind(origin)
                if kind is None:
                    continue
                elements = self._elements(facts, origin, value)
                held = next((h for h in map(lambda e: self._module_class(facts, e), elements) if h), None)
                if held is not None:
                    yield value, kind, held
                    return
        for node, added in self._additions(facts, owner, attribute):
            held = self._module_class(facts, added)
            if held is not None and any(_container_kind(o) for v in values for o in facts.origins(v)):
                kind = "dict" if isinstance(node, cst.Assign) else "list"
                yield node, kind, held
                return

    @staticmethod
    def _elements(facts, origin: cst.BaseExpression, value: cst.BaseExpression) -> list[cst.BaseExpression]:
        if isinstance(origin, cst.Dict):
            return [e.value for e in origin.elements if isinstance(e, cst.DictElement)]
        if isinstance(origin, cst.DictComp):
            return [origin.value]
        if isinstance(origin, (cst.ListComp, cst.GeneratorExp)):
            return [origin.elt]
        return facts.networks._list_elements(value if isinstance(value, cst.Name) else origin)

    @staticmethod
    def _additions(facts, owner: cst.ClassDef, attribute: str) -> list[tuple[Union[cst.Call, cst.Assign], cst.BaseExpression]]:
        """`self.attr.append(x)` / `.insert(i, x)` calls and `self.attr[key] = x` assignments in the
        class, with the added value."""
        found: list[tuple[Union[cst.Call, cst.Assign], cst.BaseExpression]] = []
        for method in facts.methods(owner).values():
            for node in facts.effects.get(method, []):
                if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and \
                        node.func.attr.value in ("append", "insert") and node.args and _is_self_attribute(node.func.value, attribute):
                    added = node.args[-1].value
                    found.append((node, added))
                elif isinstance(node, cst.Assign) and any(
                        isinstance(t.target, cst.Subscript) and _is_self_attribute(t.target.value, attribute) for t in node.targets):
                    found.append((node, node.value))
        return found

    @staticmethod
    def _module_class(facts, element: cst.BaseExpression) -> Optional[str]:
        """The module (or Parameter) class an element constructs, if it is not registered elsewhere."""
        if isinstance(element, (cst.Attribute, cst.Subscript)):
            return None  # `self.fc1`, `self.blocks[0]`: registered (or not) where it was made
        if isinstance(element, cst.Name) and _assigned_to_self(facts, element):
            return None
        for origin in facts.origins(element):
            if not isinstance(origin, cst.Call):
                continue
            cls = facts.class_of(origin)
            if cls == PARAMETER:
                return PARAMETER
            if isinstance(cls, cst.ClassDef) and facts.is_module_class(cls):
                return cls.name.value
            if isinstance(cls, str) and (names.is_layer_class(cls) or names.is_loss_class(cls)):
                return cls
        return None

    @staticmethod
    def _registers_itself(facts, owner: cst.ClassDef) -> bool:
        methods = facts.methods(owner)
        if "parameters" in methods or "named_parameters" in methods:
            return True
        for method in methods.values():
            for node in facts.effects.get(method, []):
                if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and \
                        node.func.attr.value in REGISTERING_METHODS:
                    return True
                if isinstance(node, cst.Call) and facts.qualname(node.func) == "builtins.setattr":
                    return True
        return False


def _registering_fix(facts, node: cst.CSTNode, values: list[cst.BaseExpression], container: str) -> Optional[FixSpec]:
    """Wrap the assigned list or dict in the container, or, for a container filled by `append` or
    item assignment, start it as an empty one."""
    spelled = fixes.spelling(facts, f"torch.{container}")  # container: "nn.ModuleList", ...
    if spelled is None:
        return None
    description = f"Register the modules with {container}"
    if any(node is value for value in values):
        if isinstance(node, cst.Dict) and not all(
                isinstance(e, cst.DictElement) and isinstance(e.key, (cst.SimpleString, cst.ConcatenatedString))
                for e in node.elements):
            return None  # ModuleDict keys must be strings
        bare_tuple = isinstance(node, cst.Tuple) and not node.lpar
        opening, closing = (f"{spelled}((", "))") if bare_tuple else (f"{spelled}(", ")")
        return FixSpec("unsafe", (), description, edits=tuple(fixes.wrap_expression(facts, node, opening, closing)))
    empty = [v for v in values if isinstance(v, (cst.List, cst.Dict)) and not v.elements]
    if isinstance(node, (cst.Call, cst.Assign)) and empty and len(empty) == len(values):
        return FixSpec("unsafe", tuple((value, f"{spelled}()") for value in empty), description)
    return None


def _summands(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of a list concatenation (`self.layers + [layer]`), or the expression itself."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
        return _summands(expr.left) + _summands(expr.right)
    return [expr]


def _container_kind(expr: cst.BaseExpression) -> Optional[str]:
    if isinstance(expr, (cst.List, cst.ListComp)):
        return "list"
    if isinstance(expr, cst.Tuple):
        return "tuple"
    if isinstance(expr, (cst.Dict, cst.DictComp)):
        return "dict"
    return None


def _is_self_attribute(expr: cst.BaseExpression, attribute: str) -> bool:
    return isinstance(expr, cst.Attribute) and expr.attr.value == attribute and isinstance(expr.value, cst.Name) \
        and expr.value.value == "self"


def _assigned_to_self(facts, name: cst.Name) -> bool:
    """True when the same local variable is also stored as `self.x = name` in its function."""
    function = facts.enclosing_function(name)
    for node in facts.effects.get(function, []) if function is not None else []:
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Name) and node.value.value == name.value and \
                any(isinstance(t.target, cst.Attribute) for t in node.targets):
            return True
    return False


def _short(api: str) -> str:
    return f"nn.{api.rsplit('.', 1)[-1]}" if api.startswith("torch.nn.") else f"`{api}`"
