"""Hand-written parameter updates: `p -= lr * p.grad`, `w.data = w.data - lr * w.grad`,
`p.data.add_(p.grad, alpha=-lr)`, `p.add_(-lr, d_p)` (old signature), in a training loop or a
custom `Optimizer.step`, with the sign of the gradient they apply (-1: descent, +1: ascent).

Only tensors that are parameters count: loop variables over `.parameters()`, `named_parameters()`
or a parameter group's `"params"`, `nn.Parameter`s, `.weight` / `.bias`, and tensors created with
`requires_grad=True` that are never passed to a model (or another local function) as input.
Found once per file from the indexed statements.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from mlplint.lint.facts.core import ScriptFacts

TENSOR_FACTORIES = {
    "torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty", "torch.tensor", "torch.full",
    "torch.normal", "torch.zeros_like", "torch.ones_like", "torch.randn_like",
}


def strip_data(expr: cst.BaseExpression) -> cst.BaseExpression:
    while isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        expr = expr.value
    return expr


@dataclass(frozen=True)
class ParameterUpdate:
    node: cst.CSTNode  # the statement or in-place call
    parameter: cst.BaseExpression  # what it updates, `.data` stripped
    sign: int  # +1: adds the gradient (ascent), -1: subtracts it (descent)


class ParameterUpdates:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    @functools.cached_property
    def all(self) -> list[ParameterUpdate]:
        found = []
        for node in self.facts.effects.get(self.facts.module, []):
            update = None
            if type(node) is cst.AugAssign and type(node.operator) in (cst.AddAssign, cst.SubtractAssign):
                sign = self._gradient_sign(node.value, strip_data(node.target))
                flipped = -1 if type(node.operator) is cst.SubtractAssign else 1
                update = (node.target, sign * flipped) if sign else None
            elif type(node) is cst.Assign and len(node.targets) == 1 and type(node.value) is cst.BinaryOperation:
                target = strip_data(node.targets[0].target)
                value = node.value
                if type(value.operator) in (cst.Add, cst.Subtract) and self.facts.spelling(strip_data(value.left)) == self.facts.spelling(target):
                    sign = self._gradient_sign(value.right, target)
                    update = (target, sign * (-1 if type(value.operator) is cst.Subtract else 1)) if sign else None
            elif type(node) is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value in ("add_", "sub_"):
                update = self._in_place(node)
            if update is not None and self._is_parameter(strip_data(update[0])):
                found.append(ParameterUpdate(node, strip_data(update[0]), update[1]))
        return found

    def _in_place(self, call: cst.Call) -> Optional[tuple[cst.BaseExpression, int]]:
        """`p.add_(g, alpha=a)`, `p.add_(a, g)` (old signature), `p.add_(a * g)`, `p.sub_(...)`."""
        facts = self.facts
        target = strip_data(call.func.value)
        direction = -1 if call.func.attr.value == "sub_" else 1
        plain = [a.value for a in call.args if a.keyword is None]
        alpha = facts.argument(call, None, "alpha")
        if len(plain) == 2 and alpha is None:  # add_(scalar, tensor)
            alpha, plain = plain[0], plain[1:]
        if len(plain) != 1:
            return None
        sign = self._gradient_sign(plain[0], target)
        if not sign:
            return None
        return target, sign * direction * (self._scalar_sign(alpha) if alpha is not None else 1)

    def _gradient_sign(self, expr: cst.BaseExpression, owner: cst.BaseExpression) -> int:
        """+1 / -1 when expr is (a positive multiple of) owner's gradient, with that sign; 0 otherwise."""
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return -self._gradient_sign(expr.expression, owner)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Divide)):
            for grad, scale in ((expr.left, expr.right), (expr.right, expr.left)):
                sign = self._gradient_sign(grad, owner)
                if sign and (scale is expr.right or isinstance(expr.operator, cst.Multiply)):
                    return sign * self._scalar_sign(scale)
            return 0
        return 1 if self._is_gradient_of(expr, owner) else 0

    def _is_gradient_of(self, expr: cst.BaseExpression, owner: cst.BaseExpression) -> bool:
        facts = self.facts
        expr = strip_data(expr)
        if isinstance(expr, cst.Attribute) and expr.attr.value == "grad":
            return self.facts.spelling(strip_data(expr.value)) == self.facts.spelling(owner)
        if isinstance(expr, cst.Name):  # d_p = p.grad (.data)
            values = [facts.bindings[n].value for n in facts.reaching_nodes(expr)
                      if n in facts.bindings and not facts.bindings[n].path and not facts.bindings[n].loop]
            return bool(values) and all(
                isinstance(strip_data(v), cst.Attribute) and strip_data(v).attr.value == "grad"
                and self.facts.spelling(strip_data(strip_data(v).value)) == self.facts.spelling(owner) for v in values)
        return False

    def _scalar_sign(self, expr: cst.BaseExpression) -> int:
        """-1 for a negated or negative scalar, else +1 (a learning rate is positive)."""
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return -1
        value = self.facts.literal(expr)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -1 if value < 0 else 1 if value > 0 else 0
        return 1

    def _is_parameter(self, tensor: cst.BaseExpression) -> bool:
        facts = self.facts
        if isinstance(tensor, cst.Attribute):
            return tensor.attr.value in ("weight", "bias")
        if not isinstance(tensor, cst.Name):
            return False
        for node in facts.reaching_nodes(tensor):
            binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is None:
                return False
            if binding.loop:
                if not self._iterates_parameters(binding.value, binding.path):
                    return False
            elif not self._created_trainable(binding.value, node):
                return False
        return True

    def _iterates_parameters(self, iterable: cst.BaseExpression, path: tuple[int, ...]) -> bool:
        facts = self.facts
        if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute):
            method = iterable.func.attr.value
            return (method == "parameters" and not path) or (method == "named_parameters" and path == (1,))
        if isinstance(iterable, cst.Subscript) and not path:  # group["params"]
            keys = [facts.literal(e.slice.value) for e in iterable.slice if isinstance(e.slice, cst.Index)]
            return keys == ["params"]
        return False

    def _created_trainable(self, value: cst.BaseExpression, name: cst.Name) -> bool:
        """An nn.Parameter, or a tensor made with requires_grad=True that no model takes as input."""
        facts = self.facts
        if not isinstance(value, cst.Call):
            return False
        qualified = facts.qualname(value.func)
        if qualified == "torch.nn.Parameter":
            return True
        if qualified in TENSOR_FACTORIES and facts.literal(facts.argument(value, None, "requires_grad")) is True:
            return name.value not in self._model_inputs
        return False

    @functools.cached_property
    def _model_inputs(self) -> set[str]:
        """Names passed to a model or to another call that is not a torch API: inputs, whose ascent
        may be deliberate (not parameters)."""
        facts = self.facts
        return {arg.value.value for call in facts.calls
                if facts.qualname(call.func) is None and not isinstance(call.func, cst.Attribute)
                for arg in call.args if isinstance(arg.value, cst.Name)}

