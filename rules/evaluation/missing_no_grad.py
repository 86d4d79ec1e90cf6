from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register


@register
class MissingNoGrad(Rule):
    """
    ## What it does
    Finds evaluation passes that run outside `torch.no_grad()`, `torch.inference_mode()` or
    `torch.set_grad_enabled(False)` (neither in a `with` block, nor in a function decorated with
    them, nor called only from such a context). An evaluation pass is found by what the code
    does, not by what it is called: a forward pass (or a model's own method that runs one, such
    as `net.predict(x)`) on a model trained or loaded in the script, or handed to the function,
    whose output never reaches a backward pass, in code that steps no optimizer: after the
    training loop, in a function that trains nothing (`evaluate()`, `sample_images()`), after
    each epoch's training steps, or in a branch of the training loop that runs no backward pass
    (`if step % 50 == 0:`). A model built in the same function and never trained
    (`net = ResNet18(); net(torch.randn(1, 3, 32, 32))`) is a smoke test, not an evaluation; a
    model's own `forward` running its submodules is part of the model; a forward whose result
    its function returns is its callers' to judge, unless the function is named like an
    evaluation (`evaluate`, `predict`, `sample`...). `torch.autograd.grad(out, x)` counts as a
    backward pass, and `optimizer.zero_grad()` as training (the backward pass may run in a
    callable handed the loss, `loss_scaler(loss, optimizer)`).

    The finding is a warning when the pass is large: it runs over every batch of a loader or
    dataset, on a tensor of 1,000 rows or a million values at once, on a batch again and again
    (each epoch, in a loop), or on data whose size the analysis cannot see. A one-off pass over a
    handful of samples (fewer than 32 rows, or under 100,000 values, one batch drawn for a plot, a
    sample of generated noise) is `info`. The message says the size it saw.

    ## Why is this bad?
    Autograd records every operation of the pass to be able to backpropagate later: activations
    are kept alive, evaluation uses several times the memory (out-of-memory errors on large
    validation batches) and runs slower, and tensors kept for metrics drag their graphs along.

    ## Example
    ```python
    import torch

    def evaluate(model, loader):
        model.eval()
        return [model(x).argmax(1) for x, _ in loader]
    ```

    Use instead:
    ```python
    import torch

    @torch.no_grad()
    def evaluate(model, loader):
        model.eval()
        return [model(x).argmax(1) for x, _ in loader]
    ```

    ## Fix safety
    The fix decorates the evaluation function with `@torch.no_grad()` when nothing it runs calls
    backward() or steps an optimizer; otherwise it wraps the statement holding the forward pass
    (or the evaluation loop around it, when that loop trains nothing) in `with torch.no_grad():`,
    adding `import torch` if needed. It is safe: the computed values are the same, only the
    autograd graph is no longer recorded.
    """

    code = "ML502"
    name = "missing-no-grad"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML920",)

    VALID = [
        # accelerate's unwrap_model() unwraps for saving, it runs no forward
        """
import torch
from torch import nn
from accelerate import Accelerator

accelerator = Accelerator()
model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
model, optimizer = accelerator.prepare(model, optimizer)
for epoch in range(3):
    model.train()
    for _ in range(10):
        loss = model(torch.randn(8, 4)).sum()
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    if epoch % 2 == 0:
        accelerator.wait_for_everyone()
        unwrapped_model = accelerator.unwrap_model(model)
        unwrapped_model.save_pretrained("out")
""",
        # the model class is passed in: `Discriminator(10)` constructs, the one forward is under no_grad
        """
import torch
import torch.nn as nn
class Discriminator(nn.Module):
    def __init__(self, conv_dim):
        super().__init__()
        self.fc = nn.Linear(conv_dim, 1)
    def forward(self, x):
        return self.fc(x)
def test_discriminator(Discriminator):
    D = Discriminator(10)
    with torch.no_grad():
        output = D(torch.randn(4, 10))
    assert output.shape == (4, 1)
test_discriminator(Discriminator)
""",
        # a smoke test of a freshly built model on random input is not an evaluation pass
        """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def forward(self, x):
        return self.fc(x)
def test():
    net = Net()
    out = net(torch.randn(2, 4))
    assert out.shape == (2, 2)
""",
        # methods of a model and functions named after one are not forward passes; nor is `Net()`
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(loader):
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 100 == 0:
        head = model.get_classifier()
        model.reset_classifier(10)
        eval_model = task.get_eval_model()
        checkpointer.load_model(model)
        other = dummy_model_factory()
""",
        # a lambda runs wherever it is called
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
def evaluate(data, forward=lambda batch: model(batch)):
    with torch.no_grad():
        return [forward(batch) for batch in data]
""",
        # a smoke test of a model built by a factory function (kuangliu/pytorch-cifar's models)
        """
import torch
import torch.nn as nn
class ResNet(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)
    def forward(self, x):
        return self.fc(x.flatten(1))
def ResNet18():
    return ResNet([2, 2, 2, 2])
def test():
    net = ResNet18()
    y = net(torch.randn(1, 3, 32, 32))
    print(y.size())
""",
        # the policy's output reaches a backward pass through a list another function differentiates
        """
import torch
import torch.nn as nn
from torch.distributions import Categorical
policy = nn.Sequential(nn.Linear(4, 2), nn.Softmax(-1))
optimizer = torch.optim.Adam(policy.parameters())
saved_log_probs = []
def select_action(state):
    probs = policy(state)
    m = Categorical(probs)
    action = m.sample()
    saved_log_probs.append(m.log_prob(action))
    return action.item()
def finish_episode(returns):
    losses = []
    for log_prob, r in zip(saved_log_probs, returns):
        losses.append(-log_prob * r)
    optimizer.zero_grad()
    torch.stack(losses).sum().backward()
    optimizer.step()
""",
        # a forward handed back to callers the file does not show: they may train on it
        """
import torch
def logits_of(model, batch):
    return model(batch["input"])
""",
        # another framework's `nn` and `model` are not PyTorch's
        """
from mxnet import autograd, gluon
from mxnet.gluon import nn
net = nn.Sequential()
def evaluate(model, data):
    for x, y in data:
        out = model(x)
""",
        """
import torch
def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return [model(x) for x in loader]
""",
        """
import torch
@torch.inference_mode()
def predict(model, x):
    model.eval()
    return model(x)
""",
        # only called from inside no_grad
        """
import torch
def test_batch(model, x):
    return model(x)
with torch.no_grad():
    test_batch(net, batch)
""",
        # gradients on purpose: the output is backpropagated
        """
import torch
def test_time_training(model, x, opt):
    loss = model(x).sum()
    loss.backward()
    opt.step()
""",
        """
import torch
torch.set_grad_enabled(False)
def evaluate(model, x):
    return model(x)
""",
        # a forward under a branch whose result is trained on after the branch
        """
import torch.nn as nn
model = nn.Linear(4, 2)
criterion = nn.CrossEntropyLoss()
for step, (x, y) in enumerate(loader):
    if step % 2 == 0:
        out = model(x)
    else:
        out = model(x.flip(0))
    loss = criterion(out, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
""",
        # a branch that trains: a generator updated every n_critic steps
        """
import torch
for i, (imgs, _) in enumerate(loader):
    d_loss = -torch.mean(discriminator(imgs)) + torch.mean(discriminator(generator(z).detach()))
    d_loss.backward()
    optimizer_D.step()
    if i % n_critic == 0:
        optimizer_G.zero_grad()
        gen_imgs = generator(z)
        g_loss = -torch.mean(discriminator(gen_imgs))
        g_loss.backward()
        optimizer_G.step()
""",
        # a second forward in the training loop whose output is trained on
        """
import torch
import torch.nn as nn
student = nn.Linear(8, 4)
for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        with torch.no_grad():
            soft_targets = teacher(xb).softmax(1)
        loss = nn.functional.kl_div(student(xb).log_softmax(1), soft_targets, reduction="batchmean")
        loss.backward()
        optimizer.step()
    outputs = []
    for xb, _ in loader:
        outputs.append(student(xb))
    torch.stack(outputs).mean().backward()
""",
        # a batch loop with an inner critic loop: the generator forward after it is trained on
        """
import torch
for epoch in range(5):
    for i, (imgs, _) in enumerate(loader):
        for _ in range(n_critic):
            optimizer_D.zero_grad()
            loss_D = -torch.mean(discriminator(imgs)) + torch.mean(discriminator(generator(z).detach()))
            loss_D.backward()
            optimizer_D.step()
        optimizer_G.zero_grad()
        gen_imgs = generator(z)
        loss_G = -torch.mean(discriminator(gen_imgs))
        loss_G.backward()
        optimizer_G.step()
""",
        # a model's own forward runs its submodules, whatever its base (d2l's `d2l.nn_Module`, lpips' `BaseModel`): part of a model, not an evaluation
        """
import sys
import torch
from torch import nn

nn_Module = nn.Module
d2l = sys.modules[__name__]


class Module(d2l.nn_Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 2))

    def forward(self, X):
        return self.net(X)


class DistModel(BaseModel):
    def forward(self, in0, in1):
        print(self.net.forward(in0, in1))


model = Module()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
""",
        # a parameter-free layer built on the spot and called at once is an operation, not a model
        """
import torch
from torch import nn
from torchvision.utils import save_image


def save_upscaled(images, path):
    save_image(nn.Upsample(scale_factor=2, mode="bilinear")(images), path)
""",
        # results returned to callers (guided-diffusion's training_losses, a sampling helper called under no_grad): the callers decide
        """
import torch


class GaussianDiffusion:
    def p_mean_variance(self, model, x, t):
        out = model(x, t)
        mean, log_var = out.chunk(2, dim=1)
        return {"mean": mean, "log_variance": log_var}

    def p_sample(self, model, x, t):
        with torch.no_grad():
            out = self.p_mean_variance(model, x, t)
        return out["mean"] + torch.exp(0.5 * out["log_variance"]) * torch.randn_like(x)

    def training_losses(self, model, x_start, t):
        terms = {}
        noise = torch.randn_like(x_start)
        terms["mse"] = ((model(x_start + noise, t) - noise) ** 2).mean()
        return terms
""",
        # features accumulated and returned for a caller the file does not show (dino's multi_scale)
        """
import torch
import torch.nn.functional as F


def multi_scale(samples, model):
    v = None
    for s in [1, 0.5]:
        feats = model(F.interpolate(samples, scale_factor=s)).clone()
        if v is None:
            v = feats
        else:
            v += feats
    return v / v.norm()
""",
        # torch.autograd.grad is a backward pass: classifier guidance differentiates the forward's output
        """
import torch
import torch.nn.functional as F


def cond_fn(classifier, x, t, y, scale):
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x_in, t), dim=-1)
        selected = log_probs[range(len(log_probs)), y.view(-1)]
        grad = torch.autograd.grad(selected.sum(), x_in)[0]
    print(grad.norm() * scale)
""",
        # the backward pass and the step run in a callable handed the loss (deit's loss_scaler), next to optimizer.zero_grad()
        """
import torch


def train_one_epoch(model, criterion, data_loader, optimizer, loss_scaler):
    model.train()
    for samples, targets in data_loader:
        with torch.autocast("cuda"):
            loss = criterion(model(samples), targets)
        print(loss.item())
        optimizer.zero_grad()
        loss_scaler(loss, optimizer, parameters=model.parameters())
""",
    ]
    INVALID = [
        # the model variable shadows the module it comes from (pytorch/examples word_language_model)
        Invalid(
            """
import torch.nn as nn
import model
model = model.RNNModel("LSTM", 100, 32, 32, 2)
criterion = nn.NLLLoss()
def evaluate(batches):
    model.eval()
    return sum(criterion(model(x), y).item() for x, y in batches)
""",
            line=8,
        ),
        Invalid(
            """
import torch
import torch.nn.functional as F
def evaluate(model, loader):
    model.eval()
    total = 0.0
    for x, y in loader:
        out = model(x)
        total += F.cross_entropy(out, y).item()
    return total
""",
            line=8,
            message="over every batch of `loader`",
        ),
        Invalid(
            """
import torch
from torch import nn
class Trainer:
    def __init__(self, model):
        self.model = model
    def validate(self, batch):
        self.model.eval()
        return self.model(batch)
""",
            line=9,
        ),
        Invalid(
            """
import torch
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()
model.eval()
predictions = model(X_test)
""",
            line=10,
            message="after the training loop",
        ),
        # a periodic accuracy check inside the training loop
        Invalid(
            """
import torch
import torch.nn as nn
cnn = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
optimizer = torch.optim.Adam(cnn.parameters(), lr=1e-3)
loss_func = nn.CrossEntropyLoss()
for step, (b_x, b_y) in enumerate(train_loader):
    loss = loss_func(cnn(b_x), b_y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        test_output = cnn(test_x)
        accuracy = (test_output.argmax(1) == test_y).float().mean()
""",
            line=13,
            message="branch of the training loop",
        ),
        # validation loss after each epoch, with autograd on
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
criterion = nn.MSELoss()
for epoch in range(20):
    for xb, yb in train_loader:
        optimizer.zero_grad()
        criterion(model(xb), yb).backward()
        optimizer.step()
    val_loss = criterion(model(x_val), y_val).item()
""",
            line=10,
        ),
        # a sampling helper, named like no evaluation, run on a validation batch from the training loop
        Invalid(
            """
import torch
import torch.nn as nn
generator = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
optimizer = torch.optim.Adam(generator.parameters())
def save_images(step):
    imgs = next(iter(val_loader))
    fake = generator(imgs["A"].cuda())
    save_image(fake.data, f"{step}.png")
for i, batch in enumerate(loader):
    optimizer.zero_grad()
    nn.functional.l1_loss(generator(batch["A"]), batch["B"]).backward()
    optimizer.step()
    if i % 500 == 0:
        save_images(i)
""",
            line=8,
            message="in save_images()) over a batch of `val_loader` in a loop",
        ),
        # a model's own predict() over a whole test set at once
        Invalid(
            """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 2)
    def forward(self, x):
        return self.fc(x)
    def predict(self, x):
        return self(x).argmax(1)
