"""How different the units of each weight layer are from each other: for every weight matrix or
kernel an optimizer updates (2 or more dimensions, rows = output units), the spread of the rows
(the mean over inputs of the standard deviation across units) and the weights' mean magnitude,
measured after the optimizer's step (on a strided subset of the inputs of a large layer)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector

MAX_PARAMS = 256
# Values of a weight measured at most: a larger layer is measured on an evenly strided subset of its
# input columns, every unit kept (identical rows stay exactly identical on any subset, and the
# spread and magnitude of different rows are means that a spread-out subset estimates well).
MAX_VALUES = 1 << 16


def unit_spread(weight: torch.Tensor) -> torch.Tensor:
    """[mean over inputs of the population std across rows, mean magnitude]. The std comes from the
    rows' differences from the first row (identical rows give exactly 0, as `std(dim=0)` does, which
    is ~10x slower on CPU), and all passes share one temporary the size of the measured values."""
    rows = weight.detach().reshape(weight.shape[0], -1)
    stride = max(1, -(-rows.numel() // MAX_VALUES))
    rows = (rows[:, ::stride] if stride > 1 else rows).float()
    work = rows.abs()
    magnitude = work.mean()
    shifted = torch.sub(rows, rows[0], out=work)
    mean = shifted.mean(dim=0)
    variance = shifted.square_().mean(dim=0).sub_(mean * mean).clamp_min_(0)
    return torch.stack([variance.sqrt_().mean(), magnitude])


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
