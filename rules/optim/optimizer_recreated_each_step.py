from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register


@register
class OptimizerRecreatedEachStep(Rule):
    """
    ## What it does
    Finds an optimizer constructed inside the training loop that steps it (directly, or in a
    per-batch function the loop calls), so every step is taken by a brand-new optimizer. A model
    re-created in the same iteration (a sweep, one model per trial) stays quiet, and so does an
    optimizer built once per epoch or fold that steps over an inner batch loop.

    ## Why is this bad?
    An optimizer's state is what makes it more than plain SGD: momentum buffers, Adam's first
    and second moments and its step count for bias correction. Rebuilt every step, Adam's first
    step is always `lr * sign(grad)`, momentum never builds up, and learning-rate schedulers
    attached to the old optimizer stop acting. Training is slow, noisy, or stalls.

    ## Example
    ```python
    import torch

    for x, y in loader:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    Use instead:
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    The fix moves the construction above the loop when it is a one-line statement directly in the
    loop's body that reads nothing the loop assigns. It is unsafe: the optimizer now keeps its
    state across steps, which changes the updates (that is the point of the fix).
    """

    code = "ML212"
    name = "optimizer-recreated-each-step"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML941",)

    VALID = [
        # one optimizer per fold, stepping over the fold's batches
        """
import torch
for fold in range(5):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
""",
        # a hyper-parameter sweep: a fresh model and optimizer per trial, trained in a function
        """
import torch
def fit(lr):
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
for lr in (0.1, 0.01, 0.001):
    fit(lr)
""",
        # a new model in each iteration: nothing carries over anyway
        """
import torch
for trial in range(10):
    model = Net()
    optimizer = torch.optim.Adam(model.parameters())
    criterion(model(x), y).backward()
    optimizer.step()
""",
        """
import torch
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
for epoch in range(10):
    for x, y in loader:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
""",
            line=5,
            message="built inside the loop",
            fixed="""
import torch
for epoch in range(10):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
""",
        ),
        # inside the per-batch function the loop calls
        Invalid(
            """
import torch
def train_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()
model = Net()
for epoch in range(5):
    for x, y in loader:
        train_step(model, x, y)
""",
            line=4,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts, training = ctx.facts, ctx.facts.training
        reported = set()
        for step in training.optimizer_steps:
            loop = next(training.loops_around(step), None)
            if loop is None:
                continue
            for construction in training.constructions(training.stepped_optimizer(step)):
                if construction in reported or next(training.loops_around(construction), None) is not loop:
                    continue
                if self._model_made_in(facts, construction, loop):
                    continue
                reported.add(construction)
                ctx.report(
                    construction,
                    f"this optimizer is built inside the loop (line {facts.line_of(loop)}) that steps it, so each "
                    "step starts from fresh state (no momentum, Adam's moments and step count reset); build it once, "
                    "before the loop",
                    fix=_hoist_fix(facts, construction, loop),
                )

    @staticmethod
    def _model_made_in(facts, construction: cst.Call, loop: cst.CSTNode) -> bool:
        """The parameters come from a model bound in the same loop iteration (one model per trial)."""
        params = facts.argument(construction, 0, "params")
        return any(next(facts.training.loops_around(node), None) is loop
                   for name in (nodes_within(params, cst.Name) if params is not None else [])
                   for node in facts.reaching_nodes(name) if node in facts.bindings)


def _hoist_fix(facts, construction: cst.Call, loop: cst.CSTNode) -> Optional[FixSpec]:
    """Move `opt = Optim(...)` from the loop's body to the line above the loop."""
    statement = fixes.statement_of(facts, construction)
    if not isinstance(statement, cst.SimpleStatementLine) or fixes.block_statements(facts, statement) is None:
        return None
    if facts.parent.get(facts.parent.get(statement)) is not loop:
        return None
    code = facts.module.code_for_node(statement.body[0]) if len(statement.body) == 1 else None
    if code is None or "\n" in code or _reads_loop_names(facts, statement, loop):
        return None
    start = facts.positions[statement].start.line
    end = facts.positions[statement].end.line
    return FixSpec("unsafe", (), "Build the optimizer once, before the loop", edits=(
        fixes.insert_line_before(facts, loop, code),
        fixes.delete((start, 1), (end + 1, 1)),
    ))


def _reads_loop_names(facts, statement: cst.CSTNode, loop: cst.CSTNode) -> bool:
    """Whether the statement reads a name the loop binds (its target, or an assignment in it)."""
    value = statement.body[0].value if isinstance(statement.body[0], cst.Assign) else statement
    for name in nodes_within(value, cst.Name):
        for node in facts.reaching_nodes(name):
            if loop in facts.enclosing_loops(node) or node in set(nodes_within(getattr(loop, "target", loop), cst.Name)):
                return True
    return False
