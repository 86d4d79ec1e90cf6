"""How different the units of each weight layer are from each other: for every weight matrix or
kernel an optimizer updates (2 or more dimensions, rows = output units), the spread of the rows
(the mean over inputs of the standard deviation across units) and the weights' mean magnitude,
measured after the optimizer's step."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector

MAX_PARAMS = 256


def unit_spread(weight: torch.Tensor) -> torch.Tensor:
    rows = weight.detach().float().reshape(weight.shape[0], -1)
    return torch.stack([rows.std(dim=0, unbiased=False).mean(), rows.abs().mean()])


class UnitSimilarityCollector(Collector):
    name = "unit_similarity"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []

    def after_step(self, step: int, optimizer_index: int, named_params: list[tuple[str, torch.Tensor]]) -> None:
        if not self.due(step):
            return
        for name, param in [(n, p) for n, p in named_params if p.dim() >= 2 and p.shape[0] >= 2][:MAX_PARAMS]:
            self.records.append({"step": step, "optimizer": optimizer_index, "param": name, "units": int(param.shape[0])})
            self.buffer.add(len(self.records) - 1, unit_spread(param))

    def flush(self) -> dict[str, Any]:
        for index, (spread, magnitude) in self.buffer.drain():
            self.records[index].update(spread=spread, magnitude=magnitude)
        return {"every": self.every, "records": self.records}