net = Net()
opt = torch.optim.Adam(net.parameters())
X, y = torch.randn(800, 20), torch.randint(0, 2, (800,))
X_test = torch.randn(5000, 20)
for epoch in range(10):
    opt.zero_grad()
    nn.functional.cross_entropy(net(X), y).backward()
    opt.step()
print((net.predict(X_test) == 1).float().mean())
""",
            line=20,
            message="over a 5000×20 input at once",
        ),
        # `.detach()` drops the graph only once the forward pass has built it
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(loader):
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 100 == 0:
        val_x, val_y = next(iter(val_loader))
        accuracy = (model(val_x).detach().argmax(1) == val_y).float().mean()
""",
            line=13,
            message="`.detach()` drops the graph only after",
        ),
        # a one-off prediction on a few literal samples costs little: info
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
print(model(torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.5, 0.2]])))
""",
            line=10,
            message="over a 2×4 input",
            severity=Severity.INFO,
        ),
        # the epoch loop trains through a function, then validates inline
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
loss_fn = nn.CrossEntropyLoss()
def train_one_epoch():
    for inputs, labels in training_loader:
        optimizer.zero_grad()
        loss_fn(model(inputs), labels).backward()
        optimizer.step()
for epoch in range(5):
    model.train(True)
    train_one_epoch()
    model.train(False)
    running_vloss = 0.0
    for vinputs, vlabels in validation_loader:
        voutputs = model(vinputs)
        running_vloss += loss_fn(voutputs, vlabels).item()
""",
            line=16,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        evaluation = ctx.facts.evaluation
        for found in evaluation.passes:
            if evaluation.grad_disabled(found):
                continue
            model = ctx.facts.module.code_for_node(found.model)
            size = evaluation.size(found)
            detached = " (`.detach()` drops the graph only after the pass has built it)" if found.detached else ""
            ctx.report(
                found.call,
                f"`{model}` runs an evaluation pass ({found.reason}) over {size.description} with autograd on: every "
                f"activation is kept for a backward pass that never comes{detached}; wrap it in `with torch.no_grad():` "
                "(or decorate the function with `@torch.no_grad()`)",
                fix=_no_grad_fix(ctx.facts, found.call),
                severity=None if size.large else Severity.INFO,
            )


