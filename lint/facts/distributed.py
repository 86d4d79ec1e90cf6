"""Data-parallel training: DistributedSampler and DistributedDataParallel constructions, the
loaders a sampler orders, the loaders that feed a DDP model's training loop, and whether a loader
gives each rank its own part of the data."""

from __future__ import annotations

import functools
import re
from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts, nodes_within

BATCH_SAMPLER = "torch.utils.data.BatchSampler"
# Names and calls that say a dataset is built for one rank: `MyData(rank=rank, world_size=n)`,
# `files[rank::world_size]`, `split_dataset_by_node(ds, rank, world)`, `ds.shard(n, i)`.
_PER_RANK_NAME = re.compile(r"rank|world_size|replica|shard", re.IGNORECASE)
_PER_RANK_FUNCTIONS = {"torch.distributed.get_rank", "torch.distributed.get_world_size"}
_MAX_PROVENANCE_DEPTH = 4


class DistributedAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    @functools.cached_property
    def samplers(self) -> list[cst.Call]:
        return list(self.facts.calls_to(names.DISTRIBUTED_SAMPLER))

    @functools.cached_property
    def wrappers(self) -> list[cst.Call]:
        """`DistributedDataParallel(model, ...)` constructions."""
        return [call for call in self.facts.calls_to(names.DISTRIBUTED_DATA_PARALLEL) if call.args]

    def loaders_ordered_by(self, sampler: cst.Call) -> list[cst.Call]:
        """The DataLoader calls a DistributedSampler construction is the sampler of (directly, or
        inside their `batch_sampler=BatchSampler(sampler, ...)`)."""
        return self._loaders_by_sampler.get(sampler, [])

    @functools.cached_property
    def _loaders_by_sampler(self) -> dict[cst.CSTNode, list[cst.Call]]:
        index: dict[cst.CSTNode, list[cst.Call]] = {}
        for loader in self.facts.calls_to(names.DATALOADER):
            for origin in self._sampler_origins(loader):
                index.setdefault(origin, []).append(loader)
        return index

    def _sampler_origins(self, loader: cst.Call) -> list[cst.BaseExpression]:
        """What a loader's `sampler=` or `batch_sampler=` may hold, through a BatchSampler."""
        facts = self.facts
        found: list[cst.BaseExpression] = []
        for keyword in ("sampler", "batch_sampler"):
            value = facts.argument(loader, None, keyword)
            for origin in facts.origins(value) if value is not None else ():
                inner = facts.argument(origin, 0, "sampler") if isinstance(origin, cst.Call) \
                    and facts.qualname(origin.func) == BATCH_SAMPLER else None
                found.extend(facts.origins(inner) if inner is not None else [origin])
        return found

    @functools.cached_property
    def ddp_training_loops(self) -> dict[cst.For, cst.Call]:
        """Each training loop over DataLoaders that runs a DistributedDataParallel model forward,
        with that DDP construction."""
        facts = self.facts
        wrapping = {origin: wrapper for wrapper in self.wrappers for origin in facts.origins(wrapper.args[0].value)}
        found: dict[cst.For, cst.Call] = {}
        for loop in facts.loaders.training_loaders if wrapping else ():
            wrapper = self._wrapper_run_by(loop, wrapping)
            if wrapper is not None:
                found[loop] = wrapper
        return found

    def _wrapper_run_by(self, loop: cst.For, wrapping: dict[cst.CSTNode, cst.Call]) -> Optional[cst.Call]:
        facts = self.facts
        for node in facts.training.reachable(loop):
            if not isinstance(node, cst.Call):
                continue
            called = node.func.value if isinstance(node.func, cst.Attribute) and node.func.attr.value == "forward" else node.func
            for origin in facts.origins(called):
                if origin in wrapping:
                    return wrapping[origin]
        return None

    def splits_data(self, loader: cst.Call) -> bool:
        """Whether a DataLoader may give each rank its own part of the data: a sampler other than
        torch's whole-dataset ones (a DistributedSampler, or one we cannot resolve), keyword
        arguments we cannot see, a streaming dataset, or a dataset built per rank. False only when
        none of these can be."""
        facts = self.facts
        if any(arg.star == "**" for arg in loader.args) or facts.loaders.streams(loader):
            return True
        if any(not _orders_whole_dataset(facts, origin) for origin in self._sampler_origins(loader)):
            return True
        dataset = facts.argument(loader, 0, "dataset")
        return dataset is not None and self._built_per_rank(dataset)

    def _built_per_rank(self, dataset: cst.BaseExpression) -> bool:
        """Whether the dataset's expression, or what its names hold (a few assignments back),
        mentions the rank or world size, or shards the data."""
        facts = self.facts
        todo, seen = [(dataset, _MAX_PROVENANCE_DEPTH)], set()
        while todo:
            expr, depth = todo.pop()
            if expr in seen:
                continue
            seen.add(expr)
            for node in nodes_within(expr, (cst.Name, cst.Attribute, cst.Call)):
                if isinstance(node, cst.Call):
                    if facts.qualname(node.func) in _PER_RANK_FUNCTIONS:
                        return True
                    # a local dataset class may read the rank itself
                    todo.extend((cls, 0) for cls in facts.local_definitions(node.func, cst.ClassDef))
                    continue
                spelled = node.value if isinstance(node, cst.Name) else node.attr.value
                if _PER_RANK_NAME.search(spelled) or spelled == "split_dataset_by_node":
                    return True
                if isinstance(node, cst.Name) and depth > 0:
                    todo.extend((origin, depth - 1) for origin in facts.origins(node) if origin is not node)
        return False


def _orders_whole_dataset(facts: ScriptFacts, origin: cst.BaseExpression) -> bool:
    """`sampler=None` or one of torch's samplers that draw from the whole dataset on every rank."""
    if isinstance(origin, cst.Name) and origin.value == "None":
        return True
    return isinstance(origin, cst.Call) and facts.qualname(origin.func) in names.WHOLE_DATASET_SAMPLERS
