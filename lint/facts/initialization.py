"""Weight initialisation: which `nn.init.*` calls (and `.fill_()`, `.zero_()`, `.normal_()` on a
layer's `.weight`) reach which layers of which networks.

An init call names its tensor as `<layer>.weight` (`self.fc.weight`, `m.weight.data`) or as a
parameter from `.parameters()`. The layer is either one constructor call (`self.fc = nn.Linear(...)`)
or a loop/apply variable (`for m in self.modules()`, `def init_fn(m)` given to `model.apply`),
whose classes come from the `isinstance(m, ...)` test around the call. The networks are the ones
holding that constructor, the class whose method makes the call, or the model the loop or
`apply()` runs over. Anything the analysis cannot place keeps `layers`/`networks` empty, so rules
stay quiet on it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts

INIT_FUNCTIONS = {
    "xavier_uniform_": "xavier", "xavier_normal_": "xavier", "xavier_uniform": "xavier", "xavier_normal": "xavier",
    "kaiming_uniform_": "kaiming", "kaiming_normal_": "kaiming", "kaiming_uniform": "kaiming", "kaiming_normal": "kaiming",
    "orthogonal_": "orthogonal", "orthogonal": "orthogonal",
    "normal_": "normal", "normal": "normal", "trunc_normal_": "normal", "uniform_": "uniform", "uniform": "uniform",
    "zeros_": "constant", "ones_": "constant", "constant_": "constant", "constant": "constant",
    "eye_": "eye", "dirac_": "dirac", "sparse_": "sparse",
}
TENSOR_INIT_METHODS = {"fill_": "constant", "zero_": "constant", "normal_": "normal", "uniform_": "uniform"}
# Activations for which kaiming_*(nonlinearity=...) or calculate_gain(...) is tuned.
RELU_GAINS = {"relu", "leaky_relu", "selu"}
MODULE_ITERATORS = {"modules", "children", "named_modules", "named_children"}
PARAMETER_ITERATORS = {"parameters", "named_parameters"}
# Layers with a `.weight` that `isinstance(m, ...)` tests and class-name matches can select.
KNOWN_LAYERS = sorted(
    names.LINEAR_LAYERS | names.CONV_LAYERS | names.NORM_LAYERS | names.RECURRENT_LAYERS
    | {"torch.nn.Embedding", "torch.nn.EmbeddingBag", "torch.nn.MultiheadAttention"}
)


@dataclass(frozen=True)
class Init:
    call: cst.Call
    function: str  # "xavier_uniform_", "fill_", ...
    scheme: str  # "xavier", "kaiming", "orthogonal", "normal", "uniform", "constant", "eye", "dirac", "sparse"
    target: str  # "weight", "bias" or "any" (a parameter that may be either)
    layers: Optional[frozenset[str]]  # layer classes reached; None when not known
    layer_node: Optional[cst.Call]  # the one constructor reached, when it is a single named layer
    networks: tuple[cst.CSTNode, ...]  # nodes (ClassDef or nn.Sequential call) of the networks reached
    nonlinearity: Optional[str] = None  # the activation the gain is tuned for ("relu", "tanh", "linear"...)
    value: Any = None  # the constant, for constant inits
    tensor: Optional[cst.BaseExpression] = None  # the initialised tensor as written (`self.fc.weight`)

    @property
    def label(self) -> str:
        if self.function in TENSOR_INIT_METHODS and isinstance(self.call.func, cst.Attribute) and \
                self.call.func.attr.value == self.function:
            return f".{self.function}()"
        return f"nn.init.{self.function}()"

    def reaches(self, apis: set[str]) -> bool:
        return self.layers is not None and bool(self.layers & apis)


class InitAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    @functools.cached_property
    def inits(self) -> list[Init]:
        found = []
        for call in self.facts.calls:
            init = self._init(call)
            if init is not None:
                found.append(init)
        return found

    def for_network(self, network_node: cst.CSTNode) -> list[Init]:
        return [init for init in self.inits if network_node in init.networks]

    @property
    def unplaced(self) -> list[Init]:
        """Weight inits whose networks are unknown (a helper called on something unresolved)."""
        return [init for init in self.inits if not init.networks and init.target != "bias"]

    # ------------------------------------------------------------------ one call

    def _init(self, call: cst.Call) -> Optional[Init]:
        facts = self.facts
        qualified = facts.qualname(call.func)
        if qualified is not None and qualified.startswith("torch.nn.init."):
            function = qualified.rsplit(".", 1)[-1]
            tensor = facts.argument(call, 0, "tensor")
        elif qualified is None and isinstance(call.func, cst.Attribute) and call.func.attr.value in TENSOR_INIT_METHODS:
            function = call.func.attr.value
            tensor = call.func.value
            if _parameter_attribute(tensor) is None and not self._is_parameter_variable(tensor):
                return None  # `.fill_()` on some tensor, not on a layer's parameter
        else:
            return None
        scheme = INIT_FUNCTIONS.get(function) or TENSOR_INIT_METHODS.get(function)
        if scheme is None or tensor is None:
            return None
        target, layers, layer_node, networks = self._reach(call, tensor)
        return Init(call, function, scheme, target, layers, layer_node, networks,
                    self._nonlinearity(call, scheme), self._value(call, function), tensor)

    def _is_parameter_variable(self, tensor: cst.BaseExpression) -> bool:
        """`p` (or `p.data`) from a loop over `model.parameters()` / `named_parameters()`."""
        root = _strip_data(tensor)
        return isinstance(root, cst.Name) and any(
            isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute)
            and iterable.func.attr.value in PARAMETER_ITERATORS for iterable, _ in self._loop_sources(root))

    def _nonlinearity(self, call: cst.Call, scheme: str) -> Optional[str]:
        facts = self.facts
        if scheme == "kaiming":
            given = facts.argument(call, 3, "nonlinearity")
            value = facts.literal(given) if given is not None else "leaky_relu"
            return value if isinstance(value, str) else None
        if scheme in ("xavier", "orthogonal"):
            gain = facts.argument(call, 1, "gain")
            if gain is None:
                return "linear"
            for origin in facts.origins(gain):
                if isinstance(origin, cst.Call) and facts.qualname(origin.func) == "torch.nn.init.calculate_gain":
                    kind = facts.literal(facts.argument(origin, 0, "nonlinearity"))
                    return kind if isinstance(kind, str) else None
            value = facts.literal(gain)
            if isinstance(gain, cst.Call) and facts.qualname(gain.func) in ("math.sqrt", "numpy.sqrt") and gain.args:
                inner = facts.literal(gain.args[0].value)
                value = inner ** 0.5 if isinstance(inner, (int, float)) and inner >= 0 else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return "relu" if value >= 1.3 else ("tanh" if value > 1.05 else "linear")
            return None
        return None

    def _value(self, call: cst.Call, function: str) -> Any:
        if function in ("zeros_", "zero_"):
            return 0
        if function == "ones_":
            return 1
        if function in ("constant_", "constant"):
            return self.facts.literal(self.facts.argument(call, 1, "val"))
        if function == "fill_":
            return self.facts.literal(self.facts.argument(call, 0, "value"))
        return None

    # ------------------------------------------------------------------ what a call reaches

    def _reach(self, call: cst.Call, tensor: cst.BaseExpression):
        """(target, layer classes, single layer constructor, network nodes) of an init's tensor."""
        attribute = _parameter_attribute(tensor)
        if attribute is not None:
            module, name = attribute
            target = "bias" if name.startswith("bias") else "weight" if name.startswith("weight") else "any"
            return (target,) + self._module_reach(call, module)
        root = _strip_data(tensor)
        if isinstance(root, cst.Name):
            for iterable, path in self._loop_sources(root):
                if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute) and \
                        iterable.func.attr.value in PARAMETER_ITERATORS:
                    if iterable.func.attr.value == "named_parameters" and path != (1,):
                        continue
                    target = self._parameter_guard(call, root)
                    return target, None, None, self._networks_of_model(iterable.func.value)
        return "any", None, None, ()

    def _module_reach(self, call: cst.Call, module: cst.BaseExpression):
        facts = self.facts
        origins = list(facts.origins(module))
        if isinstance(module, cst.Attribute) and origins == [module]:  # `model.fc` on an instance
            origins = [o for cls in facts.classes_of(module.value) if isinstance(cls, cst.ClassDef)
                       for owner in facts.class_lineage(cls)
                       for value in facts.self_attributes.get((owner, module.attr.value), [])
                       for o in facts.origins(value)] or origins
        constructors = [o for o in origins if isinstance(o, cst.Call) and isinstance(facts.class_of(o), str)]
        if constructors and len(constructors) == len(origins):
            layers = frozenset(facts.class_of(c) for c in constructors)
            nodes = [n for c in constructors for n in self._networks_holding(c)]
            owner = self._owning_class(call)
            if owner is not None:
                nodes.append(owner)
            layer = constructors[0] if len(constructors) == 1 else None
            return layers, layer, tuple(dict.fromkeys(nodes))
        if isinstance(module, cst.Name):
            guard = self._guard(call, module.value)
            for iterable, path in self._loop_sources(module):
                if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute) and \
                        iterable.func.attr.value in MODULE_ITERATORS:
                    if iterable.func.attr.value.startswith("named_") and path != (1,):
                        continue
                    return guard, None, self._networks_of_model(iterable.func.value)
            function = facts.enclosing_function(module)
            if function is not None and _is_param(function, module.value):
                return guard, None, self._applied_to(function)
        return None, None, ()

    def _loop_sources(self, name: cst.Name) -> list[tuple[cst.BaseExpression, tuple[int, ...]]]:
        found = []
        for node in self.facts.reaching_nodes(name):
            binding = self.facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is not None and binding.loop:
                iterable, path = binding.value, binding.path
                if isinstance(iterable, cst.Call) and self.facts.qualname(iterable.func) == "builtins.enumerate" \
                        and iterable.args and path[:1] == (1,):
                    iterable, path = iterable.args[0].value, path[1:]
                found.append((iterable, path))
        return found

    def _networks_of_model(self, model: cst.BaseExpression) -> tuple[cst.CSTNode, ...]:
        facts = self.facts
        if isinstance(model, cst.Name):
            function = facts.enclosing_function(model)
            if function is not None and function.params.params and function.params.params[0].name.value == model.value:
                owner = facts.enclosing_class(function)
                if owner is not None and facts.is_module_class(owner):
                    return (owner,)
        network = facts.networks.network_of(model)
        return (network.node,) if network is not None else ()

    def _applied_to(self, function: cst.FunctionDef) -> tuple[cst.CSTNode, ...]:
        """Networks an init function reaches: `X.apply(fn)` anywhere, or the class whose method it is."""
        facts = self.facts
        nodes: list[cst.CSTNode] = []
        owner = facts.enclosing_class(function)
        if owner is not None and facts.is_module_class(owner):
            nodes.append(owner)
        for call in facts.calls:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "apply" and call.args:
                if function in facts.local_definitions(call.args[0].value, cst.FunctionDef):
                    nodes.extend(self._networks_of_model(call.func.value))
        return tuple(dict.fromkeys(nodes))

    def _owning_class(self, call: cst.Call) -> Optional[cst.ClassDef]:
        function = self.facts.enclosing_function(call)
        owner = self.facts.enclosing_class(function) if function is not None else None
        return owner if owner is not None and self.facts.is_module_class(owner) else None

    @functools.cached_property
    def _holders(self) -> dict[int, list[cst.CSTNode]]:
        holders: dict[int, list[cst.CSTNode]] = {}
        for network in self.facts.networks.all_networks:
            for op in network.ops:
                holders.setdefault(id(op.node), []).append(network.node)
        return holders

    def _networks_holding(self, constructor: cst.Call) -> list[cst.CSTNode]:
        return self._holders.get(id(constructor), [])

    # ------------------------------------------------------------------ guards

    def _guard(self, call: cst.Call, variable: str) -> Optional[frozenset[str]]:
        """Layer classes selected by the innermost `if isinstance(variable, ...)` around call."""
        facts = self.facts
        child: cst.CSTNode = call
        for ancestor in facts.ancestors(call):
            if isinstance(ancestor, cst.FunctionDef):
                break
            if isinstance(ancestor, cst.If):
                if child is ancestor.body:
                    selected = self._test_classes(ancestor.test, variable)
                    if selected is not None:
                        return selected
                elif child is ancestor.orelse:
                    return None  # an else branch: everything the tests above did not select
            child = ancestor
        return None

    def _test_classes(self, test: cst.BaseExpression, variable: str) -> Optional[frozenset[str]]:
        facts = self.facts
        if isinstance(test, cst.BooleanOperation):
            left = self._test_classes(test.left, variable)
            right = self._test_classes(test.right, variable)
            if isinstance(test.operator, cst.And):
                return left if left is not None else right
            return left | right if left is not None and right is not None else None
        if isinstance(test, cst.Call) and facts.qualname(test.func) == "builtins.isinstance" and len(test.args) == 2:
            subject, classes = test.args[0].value, test.args[1].value
            if not (isinstance(subject, cst.Name) and subject.value == variable):
                return None
            elements = [e.value for e in classes.elements] if isinstance(classes, (cst.Tuple, cst.List)) else [classes]
            found = [facts.qualname(e) for e in elements]
            return frozenset(found) if all(found) else None
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
            comparison = test.comparisons[0]
            left, right = test.left, comparison.comparator
            if isinstance(comparison.operator, (cst.Equal, cst.Is)) and isinstance(left, cst.Call) and \
                    facts.qualname(left.func) == "builtins.type" and left.args and \
                    isinstance(left.args[0].value, cst.Name) and left.args[0].value.value == variable:
                found = facts.qualname(right)
                return frozenset({found}) if found else None
            return self._class_name_test(test, variable)
        return None

    def _class_name_test(self, test: cst.Comparison, variable: str) -> Optional[frozenset[str]]:
        """`classname.find("Conv") != -1` or `"Linear" in classname`, with
        `classname = m.__class__.__name__` (the DCGAN idiom)."""
        comparison = test.comparisons[0]
        fragment, subject = None, None
        if isinstance(comparison.operator, cst.In):
            fragment, subject = self.facts.literal(test.left), comparison.comparator
        elif isinstance(comparison.operator, (cst.NotEqual, cst.GreaterThan, cst.GreaterThanEqual)) and \
                isinstance(test.left, cst.Call) and isinstance(test.left.func, cst.Attribute) and \
                test.left.func.attr.value == "find" and test.left.args:
            fragment, subject = self.facts.literal(test.left.args[0].value), test.left.func.value
        if not isinstance(fragment, str) or subject is None:
            return None
        if not any(_is_class_name_of(o, variable) for o in self.facts.origins(subject)):
            return None
        return frozenset(api for api in KNOWN_LAYERS if fragment in api.rsplit(".", 1)[-1])

    def _parameter_guard(self, call: cst.Call, variable: cst.Name) -> str:
        """'weight' under `if p.dim() > 1` / `"weight" in name`, 'bias' under `"bias" in name`;
        the other one under their `else:` or a negated test (`"bias" not in name`)."""
        child: cst.CSTNode = call
        for ancestor in self.facts.ancestors(call):
            if isinstance(ancestor, cst.FunctionDef):
                break
            if isinstance(ancestor, cst.If):
                code = self.facts.spelling(ancestor.test)
                if "weight" in code or "dim()" in code or ".ndim" in code or "len(" in code and ".shape" in code:
                    kind = "weight"
                elif "bias" in code:
                    kind = "bias"
                else:
                    child = ancestor
                    continue
                test = ancestor.test
                negated = isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not) or \
                    isinstance(test, cst.Comparison) and all(isinstance(c.operator, cst.NotIn) for c in test.comparisons)
                negated = negated != (child is ancestor.orelse)
                return {"weight": "bias", "bias": "weight"}[kind] if negated else kind
            child = ancestor
        return "any"


