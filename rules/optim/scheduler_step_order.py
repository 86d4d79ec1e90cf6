from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from mlplint.lint.facts.index import terminal_name
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

# Receivers that cannot be resolved are judged by name as a last resort: scheduler, lr_sched...
_SCHEDULER_NAME = re.compile(r"(^|_)(sched|scheduler|lr_scheduler|lr_sched)(_|\d|$)", re.IGNORECASE)


@register
class SchedulerStepOrder(Rule):
    """
    ## What it does
    Finds `scheduler.step()` that runs before `optimizer.step()` within the loop that runs both:
    earlier in the same batch loop, or at the top of the epoch loop before the batch loop (or the
    `train_one_epoch()` call) that does the optimizer steps.

    ## Why is this bad?
    Since PyTorch 1.1 the learning-rate scheduler must be stepped after the optimizer. Stepping it
    first skips the first value of the schedule (the warm-up or initial learning rate is never
    used) and shifts every later change by one step; PyTorch warns "Detected call of
    `lr_scheduler.step()` before `optimizer.step()`".

    ## Example
    ```python
    import torch

    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    for epoch in range(30):
        scheduler.step()
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
    ```

    Use instead:
    ```python
    import torch

    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    for epoch in range(30):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        scheduler.step()
    ```
    """

    code = "ML204"
    name = "scheduler-step-order"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML921",)

    VALID = [
        # two training functions called from one loop: the scheduler step of one is not ordered against the other's optimizer
        """
import torch
from torch import nn

def train_baseline(engine, sched, loader):
    for batch in loader:
        loss = engine(batch).sum()
        engine.backward(loss)
        engine.step()              # DeepSpeed engine: optimizer step
        sched.step()

def train_integration(loader):
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    for batch in loader:
        loss = model(batch).sum()
        loss.backward()
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()

if __name__ == "__main__":
    loader = [torch.randn(8, 4) for _ in range(4)]
    for stage in [1, 2]:
        train_baseline(None, None, loader)
        train_integration(loader)
""",
        """
import torch
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100)
for x, y in loader:
    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
    sched.step()
""",
        """
import torch
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
for epoch in range(10):
    train_one_epoch(model, loader, opt)
    scheduler.step(validate(model))
""",
        # the scheduler before the loop, once, is a separate matter
        """
import torch
scheduler = torch.optim.lr_scheduler.StepLR(opt, 5)
for epoch in range(10):
    for x in loader:
        opt.zero_grad(); model(x).sum().backward(); opt.step()
    scheduler.step()
""",
        # an unrelated .step() (an environment) before the optimizer step
        """
for t in range(100):
    obs, reward, done, info = env.step(action)
    opt.zero_grad(); policy_loss(obs).backward(); opt.step()
""",
    ]
    INVALID = [
        # AMP: scaler.step(optimizer) steps the scheduler's optimizer
        Invalid(
            """
import torch
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
scaler = torch.cuda.amp.GradScaler()
for epoch in range(3):
    for x in loader:
        scheduler.step()
        scaler.scale(model(x).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
""",
            line=9,
        ),
        Invalid(
            """
import torch
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
for epoch in range(40):
    scheduler.step()
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
""",
            line=5,
        ),
        Invalid(
            """
import torch
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=1000)
for x, y in loader:
    opt.zero_grad()
    loss = crit(model(x), y)
    sched.step()
    loss.backward()
    opt.step()
""",
            line=7,
        ),
        Invalid(
            """
from torch.optim.lr_scheduler import CosineAnnealingLR
def train_one_epoch(model, loader, optimizer):
    for x, y in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
scheduler = CosineAnnealingLR(optimizer, T_max=50)
for epoch in range(50):
    scheduler.step()
    train_one_epoch(model, loader, optimizer)
""",
            line=10,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        training = facts.training
        for call in facts.calls:
            if not self._is_scheduler_step(facts, call):
                continue
            paired = self._pairs_with(facts, call)
            for loop in training.loops_around(call):
                step = next((s for s in training.steps_reached(loop) if paired(s)), None)
                if step is None:
                    continue
                scheduler_at = self._position_in(facts, loop, call)
                step_at = self._position_in(facts, loop, step)
                if scheduler_at is not None and step_at is not None and scheduler_at < step_at:
                    receiver = facts.module.code_for_node(call.func.value)
                    ctx.report(
                        call,
                        f"`{receiver}.step()` runs before `{facts.module.code_for_node(step.func.value)}.step()` "
                        f"(line {facts.line_of(step)}) in the loop at line {facts.line_of(loop)}: the schedule skips its "
                        f"first value and lags one step; call `{receiver}.step()` after the optimizer step",
                    )
                break  # the innermost loop that also runs an optimizer step decides

    @staticmethod
    def _pairs_with(facts, call: cst.Call):
        """Which optimizer steps a scheduler step is ordered against: those of the optimizer the
        scheduler was built on, when that is known; else only steps written in the same function
        (two training functions called from one loop each order their own pair)."""
        built = [o for o in facts.origins(call.func.value) if isinstance(o, cst.Call) and facts.kind_of(o) == "scheduler"]
        optimizers = [arg for arg in (facts.argument(b, 0, "optimizer") for b in built) if arg is not None]
        if optimizers:
            def stepped(step: cst.Call) -> cst.BaseExpression:  # `scaler.step(optimizer)` steps its argument
                return step.args[0].value if step.args and facts.kind_of(step.func.value) == "scaler" else step.func.value
            return lambda step: any(facts.same_object(stepped(step), optimizer) for optimizer in optimizers)
        function = facts.enclosing_function(call)
        return lambda step: facts.enclosing_function(step) is function

    @staticmethod
    def _is_scheduler_step(facts, call: cst.Call) -> bool:
        func = call.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "step"):
            return False
        kind = facts.kind_of(func.value)
        if kind is not None:
            return kind == "scheduler"
        return bool(_SCHEDULER_NAME.search(terminal_name(func.value)))

    @staticmethod
    def _position_in(facts, loop: cst.CSTNode, node: cst.Call) -> Optional[int]:
        """When in the loop's body a call runs: its own place when it is written inside the loop,
        else the place of the call in the loop that leads to it."""
        direct = facts.effects.get(loop, [])
        if node in direct:
            return facts.order_of(node)
        for candidate in direct:
            if isinstance(candidate, cst.Call) and any(
                    facts.training.reaches(f, node) for f in facts.called_functions(candidate)):
                return facts.order_of(candidate)
        return None
