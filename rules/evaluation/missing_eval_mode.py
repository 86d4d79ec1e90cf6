from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class MissingEvalMode(Rule):
    """
    ## What it does
    Finds evaluation passes of a model with Dropout or BatchNorm layers that may still be in
    training mode. An evaluation pass is a forward call on a model trained or loaded in the
    script, or handed to the function, whose result is never backpropagated, in code that steps
    no optimizer (after the training loop, in a function that trains nothing, after each epoch's
    training steps, or in a branch of the training loop like `if step % 50 == 0:`). On each path to the pass, the
    latest `model.eval()` / `model.train(False)` / `model.train()` earlier in the same function
    (else before the call that leads there) sets the mode; the pass is reported when some path
    leaves the model in training mode or none calls `eval()`. Models whose layers cannot be seen
    stay quiet, and so do models a Lightning Trainer runs (`trainer.test(model)`), whose mode
    the trainer sets itself.

    Also finds dropout that `eval()` cannot switch off, in a module's forward: `F.dropout(x, p)`
    with no `training=` (it defaults to True), and dropout gated by a flag of the module's own
    (`if self.is_training:`, `training=self.use_dropout`) that only `__init__` sets.

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
        # functional dropout that follows the module's mode
        """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self, use_dropout=True):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 256), nn.Linear(256, 10)
        self.use_dropout = use_dropout
    def forward(self, x):
        h = F.dropout(F.relu(self.fc1(x)), 0.5, training=self.training)
        if self.use_dropout and self.training:
            h = F.dropout(h, 0.2, self.training)
        return self.fc2(h)
""",
        # a rate, not a mode; dropout modules follow eval() by themselves (timm's DenseNet, CPU-bone)
        """
import torch.nn as nn
import torch.nn.functional as F
class Layer(nn.Module):
    def __init__(self, drop_rate=0.0):
        super().__init__()
        self.drop_rate = drop_rate
        self.dropout = nn.Dropout(drop_rate) if drop_rate else None
        self.fc = nn.Linear(8, 8)
    def forward(self, x):
        x = self.fc(x)
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        if self.dropout:
            x = self.dropout(x)
        return x
""",
        # a flag that the training script switches itself
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.is_training = True
    def forward(self, x):
        if self.is_training:
            x = dropout_layer(x, 0.5)
        return self.fc(x)
net = Net()
net.is_training = False
""",
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
        # a smoke test of a model a factory function builds, with random input (kuangliu/pytorch-cifar)
        """
import torch
import torch.nn as nn
class ResNet(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
    def forward(self, x):
        return self.bn(self.conv(x))
def ResNet18():
    return ResNet([2, 2, 2, 2])
def test():
    net = ResNet18()
    y = net(torch.randn(1, 3, 32, 32))
    print(y.size())
""",
        # a GAN's sampling helper, called from the training loop, saves `.data`: BatchNorm stays in training mode by design
        """
import torch
import torch.nn as nn
generator = nn.Sequential(nn.Linear(100, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())
optimizer_G = torch.optim.Adam(generator.parameters())
def sample_image(n_row, batches_done):
    z = torch.randn(n_row ** 2, 100)
    gen_imgs = generator(z)
    save_image(gen_imgs.data, "images/%d.png" % batches_done, nrow=n_row)
for i, (imgs, _) in enumerate(dataloader):
    optimizer_G.zero_grad()
    g_loss = -discriminator(generator(torch.randn(imgs.size(0), 100))).mean()
    g_loss.backward()
    optimizer_G.step()
    if i % 400 == 0:
        sample_image(10, i)
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
        # a Lightning Trainer ran the model (`trainer.test(model)`): it sets the mode itself, and which
        # mode it leaves depends on the version
        """
import os

import pytorch_lightning as pl
import torch
import torch.nn as nn


class Predictor(pl.LightningModule):
    def __init__(self, dropout):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Dropout(dropout), nn.Linear(32, 2))

    def forward(self, x):
        return self.net(x)

    def get_features(self, x):
        return self.net(x).softmax(-1)


def train_model(**kwargs):
    trainer = pl.Trainer(max_epochs=10)
    if os.path.isfile("pretrained.ckpt"):
        model = Predictor.load_from_checkpoint("pretrained.ckpt")
    else:
        model = Predictor(**kwargs)
        trainer.fit(model, train_loader, val_loader)
    result = trainer.test(model, dataloaders=test_loader)
    return model, result


model, result = train_model(dropout=0.0)
with torch.no_grad():
    features = model.get_features(x_test)
""",
    ]
    INVALID = [
        # d2l's dropout from scratch: the flag is fixed when the model is built
        Invalid(
            """
import torch
import torch.nn as nn
def dropout_layer(X, dropout):
    mask = (torch.rand(X.shape) > dropout).float()
    return mask * X / (1.0 - dropout)
