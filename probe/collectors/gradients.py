"""Per-parameter gradient norms at the optimizer step (after backward, before the update), and
which gradients were carried over from that optimizer's previous step: the same `.grad` tensor
object still in place (not set to None and re-created) with no `zero_grad()` call in between is
a gradient that was never cleared."""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch

from . import Collector, vector_norms


class GradientCollector(Collector):
    name = "gradients"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._names: dict[int, list[str]] = {}  # record index -> names of its pending norms
        self._previous: dict[int, list[Optional[weakref.ref]]] = {}  # optimizer index -> grads after its last step

    def after_step(self, optimizer_index: int, next_step: int, params: list[torch.Tensor]) -> None:
        """Remember the gradient objects left by a step, when the next step is measured."""
        if self.due(next_step):
            self._previous[optimizer_index] = [weakref.ref(p.grad) if p.grad is not None else None for p in params]
        else:
            self._previous.pop(optimizer_index, None)

    def before_step(self, optimizer_index: int, step: int, named_params: list[tuple[str, torch.Tensor]], cleared: bool) -> None:
        """Measure the gradients an optimizer is about to apply; `cleared` says whether zero_grad()
        was called since its previous step."""
        if not self.due(step):
            return
        present = [(name, p.grad) for name, p in named_params if p.grad is not None]
        previous = self._previous.pop(optimizer_index, None)
        retained = None
        if previous is not None and len(previous) == len(named_params):
            kept = sum(1 for ref, (_, p) in zip(previous, named_params) if ref is not None and ref() is p.grad)
            retained = 0.0 if cleared else kept / max(1, len(named_params))
        self.records.append({
            "step": step,
            "optimizer": optimizer_index,
            "norms": {},
            "missing": [name for name, p in named_params if p.grad is None],
            "retained": retained,
        })
        if present:
            index = len(self.records) - 1
            self._names[index] = [name for name, _ in present]
            self.buffer.add(index, vector_norms([g for _, g in present]))

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            self.records[index]["norms"] = dict(zip(self._names.pop(index), values))
        return {"every": self.every, "records": self.records}
