from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register


@register
class MissingZeroGrad(Rule):
    """
    ## What it does
    Finds optimizer steps inside a loop that computes gradients (`backward()`) but never clears
    them: no `optimizer.zero_grad()`, `model.zero_grad()`, `p.grad = None` or `p.grad.zero_()`
    anywhere the loop reaches, including helper functions it calls. With several optimizers (a
    GAN), the clearing must be on the optimizer that steps or on a model it optimizes. Updates
    written by hand, as course notebooks teach (`w -= lr * w.grad` under `torch.no_grad()`,
    `w.data.sub_(lr * w.grad)`), accumulate the same way when `w.grad` is never cleared.

    ## Why is this bad?
    PyTorch adds each `backward()` into `.grad`. Without clearing, every step uses the sum of
    all gradients so far: the effective step grows without bound, and the loss oscillates or
    diverges. Gradient accumulation that clears every k steps is fine and stays quiet.

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
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

    ## Fix safety
    For hand-written updates the fix inserts `w.grad.zero_()` below each update. Otherwise it
    inserts `optimizer.zero_grad()` above the backward pass that feeds the step, or, when
    the step runs only every k iterations (gradient accumulation), just below the step. It is
    unsafe: if gradients were meant to add up across iterations, clearing them changes what each
    step uses.
    """

    code = "ML202"
    name = "missing-zero-grad"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML913", "ML905", "ML902", "ML903")

    VALID = [
        # a hand-written update that clears each gradient after using it
        """
import torch
X, y = torch.randn(100, 3), torch.randn(100, 1)
w = torch.randn(3, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
for epoch in range(100):
    loss = ((X @ w + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.01 * w.grad
        b -= 0.01 * b.grad
        w.grad.zero_()
        b.grad = None
""",
        # parameters in a list, cleared with a loop of their own
        """
import torch
params = [torch.randn(3, 1, requires_grad=True), torch.zeros(1, requires_grad=True)]
for step in range(50):
    loss = ((X @ params[0] + params[1] - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= 0.1 * p.grad
            p.grad.data.zero_()
""",
        # one backward pass, one update: nothing accumulates
        "import torch\nw = torch.randn(3, requires_grad=True)\nloss = (w ** 2).sum()\nloss.backward()\nwith torch.no_grad():\n    w -= 0.1 * w.grad\n",
        # distributed autograd keeps gradients per context: nothing accumulates
        """
import torch.distributed.autograd as dist_autograd
from torch.distributed.optim import DistributedOptimizer
import torch.optim as optim
opt = DistributedOptimizer(optim.SGD, model.parameter_rrefs(), lr=0.05)
for data, target in batches:
    with dist_autograd.context() as context_id:
        loss = criterion(model(data), target)
        dist_autograd.backward(context_id, [loss])
        opt.step(context_id)
""",
        """
import torch
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
""",
        # clearing in a helper, and through the model
        """
def reset(m):
    m.zero_grad()
for x, y in loader:
    reset(model)
    loss = crit(model(x), y)
    loss.backward()
    optimizer.step()
""",
        # gradient accumulation: clears every k steps
        """
optimizer.zero_grad()
for i, (x, y) in enumerate(loader):
    loss = crit(model(x), y) / 4
    loss.backward()
    if (i + 1) % 4 == 0:
        optimizer.step()
        optimizer.zero_grad()
""",
        # p.grad = None
        """
for x, y in loader:
    for p in model.parameters():
        p.grad = None
    crit(model(x), y).backward()
    optimizer.step()
""",
        # LBFGS: the closure clears
        """
import torch
opt = torch.optim.LBFGS(model.parameters())
for _ in range(10):
    def closure():
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)
""",
        # a scheduler step is not an optimizer step
        """
for epoch in range(3):
    train_one_epoch()
    scheduler.step()
""",
        # a GAN: each model cleared through itself
        """
import torch
opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4)
opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4)
for real in loader:
    net_d.zero_grad()
    d_loss(real).backward()
    opt_d.step()
    net_g.zero_grad()
    g_loss().backward()
    opt_g.step()
""",
        # several optimizers stepped in a loop of their own after one backward
        """
for x, y in loader:
    for opt in optimizers:
        opt.zero_grad()
    crit(model(x), y).backward()
    for opt in optimizers:
        opt.step()
""",
    ]
    INVALID = [
        # a course-notebook linear regression: w.grad and b.grad grow every epoch
        Invalid(
            """
import torch
X, y = torch.randn(100, 3), torch.randn(100, 1)
w = torch.randn(3, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
for epoch in range(100):
    loss = ((X @ w + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.01 * w.grad
        b -= 0.01 * b.grad
""",
            line=10,
            message="`w`, `b` are updated by hand",
            fixed="""
import torch
X, y = torch.randn(100, 3), torch.randn(100, 1)
w = torch.randn(3, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
for epoch in range(100):
    loss = ((X @ w + b - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.01 * w.grad
        w.grad.zero_()
        b -= 0.01 * b.grad
        b.grad.zero_()
""",
        ),
        # `.data` updates over model.parameters(), the grads never cleared
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Linear(4, 1)
for x, y in loader:
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    for p in model.parameters():
        p.data.sub_(0.01 * p.grad)
""",
            line=9,
        ),
        # found in pytorch/examples: tensor-parallel training that steps ten times without clearing
        """
import torch
optimizer = torch.optim.AdamW(tp_model.parameters(), lr=0.25, foreach=True)
num_iters = 10
for i in range(num_iters):
    inp = torch.rand(20, 10, device="cuda")
    output = tp_model(inp)
    output.sum().backward()
    optimizer.step()
""",
        Invalid(
            """
import torch
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
""",
            line=8,
        ),
        # cleared once per epoch only: gradients accumulate over the batches
        Invalid(
            """
for epoch in range(10):
    optimizer.zero_grad()
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
""",
            line=7,
        ),
        # a GAN clearing only the discriminator's optimizer every batch
        Invalid(
            """
import torch
opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
for epoch in range(20):
    opt_g.zero_grad()
    for real in loader:
        opt_d.zero_grad()
        d_loss(real).backward()
        opt_d.step()
        g_loss().backward()
        opt_g.step()
""",
            line=12,
        ),
        # the step sits in a train function called from the loop
        Invalid(
            """
import torch
def train_step(model, opt, x, y):
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
opt = torch.optim.SGD(net.parameters(), lr=0.01)
for x, y in data:
    train_step(net, opt, x, y)
""",
            line=6,
        ),
    ]

    @staticmethod
    def _distributed_autograd(facts, step: cst.Call) -> bool:
        """A step of a DistributedOptimizer, or one inside `with dist_autograd.context():`."""
        if "torch.distributed.optim.DistributedOptimizer" in facts.classes_of(step.func.value):
            return True
        return any(isinstance(a, cst.With) and any(
            facts.qualname(item.item.func if isinstance(item.item, cst.Call) else item.item) == "torch.distributed.autograd.context"
            for item in a.items) for a in facts.ancestors(step))

    def check(self, ctx: RuleContext) -> None:
        training = ctx.facts.training
        for step in training.optimizer_steps:
            loop = next(training.loops_around(step), None)
            if loop is None:
                continue
            reached = training.reachable(loop)
            if not any(training.is_backward(node) for node in reached):
                continue
            if self._distributed_autograd(ctx.facts, step):
                continue  # gradients live in a per-iteration context: nothing accumulates
            if training.stale_rebinding(step) is not None:
                continue  # the model was replaced after the optimizer was built: ML211
            stepped = step.args[0].value if ctx.facts.kind_of(step.func.value) == "scaler" and step.args else step.func.value
            if any(training.clears_gradients(node, stepped) for node in reached):
                continue
            receiver = ctx.facts.module.code_for_node(step.func.value)
            ctx.report(
                step,
                f"`{receiver}.step()` runs in a loop (line {ctx.facts.line_of(loop)}) that calls backward() but never "
                "clears gradients, so they accumulate across iterations and each step grows; "
                f"call `{receiver}.zero_grad()` before `loss.backward()` in the same loop",
                fix=_zero_grad_fix(ctx.facts, step, stepped),
            )
        self._check_hand_written(ctx)

    @staticmethod
    def _check_hand_written(ctx: RuleContext) -> None:
        """Hand-written descent (`w -= lr * w.grad`) in a loop that calls backward() and never
        clears the parameters' gradients: one finding per loop, with a clear after each update."""
        facts, training = ctx.facts, ctx.facts.training
        by_loop: dict[cst.CSTNode, list] = {}
        for update in facts.parameter_updates:
            if update.sign >= 0:
                continue  # ascent is ML209's
            loop = next((loop for loop in training.loops_around(update.node)
                         if any(training.is_backward(node) for node in training.reachable(loop))), None)
            if loop is not None:
                by_loop.setdefault(loop, []).append(update)
        for loop, updates in by_loop.items():
            if any(training.clears_gradients(node) for node in training.reachable(loop)):
                continue
            spelled = list(dict.fromkeys(facts.module.code_for_node(u.parameter) for u in updates))
            shown = ", ".join(f"`{name}`" for name in spelled[:3]) + (" ..." if len(spelled) > 3 else "")
            ctx.report(
                updates[0].node,
                f"{shown} {'is' if len(spelled) == 1 else 'are'} updated by hand in a loop (line {facts.line_of(loop)}) "
                "that calls backward() but never clears the gradients, so they accumulate across iterations and "
                f"each update grows; clear them after the update (`{spelled[0]}.grad.zero_()` or "
                f"`{spelled[0]}.grad = None`)",
                fix=_clear_after_updates_fix(facts, updates),
            )


def _clear_after_updates_fix(facts, updates: list) -> Optional[FixSpec]:
    """`p.grad.zero_()` below each hand-written update statement."""
    edits = []
    for update in updates:
        statement = fixes.statement_of(facts, update.node)
        name = facts.module.code_for_node(update.parameter)
        if not isinstance(statement, cst.SimpleStatementLine) or "\n" in name:
            return None
        edits.append(fixes.insert_line_after(facts, statement, f"{name}.grad.zero_()"))
    return FixSpec("unsafe", (), "Clear each parameter's gradient after its update", edits=tuple(edits))


def _zero_grad_fix(facts, step: cst.Call, stepped: cst.BaseExpression) -> Optional[FixSpec]:
    """`stepped.zero_grad()` above the first backward pass since the previous optimizer step, in
    the step's block; when that backward pass is in an enclosing block (the step is conditional,
    as in gradient accumulation), just below the step."""
    receiver = facts.module.code_for_node(stepped)
    statement = fixes.statement_of(facts, step)
    if not isinstance(statement, cst.SimpleStatementLine) or "\n" in receiver:
        return None
    line = f"{receiver}.zero_grad()"
    current = statement
    while True:
        siblings = fixes.block_statements(facts, current)
        if siblings is None:
            return None
        first = _first_backward_since_step(facts, siblings[: siblings.index(current) + 1])
        if current is statement:
            if first is not None:
                return FixSpec("unsafe", (), "Clear the gradients before the backward pass",
                               edits=(fixes.insert_line_before(facts, first, line),))
        elif first is not None:
            return FixSpec("unsafe", (), "Clear the gradients after each optimizer step",
                           edits=(fixes.insert_line_after(facts, statement, line),))
        current = next((a for a in facts.ancestors(current) if isinstance(a, cst.BaseCompoundStatement)
                        and isinstance(facts.parent.get(a), (cst.IndentedBlock, cst.Module))), None)
        if current is None or isinstance(current, (cst.For, cst.While, cst.FunctionDef, cst.ClassDef)):
            return None  # no backward pass in the step's own loop iteration


def _first_backward_since_step(facts, statements: list) -> Optional[cst.BaseStatement]:
    """The earliest statement that runs a backward pass after the last one that steps an
    optimizer (the last statement may hold the step itself: `loss.backward(); opt.step()`)."""
    training = facts.training
    first = None
    for index in range(len(statements) - 1, -1, -1):
        reached = []
        for call in nodes_within(statements[index], cst.Call):
            reached.append(call)
            reached.extend(n for function in facts.called_functions(call) for n in training.reachable(function))
        if index < len(statements) - 1 and any(training.is_optimizer_step(n) for n in reached):
            break
        if any(training.is_backward(n) for n in reached):
            first = statements[index]
    return first
