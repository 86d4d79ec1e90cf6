from __future__ import annotations

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class MissingEvalMode(Rule):
    """
    ## What it does
    Finds evaluation passes (a forward call whose result is never backpropagated, in a function
    named like evaluate/validate/test/predict/infer, after the training loop, or in a branch of
    the training loop that runs no backward pass, like `if step % 50 == 0:`) of a model with
    Dropout or BatchNorm layers that may still be in training mode. On each path to the pass, the
    latest `model.eval()` / `model.train(False)` / `model.train()` earlier in the same function
    (else before the call that leads there) sets the mode; the pass is reported when some path
    leaves the model in training mode or none calls `eval()`. Models whose layers cannot be seen
    stay quiet.

    ## Why is this bad?
    In training mode Dropout keeps zeroing activations and BatchNorm normalises with the
    statistics of the current batch (and updates its running averages). Evaluation then reports
    noisy, pessimistic metrics, and predictions change from call to call.

    ## Example
    ```python
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 2))

    def evaluate(loader):
        with torch.no_grad():
            return sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 2))

    def evaluate(loader):
        model.eval()
        with torch.no_grad():
            return sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    ```
    """

    code = "ML501"
    name = "missing-eval-mode"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML917",)

    VALID = [
        # evaluate() leaves the model in eval mode, and predict() runs after it (bentrevett's notebooks)
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
def train(model):
    model.train()
    for x, y in data:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
def evaluate(model):
    model.eval()
    with torch.no_grad():
        return sum(criterion(model(x), y).item() for x, y in data)
for epoch in range(3):
    train(model)
    evaluate(model)
test_loss = evaluate(model)
def predict(model, x):
    with torch.no_grad():
        return model(x).argmax(-1)
print(predict(model, torch.randn(1, 10)))
""",
        # a GAN generator's periodic sample, saved detached, keeps BatchNorm in training mode by design
        """
import torch
import torch.nn as nn
netG = nn.Sequential(nn.ConvTranspose2d(100, 64, 4), nn.BatchNorm2d(64), nn.ReLU(), nn.ConvTranspose2d(64, 3, 4), nn.Tanh())
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4)
fixed_noise = torch.randn(64, 100, 1, 1)
for i, data in enumerate(dataloader):
    optimizerG.zero_grad()
    errG = criterion(netD(netG(noise)), label)
    errG.backward()
    optimizerG.step()
    if i % 100 == 0:
        fake = netG(fixed_noise)
        vutils.save_image(fake.detach(), "fake.png")
""",
        # no Dropout/BatchNorm: eval() changes nothing
        """
import torch, torch.nn as nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
def validate(x):
    with torch.no_grad():
        return model(x)
""",
        # eval() in the caller before the call
        """
import torch, torch.nn as nn
net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))
def predict(x):
    with torch.no_grad():
        return net(x)
net.eval()
predict(torch.randn(2, 4))
""",
        # unknown architecture
        """
import torch
def test(model, loader):
    with torch.no_grad():
        for x, y in loader:
            model(x)
""",
        # train(False) counts as eval()
        """
import torch, torch.nn as nn
m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
def evaluate(x):
    m.train(False)
    with torch.no_grad():
        return m(x)
""",
        # a forward that is backpropagated is training, whatever the function is called
        """
import torch.nn as nn
m = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
def test_time_adaptation(x, opt):
    loss = m(x).pow(2).mean()
    loss.backward()
    opt.step()
""",
        # the mode set last before each validation is eval()
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
def validate(model):
    with torch.no_grad():
        return model(x_val).argmax(1)
for epoch in range(10):
    model.train()
    train_one_epoch(model)
    model.eval()
    print(validate(model))
""",
        # validation after each epoch's training steps, in eval mode
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    model.train()
    for xb, yb in train_loader:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val_loss = nn.functional.cross_entropy(model(x_val), y_val)
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(64, 3)
    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))
def evaluate(model, loader):
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct
model = Net()
evaluate(model, [])
""",
            line=16,
        ),
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters())
for epoch in range(5):
    for x, y in loader:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
with torch.no_grad():
    test_pred = model(X_test)
""",
            line=12,
            message="after the training loop",
        ),
        Invalid(
            """
import torch
from torch import nn
class Trainer:
    def __init__(self):
        self.model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), nn.Linear(4, 2))
    @torch.no_grad()
    def validate(self, x):
        return self.model(x)
""",
            line=9,
        ),
        # the train() helper's model.train() is the mode the later prediction runs in
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
def train(model):
    model.train()
    for x, y in data:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
model.eval()
for epoch in range(3):
    train(model)
def predict(model, x):
    with torch.no_grad():
        return model(x).argmax(-1)
print(predict(model, torch.randn(1, 10)))
""",
            line=16,
        ),
        # eval() once before the loop, but each epoch's train() undoes it before validate()
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
def validate(model):
    with torch.no_grad():
        return model(x_val).argmax(1)
model.eval()
print("before training", validate(model))
for epoch in range(10):
    model.train()
    train_one_epoch(model)
    print(validate(model))
""",
            line=7,
        ),
        # validation after each epoch's training steps, BatchNorm still in training mode
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    model.train()
    for xb, yb in train_loader:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    with torch.no_grad():
        val_loss = nn.functional.cross_entropy(model(x_val), y_val)
""",
            line=14,
            message="after each epoch's training steps",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        evaluation = ctx.facts.evaluation
        for found in evaluation.passes:
            if not evaluation.has_mode_layers(found.model):
                continue
            if found.periodic and found.detached and not evaluation.has_dropout(found.model):
                continue  # a sample saved during training (a GAN generator's images) keeps BatchNorm in training mode by design
            modes = evaluation.modes_before(found.call, found.model)
            if "eval" in modes and "train" not in modes:
                continue
            model = ctx.facts.module.code_for_node(found.model)
            ctx.report(
                found.call,
                f"`{model}` runs an evaluation pass ({found.reason}) in training mode: its Dropout/BatchNorm "
                f"layers still drop units and use batch statistics; call `{model}.eval()` first "
                f"(and `{model}.train()` before training again)",
            )
