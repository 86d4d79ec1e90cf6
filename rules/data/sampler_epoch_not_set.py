from __future__ import annotations

import libcst as cst

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class SamplerEpochNotSet(Rule):
    """
    ## What it does
    Finds a `DistributedSampler` that orders a training loader run for several epochs, where the
    epoch loop never calls `set_epoch(epoch)` (on the sampler, on `loader.sampler`, or in a
    function the loop calls). A sampler built with `shuffle=False`, a single epoch, a sampler built
    anew inside the epoch loop, and a sampler or loader handed to a function we cannot see stay
    quiet.

    ## Why is this bad?
    `DistributedSampler` shuffles with a generator seeded by `seed + epoch`, and the epoch only
    changes when `set_epoch()` is called. Without it every epoch draws the same permutation: each
    rank sees the same samples in the same order every epoch, as if the data were not shuffled
    after the first epoch, which slows convergence and can hurt the final accuracy.

    ## Example
    ```python
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
    ```

    Use instead:
    ```python
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
    ```
    """

    code = "ML107"
    name = "sampler-epoch-not-set"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML922",)

    VALID = [
        # pytorch/examples ddp-tutorial-series: set_epoch through the loader's sampler, in the
        # per-epoch method the epoch loop calls
        """
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from torch.nn.parallel import DistributedDataParallel as DDP

class Trainer:
    def __init__(self, model, train_data, optimizer, gpu_id):
        self.train_data = train_data
        self.optimizer = optimizer
        self.model = DDP(model.to(gpu_id), device_ids=[gpu_id])

    def _run_batch(self, source, targets):
        self.optimizer.zero_grad()
        loss = F.cross_entropy(self.model(source), targets)
        loss.backward()
        self.optimizer.step()

    def _run_epoch(self, epoch):
        self.train_data.sampler.set_epoch(epoch)
        for source, targets in self.train_data:
            self._run_batch(source, targets)

    def train(self, max_epochs):
        for epoch in range(max_epochs):
            self._run_epoch(epoch)

def prepare_dataloader(dataset, batch_size):
    return DataLoader(dataset, batch_size=batch_size, pin_memory=True, shuffle=False, sampler=DistributedSampler(dataset))

def main(rank, dataset, model, optimizer, total_epochs):
    trainer = Trainer(model, prepare_dataloader(dataset, 32), optimizer, rank)
    trainer.train(total_epochs)
""",
        # imagenet/main.py: the sampler exists only when distributed, set_epoch guarded the same way
        """
import torch
train_sampler = torch.utils.data.distributed.DistributedSampler(train_dataset) if args.distributed else None
train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=256, shuffle=(train_sampler is None), sampler=train_sampler)

def train(train_loader, model, criterion, optimizer):
    for images, target in train_loader:
        loss = criterion(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

for epoch in range(args.start_epoch, args.epochs):
    if args.distributed:
        train_sampler.set_epoch(epoch)
    train(train_loader, model, criterion, optimizer)
""",
        # an evaluation sampler without shuffling
        """
from torch.utils.data import DataLoader, DistributedSampler
sampler = DistributedSampler(val_set, shuffle=False)
loader = DataLoader(val_set, batch_size=64, sampler=sampler)
for epoch in range(10):
    for x, y in loader:
        opt.zero_grad(); crit(model(x), y).backward(); opt.step()
""",
        # one epoch only
        """
from torch.utils.data import DataLoader, DistributedSampler
sampler = DistributedSampler(ds)
loader = DataLoader(ds, batch_size=64, sampler=sampler)
for epoch in range(1):
    for x, y in loader:
        opt.zero_grad(); crit(model(x), y).backward(); opt.step()
""",
        # the epoch is set by a helper from another module
        """
from torch.utils.data import DataLoader, DistributedSampler
from utils import start_epoch
sampler = DistributedSampler(ds)
loader = DataLoader(ds, batch_size=64, sampler=sampler)
for epoch in range(10):
    start_epoch(loader, epoch)
    for x, y in loader:
        opt.zero_grad(); crit(model(x), y).backward(); opt.step()
""",
        # a new sampler for each fold, one pass each
        """
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset
for fold, (train_idx, val_idx) in enumerate(kfold.split(data)):
    subset = Subset(data, train_idx)
    loader = DataLoader(subset, batch_size=32, sampler=DistributedSampler(subset))
    for x, y in loader:
        opt.zero_grad(); crit(model(x), y).backward(); opt.step()
""",
        # a single pass over the loader: no epoch loop
        """
from torch.utils.data import DataLoader, DistributedSampler
loader = DataLoader(ds, batch_size=64, sampler=DistributedSampler(ds))
for x, y in loader:
    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

def train(model, loader, optimizer, epochs):
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank)
train(model, DataLoader(dataset, batch_size=32, sampler=sampler), optimizer, 90)
""",
            line=13,
            message="set_epoch",
        ),
        # the epoch loop calls a per-epoch function that never sets the epoch either
        Invalid(
            """
import torch
from torch.utils.data import DataLoader, DistributedSampler

def train_one_epoch(model, loader, optimizer, epoch):
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

loader = DataLoader(dataset, batch_size=32, sampler=DistributedSampler(dataset, shuffle=True), num_workers=4)
for epoch in range(100):
    train_one_epoch(model, loader, optimizer, epoch)
""",
            line=11,
        ),
        # inside a BatchSampler
        Invalid(
            """
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler
sampler = DistributedSampler(dataset, drop_last=True)
loader = DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch_size=64, drop_last=True))
for epoch in range(20):
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
""",
            line=4,
        ),
        # set_epoch once, before training, does not change the order between epochs
        Invalid(
            """
import torch
sampler = torch.utils.data.distributed.DistributedSampler(dataset)
sampler.set_epoch(0)
loader = torch.utils.data.DataLoader(dataset, batch_size=8, sampler=sampler)
step = 0
while step < max_steps:
    for batch in loader:
        optimizer.zero_grad()
        model(batch).loss.backward()
        optimizer.step()
        step += 1
""",
            line=3,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        training, loaders = facts.training, facts.loaders
        for sampler in facts.distributed.samplers:
            shuffle = facts.argument(sampler, 3, "shuffle")
            if shuffle is not None and facts.literal(shuffle) is not True:
                continue  # shuffle=False, or a setting we cannot know
            for loader in facts.distributed.loaders_ordered_by(sampler):
                # a sampler built inside the epoch loop is a new one each time (per fold, per dataset): cannot tell
                unset = [(loop, epochs) for loop in loaders.training_loops.get(loader, [])
                         for epochs in loaders.epoch_loops(loop, loader)
                         if epochs not in training.loops_around(sampler)
                         and not self._sets_epoch(facts, epochs, sampler, loader)]
                if unset:
                    loop, epochs = unset[0]
                    ctx.report(
                        sampler,
                        f"this DistributedSampler shuffles the loader of the training loop at line {facts.line_of(loop)}, "
                        f"but the epoch loop (line {facts.line_of(epochs)}) never calls set_epoch(): its shuffle is "
                        "seeded with the epoch, so every epoch sees the same order; call `sampler.set_epoch(epoch)` "
                        "at the start of each epoch",
                    )
                    break

    @staticmethod
    def _sets_epoch(facts, epochs: cst.CSTNode, sampler: cst.Call, loader: cst.Call) -> bool:
        """The epoch loop calls `set_epoch` on anything, or hands the sampler or the loader to a
        function we cannot see (which may call it)."""
        for node in facts.training.reachable(epochs):
            if not isinstance(node, cst.Call):
                continue
            if isinstance(node.func, cst.Attribute) and node.func.attr.value == "set_epoch":
                return True
            if facts.training.hands_to_unseen(node, sampler) or facts.training.hands_to_unseen(node, loader):
                return True
        return False
