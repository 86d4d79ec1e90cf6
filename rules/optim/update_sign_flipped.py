from __future__ import annotations

from typing import Iterator

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

LOSS_APIS = names.CLASSIFICATION_LOSSES | names.ELEMENTWISE_LOSSES
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

    @staticmethod
    def _updates(ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        for update in ctx.facts.parameter_updates:
            if update.sign > 0:
                yield update.node, (
                    f"this update adds the gradient of `{ctx.facts.spelling(update.parameter)}` to it: that is gradient "
                    "ascent, so the loss grows at every step; subtract it (p -= lr * p.grad, or p.add_(p.grad, alpha=-lr))")

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


