"""Networks in a script: their layers in forward order and the operation that produces their output.

A network is an `nn.Sequential(...)` call or a local `nn.Module` subclass. Its ops are the layers
and functional activations its forward computation applies, in evaluation order (best effort:
Sequential arguments in order, or the calls of `forward()` in the order Python evaluates them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts

# Tensor methods and functions that change shape but not values: the op before them is the output op.
SHAPE_METHODS = {"view", "reshape", "squeeze", "unsqueeze", "flatten", "permute", "transpose", "contiguous", "view_as", "reshape_as"}
SHAPE_FUNCTIONS = {"torch.flatten", "torch.squeeze", "torch.unsqueeze", "torch.reshape"}


@dataclass(frozen=True)
class Op:
    """One step of a forward computation."""

    api: str  # canonical API name, "method:<name>" for tensor methods, or "unknown"
    node: cst.CSTNode  # where it is written: the layer's constructor call or the functional call
    call: Optional[cst.Call] = None  # that call, for its arguments

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

    @property
    def layer_apis(self) -> set[str]:
        return {op.api for op in self.ops}


class NetworkAnalysis:
    """Builds (and caches) Network descriptions on top of ScriptFacts."""

    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._cache: dict[cst.CSTNode, Optional[Network]] = {}

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
            self._cache[key] = build()
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

    def _layer_ops(self, expr: cst.BaseExpression, starred: bool = False) -> list[Op]:
        """Ops of one module expression: a layer, a nested network, or (starred / OrderedDict)
        a list of them."""
        ops: list[Op] = []
        for origin in self.facts.origins(expr):
            if starred or isinstance(origin, (cst.List, cst.Tuple)):
                ops.extend(op for element in self._list_elements(origin) for op in self._layer_ops(element))
                continue
            cls = self.facts.class_of(origin)
            if cls is not None and isinstance(cls, str) and cls.endswith("OrderedDict") and isinstance(origin, cst.Call) and origin.args:
                pairs = self._list_elements(origin.args[0].value)
                ops.extend(op for pair in pairs if isinstance(pair, cst.Tuple) and len(pair.elements) == 2
                           for op in self._layer_ops(pair.elements[1].value))
                continue
            network = self._network_from_origin(origin)
            if network is not None:
                ops.extend(network.ops)
            elif isinstance(cls, str) and isinstance(origin, cst.Call):
                ops.append(Op(cls, origin, origin))
        return ops

    def _network_from_origin(self, origin: cst.BaseExpression) -> Optional[Network]:
        cls = self.facts.class_of(origin)
        if isinstance(cls, cst.ClassDef) and self.facts.is_module_class(cls):
            return self.for_class(cls)
        if cls == names.SEQUENTIAL and isinstance(origin, cst.Call):
            return self.for_sequential(origin)
        return None

    def _list_elements(self, expr: cst.BaseExpression) -> list[cst.BaseExpression]:
        """Elements of a list literal, plus what `.append`/`.extend`/`+=` add to it later."""
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
                    isinstance(node.func.value, cst.Name) and node.func.value.value == name.value and node.args:
                if node.func.attr.value == "append":
                    added.append(node.args[0].value)
                elif node.func.attr.value == "extend":
                    added.extend(self._list_elements(node.args[0].value))
            elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name) and node.target.value == name.value:
                added.extend(self._list_elements(node.value))
        return added

    # ------------------------------------------------------------- nn.Module subclasses

    def _build_class(self, cls: cst.ClassDef) -> Optional[Network]:
        forward = self.facts.method(cls, "forward")
        if forward is None:
            return Network(cls.name.value, cls)
        ops: list[Op] = []
        for node in self.facts.effects.get(forward, []):
            if isinstance(node, cst.Call):
                ops.extend(self._call_ops(node))
        output: list[Op] = []
        for value in self.facts.returns.get(forward, []):
            output.extend(self.output_ops_of(value))
        return Network(cls.name.value, cls, ops, output)

    def _call_ops(self, call: cst.Call) -> list[Op]:
        """What one call inside forward() applies."""
        facts = self.facts
        qualified = facts.qualname(call.func)
        if qualified is not None:
            return [Op(qualified, call, call)] if qualified in names.ACTIVATION_FUNCTIONS else []
        if self._is_tensor_activation_method(call.func):
            return [Op("method:" + call.func.attr.value, call, call)]
        ops: list[Op] = []
        for origin in facts.origins(call.func):
            network = self._network_from_origin(origin)
            if network is not None:
                ops.extend(network.ops)
            else:
                ops.extend(self._layer_ops(origin))
        return ops

    def _is_tensor_activation_method(self, func: cst.BaseExpression) -> bool:
        """`x.softmax(1)`, `out.sigmoid()`: an activation method on something that is not a
        module instance (whose own `.softmax` attribute could be anything)."""
        if not (isinstance(func, cst.Attribute) and func.attr.value in names.ACTIVATION_METHODS):
            return False
        return all(isinstance(cls, str) and not cls.rsplit(".", 1)[-1][:1].isupper()
                   for cls in self.facts.classes_of(func.value))

    def output_ops_of(self, expr: cst.BaseExpression) -> list[Op]:
        """The op(s) that produce an expression's value: follows variables, shape-only methods
        and calls to submodules or whole models."""
        ops: list[Op] = []
        for origin in self.facts.origins(expr):
            ops.extend(self._origin_output_ops(origin))
        return ops

    def _origin_output_ops(self, origin: cst.BaseExpression) -> list[Op]:
        facts = self.facts
        if not isinstance(origin, cst.Call):
            return []
        func = origin.func
        qualified = facts.qualname(func)
        if qualified in SHAPE_FUNCTIONS and origin.args:
            return self.output_ops_of(origin.args[0].value)
        if qualified is not None:
            return [Op(qualified, origin, origin)]
        if isinstance(func, cst.Attribute) and func.attr.value in SHAPE_METHODS:
            return self.output_ops_of(func.value)
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
                ops.extend(op for op in self._layer_ops(callee))
        return ops or [Op("unknown", origin, origin)]
