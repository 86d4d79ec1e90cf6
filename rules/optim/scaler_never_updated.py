from __future__ import annotations

import libcst as cst

from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class ScalerNeverUpdated(Rule):
    """
    ## What it does
    Finds `scaler.step(optimizer)` on a `GradScaler` inside a loop that never calls
    `scaler.update()`, neither in its body nor in the local functions it calls. A scaler built with
    `enabled=False`, and a loop that hands the scaler to a function we cannot see (which may
    update it), stay quiet. A loop over the optimizers (`for opt in optimizers: scaler.step(opt)`)
    is judged by the loop around it.

    ## Why is this bad?
    `scaler.step()` records that the optimizer has stepped; only `scaler.update()` clears that
    record and adjusts the loss scale. Without it the second `scaler.step()` raises
    `RuntimeError: step() has already been called since the last update()`: the run crashes after
    one step (after hours of setup on a cluster). Calling `update()` only after the loop has the
    same effect, and an update left out of the loop also never lowers the scale after an overflow.

    ## Example
    ```python
    import torch

    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
    ```

    Use instead:
    ```python
    import torch

    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    ```
    """

    code = "ML215"
    name = "scaler-never-updated"
    severity = Severity.ERROR
    judges_procedure = True

    VALID = [
        # the update happens in the per-batch method the loop calls (minGPT-ddp's trainer)
        """
import torch
class Trainer:
    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.scaler = torch.amp.GradScaler("cuda")
    def _run_batch(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(self.model(x, y)).backward()
        self.scaler.step(self.optimizer)
    def _after_step(self):
        self.scaler.update()
    def train(self, loader):
        for x, y in loader:
            self._run_batch(x, y)
            self._after_step()
""",
        # two optimizers stepped in their own loop, one update per iteration
        """
import torch
scaler = torch.amp.GradScaler()
for x in loader:
    for opt in optimizers:
        opt.zero_grad()
    scaler.scale(model(x).sum()).backward()
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()
""",
        # gradient accumulation: step and update under the same condition
        """
import torch
scaler = torch.cuda.amp.GradScaler()
for i, (x, y) in enumerate(loader):
    scaler.scale(criterion(model(x), y) / accum).backward()
    if (i + 1) % accum == 0:
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
""",
        # a disabled scaler's step() is optimizer.step()
        """
import torch
scaler = torch.amp.GradScaler(enabled=False)
for x, y in loader:
    optimizer.zero_grad()
    scaler.scale(criterion(model(x), y)).backward()
    scaler.step(optimizer)
""",
        # the scaler goes to a hook from another module
        """
import torch
from hooks import after_step
scaler = torch.amp.GradScaler()
for x, y in loader:
    optimizer.zero_grad()
    scaler.scale(criterion(model(x), y)).backward()
    scaler.step(optimizer)
    after_step(scaler, optimizer)
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
from torch.cuda.amp import GradScaler, autocast

def train_epoch(model, loader, optimizer, scaler):
    for x, y in loader:
        optimizer.zero_grad()
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)

scaler = GradScaler()
for epoch in range(10):
    train_epoch(model, loader, optimizer, scaler)
    scaler.update()
""",
            line=11,
            message="update()",
        ),
        # a GAN: each optimizer stepped in the batch loop, no update at all
        Invalid(
            """
import torch
scaler = torch.amp.GradScaler("cuda")
for real in loader:
    opt_d.zero_grad()
    scaler.scale(d_loss(real)).backward()
    scaler.step(opt_d)
    opt_g.zero_grad()
    scaler.scale(g_loss()).backward()
    scaler.step(opt_g)
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        training, scalers = facts.training, facts.scalers
        updated: dict[tuple[cst.CSTNode, str], bool] = {}  # per loop and scaler spelling, answered once
        for step in scalers.calls("step"):
            scaler = step.func.value
            loop = next((loop for loop in training.loops_around(step) if not _iterates_stepped(facts, loop, step)), None)
            if loop is None or scalers.disabled(scaler):
                continue
            key = (loop, facts.module.code_for_node(scaler))
            if key not in updated:
                updated[key] = self._updated_in(facts, loop, scaler)
            if updated[key]:
                continue
            receiver = facts.module.code_for_node(scaler)
            ctx.report(
                step,
                f"`{receiver}.step()` runs in a loop (line {facts.line_of(loop)}) that never calls `{receiver}.update()`: "
                "the second step raises RuntimeError ('step() has already been called since the last update()') "
                f"and the loss scale never adapts; call `{receiver}.update()` after the optimizer steps of each iteration",
            )

    @staticmethod
    def _updated_in(facts, loop: cst.CSTNode, scaler: cst.BaseExpression) -> bool:
        """The loop updates a scaler, or hands this one to a function we cannot see."""
        for node in facts.training.reachable(loop):
            if not isinstance(node, cst.Call):
                continue
            if isinstance(node.func, cst.Attribute) and node.func.attr.value == "update" \
                    and facts.kind_of(node.func.value) == "scaler":
                return True
            if facts.training.hands_to_unseen(node, scaler):
                return True
        return False


def _iterates_stepped(facts, loop: cst.CSTNode, step: cst.Call) -> bool:
    """`for opt in optimizers: scaler.step(opt)`: the loop goes over the optimizers, not the steps."""
    if not isinstance(loop, cst.For) or not step.args:
        return False
    targets = set(nodes_within(loop.target, cst.Name))
    return any(node in targets for name in nodes_within(step.args[0].value, cst.Name) for node in facts.reaching_nodes(name))
