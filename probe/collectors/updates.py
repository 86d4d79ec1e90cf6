"""Update-to-weight ratio per parameter: ||w_after - w_before|| / ||w_before|| over one optimizer
step. Parameters larger than SAMPLE_SIZE values are measured on an evenly strided subset of
SAMPLE_SIZE of their values, so the copy taken before a measured step stays small whatever the
model's size (a ratio of norms is well estimated by a spread-out subset)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector, vector_norms

SAMPLE_SIZE = 4096


def sampled_values(param: torch.Tensor) -> torch.Tensor:
    """A flat view of at most SAMPLE_SIZE of the parameter's values, evenly strided."""
    flat = param.detach().reshape(-1)
    stride = -(-flat.numel() // SAMPLE_SIZE)
    return flat[::stride]


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
            copies = [(name, p, sampled_values(p).clone()) for name, p in named_params if p.grad is not None]
            self._before[optimizer_index] = (step, copies)

    def after_step(self, optimizer_index: int) -> None:
        step, copies = self._before.pop(optimizer_index, (None, []))
        if not copies:
            return
        olds = [old for _, _, old in copies]
        changes = torch._foreach_sub([sampled_values(p) for _, p, _ in copies], olds)
        ratios = vector_norms(changes) / vector_norms(olds).clamp_min(1e-12)
        self.records.append({"step": step, "optimizer": optimizer_index, "ratios": {}})
        index = len(self.records) - 1
        self._names[index] = [name for name, _, _ in copies]
        self.buffer.add(index, ratios)

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            self.records[index]["ratios"] = dict(zip(self._names.pop(index), values))
        return {"every": self.every, "records": self.records}
