from __future__ import annotations

import libcst as cst

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class EvalModeNeverReset(Rule):
    """
    ## What it does
    Finds a `model.eval()` that runs inside the training loop (directly, or in a function the loop
    calls such as `evaluate()`) when nothing in that loop calls `model.train()` again, for a model
    with Dropout or BatchNorm layers (or whose layers cannot be seen).

    ## Why is this bad?
    After the first validation, every later epoch trains in evaluation mode: Dropout is off (no
    regularisation, more overfitting) and BatchNorm stops using batch statistics and stops
    updating its running averages. Training silently changes behaviour after epoch one.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.5), nn.Linear(32, 2))
    model.train()
    for epoch in range(10):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        validate(model)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(8, 32), nn.Dropout(0.5), nn.Linear(32, 2))
    for epoch in range(10):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        validate(model)
    ```
    """

    code = "ML503"
    name = "eval-mode-never-reset"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML919",)

    VALID = [
        # a trainer class whose own eval() computes the test loss: no module changes mode
        """
import torch
class Trainer:
    def __init__(self, model, loader):
        self.model, self.loader = model, loader
        self.optimizer = torch.optim.Adam(model.parameters())
    def eval(self):
        with torch.no_grad():
            return self.model(x_test).sub(y_test).pow(2).mean()
    def train(self):
        for epoch in range(20):
            for x, y in self.loader:
                self.optimizer.zero_grad()
                torch.nn.functional.mse_loss(self.model(x), y).backward()
                self.optimizer.step()
            self.eval()
""",
        # `.train()` reached through another expression may be this model's: cannot tell, stay quiet
        """
import torch
def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(float(model(x).sum()) for x, _ in loader)
def train_one_epoch(task, loader, optimizer):
    trainable_module = task.get_trainable_module()
    trainable_module.train()
    for x, y in loader:
        optimizer.zero_grad()
        task(x, y).backward()
        optimizer.step()
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(10):
    train_one_epoch(task, train_loader, optimizer)
    validate(model, val_loader)
""",
        """
import torch
def train_epoch(model, loader, opt):
    model.train()
    for x, y in loader:
        opt.zero_grad(); model(x).sum().backward(); opt.step()
def evaluate(model, loader):
    model.eval()
for epoch in range(3):
    train_epoch(net, loader, opt)
    evaluate(net, val_loader)
""",
        # eval only after the loop
        """
for x, y in loader:
    opt.zero_grad(); model(x).sum().backward(); opt.step()
model.eval()
""",
        # train(True) resets the mode too
        """
for epoch in range(3):
    model.train(True)
    for x, y in loader:
        opt.zero_grad(); model(x).sum().backward(); opt.step()
    model.eval()
""",
        # a model without Dropout/BatchNorm: eval() changes nothing
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
for epoch in range(3):
    for x, y in loader:
        opt.zero_grad(); model(x).sum().backward(); opt.step()
    model.eval()
""",
    ]
    INVALID = [
        Invalid(
            """
model.train()
for epoch in range(10):
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
""",
            line=8,
        ),
        Invalid(
            """
import torch
def validate(net, loader):
    net.eval()
    with torch.no_grad():
        return sum(net(x).sum().item() for x in loader)
def fit(net, loader, val_loader, opt):
    net.train()
    for epoch in range(5):
        for x in loader:
            opt.zero_grad(); net(x).sum().backward(); opt.step()
        print(validate(net, val_loader))
fit(model, train_loader, val_loader, optimizer)
""",
            line=12,
            message="validate",
        ),
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
for step, (x, y) in enumerate(loader):
    opt.zero_grad(); model(x).sum().backward(); opt.step()
    if step % 100 == 0:
        model.eval()
        val = model(x_val)
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        training, evaluation = facts.training, facts.evaluation
        reported = set()
        for loop in facts.loops:
            reached = training.reachable(loop)
            if not any(training.is_optimizer_step(n) for n in reached):
                continue
            for call in facts.effects.get(loop, []):
                if not isinstance(call, cst.Call) or call in reported:
                    continue
                for eval_call, model in self._eval_calls(facts, call):
                    if evaluation.has_mode_layers(model) is False:
                        continue
                    if any(training.reaches(loop, n) for n in evaluation.mode_calls(model, "train")):
                        continue
                    if any(self._trains_unknown_object(facts, n) for n in reached):
                        continue  # `task.get_trainable_module().train()`: may be this model
                    reported.add(call)
                    name = facts.module.code_for_node(model)
                    via = "" if eval_call is call else f" through `{facts.module.code_for_node(call.func)}()` (line {facts.line_of(eval_call)})"
                    ctx.report(
                        call,
                        f"`{name}.eval()` runs inside the training loop (line {facts.line_of(loop)}){via} and nothing "
                        f"in the loop calls `{name}.train()` again, so later epochs train with Dropout/BatchNorm "
                        f"in evaluation mode; call `{name}.train()` at the start of each epoch",
                    )
                    break

    @staticmethod
    def _trains_unknown_object(facts, node: cst.CSTNode) -> bool:
        """`X.train()` on an object the analysis cannot resolve to any class."""
        if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "train"):
            return False
        if node.args and facts.literal(node.args[0].value) is not True:
            return False
        return not facts.classes_of(node.func.value)

    @staticmethod
    def _eval_calls(facts, call: cst.Call):
        """The `X.eval()` calls this call is or runs, with their model."""
        candidates = [call] + [n for f in facts.called_functions(call) for n in facts.training.reachable(f)]
        for node in candidates:
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and (
                    node.func.attr.value == "eval" and not node.args or
                    node.func.attr.value == "train" and node.args and facts.literal(node.args[0].value) is False):
                classes = facts.receiver_classes(node.func.value)
                if classes and not any(facts.is_module_class(c) for c in classes):
                    continue  # a trainer's own eval(), not a module's mode switch
                yield node, node.func.value
