"""A fingerprint of the parameters each optimizer updates, after steps 1, 2, 4, 8 and every 10th
step, recorded in every rank of a distributed run (and only there): the 2-norm and the sum of each
parameter, on its device. Ranks kept in sync by DistributedDataParallel or an all-reduce hold
identical parameters, so their fingerprints are equal; the parent compares them (ML942). Sharded
parameters (FSDP's flat parameters, DTensors of FSDP2 and tensor parallelism) differ across ranks
by design and are not recorded; the kind seen is (`sharded`: ranks of a tensor-parallel group also
see the same batches by design, ML943)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector, vector_norms

EARLY_STEPS = {1, 2, 4, 8}
SHARDED = ("FlatParameter", "DTensor")


def sharded(param: torch.Tensor) -> Optional[str]:
    return next((cls.__name__ for cls in type(param).__mro__ if cls.__name__ in SHARDED), None)


class RankParamCollector(Collector):
    name = "rank_params"
    default_every = 10

    def __init__(self, every: Optional[int] = None, enabled: bool = False) -> None:
        super().__init__(every)
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []  # {"step", "optimizer", "norms", "sums"}
        self.params: dict[int, list[str]] = {}  # optimizer index -> parameter names, in record order
        self.sharded: Optional[str] = None  # the kind of sharded parameter seen, if any

    def after_step(self, step: int, optimizer_index: int, named_params: list[tuple[str, torch.Tensor]]) -> None:
        """`step`: optimizer steps completed, this one included."""
        if not self.enabled or not named_params or (step not in EARLY_STEPS and not self.due(step)):
            return
        self.sharded = self.sharded or next((kind for kind in map(sharded, (p for _, p in named_params)) if kind), None)
        if self.sharded:
            return
        tensors = [p.detach() for _, p in named_params]
        self.params[optimizer_index] = [name for name, _ in named_params]
        self.records.append({"step": step, "optimizer": optimizer_index, "norms": None, "sums": None})
        sums = torch.stack([t.sum().float().to(tensors[0].device) for t in tensors])
        self.buffer.add(len(self.records) - 1, torch.cat([vector_norms(tensors), sums]))

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            half = len(values) // 2
            self.records[index]["norms"], self.records[index]["sums"] = values[:half], values[half:]
        return {"every": self.every, "records": self.records, "sharded": self.sharded,
                "params": {str(index): names for index, names in self.params.items()}}
