from __future__ import annotations

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class StaleOptimizer(Rule):
    """
    ## What it does
    Finds an optimizer built over `model.parameters()` whose `model` is then bound to a new
    model (re-created with `model = Net()`, reloaded with `torch.load`, deep-copied) before the
    optimizer steps: the loop trains the new model while the optimizer updates the old one.
    Moving the same model (`model = model.to(device)`) or wrapping it (`DataParallel(model)`,
    `torch.compile(model)`) keeps its parameters and stays quiet.

    ## Why is this bad?
    An optimizer holds references to the parameter tensors it was given. The new model's
    parameters are other tensors: they get gradients, but no optimizer ever changes them, so the
    loss does not move (and `zero_grad()` on the new model does not clear what the optimizer
    steps with). The script runs without a warning.

    ## Example
    ```python
    import torch

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model = Net().to(device)
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    Use instead:
    ```python
    import torch

    model = Net().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "ML211"
    name = "stale-optimizer"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML918", "ML904")

    VALID = [
        # the model is moved, not replaced: .to() returns the same module
        """
import torch
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
model = model.to("cuda")
model = torch.nn.DataParallel(model)
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
""",
        # a second experiment rebuilds both the model and its optimizer
        """
import torch
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
train(model, optimizer)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
""",
        # k-fold: a fresh model and optimizer per fold
        """
import torch
for fold in range(5):
    model = Net()
    optimizer = torch.optim.Adam(model.parameters())
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
""",
        # the weights are loaded in place
        """
import torch
model = Net()
optimizer = torch.optim.Adam(model.parameters())
model.load_state_dict(torch.load("ckpt.pt"))
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
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
for x, y in loader:
    model.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
""",
            line=6,
            message="`model` is bound to a new model here",
        ),
        # reloaded from a checkpoint, then trained by a function
        Invalid(
            """
import torch
def train(net, opt, loader):
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
if resume:
    model = torch.load("model.pt")
train(model, optimizer, loader)
""",
            line=11,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts, training = ctx.facts, ctx.facts.training
        reported = set()
        for step in training.optimizer_steps:
            stale = training.stale_rebinding(step)
            if stale is None or stale[1] in reported:
                continue
            construction, target = stale
            reported.add(target)
            name = target.value
            optimizer = facts.module.code_for_node(training.stepped_optimizer(step))
            ctx.report(
                target,
                f"`{name}` is bound to a new model here, after the optimizer (line {facts.line_of(construction)}) was "
                f"built over the old one's parameters: `{optimizer}.step()` (line {facts.line_of(step)}) updates a model "
                f"that is no longer trained, so the new one never learns; build the optimizer after this line, "
                f"over `{name}.parameters()`",
            )