def _trains(facts, node: cst.CSTNode) -> bool:
    training = facts.training
    reached = training.reachable(node) if isinstance(node, (cst.FunctionDef, cst.For, cst.While)) else [
        n for call in nodes_within(node, cst.Call)
        for n in [call, *(m for f in facts.called_functions(call) for m in training.reachable(f))]]
    return training.trains(reached)


def _no_grad_fix(facts, call: cst.Call) -> Optional[FixSpec]:
    """`@torch.no_grad()` on an evaluation function that trains nothing, else `with
    torch.no_grad():` around the statement, or the outermost loop around it that trains nothing."""
    torch = fixes.spelling(facts, "torch")
    edits = []
    if torch is None:
        missing = fixes.torch_import(facts)
        if missing is None:
            return None
        torch, edits = "torch", [missing]
    function = facts.enclosing_function(call)
    if function is not None and function.asynchronous is None and not _trains(facts, function):
        edits.append(fixes.insert_line_before(facts, function, f"@{torch}.no_grad()"))
        return FixSpec("safe", (), "Decorate the evaluation function with @torch.no_grad()", edits=tuple(edits))
    statement = fixes.statement_of(facts, call)
    for loop in facts.enclosing_loops(call):
        if _trains(facts, loop):
            break
        statement = loop
    if statement is None or fixes.block_statements(facts, statement) is None or _trains(facts, statement):
        return None
    edits.extend(fixes.wrap_in_block(facts, statement, f"with {torch}.no_grad():"))
    return FixSpec("safe", (), "Run the evaluation under torch.no_grad()", edits=tuple(edits))
