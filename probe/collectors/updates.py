"""Update-to-weight ratio per parameter: ||w_after - w_before|| / ||w_before|| over one optimizer
step (the parameters are copied just before a measured step)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector


class UpdateRatioCollector(Collector):
    name = "updates"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._before: dict[int, tuple[int, list[tuple[str, torch.Tensor, torch.Tensor]]]] = {}
        self._names: dict[int, list[str]] = {}

    def before_step(self, optimizer_index: int, step: int, named_params: list[tuple[str, torch.Tensor]]) -> None:
        if self.due(step):
            copies = [(name, p, p.detach().clone()) for name, p in named_params if p.grad is not None]
            self._before[optimizer_index] = (step, copies)

    def after_step(self, optimizer_index: int) -> None:
        step, copies = self._before.pop(optimizer_index, (None, []))
        if not copies:
            return
        device = copies[0][1].device
        ratios = [
            (torch.linalg.vector_norm((p.detach() - old).float()) / torch.linalg.vector_norm(old.float()).clamp_min(1e-12)).to(device)
            for _, p, old in copies
        ]
        self.records.append({"step": step, "optimizer": optimizer_index, "ratios": {}})
        index = len(self.records) - 1
        self._names[index] = [name for name, _, _ in copies]
        self.buffer.add(index, torch.stack(ratios))

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            self.records[index]["ratios"] = dict(zip(self._names.pop(index), values))
        return {"every": self.every, "records": self.records}
