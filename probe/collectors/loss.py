"""Loss per optimizer step: the mean of the losses passed to `backward()` since that
optimizer's previous step (several backward calls per step: gradient accumulation)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector


class LossCollector(Collector):
    name = "loss"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self._pending: list[torch.Tensor] = []
        self._series: dict[int, list[list[Any]]] = {}  # optimizer index -> [[step, value], ...]
        self.steps_without_backward = 0
        self.last_value: Optional[torch.Tensor] = None  # the loss of the latest step, on its device

    def on_backward(self, loss: torch.Tensor) -> None:
        self._pending.append(loss.detach())

    def on_step(self, optimizer_index: int, step: int) -> None:
        pending, self._pending = self._pending, []
        series = self._series.get(optimizer_index)
        if series is None:
            series = self._series[optimizer_index] = []
        self.last_value = None
        if not pending:
            self.steps_without_backward += 1
            return
        if len(pending) == 1 and pending[0].numel() == 1:
            value = pending[0]
        else:
            device = pending[0].device
            value = torch.stack([p.float().mean().to(device) for p in pending]).mean()
        self.last_value = value
        if self.due(step):
            series.append([step, None])
            self.buffer.add((optimizer_index, len(series) - 1), value)

    def flush(self) -> dict[str, Any]:
        for (optimizer_index, position), (value,) in self.buffer.drain():
            self._series[optimizer_index][position][1] = value
        return {
            "every": self.every,
            "series": {str(index): series for index, series in self._series.items()},
            "steps_without_backward": self.steps_without_backward,
        }
