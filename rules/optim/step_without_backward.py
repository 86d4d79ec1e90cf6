from __future__ import annotations

import libcst as cst

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

_GRADIENT_FUNCTIONS = {"torch.autograd.grad", "torch.autograd.backward", "torch.func.grad", "torch.func.vjp"}


@register
class StepWithoutBackward(Rule):
    """
    ## What it does
    Finds `optimizer.step()` in a training loop where no loop around it reaches a backward pass:
    no `loss.backward()`, `scaler.scale(loss).backward()`, `accelerator.backward(loss)`,
    `torch.autograd.grad`, nor gradients assigned to `.grad`, in the loop or the functions it
    calls. Steps given a closure (LBFGS) are left alone.

    ## Why is this bad?
    `step()` updates parameters from their `.grad`. Without a backward pass the gradients are
    None (the parameters never move: the loss stays flat) or stale from an earlier backward (the
    same update is applied again and again).

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        optimizer.step()
    ```

    Use instead:
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "ML207"
    name = "step-without-backward"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML918", "ML904")

    VALID = [
        # step_fn() (forward and backward) runs before the loop that steps each optimizer
        """
import torch

class Net:
    def _step_optimizer(self, step_fn):
        # GradScaler does not support closures, so call step_fn (forward +
        # loss.backward()) explicitly, then step each optimizer
        step_fn()
        for name in self._optimizers:
            optimizer = getattr(self, name + '_')
            optimizer.step()
""",
        # an lr schedule simulated on a dummy tensor: no model, no loss
        """
import numpy as np
import torch

def simulate_lrs(steps, initial_lr=0.1):
    test = torch.ones(1, requires_grad=True)
    opt = torch.optim.SGD([{'params': test, 'lr': initial_lr}])
    sch = torch.optim.lr_scheduler.StepLR(opt, step_size=3)
    lrs = []
    for step_idx in range(steps):
        opt.step()  # suppress warning about .step call order
        lrs.append(opt.param_groups[0]['lr'])
        sch.step()
    return np.array(lrs)

print(simulate_lrs(10))
""",
        """
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
""",
        # the backward happens in a helper the loop calls
        """
def compute(model, x, y):
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    return loss
for x, y in loader:
    optimizer.zero_grad()
    compute(model, x, y)
    optimizer.step()
""",
        # LBFGS closure
        """
for _ in range(20):
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss
    optimizer.step(closure)
""",
        # optimizers stepped in their own loop after the backward
        """
for batch in loader:
    for opt in optimizers:
        opt.zero_grad()
    model(batch).sum().backward()
    for opt in optimizers:
        opt.step()
""",
        # gradients from torch.autograd.grad assigned by hand
        """
import torch
for x in loader:
    opt.zero_grad()
    grads = torch.autograd.grad(model(x).sum(), list(model.parameters()))
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    opt.step()
""",
        # amp
        """
for x, y in loader:
    opt.zero_grad()
    scaler.scale(crit(model(x), y)).backward()
    scaler.step(opt)
    scaler.update()
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(5):
    for x, y in loader:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.step()
""",
            line=8,
        ),
        Invalid(
            """
def train(model, loader, optimizer, criterion):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        optimizer.step()
""",
            line=6,
        ),
        Invalid(
            """
class Trainer:
    def fit(self, loader):
        for batch in loader:
            self.optimizer.zero_grad()
            self.loss_fn(self.model(batch))
            self.optimizer.step()
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        training = facts.training
        for step in training.optimizer_steps:
            if step.args and not facts.kind_of(step.func.value) == "scaler":
                continue  # step(closure): the closure computes the gradients
            loops = list(training.loops_around(step))
            if not loops:
                continue
            if any(self._makes_gradients(facts, node) for loop in loops for node in training.reachable(loop)):
                continue
            if not any(self._computes_output(facts, node) for node in training.reachable(loops[0])):
                continue  # no model and no loss in the loop: an lr schedule simulated, optimizers stepped in turn
            receiver = facts.module.code_for_node(step.func.value)
            ctx.report(
                step,
                f"`{receiver}.step()` runs in a loop (line {facts.line_of(loops[0])}) with no backward pass: the "
                "parameters get no fresh gradients and do not learn; call `loss.backward()` before the step",
            )

    @staticmethod
    def _computes_output(facts, node: cst.CSTNode) -> bool:
        """A model forward or a loss: what a training loop that forgot backward() would still run."""
        if not isinstance(node, cst.Call):
            return False
        if facts.kind_of(node.func) in ("model", "loss") or facts.evaluation.called_model(node) is not None:
            return True
        return (facts.qualname(node.func) or "").startswith("torch.nn.functional.")

    @staticmethod
    def _makes_gradients(facts, node: cst.CSTNode) -> bool:
        if facts.training.is_backward(node):
            return True
        if isinstance(node, cst.Call) and facts.qualname(node.func) in _GRADIENT_FUNCTIONS:
            return True
        if not isinstance(node, cst.Assign) or (isinstance(node.value, cst.Name) and node.value.value == "None"):
            return False  # `p.grad = None` clears gradients, it does not make them
        return any(isinstance(t.target, cst.Attribute) and t.target.attr.value == "grad" for t in node.targets)
