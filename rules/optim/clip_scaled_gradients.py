from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register


@register
class ClipScaledGradients(Rule):
    """
    ## What it does
    Finds `torch.nn.utils.clip_grad_norm_()` or `clip_grad_value_()` called after
    `scaler.scale(loss).backward()` and before `scaler.step(optimizer)` (a `GradScaler`), with no
    `scaler.unscale_(optimizer)` between the backward pass and the clip. A scaler built with
    `enabled=False` does nothing and stays quiet, and so does a clip after a call of a function we
    cannot see that receives the scaler.

    ## Why is this bad?
    After `scaler.scale(loss).backward()` the gradients are multiplied by the loss scale (65536 at
    the start). Clipping them compares the threshold with the scaled values: `clip_grad_norm_`
    fires at almost every step and shrinks the real gradients by about the loss scale, and
    `clip_grad_value_` caps them at `clip_value / scale`. `scaler.step()` then unscales what is
    left, so the updates are orders of magnitude smaller than intended and training crawls or
    stalls. `unscale_()` first makes the clip see the true gradients, and `step()` does not
    unscale them twice.

    ## Example
    ```python
    import torch

    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
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
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
    ```

    ## Fix safety
    The fix inserts `scaler.unscale_(optimizer)` on the line above the clip, when the clip is a
    statement of its own and one optimizer is stepped after it with no other `unscale_()` on the
    way. It is unsafe: the clip now acts on the true gradients, which changes every update (that is
    the point of the fix), and a run tuned around the tiny updates may need its learning rate
    tuned again.
    """

    code = "ML214"
    name = "clip-scaled-gradients"
    severity = Severity.ERROR
    judges_procedure = True

    VALID = [
        # nanoGPT train.py: unscale_ under the same condition as the clip
        """
import torch
scaler = torch.cuda.amp.GradScaler(enabled=(dtype == 'float16'))
while True:
    for micro_step in range(gradient_accumulation_steps):
        with ctx:
            logits, loss = model(X, Y)
            loss = loss / gradient_accumulation_steps
        X, Y = get_batch('train')
        scaler.scale(loss).backward()
    if grad_clip != 0.0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
""",
        # a disabled scaler is a no-op: the gradients are not scaled
        """
import torch
from torch import nn
scaler = torch.amp.GradScaler("cuda", enabled=False)
for x, y in loader:
    optimizer.zero_grad()
    scaler.scale(criterion(model(x), y)).backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
""",
        # the clip is on the branch without a scaler
        """
import torch
scaler = torch.amp.GradScaler()
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    if use_amp:
        scaler.scale(loss).backward()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if use_amp:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
""",
        # a helper from another module receives the scaler between backward and clip
        """
import torch
from train_utils import unscale_all
scaler = torch.amp.GradScaler()
for x, y in loader:
    optimizer.zero_grad()
    scaler.scale(criterion(model(x), y)).backward()
    unscale_all(scaler, [optimizer])
    torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)
    scaler.step(optimizer)
    scaler.update()
""",
        # the unscale happens in a local function the loop calls
        """
import torch
scaler = torch.amp.GradScaler()
def unscale(opt):
    scaler.unscale_(opt)
for x, y in loader:
    optimizer.zero_grad()
    scaler.scale(criterion(model(x), y)).backward()
    unscale(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
""",
    ]
    INVALID = [
        # pytorch/examples distributed/minGPT-ddp/mingpt/trainer.py
        Invalid(
            """
import torch

class Trainer:
    def __init__(self, config, model, optimizer):
        self.config = config
        self.model = model
        self.optimizer = optimizer
        if self.config.use_amp:
            self.scaler = torch.amp.GradScaler("cuda")

    def _run_batch(self, source, targets, train=True):
        with torch.set_grad_enabled(train), torch.amp.autocast(device_type="cuda", dtype=torch.float16, enabled=self.config.use_amp):
            _, loss = self.model(source, targets)
        if train:
            self.optimizer.zero_grad(set_to_none=True)
            if self.config.use_amp:
                self.scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
                self.optimizer.step()
        return loss.item()
""",
            line=19,
            message="unscale_",
            fixed="""
import torch

class Trainer:
    def __init__(self, config, model, optimizer):
        self.config = config
        self.model = model
        self.optimizer = optimizer
        if self.config.use_amp:
            self.scaler = torch.amp.GradScaler("cuda")

    def _run_batch(self, source, targets, train=True):
        with torch.set_grad_enabled(train), torch.amp.autocast(device_type="cuda", dtype=torch.float16, enabled=self.config.use_amp):
            _, loss = self.model(source, targets)
        if train:
            self.optimizer.zero_grad(set_to_none=True)
            if self.config.use_amp:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
                self.optimizer.step()
        return loss.item()
""",
        ),
        # value clipping, a scaler passed to the per-batch function, unscale_ after the clip
        Invalid(
            """
from torch.cuda.amp import GradScaler
from torch.nn.utils import clip_grad_value_

def train_step(model, batch, optimizer, scaler):
    optimizer.zero_grad()
    scaler.scale(model(batch).mean()).backward()
    clip_grad_value_(model.parameters(), clip_value=1.0)
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()

scaler = GradScaler()
for batch in loader:
    train_step(model, batch, optimizer, scaler)
""",
            line=8,
            message="clip_grad_value_",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        scalers = facts.scalers
        for clip in facts.calls_to(*names.GRADIENT_CLIPPING):
            function, clipped_at = facts.enclosing_function(clip), facts.order_of(clip)
            backwards = [b for b in scalers.in_function("backward", function)
                         if facts.order_of(b) < clipped_at and not _exclusive(facts, b, clip)]
            if not backwards:
                continue
            backward = backwards[-1]
            scaler = backward.func.value.func.value  # `scaler` in `scaler.scale(loss).backward()`
            steps = [s for s in scalers.in_function("step", function) if facts.order_of(s) > clipped_at
                     and facts.same_object(s.func.value, scaler) and not _exclusive(facts, clip, s)]
            if not steps or scalers.disabled(scaler) or _unscaled_between(facts, backward, clip, scaler):
                continue
            clipping = facts.module.code_for_node(clip.func).rsplit(".", 1)[-1]
            receiver = facts.module.code_for_node(scaler)
            ctx.report(
                clip,
                f"{clipping}() runs after `{receiver}.scale(loss).backward()` (line {facts.line_of(backward)}) with no "
                f"`{receiver}.unscale_(optimizer)` first: it clips gradients still multiplied by the loss scale, so the "
                "real gradients are shrunk by about that factor (65536 at the start) and training crawls; call "
                f"`{receiver}.unscale_(optimizer)` before clipping",
                fix=_unscale_fix(facts, clip, steps, receiver),
            )


def _unscaled_between(facts, backward: cst.Call, clip: cst.Call, scaler: cst.BaseExpression) -> bool:
    """An `unscale_()` between the backward and the clip: directly, in a local function called
    there, or possibly in a function we cannot see that receives the scaler."""
    training = facts.training
    for call in facts.calls[facts.order_of(backward) + 1:facts.order_of(clip)]:
        if _is_unscale(call):
            return True
        functions = facts.called_functions(call)
        if any(_is_unscale(node) for function in functions for node in training.reachable(function)):
            return True
        if training.hands_to_unseen(call, scaler):
            return True
    return False


def _is_unscale(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "unscale_"


def _exclusive(facts, first: cst.CSTNode, second: cst.CSTNode) -> bool:
    """Whether two nodes sit in different branches of one `if`/`else` (never both run in a pass)."""
    branch_of: dict[cst.If, cst.CSTNode] = {}
    child = first
    for ancestor in facts.ancestors(first):
        if isinstance(ancestor, cst.If) and child in (ancestor.body, ancestor.orelse):
            branch_of[ancestor] = child
        child = ancestor
    child = second
    for ancestor in facts.ancestors(second):
        if ancestor in branch_of and child in (ancestor.body, ancestor.orelse) and branch_of[ancestor] is not child:
            return True
        child = ancestor
    return False


def _unscale_fix(facts, clip: cst.Call, steps: list[cst.Call], receiver: str) -> Optional[FixSpec]:
    """`scaler.unscale_(optimizer)` above the clip, for the one optimizer stepped next, when no
    other unscale_() runs before that step (unscaling twice raises)."""
    statement = fixes.statement_of(facts, clip)
    if not isinstance(statement, cst.SimpleStatementLine) or fixes.block_statements(facts, statement) is None:
        return None
    optimizers = {facts.module.code_for_node(step.args[0].value) for step in steps if step.args}
    if len(optimizers) != 1 or any(not step.args for step in steps):
        return None
    if any(_is_unscale(call) for call in facts.calls[facts.order_of(clip) + 1:facts.order_of(steps[0])]):
        return None
    return FixSpec("unsafe", (), "Unscale the gradients before clipping", edits=(
        fixes.insert_line_before(facts, statement, f"{receiver}.unscale_({optimizers.pop()})"),
    ))
