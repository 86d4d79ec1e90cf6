from __future__ import annotations

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class DdpWithoutDistributedSampler(Rule):
    """
    ## What it does
    Finds a `DataLoader` feeding the training loop of a `DistributedDataParallel` model with no
    `DistributedSampler` and nothing else that splits the data across ranks. A sampler we cannot
    resolve, keyword arguments we cannot see, an `IterableDataset`, a dataset built per rank (with
    rank or world-size arguments, indexed by rank, `split_dataset_by_node`, `.shard(...)`) all
    count as splitting, and keep the rule quiet; so does a loader replaced by what accelerate's
    `prepare` returns.

    ## Why is this bad?
    DDP averages the gradients of the ranks; it does not split the data. Without a
    `DistributedSampler` every rank iterates the whole dataset: with the same seed the ranks
    compute the same batches (N GPUs do the work of one), otherwise each epoch goes over the data N
    times. Either way the speed-up DDP is for is lost, and the schedule counted in epochs is off.

    ## Example
    ```python
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader

    model = DDP(model.to(rank), device_ids=[rank])
    loader = DataLoader(dataset, batch_size=32, shuffle=True)
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
    ```

    Use instead:
    ```python
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    model = DDP(model.to(rank), device_ids=[rank])
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

    code = "ML108"
    name = "ddp-without-distributed-sampler"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML943",)

    VALID = [
        # pytorch/examples multigpu.py: the loader built by a helper with a DistributedSampler
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

    def _run_epoch(self, epoch):
        self.train_data.sampler.set_epoch(epoch)
        for source, targets in self.train_data:
            self.optimizer.zero_grad()
            F.cross_entropy(self.model(source), targets).backward()
            self.optimizer.step()

    def train(self, max_epochs):
        for epoch in range(max_epochs):
            self._run_epoch(epoch)

def main(rank, dataset, model, optimizer):
    loader = DataLoader(dataset, batch_size=32, shuffle=False, sampler=DistributedSampler(dataset))
    Trainer(model, loader, optimizer, rank).train(10)
""",
        # imagenet/main.py: DDP and the sampler both only when distributed
        """
import torch
if args.distributed:
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.gpu])
    train_sampler = torch.utils.data.distributed.DistributedSampler(train_dataset)
else:
    train_sampler = None
train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=256, shuffle=(train_sampler is None), sampler=train_sampler)
for epoch in range(90):
    if args.distributed:
        train_sampler.set_epoch(epoch)
    for images, target in train_loader:
        optimizer.zero_grad()
        criterion(model(images), target).backward()
        optimizer.step()
""",
        # each rank reads its own shard of the files
        """
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
rank, world_size = dist.get_rank(), dist.get_world_size()
files = sorted(all_files)[rank::world_size]
model = DistributedDataParallel(Net().cuda(), device_ids=[rank])
loader = DataLoader(FileDataset(files), batch_size=16, shuffle=True)
for batch, target in loader:
    optimizer.zero_grad()
    loss_fn(model(batch), target).backward()
    optimizer.step()
""",
        # a streaming dataset that splits itself across ranks
        """
import torch
from torch.utils.data import DataLoader, IterableDataset
from torch.nn.parallel import DistributedDataParallel as DDP
class Stream(IterableDataset):
    def __iter__(self):
        yield from read_my_part()
model = DDP(Net())
for x, y in DataLoader(Stream(), batch_size=8):
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
""",
        # a sampler from another module
        """
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from mylib.samplers import RankSampler
model = DDP(Net())
loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=RankSampler(ds))
for x, y in loader:
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
""",
        # accelerate shards the loaders it prepares
        """
import torch
from accelerate import Accelerator
from torch.nn.parallel import DistributedDataParallel as DDP
accelerator = Accelerator()
loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)
model = DDP(Net())
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for x, y in loader:
    optimizer.zero_grad()
    accelerator.backward(loss_fn(model(x), y))
    optimizer.step()
""",
        # the unsharded loader is the single-process one; the variable holds the sharded one under DDP
        """
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
if world_size > 1:
    model = DDP(model)
    loader = DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds))
else:
    loader = DataLoader(ds, batch_size=8, shuffle=True)
def train(model, loader):
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
train(model, loader)
""",
        # the loader trains another model than the DDP one
        """
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
teacher = DDP(Teacher())
student = Student()
loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)
for x, y in loader:
    optimizer.zero_grad()
    loss_fn(student(x), y).backward()
    optimizer.step()
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset

def main(rank, world_size):
    torch.distributed.init_process_group("nccl", rank=rank, world_size=world_size)
    model = DDP(nn.Linear(10, 1).to(rank), device_ids=[rank])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(torch.randn(1000, 10), torch.randn(1000, 1)), batch_size=32, shuffle=True)
    for epoch in range(10):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x.to(rank)), y.to(rank)).backward()
            optimizer.step()
""",
            line=11,
            message="DistributedSampler",
        ),
        # a RandomSampler orders the whole dataset on every rank
        Invalid(
            """
import torch
from torch.utils.data import DataLoader, RandomSampler
model = torch.nn.parallel.DistributedDataParallel(Net().cuda())
loader = DataLoader(train_set, batch_size=64, sampler=RandomSampler(train_set))
def train(loader):
    for x, y in loader:
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
train(loader)
""",
            line=5,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        reported = set()
        for loop, wrapper in facts.distributed.ddp_training_loops.items():
            loaders = facts.loaders.training_loaders[loop]
            if any(facts.distributed.splits_data(loader) for loader in loaders):
                continue  # `loader` is the sharded one when distributed, another one otherwise
            for loader in loaders:
                if loader in reported:
                    continue
                reported.add(loader)
                ctx.report(
                    loader,
                    f"this DataLoader feeds the DistributedDataParallel model (line {facts.line_of(wrapper)}) in the "
                    f"training loop at line {facts.line_of(loop)} with no DistributedSampler: every rank iterates the "
                    "whole dataset, so the ranks repeat each other's work; pass `sampler=DistributedSampler(dataset)` "
                    "(and call `sampler.set_epoch(epoch)` each epoch)",
                )