def _strip_data(expr: cst.BaseExpression) -> cst.BaseExpression:
    while isinstance(expr, cst.Attribute) and expr.attr.value in ("data",):
        expr = expr.value
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "detach":
        return _strip_data(expr.func.value)
    return expr


def _parameter_attribute(tensor: cst.BaseExpression) -> Optional[tuple[cst.BaseExpression, str]]:
    """(module, 'weight') for `module.weight`, `module.weight.data`, `module.bias`."""
    tensor = _strip_data(tensor)
    if isinstance(tensor, cst.Attribute) and tensor.attr.value.startswith(("weight", "bias")):
        return tensor.value, tensor.attr.value
    return None


def _is_param(function: cst.FunctionDef, name: str) -> bool:
    return any(p.name.value == name for p in function.params.params)


def _is_class_name_of(expr: cst.BaseExpression, variable: str) -> bool:
    """`m.__class__.__name__` or `type(m).__name__`."""
    if not (isinstance(expr, cst.Attribute) and expr.attr.value == "__name__"):
        return False
    inner = expr.value
    if isinstance(inner, cst.Attribute) and inner.attr.value == "__class__":
        return isinstance(inner.value, cst.Name) and inner.value.value == variable
    return isinstance(inner, cst.Call) and bool(inner.args) and isinstance(inner.args[0].value, cst.Name) \
        and inner.args[0].value.value == variable
