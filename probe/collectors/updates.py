"""Update-to-weight ratio per parameter: ||w_after - w_before|| / ||w_before|| over one optimizer
step, and the cosine between the whole step and the negative gradient it followed (`descent`:
about 1 for SGD, positive for Adam, -1 for a step up the gradient). Parameters larger than
SAMPLE_SIZE values are measured on an evenly strided subset of SAMPLE_SIZE of their values, so
the copies taken before a measured step stay small whatever the model's size (a ratio of norms
and a cosine are well estimated by a spread-out subset)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector, vector_norms

SAMPLE_SIZE = 4096


def sampled_values(param: torch.Tensor) -> torch.Tensor:
    """A flat view of at most SAMPLE_SIZE of the parameter's values, evenly strided."""
    flat = param.detach().reshape(-1)
    stride = max(1, -(-flat.numel() // SAMPLE_SIZE))
    return flat[::stride]


class UpdateRatioCollector(Collector):
    name = "updates"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._before: dict[int, tuple[int, list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]]] = {}
        self._names: dict[int, list[str]] = {}

    def before_step(self, optimizer_index: int, step: int, named_params: list[tuple[str, torch.Tensor]]) -> None:
        if self.due(step):
            copies = [(name, p, sampled_values(p).clone(), sampled_values(p.grad).clone())
                      for name, p in named_params if p.grad is not None and not p.grad.is_sparse and not p.is_complex()]
            self._before[optimizer_index] = (step, copies)

    def after_step(self, optimizer_index: int) -> None:
        step, copies = self._before.pop(optimizer_index, (None, []))
        if not copies:
            return
        olds = [old for _, _, old, _ in copies]
        changes = torch._foreach_sub([sampled_values(p) for _, p, _, _ in copies], olds)
        change_norms = vector_norms(changes)
        ratios = change_norms / vector_norms(olds).clamp_min(1e-12)
        grads = [grad if grad.dtype == change.dtype else grad.to(change.dtype) for change, (_, _, _, grad) in zip(changes, copies)]
        # sum of change . grad from norms alone (fused): 2 a.b = |a + b|^2 - |a|^2 - |b|^2
        grad_norms = vector_norms(grads)
        sums = vector_norms(torch._foreach_add(changes, grads))
        along = ((sums ** 2).sum() - (change_norms ** 2).sum() - (grad_norms ** 2).sum()) / 2
        descent = -along / (change_norms.norm() * grad_norms.norm()).clamp_min(1e-30)
        self.records.append({"step": step, "optimizer": optimizer_index, "ratios": {}})
        index = len(self.records) - 1
        self._names[index] = [name for name, _, _, _ in copies]
        self.buffer.add(index, torch.cat([ratios, descent.reshape(1)]))

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            self.records[index]["ratios"] = dict(zip(self._names.pop(index), values[:-1]))
            self.records[index]["descent"] = values[-1] if values[-1] == values[-1] else None  # NaN: no step or no gradient
        return {"every": self.every, "records": self.records}