class Net(nn.Module):
    def __init__(self, is_training=True):
        super().__init__()
        self.is_training = is_training
        self.lin1, self.lin2 = nn.Linear(784, 256), nn.Linear(256, 10)
    def forward(self, X):
        H1 = torch.relu(self.lin1(X))
        if self.is_training == True:
            H1 = dropout_layer(H1, 0.5)
        return self.lin2(H1)
""",
            line=14,
            message="`self.is_training` is set in __init__",
        ),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 256), nn.Linear(256, 10)
    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.5))
""",
            line=9,
            message="defaults to training=True",
        ),
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
        for node, message in self._dropout_eval_cannot_switch(ctx):
            ctx.report(node, message)
        evaluation = ctx.facts.evaluation
        for found in evaluation.passes:
            if not evaluation.has_mode_layers(found.model):
                continue
            if found.detached and not evaluation.has_dropout(found.model) and evaluation.during_training(found):
                continue  # a sample saved during training (a GAN generator's images) keeps BatchNorm in training mode by design
            modes = evaluation.modes_before(found.call, found.model)
            if "eval" in modes and "train" not in modes or evaluation.mode_set_by_library(found.model):
                continue
            model = ctx.facts.module.code_for_node(found.model)
            ctx.report(
                found.call,
                f"`{model}` runs an evaluation pass ({found.reason}) in training mode: its Dropout/BatchNorm "
                f"layers still drop units and use batch statistics; call `{model}.eval()` first "
                f"(and `{model}.train()` before training again)",
            )

    @staticmethod
    def _dropout_eval_cannot_switch(ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        reassigned = {target.attr.value for node in facts.effects.get(facts.module, []) if isinstance(node, cst.Assign)
                      for target in (t.target for t in node.targets) if isinstance(target, cst.Attribute)
                      and not _in_init(facts, node)}
        for owner in facts.classes:
            forward = facts.method(owner, "forward") if facts.is_module_class(owner) else None
            if forward is None:
                continue
            for node in nodes_within(forward.body, (cst.Call, cst.If)):
                if isinstance(node, cst.Call) and facts.qualname(node.func) in FUNCTIONAL_DROPOUT:
                    training = facts.argument(node, 2, "training")
                    if training is None:
                        yield node, (f"`{facts.module.code_for_node(node.func)}()` defaults to training=True: it keeps "
                                     "dropping units after `model.eval()`, so evaluation is noisy and pessimistic; pass "
                                     "`training=self.training` (or use an nn.Dropout layer)")
                    elif _fixed_flag(training, reassigned):
                        yield training, _flag_message(training)
                elif isinstance(node, cst.If) and _fixed_flag(_flag_of(node.test), reassigned) and any(
                        _hand_written_dropout(facts, call) for call in nodes_within(node.body, cst.Call)):
                    yield node.test, _flag_message(_flag_of(node.test))


FUNCTIONAL_DROPOUT = {
    "torch.nn.functional.dropout", "torch.nn.functional.dropout1d", "torch.nn.functional.dropout2d",
    "torch.nn.functional.dropout3d", "torch.nn.functional.alpha_dropout", "torch.nn.functional.feature_alpha_dropout",
}


def _in_init(facts, node: cst.CSTNode) -> bool:
    function = facts.enclosing_function(node)
    return function is not None and function.name.value == "__init__"


def _hand_written_dropout(facts, call: cst.Call) -> bool:
    """A call to a local function named like dropout (`dropout_layer(H1, 0.5)`): no module whose
    mode eval() would switch, and no `training=` it would follow."""
    return any("dropout" in function.name.value.lower() for function in facts.local_definitions(call.func, cst.FunctionDef))


def _flag_of(test: cst.BaseExpression) -> Optional[cst.Attribute]:
    """`self.flag` in `if self.flag:`, `if self.flag == True:` or `if self.flag is True:` (a
    mode, not a rate such as `if self.drop_rate > 0:`)."""
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
            and isinstance(test.comparisons[0].operator, (cst.Equal, cst.Is)) \
            and isinstance(test.comparisons[0].comparator, cst.Name) and test.comparisons[0].comparator.value in ("True", "False"):
        test = test.left
    return test if isinstance(test, cst.Attribute) else None


def _fixed_flag(expr: Optional[cst.BaseExpression], reassigned: set[str]) -> bool:
    """`self.<flag>` other than `self.training`, never assigned outside an `__init__`."""
    return isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self" \
        and expr.attr.value != "training" and expr.attr.value not in reassigned


def _flag_message(flag: cst.Attribute) -> str:
    name = flag.attr.value
    return (f"`self.{name}` is set in __init__ and never changes: `model.eval()` does not touch it, so this dropout "
            "also runs when the model is evaluated; test `self.training`, which train() and eval() set, instead")
