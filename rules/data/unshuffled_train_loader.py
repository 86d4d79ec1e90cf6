from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register

# Opacus PrivacyEngine methods that replace a DataLoader's sampler with Poisson sampling.
_PRIVATE_RESAMPLERS = ("make_private", "make_private_with_epsilon")


@register
class UnshuffledTrainLoader(Rule):
    """
    ## What it does
    Finds a `DataLoader` that feeds a training loop (a loop that runs an optimizer step) with
    neither `shuffle=True` nor a `sampler`/`batch_sampler`. Validation and test loaders, loaders
    over an `IterableDataset` (which cannot be shuffled by the loader) and loaders that are not
    iterated by a training loop stay quiet.

    ## Why is this bad?
    Without shuffling, every epoch presents the batches in the same order, often sorted by class,
    date or file: consecutive steps see correlated batches, the loss oscillates and the model
    drifts towards whatever came last. Stochastic gradient descent assumes samples in random order.

    ## Example
    ```python
    from torch.utils.data import DataLoader

    train_loader = DataLoader(train_set, batch_size=64)
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    ```

    Use instead:
    ```python
    from torch.utils.data import DataLoader

    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    ```

    ## Fix safety
    The fix sets `shuffle=True` (replacing `shuffle=False`, or adding the argument). It is unsafe:
    the batches change from run to run unless a seeded generator is passed, and a script whose
    data must stay in order (a time series split into windows) would be broken by it.
    """

    code = "ML102"
    name = "unshuffled-train-loader"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML922",)

    VALID = [
        # Opacus's make_private rebuilds the loader with Poisson sampling
        """
import torch
from opacus import PrivacyEngine
from torch.utils.data import DataLoader, TensorDataset

dataset = TensorDataset(torch.randn(512, 8), torch.randint(0, 2, (512,)))
train_loader = DataLoader(dataset, batch_size=64)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
privacy_engine = PrivacyEngine()
if not disable_dp:
    model, optimizer, train_loader = privacy_engine.make_private(
        module=model, optimizer=optimizer, data_loader=train_loader, noise_multiplier=1.0, max_grad_norm=1.0,
    )
for epoch in range(5):
    for x, y in train_loader:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
""",
        # validation loader without shuffle
        """
from torch.utils.data import DataLoader
train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
val_loader = DataLoader(val_set, batch_size=256, shuffle=False)
for x, y in train_loader:
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
with torch.no_grad():
    for x, y in val_loader:
        model(x)
""",
        # a sampler decides the order
        """
import torch
loader = torch.utils.data.DataLoader(ds, batch_size=32, sampler=torch.utils.data.RandomSampler(ds))
for x, y in loader:
    opt.zero_grad(); crit(net(x), y).backward(); opt.step()
""",
        # an IterableDataset cannot be shuffled by the loader
        """
import torch
from torch.utils.data import DataLoader, IterableDataset
class Stream(IterableDataset):
    def __iter__(self):
        yield from range(10)
loader = DataLoader(Stream(), batch_size=8)
for batch in loader:
    opt.zero_grad(); model(batch).sum().backward(); opt.step()
""",
        # keyword arguments we cannot see
        """
import torch
kwargs = {"batch_size": 64}
kwargs.update({"shuffle": True})
loader = torch.utils.data.DataLoader(dataset, **kwargs)
for x, y in loader:
    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
""",
        # shuffle from a config value that is True
        """
from torch.utils.data import DataLoader
cfg = {"shuffle": True}
loader = DataLoader(ds, batch_size=8, shuffle=cfg["shuffle"])
for x in loader:
    opt.zero_grad(); model(x).sum().backward(); opt.step()
""",
    ]
    INVALID = [
        Invalid(
            """
from torch.utils.data import DataLoader
loader = DataLoader(ds, batch_size=32)
for epoch in range(10):
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
""",
            line=3,
        ),
        Invalid(
            """
import torch
from tqdm import tqdm
train_loader = torch.utils.data.DataLoader(train_ds, batch_size=128, shuffle=False, num_workers=2)
def train(model, loader, optimizer, criterion):
    for x, y in tqdm(loader):
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
train(net, train_loader, opt, nn.CrossEntropyLoss())
""",
            line=4,
            message="shuffle=False",
        ),
        Invalid(
            """
from torch.utils.data import DataLoader as DL
class Trainer:
    def __init__(self, model, dataset, optimizer):
        self.model, self.optimizer = model, optimizer
        self.loader = DL(dataset, batch_size=16)
    def fit(self):
        for batch, target in self.loader:
            self.optimizer.zero_grad()
            self.model.loss(batch, target).backward()
            self.optimizer.step()
""",
            line=6,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for loader, loops in facts.loaders.training_loops.items():
            if self._orders_randomly(facts, loader):
                continue
            shuffle = facts.argument(loader, 2, "shuffle")
            setting = f"shuffle={facts.module.code_for_node(shuffle)}" if shuffle is not None else "no shuffle"
            ctx.report(
                loader,
                f"this DataLoader feeds the training loop at line {facts.line_of(loops[0])} with {setting} and no "
                "sampler: every epoch sees the batches in the same order; pass shuffle=True",
                fix=_shuffle_fix(facts, loader, shuffle),
            )

    @staticmethod
    def _orders_randomly(facts, loader: cst.Call) -> bool:
        if any(arg.star == "**" for arg in loader.args):
            return True  # `DataLoader(ds, **loader_kwargs)`: shuffle may be in there
        if facts.argument(loader, None, "sampler") is not None or facts.argument(loader, None, "batch_sampler") is not None:
            return True
        shuffle = facts.argument(loader, 2, "shuffle")
        if shuffle is not None and facts.literal(shuffle) is not False:
            return True  # True, or a value we cannot know
        return facts.loaders.streams(loader) or _resampled_privately(facts, loader)


def _resampled_privately(facts, loader: cst.Call) -> bool:
    """The loader goes to Opacus's `make_private(...)`, which rebuilds it with Poisson sampling
    (each example drawn independently at every step)."""
    for call in facts.calls:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in _PRIVATE_RESAMPLERS:
            if any(loader in facts.origins(arg.value) for arg in call.args):
                return True
    return False


def _shuffle_fix(facts, loader: cst.Call, shuffle: Optional[cst.BaseExpression]) -> Optional[FixSpec]:
    """`shuffle=True` in place of the shuffle argument, or after the last argument (on a line of
    its own when the arguments are one per line)."""
    if shuffle is not None:
        return FixSpec("unsafe", ((shuffle, "True"),), "Shuffle the training batches")
    if not loader.args or any(arg.star for arg in loader.args):
        return None
    last = loader.args[-1]
    positions = facts.positions
    last_line = positions[last].start.line
    one_per_line = isinstance(last.comma, cst.Comma) and positions[loader].end.line > positions[last].end.line
    if one_per_line and "\t" not in facts.module.default_indent:
        column = min(positions[arg].start.column for arg in loader.args if positions[arg].start.line == last_line)
        text = ",\n" + " " * column + "shuffle=True"
    else:
        text = ", shuffle=True"
    end = positions[last.value].end
    return FixSpec("unsafe", (), "Shuffle the training batches", edits=(fixes.insert((end.line, end.column + 1), text),))
