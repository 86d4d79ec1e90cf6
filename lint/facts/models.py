"""Networks in a script: their layers in forward order and the operation that produces their output.

A network is an `nn.Sequential(...)` call or a local `nn.Module` subclass. Its ops are the layers
and functional activations its forward computation applies, in evaluation order (best effort:
Sequential arguments in order, or the calls of `forward()` in the order Python evaluates them).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts
from mlplint.lint.facts.iterations import IterationCounts

# Tensor methods and functions that change shape but not values: the op before them is the output op.
SHAPE_METHODS = {"view", "reshape", "squeeze", "unsqueeze", "flatten", "permute", "transpose", "contiguous", "view_as", "reshape_as"}
SHAPE_FUNCTIONS = {"torch.flatten", "torch.squeeze", "torch.unsqueeze", "torch.reshape"}
CONTAINERS = {"torch.nn.ModuleList", "torch.nn.ModuleDict"}


def shape_call_input(facts: ScriptFacts, node: cst.CSTNode) -> Optional[cst.BaseExpression]:
    """The tensor a shape-only call reshapes (`x` in `x.view(-1)` or `torch.flatten(x, 1)`), or None
    when `node` is not such a call."""
    if not isinstance(node, cst.Call):
        return None
    qualified = facts.qualname(node.func)
    if qualified in SHAPE_FUNCTIONS and node.args:
        return node.args[0].value
    if qualified is None and isinstance(node.func, cst.Attribute) and node.func.attr.value in SHAPE_METHODS:
        return node.func.value
    return None


@dataclass(frozen=True)
class Op:
    """One step of a forward computation."""

    api: str  # canonical API name, "method:<name>" for tensor methods, or "unknown"
    node: cst.CSTNode  # where it is written: the layer's constructor call or the functional call
    call: Optional[cst.Call] = None  # that call, for its arguments
    # where forward() applies a layer kept in an attribute (`self.relu(self.out(x))`), when known;
    # not part of the op's identity
    applied: Optional[cst.Call] = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """How the op is spelled in a message: `nn.Softmax`, `F.softmax()`, `.softmax()`."""
        if self.api.startswith("method:"):
            return f".{self.api[7:]}()"
        short = self.api.rsplit(".", 1)[-1]
        if self.api.startswith("torch.nn.functional."):
            return f"F.{short}()"
        if self.api.startswith("torch.nn."):
            return f"nn.{short}"
        return f"{self.api}()"

    @property
    def activation(self) -> Optional[str]:
        if self.api.startswith("method:"):
            return names.ACTIVATION_METHODS.get(self.api[7:])
        return names.ACTIVATION_MODULES.get(self.api) or names.ACTIVATION_FUNCTIONS.get(self.api)


@dataclass
class Network:
    name: str
    node: cst.CSTNode  # the ClassDef, or the nn.Sequential call
    ops: list[Op] = field(default_factory=list)
    output_ops: list[Op] = field(default_factory=list)
    parts: list["Network"] = field(default_factory=list)  # networks it applies (nested Sequentials, blocks)
    output_reshapes: tuple[cst.Call, ...] = ()  # shape-only calls forward() applies to its result, in order

    @property
    def layer_apis(self) -> set[str]:
        return {op.api for op in self.ops}


class NetworkAnalysis(IterationCounts):
    """Builds (and caches) Network descriptions on top of ScriptFacts."""

    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._cache: dict[cst.CSTNode, Optional[Network]] = {}
        self._building: list[list[Network]] = []  # parts seen by the networks being built

    def network_of(self, expr: cst.BaseExpression) -> Optional[Network]:
        """The network an expression holds (a model instance), if it can be known."""
        for origin in self.facts.origins(expr):
            cls = self.facts.class_of(origin)
            if isinstance(cls, cst.ClassDef) and self.facts.is_module_class(cls):
                return self.for_class(cls)
            if cls == names.SEQUENTIAL and isinstance(origin, cst.Call):
                return self.for_sequential(origin)
        return None

    def for_class(self, cls: cst.ClassDef) -> Optional[Network]:
        return self._cached(cls, lambda: self._build_class(cls))

    def for_sequential(self, call: cst.Call) -> Network:
        return self._cached(call, lambda: self._build_sequential(call))

    def _cached(self, key: cst.CSTNode, build) -> Optional[Network]:
        if key not in self._cache:
            self._cache[key] = None  # recursion guard
            self._building.append([])
            try:
                network = build()
            finally:
                parts = self._building.pop()
            if network is not None:
                unique: dict[int, Network] = {id(p): p for p in parts if p is not network}
                network.parts = list(unique.values())
            self._cache[key] = network
        return self._cache[key]

    @property
    def all_networks(self) -> list[Network]:
        found = [self.for_class(cls) for cls in self.facts.classes if self.facts.is_module_class(cls)]
        found += [self.for_sequential(call) for call in self.facts.calls_to(names.SEQUENTIAL)]
        return [network for network in found if network is not None]

    # ------------------------------------------------------------- Sequential

    def _build_sequential(self, call: cst.Call) -> Network:
        ops: list[Op] = []
        for arg in call.args:
            ops.extend(self._layer_ops(arg.value, starred=bool(arg.star)))
        return Network("Sequential", call, ops, ops[-1:])

    def _layer_ops(self, expr: cst.BaseExpression, starred: bool = False, outputs: bool = False) -> list[Op]:
        """Ops of one module expression: a layer, a nested network, or (starred / OrderedDict)
        a list of them. With `outputs`, a network gives only its output ops (what applying the
        module returns), not all its layers."""
        ops: list[Op] = []
        if starred:  # `nn.Sequential(*layers)`: the list's elements, appended ones included
            return [op for element in self._list_elements(expr) for op in self._layer_ops(element)]
        for origin in self.facts.origins(expr):
            if isinstance(origin, (cst.List, cst.Tuple)):
                ops.extend(op for element in self._list_elements(origin) for op in self._layer_ops(element))
                continue
            cls = self.facts.class_of(origin)
            if cls in CONTAINERS and isinstance(origin, cst.Call):
                ops.extend(op for element in self._container_elements(origin) for op in self._layer_ops(element))
                continue
            if cls is not None and isinstance(cls, str) and cls.endswith("OrderedDict") and isinstance(origin, cst.Call) and origin.args:
                pairs = self._list_elements(origin.args[0].value)
                ops.extend(op for pair in pairs if isinstance(pair, cst.Tuple) and len(pair.elements) == 2
                           for op in self._layer_ops(pair.elements[1].value))
                continue
            network = self._network_from_origin(origin)
            if network is not None:
                ops.extend(network.output_ops if outputs else network.ops)
            elif isinstance(cls, str) and isinstance(origin, cst.Call):
                ops.append(Op(cls, origin, origin))
        return ops

    def _network_from_origin(self, origin: cst.BaseExpression) -> Optional[Network]:
        cls = self.facts.class_of(origin)
        network = None
        if isinstance(cls, cst.ClassDef) and self.facts.is_module_class(cls):
            network = self.for_class(cls)
        elif cls == names.SEQUENTIAL and isinstance(origin, cst.Call):
            network = self.for_sequential(origin)
        if network is not None and self._building:
            self._building[-1].append(network)
        return network

    def _container_elements(self, call: cst.Call) -> list[cst.BaseExpression]:
        """The modules an `nn.ModuleList([...])` or `nn.ModuleDict({...})` holds."""
        if not call.args:
            return []
        value = call.args[0].value
        elements: list[cst.BaseExpression] = []
        for origin in self.facts.origins(value):
            if isinstance(origin, cst.Dict):
                elements.extend(e.value for e in origin.elements if isinstance(e, cst.DictElement))
            elif isinstance(origin, cst.DictComp):
                elements.append(origin.value)
        return elements or self._list_elements(value)

    def _iterated_modules(self, name: cst.Name) -> list[cst.BaseExpression]:
        """What a loop variable runs through when the loop iterates a module container:
        `for layer in self.layers`, `for i, layer in enumerate(self.blocks)`, `.values()`."""
        found: list[cst.BaseExpression] = []
        for node in self.facts.reaching_nodes(name):
            binding = self.facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is None or not binding.loop:
                continue
            iterable, path = binding.value, binding.path
            if isinstance(iterable, cst.Call) and self.facts.qualname(iterable.func) == "builtins.enumerate" \
                    and iterable.args and path[:1] == (1,):
                iterable, path = iterable.args[0].value, path[1:]
            if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute) and \
                    iterable.func.attr.value in ("values", "items", "children", "modules") and not iterable.args:
                if iterable.func.attr.value == "items" and path[:1] != (1,):
                    continue
                path = path[1:] if iterable.func.attr.value == "items" else path
                iterable = iterable.func.value
            if path:
                continue
            found.append(iterable)
        return found

    def _list_elements(self, expr: cst.BaseExpression) -> list[cst.BaseExpression]:
        """Elements of a list literal, plus what `.append`/`.extend`/`+=` add to it later; through
        a local function that builds and returns the list (`*block(128, 256)`)."""
        functions = self.facts.called_functions(expr) if isinstance(expr, cst.Call) else []
        if functions:
            return [e for f in functions for value in self.facts.returns.get(f, []) for e in self._list_elements(value)]
        elements: list[cst.BaseExpression] = []
        for origin in self.facts.origins(expr):
            if isinstance(origin, (cst.List, cst.Tuple)):
                elements.extend(e.value for e in origin.elements)
            elif isinstance(origin, cst.ListComp):
                elements.append(origin.elt)
        if isinstance(expr, cst.Name):
            elements.extend(self._appended(expr))
        return elements

    def _appended(self, name: cst.Name) -> list[cst.BaseExpression]:
        added: list[cst.BaseExpression] = []
        scope_owner = self.facts.enclosing_function(name) or self.facts.module
        for node in self.facts.effects.get(scope_owner, []):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and \
                    isinstance(node.func.value, cst.Name) and node.func.value.value == name.value and node.args \
                    and self.facts.same_object(node.func.value, name):  # not a list of the same name rebound
                if node.func.attr.value == "append":
                    added.append(node.args[0].value)
                elif node.func.attr.value == "extend":
                    added.extend(self._list_elements(node.args[0].value))
            elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name) and node.target.value == name.value:
                added.extend(self._list_elements(node.value))
        return added

    # ------------------------------------------------------------- nn.Module subclasses

    def _build_class(self, cls: cst.ClassDef) -> Optional[Network]:
        forward = self.facts.forward_of(cls)
        if forward is None:
            return Network(cls.name.value, cls)
        ops: list[Op] = []
        for node in self.facts.effects.get(forward, []):
            if isinstance(node, cst.Call):
                ops.extend(self._call_ops(node))
        output: list[Op] = []
        reshapes: tuple[cst.Call, ...] = ()
        for value in self.facts.returns.get(forward, []):
            output.extend(self.output_ops_of(value))
            reshapes = reshapes or self._reshapes(value)
        return Network(cls.name.value, cls, ops, output, output_reshapes=reshapes)

    def _call_ops(self, call: cst.Call) -> list[Op]:
        """What one call inside forward() applies."""
        facts = self.facts
        qualified = facts.qualname(call.func)
        if qualified is not None:
            return [Op(qualified, call, call)] if qualified in names.ACTIVATION_FUNCTIONS else []
        if self._is_tensor_activation_method(call.func):
            return [Op("method:" + call.func.attr.value, call, call)]
        ops: list[Op] = []
        func = call.func
        if isinstance(func, cst.Subscript):  # self.layers[i](x)
            func = func.value
        for origin in facts.origins(func):
            network = self._network_from_origin(origin)
            if network is not None:
                ops.extend(network.ops)
            elif isinstance(origin, cst.Name):
                for container in self._iterated_modules(origin):
                    ops.extend(self._layer_ops(container))
            else:
                ops.extend(self._layer_ops(origin))
        return ops

    def _is_tensor_activation_method(self, func: cst.BaseExpression) -> bool:
        """`x.softmax(1)`, `out.sigmoid()`: an activation method on something that is not a
        module instance (whose own `.softmax` attribute could be anything)."""
        if not (isinstance(func, cst.Attribute) and func.attr.value in names.ACTIVATION_METHODS):
            return False
        if any(origin is not func for origin in self.facts.origins(func)):
            return False  # an attribute holding a module: `self.softmax = nn.LogSoftmax(dim=1)`
        return all(isinstance(cls, str) and not cls.rsplit(".", 1)[-1][:1].isupper()
                   for cls in self.facts.classes_of(func.value))

    def output_ops_of(self, expr: cst.BaseExpression) -> list[Op]:
        """The op(s) that produce an expression's value: follows variables, shape-only methods
        and calls to submodules or whole models (a worklist: `x = x.view(...)` 2,000 times is
        one step each)."""
        ops: list[Op] = []
        seen: set[cst.CSTNode] = set()
        todo = [expr]
        while todo:
            for origin in self.facts.origins(todo.pop(0)):
                if origin in seen:
                    continue
                seen.add(origin)
                reshaped = shape_call_input(self.facts, origin)
                if reshaped is not None:
                    todo.append(reshaped)
                else:
                    ops.extend(self._origin_output_ops(origin))
        return ops

    def _reshapes(self, expr: cst.BaseExpression) -> tuple[cst.Call, ...]:
        """The shape-only calls between a value and the op that made it, in the order they apply
        (`return self.net(x).view(-1)`: the `.view(-1)`)."""
        found: list[cst.Call] = []
        seen: set[cst.CSTNode] = set()
        while expr is not None and expr not in seen:
            seen.add(expr)
            step = next(((origin, reshaped) for origin in self.facts.origins(expr)
                         for reshaped in [shape_call_input(self.facts, origin)] if reshaped is not None), None)
            if step is None:
                break
            found.append(step[0])
            expr = step[1]
        return tuple(reversed(found))

    def _origin_output_ops(self, origin: cst.BaseExpression) -> list[Op]:
        """The op that produces an origin that is not a reshape."""
        facts = self.facts
        if not isinstance(origin, cst.Call):
            return []
        func = origin.func
        qualified = facts.qualname(func)
        if qualified is not None:
            return [Op(qualified, origin, origin)]
        if self._is_tensor_activation_method(func):
            return [Op("method:" + func.attr.value, origin, origin)]
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        ops: list[Op] = []
        for callee in facts.origins(func):
            network = self._network_from_origin(callee)
            if network is not None:
                ops.extend(network.output_ops)
            else:
                layers = self._layer_ops(callee, outputs=True)
                if len(layers) == 1 and layers[0].node is callee:  # the layer itself, applied here
                    layers = [dataclasses.replace(layers[0], applied=origin)]
                ops.extend(layers)
        return ops or [Op("unknown", origin, origin)]

    def input_ops(self, op: Op) -> list[Op]:
        """The op(s) that produce the input of an op: those of a functional call's first argument
        or a tensor method's receiver, of the argument forward() applies a layer to, or the layer
        before it in the `nn.Sequential(...)` whose arguments spell it; [] when unknown."""
        node = op.node
        if op.api.startswith("method:") and isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            return self.output_ops_of(node.func.value)
        applied = op.applied if op.applied is not None else node if _is_function(op.api) else None
        if isinstance(applied, cst.Call):
            argument = self.facts.argument(applied, 0, "input")
            return self.output_ops_of(argument) if argument is not None else []
        return self._sequence_predecessors.get(node, [])

    @functools.cached_property
    def _sequence_predecessors(self) -> dict[cst.CSTNode, list[Op]]:
        """For each layer constructor written as an argument of an `nn.Sequential(...)` call, the
        output op(s) of the argument before it (indexed once per file)."""
        found: dict[cst.CSTNode, list[Op]] = {}
        for call in self.facts.calls_to(names.SEQUENTIAL):
            for before, arg in zip(call.args, call.args[1:]):
                if isinstance(arg.value, cst.Call) and not arg.star and not before.star:
                    found[arg.value] = self._module_output_ops(before.value)
        return found

    def _module_output_ops(self, expr: cst.BaseExpression) -> list[Op]:
        """The op(s) whose result a module expression returns: a nested network's output ops, or
        the layer itself."""
        ops: list[Op] = []
        for origin in self.facts.origins(expr):
            network = self._network_from_origin(origin)
            ops.extend(network.output_ops if network is not None else self._layer_ops(origin)[-1:])
        return ops

    # ------------------------------------------------------------- structure (depth, skips, activations)

    def repeat(self, node: cst.CSTNode, network: Network) -> Optional[int]:
        """How many layers one constructor call makes for one network: the product of the
        literal iteration counts of the loops and comprehensions around it that do not also
        build the network itself. None when a count is not a known constant."""
        facts = self.facts
        outer = set(map(id, facts.ancestors(network.node))) | {id(network.node)}
        count, child, conditional = 1, node, False
        for ancestor in facts.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)) or id(ancestor) in outer:
                break
            if isinstance(ancestor, (cst.If, cst.IfExp, cst.Try, cst.CompIf)) or \
                    isinstance(ancestor, (cst.ListComp, cst.GeneratorExp)) and ancestor.for_in.ifs:
                conditional = True  # made on some iterations only: the loop count is an upper bound
            loops: list[cst.BaseExpression] = []
            if isinstance(ancestor, cst.For) and child is ancestor.body:
                loops = [ancestor.iter]
            elif isinstance(ancestor, cst.While) and child is ancestor.body:
                return None
            elif isinstance(ancestor, (cst.ListComp, cst.GeneratorExp, cst.SetComp)) and child is ancestor.elt or \
                    isinstance(ancestor, cst.DictComp) and child is ancestor.value:
                comp_for = ancestor.for_in
                while comp_for is not None:
                    loops.append(comp_for.iter)
                    comp_for = comp_for.inner_for_in
            if loops and conditional:
                return None
            for iterable in loops:
                times = self.iterations(iterable)
                if times is None:
                    return None
                count *= times
            child = ancestor
        return count

    def plain_deep_stacks(self, kinds: tuple[str, ...], min_depth: int):
        """Outermost networks whose hidden activations are all of one of `kinds`, with at least
        `min_depth` Linear/Conv layers and nothing that keeps the signal in range (normalisation,
        residual connections, recurrent layers) or hides layers: (network, layers, depth)."""
        for network in self.all_networks:
            if self.is_nested(network) or self.hidden_activation_kind(network) not in kinds:
                continue
            layers, depth = self.weighted_layers(network)
            if depth < min_depth or self.has_normalisation(network) or self.has_skip_connections(network) \
                    or self.is_opaque(network) or self.has_recurrent_layers(network):
                continue
            yield network, layers, depth

    def weighted_layers(self, network: Network, apis: frozenset[str] = frozenset(names.LINEAR_LAYERS | names.CONV_LAYERS)) -> tuple[list[Op], int]:
        """The distinct layer ops of the given kinds (Linear and Conv by default) and a lower
        bound on how many layers they make (a loop of unknown length counts once)."""
        layers = list({id(op.node): op for op in network.ops if op.api in apis}.values())
        return layers, sum(self.repeat(op.node, network) or 1 for op in layers)

    def hidden_activations(self, network: Network) -> list[Op]:
        """Activation ops that act between layers (the output activation left out), one per node."""
        output = {id(op.node) for op in network.output_ops}
        found = {id(op.node): op for op in network.ops if op.activation is not None and id(op.node) not in output}
        return list(found.values())

    def all_parts(self, network: Network) -> list[Network]:
        """The network and every network nested in it."""
        seen: dict[int, Network] = {}
        todo = [network]
        while todo:
            current = todo.pop()
            if id(current) not in seen:
                seen[id(current)] = current
                todo.extend(current.parts)
        return list(seen.values())

    def has_skip_connections(self, network: Network) -> bool:
        """True when some forward() in the network adds or concatenates tensors (residual or
        dense connections), which keeps signals and gradients alive whatever the depth."""
        for part in self.all_parts(network):
            if not isinstance(part.node, cst.ClassDef):
                continue
            forward = self.facts.method(part.node, "forward")
            if forward is not None and _adds_tensors(self.facts, forward):
                return True
        return False

    def label(self, network: Network) -> str:
        """How a message names a network: its class, or the variable an nn.Sequential is bound to."""
        if isinstance(network.node, cst.ClassDef):
            return network.name
        for ancestor in self.facts.ancestors(network.node):
            if isinstance(ancestor, cst.Assign) and ancestor.value is network.node and len(ancestor.targets) == 1:
                target = ancestor.targets[0].target
                if isinstance(target, (cst.Name, cst.Attribute)):
                    return self.facts.spelling(target)
            break
        return "nn.Sequential"

    @staticmethod
    def layer_kinds(layers: list[Op]) -> str:
        """'Linear', 'Conv' or 'Linear/Conv': what a list of weighted layers holds."""
        linear = any(op.api in names.LINEAR_LAYERS for op in layers)
        conv = any(op.api in names.CONV_LAYERS for op in layers)
        return "Linear/Conv" if linear and conv else "Conv" if conv else "Linear"

    def hidden_activation_kind(self, network: Network) -> Optional[str]:
        """'rectifier' when every hidden activation is a ReLU variant, 'relu' when all are in the
        ReLU family (GELU, SiLU, ELU... included), 'saturating' when all are sigmoid or tanh,
        else None (mixed, none, or softmax-like)."""
        hidden = self.hidden_activations(network)
        if not hidden:
            return None
        if all(op.api in RECTIFIERS for op in hidden):
            return "rectifier"
        if all(op.activation == "relu" for op in hidden):
            return "relu"
        if all(op.activation in ("sigmoid", "tanh") for op in hidden):
            return "saturating"
        return None

    def has_recurrent_layers(self, network: Network) -> bool:
        return any(op.api in names.RECURRENT_LAYERS or op.api.startswith("torch.nn.Transformer") for op in network.ops)

    def is_nested(self, network: Network) -> bool:
        """True when another network of the script applies this one (it is checked as a part)."""
        return any(network is part for other in self.all_networks if other is not network
                   for part in self.all_parts(other) if part is not other)

    def has_normalisation(self, network: Network) -> bool:
        return any(op.api in names.NORM_LAYERS or op.api in NORM_FUNCTIONS for op in network.ops)

    def is_opaque(self, network: Network) -> bool:
        """True when the network applies modules the analysis cannot see into (a torchvision or
        timm model, an unknown callable): its depth and activations are not fully known."""
        return any(op.api == "unknown" or not (op.api.startswith(("torch.nn.", "torch.", "method:"))) for op in network.ops)


def _is_function(api: str) -> bool:
    """A functional API (`torch.nn.functional.relu`), applied where it is written, unlike a layer
    class (`torch.nn.ReLU`), which is constructed there."""
    return api != "unknown" and not api.startswith("method:") and api.rsplit(".", 1)[-1][:1].islower()


# The plain rectifiers Kaiming init is derived for (He et al. 2015); GELU/SiLU/ELU are left out.
RECTIFIERS = {
    "torch.nn.ReLU", "torch.nn.ReLU6", "torch.nn.LeakyReLU", "torch.nn.PReLU", "torch.nn.RReLU",
    "torch.relu", "torch.relu_", "torch.nn.functional.relu", "torch.nn.functional.relu_",
    "torch.nn.functional.relu6", "torch.nn.functional.leaky_relu", "method:relu", "method:relu_",
}
NORM_FUNCTIONS = {
    "torch.nn.functional.batch_norm", "torch.nn.functional.layer_norm", "torch.nn.functional.group_norm",
    "torch.nn.functional.instance_norm", "torch.nn.functional.normalize", "torch.nn.functional.rms_norm",
}
SKIP_FUNCTIONS = {"torch.cat", "torch.concat", "torch.stack", "torch.add", "torch.hstack", "torch.dstack"}


def _adds_tensors(facts: ScriptFacts, function: cst.FunctionDef) -> bool:
    found = False

    class _Finder(cst.CSTVisitor):
        def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
            nonlocal found
            if isinstance(node.operator, cst.Add) and not any(isinstance(side, (cst.Integer, cst.Float)) for side in (node.left, node.right)):
                found = True

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            nonlocal found
            if isinstance(node.operator, cst.AddAssign):
                found = True

        def visit_Call(self, node: cst.Call) -> None:
            nonlocal found
            if facts.qualname(node.func) in SKIP_FUNCTIONS or (isinstance(node.func, cst.Attribute) and node.func.attr.value in ("add", "add_")):
                found = True

    function.visit(_Finder())
    return found
