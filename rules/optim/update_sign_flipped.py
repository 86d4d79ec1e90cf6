from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

LOSS_APIS = names.CLASSIFICATION_LOSSES | names.ELEMENTWISE_LOSSES
TENSOR_FACTORIES = {
    "torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty", "torch.tensor", "torch.full",
    "torch.normal", "torch.zeros_like", "torch.ones_like", "torch.randn_like",
}


def _strip_data(expr: cst.BaseExpression) -> cst.BaseExpression:
    while isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        expr = expr.value
    return expr


@register
class UpdateSignFlipped(Rule):
    """
    ## What it does
    Finds gradient ascent where descent is meant:
    - a hand-written update that adds a parameter's own gradient to it: `p += lr * p.grad`,
      `w.data = w.data + lr * w.grad`, `p.data.add_(p.grad, alpha=lr)`, `p.add_(lr, d_p)` (old
      signature), in a training loop or a custom `Optimizer.step`;
    - a library loss negated before `backward()` (`loss = -criterion(out, y)`), which an optimizer
      then minimises, i.e. maximises the loss.

    Only tensors that are parameters count: loop variables over `.parameters()`,
    `named_parameters()` or a parameter group's `"params"`, `nn.Parameter`s, `.weight` / `.bias`,
    and tensors created with `requires_grad=True` that are never passed to a model (or another
    local function) as input. Gradient
    ascent on an input (adversarial examples, feature visualisation) stays quiet.

    ## Why is this bad?
    The gradient points uphill: adding it increases the loss at every step, so the loss grows
    instead of falling (often to Inf/NaN) however the learning rate is tuned.

    ## Example
    ```python
    import torch

    for p in model.parameters():
        p.data += lr * p.grad
    ```

    Use instead:
    ```python
    import torch

    for p in model.parameters():
        p.data -= lr * p.grad
    ```
    """

    code = "ML209"
    name = "update-sign-flipped"
    severity = Severity.ERROR
    symptoms = ("ML939", "ML902", "ML901")

    VALID = [
        "import torch\nwith torch.no_grad():\n    for p in model.parameters():\n        p -= lr * p.grad\n",
        "import torch\nfor p in model.parameters():\n    p.data.add_(p.grad, alpha=-lr)\n",
        "import torch\nfor p in model.parameters():\n    p.data.add_(-lr, p.grad.data)\n",
        # a deliberate ascent on an input image (feature visualisation / adversarial example)
        """
import torch
img = torch.rand(1, 3, 224, 224, requires_grad=True)
for _ in range(20):
    score = model(img)[0, 130]
    score.backward()
    img.data += 0.01 * img.grad
    x_adv = img + 0.03 * img.grad.sign()
""",
        # a loss written as a negative log-likelihood, and a GAN generator loss
        "import torch\nloss = -torch.log(probs).mean()\nloss.backward()\nopt.step()\n",
        "import torch\ng_loss = -torch.mean(critic(fake))\ng_loss.backward()\nopt_g.step()\n",
    ]
    INVALID = [
        Invalid("import torch\nwith torch.no_grad():\n    for p in model.parameters():\n        p += lr * p.grad\n", line=4, message="adds"),
        Invalid(
            """
import torch
class MySGD(torch.optim.Optimizer):
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                d_p = p.grad.data
                p.data.add_(d_p, alpha=group["lr"])
""",
            line=8,
        ),
        Invalid(
            """
import torch
w = torch.randn(3, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
for step in range(100):
    loss = ((X @ w + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w.data = w.data + 0.01 * w.grad
        b -= 0.01 * b.grad
""",
            line=9,
        ),
        Invalid(
            """
import torch.nn as nn
criterion = nn.CrossEntropyLoss()
for x, y in loader:
    optimizer.zero_grad()
    loss = -criterion(model(x), y)
    loss.backward()
    optimizer.step()
""",
            line=6,
            message="negated",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        for node, message in list(self._updates(ctx)) + list(self._negated_losses(ctx)):
            ctx.report(node, message)

    # ------------------------------------------------------------------ hand-written updates

    def _updates(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        for node in facts.effects.get(facts.module, []):
            found = None
            if isinstance(node, cst.AugAssign) and isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)):
                sign = self._gradient_sign(ctx, node.value, _strip_data(node.target))
                flipped = -1 if isinstance(node.operator, cst.SubtractAssign) else 1
                found = (node.target, sign * flipped) if sign else None
            elif isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.BinaryOperation):
                target = _strip_data(node.targets[0].target)
                value = node.value
                if isinstance(value.operator, (cst.Add, cst.Subtract)) and _spelled(ctx, _strip_data(value.left)) == _spelled(ctx, target):
                    sign = self._gradient_sign(ctx, value.right, target)
                    found = (target, sign * (-1 if isinstance(value.operator, cst.Subtract) else 1)) if sign else None
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("add_", "sub_"):
                found = self._in_place(ctx, node)
            if found is None or found[1] <= 0 or not self._is_parameter(ctx, _strip_data(found[0])):
                continue
            yield node, (
                f"this update adds the gradient of `{_spelled(ctx, _strip_data(found[0]))}` to it: that is gradient "
                "ascent, so the loss grows at every step; subtract it (p -= lr * p.grad, or p.add_(p.grad, alpha=-lr))")

    def _in_place(self, ctx: RuleContext, call: cst.Call) -> Optional[tuple[cst.BaseExpression, int]]:
        """`p.add_(g, alpha=a)`, `p.add_(a, g)` (old signature), `p.add_(a * g)`, `p.sub_(...)`."""
        facts = ctx.facts
        target = _strip_data(call.func.value)
        direction = -1 if call.func.attr.value == "sub_" else 1
        plain = [a.value for a in call.args if a.keyword is None]
        alpha = facts.argument(call, None, "alpha")
        if len(plain) == 2 and alpha is None:  # add_(scalar, tensor)
            alpha, plain = plain[0], plain[1:]
        if len(plain) != 1:
            return None
        sign = self._gradient_sign(ctx, plain[0], target)
        if not sign:
            return None
        return target, sign * direction * (self._scalar_sign(ctx, alpha) if alpha is not None else 1)

    def _gradient_sign(self, ctx: RuleContext, expr: cst.BaseExpression, owner: cst.BaseExpression) -> int:
        """+1 / -1 when expr is (a positive multiple of) owner's gradient, with that sign; 0 otherwise."""
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return -self._gradient_sign(ctx, expr.expression, owner)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Divide)):
            for grad, scale in ((expr.left, expr.right), (expr.right, expr.left)):
                sign = self._gradient_sign(ctx, grad, owner)
                if sign and (scale is expr.right or isinstance(expr.operator, cst.Multiply)):
                    return sign * self._scalar_sign(ctx, scale)
            return 0
        return 1 if self._is_gradient_of(ctx, expr, owner) else 0

    def _is_gradient_of(self, ctx: RuleContext, expr: cst.BaseExpression, owner: cst.BaseExpression) -> bool:
        facts = ctx.facts
        expr = _strip_data(expr)
        if isinstance(expr, cst.Attribute) and expr.attr.value == "grad":
            return _spelled(ctx, _strip_data(expr.value)) == _spelled(ctx, owner)
        if isinstance(expr, cst.Name):  # d_p = p.grad (.data)
            values = [facts.bindings[n].value for n in facts.reaching_nodes(expr)
                      if n in facts.bindings and not facts.bindings[n].path and not facts.bindings[n].loop]
            return bool(values) and all(
                isinstance(_strip_data(v), cst.Attribute) and _strip_data(v).attr.value == "grad"
                and _spelled(ctx, _strip_data(_strip_data(v).value)) == _spelled(ctx, owner) for v in values)
        return False

    @staticmethod
    def _scalar_sign(ctx: RuleContext, expr: cst.BaseExpression) -> int:
        """-1 for a negated or negative scalar, else +1 (a learning rate is positive)."""
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return -1
        value = ctx.facts.literal(expr)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -1 if value < 0 else 1 if value > 0 else 0
        return 1

    def _is_parameter(self, ctx: RuleContext, tensor: cst.BaseExpression) -> bool:
        facts = ctx.facts
        if isinstance(tensor, cst.Attribute):
            return tensor.attr.value in ("weight", "bias")
        if not isinstance(tensor, cst.Name):
            return False
        for node in facts.reaching_nodes(tensor):
            binding = facts.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is None:
                return False
            if binding.loop:
                if not self._iterates_parameters(ctx, binding.value, binding.path):
                    return False
            elif not self._created_trainable(ctx, binding.value, node):
                return False
        return True

    @staticmethod
    def _iterates_parameters(ctx: RuleContext, iterable: cst.BaseExpression, path: tuple[int, ...]) -> bool:
        facts = ctx.facts
        if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute):
            method = iterable.func.attr.value
            return (method == "parameters" and not path) or (method == "named_parameters" and path == (1,))
        if isinstance(iterable, cst.Subscript) and not path:  # group["params"]
            keys = [facts.literal(e.slice.value) for e in iterable.slice if isinstance(e.slice, cst.Index)]
            return keys == ["params"]
        return False

    def _created_trainable(self, ctx: RuleContext, value: cst.BaseExpression, name: cst.Name) -> bool:
        """An nn.Parameter, or a tensor made with requires_grad=True that no model takes as input."""
        facts = ctx.facts
        if not isinstance(value, cst.Call):
            return False
        qualified = facts.qualname(value.func)
        if qualified == "torch.nn.Parameter":
            return True
        if qualified in TENSOR_FACTORIES and facts.literal(facts.argument(value, None, "requires_grad")) is True:
            return name.value not in self._model_inputs(ctx)
        return False

    def _model_inputs(self, ctx: RuleContext) -> set[str]:
        """Names passed to a model or to another call that is not a torch API: inputs, whose ascent
        may be deliberate (not parameters). Computed once per file (a rule instance checks one file)."""
        if not hasattr(self, "_inputs"):
            facts = ctx.facts
            self._inputs = {arg.value.value for call in facts.calls
                            if facts.qualname(call.func) is None and not isinstance(call.func, cst.Attribute)
                            for arg in call.args if isinstance(arg.value, cst.Name)}
        return self._inputs

    # ------------------------------------------------------------------ negated losses

    def _negated_losses(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        if not facts.training.optimizer_steps:
            return
        reported = set()
        for backward in facts.training.backward_calls:
            for differentiated in facts.training.differentiated(backward):
                for negation in self._negations(ctx, differentiated):
                    if id(negation) in reported:
                        continue
                    loss = next((facts.applied_api(o) for o in facts.origins(negation.expression)
                                 if isinstance(o, cst.Call) and facts.applied_api(o) in LOSS_APIS), None)
                    if loss is None:
                        continue
                    reported.add(id(negation))
                    yield negation, (
                        f"the {loss.rsplit('.', 1)[-1]} value is negated before backward(), so the optimizer "
                        "maximises the loss (gradient ascent); drop the minus sign")

    @staticmethod
    def _negations(ctx: RuleContext, expr: cst.BaseExpression) -> list[cst.UnaryOperation]:
        """The unary minus that makes a differentiated value: `(-loss).backward()`, or the value
        of the assignment it reads (`loss = -criterion(...)`)."""
        facts = ctx.facts
        values = [expr]
        if isinstance(expr, cst.Name):
            values = [facts.bindings[n].value for n in facts.reaching_nodes(expr)
                      if n in facts.bindings and not facts.bindings[n].path and not facts.bindings[n].loop]
        return [v for v in values if isinstance(v, cst.UnaryOperation) and isinstance(v.operator, cst.Minus)]


def _spelled(ctx: RuleContext, expr: cst.BaseExpression) -> str:
    return ctx.facts.module.code_for_node(expr)
