from __future__ import annotations

import libcst as cst

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class StaleLossGraph(Rule):
    """
    ## What it does
    Finds `backward()` called in a training loop on a loss computed once, before the loop (often
    with `retain_graph=True` to silence the error the second backward pass raises): the forward
    pass is never run again inside the loop.

    ## Why is this bad?
    A loss tensor is the end of the graph of the forward pass that made it. Differentiating the
    same graph again gives the gradient at the old parameter values, every time: the optimizer
    keeps stepping in the same direction, the parameters move but the loss never sees it, and the
    printed loss never changes. Without `retain_graph=True` the second pass raises "Trying to
    backward through the graph a second time".

    ## Example
    ```python
    import torch

    loss = criterion(model(x), y)
    for epoch in range(100):
        optimizer.zero_grad()
        loss.backward(retain_graph=True)
        optimizer.step()
    ```

    Use instead:
    ```python
    import torch

    for epoch in range(100):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "ML213"
    name = "stale-loss-graph"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML904",)

    VALID = [
        # accelerate: the accelerator built before the loop is no loss
        """
from accelerate import Accelerator
accelerator = Accelerator()
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for x, y in loader:
    loss = criterion(model(x), y)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
""",
        # the argument is the gradient of a non-scalar output, made once
        """
import torch
ones = torch.ones(64, 1)
for x in batches:
    out = model(x)
    out.backward(ones)
    optimizer.step()
""",
        """
import torch
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
""",
        # recomputed at the end of each iteration for the next one
        """
import torch
loss = criterion(model(x), y)
while loss.item() > 0.01:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    loss = criterion(model(x), y)
""",
        # several losses, each differentiated once
        """
import torch
losses = [criterion(model(x), y) for x, y in batches]
for loss in losses:
    loss.backward()
optimizer.step()
""",
        # gradients of one fixed graph with respect to an input, no parameter steps
        """
import torch
out = model(img)
for k in range(3):
    out[0, k].backward(retain_graph=True)
""",
    ]
    INVALID = [
        Invalid(
            """
from accelerate import Accelerator
accelerator = Accelerator()
loss = criterion(model(x), y)
for epoch in range(100):
    accelerator.backward(loss)
    optimizer.step()
""",
            line=6,
        ),
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loss = nn.functional.mse_loss(model(x), y)
for epoch in range(100):
    optimizer.zero_grad()
    loss.backward(retain_graph=True)
    optimizer.step()
    print(loss.item())
""",
            line=9,
            message="computed once (line 6)",
        ),
        # a hand-written update on a loss made before the loop
        Invalid(
            """
import torch
w = torch.randn(3, 1, requires_grad=True)
pred = x @ w
loss = ((pred - y) ** 2).mean()
for i in range(50):
    loss.backward(retain_graph=True)
    with torch.no_grad():
        w -= 0.1 * w.grad
        w.grad.zero_()
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts, training = ctx.facts, ctx.facts.training
        updates = {update.node for update in facts.parameter_updates}
        for backward in training.backward_calls:
            loops = facts.enclosing_loops(backward)
            if not loops:
                continue
            loop = loops[0]
            reached = training.reachable(loop)
            if not any(training.is_optimizer_step(node) or node in updates for node in reached):
                continue
            loss = training.differentiated_loss(backward)
            if not isinstance(loss, cst.Name):
                continue
            definitions = facts.reaching_nodes(loss)
            bindings = [facts.bindings.get(node) for node in definitions]
            if not definitions or any(b is None or b.loop for b in bindings) \
                    or any(loop in facts.enclosing_loops(node) for node in definitions):
                continue
            ctx.report(
                backward,
                f"`{loss.value}` is computed once (line {facts.line_of(definitions[-1])}), before this loop: each "
                "backward pass differentiates the same old graph, so the parameters move but the loss never "
                f"sees it; compute `{loss.value}` from a new forward pass inside the loop",
            )
