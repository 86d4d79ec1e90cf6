"""How hard coupled weight decay pulls against the data: before an optimizer's first step, for
each weight matrix in a parameter group with `weight_decay` > 0 that the optimizer adds to the
gradient (SGD, Adam without `decoupled_weight_decay`, RMSprop, Adagrad...), the ratio
weight_decay * ||w|| / ||grad||, the decay term's size over the data gradient's. Decoupled decay
(AdamW) shrinks the weights outside the gradient and is recorded as such, without a ratio.
Large parameters are measured on a strided subset."""

from __future__ import annotations

import statistics
from typing import Any, Optional

import torch

from . import Collector, vector_norms
from .updates import sampled_values

DECOUPLED = ("AdamW",)


class WeightDecayCollector(Collector):
    name = "weight_decay"

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._measured: set[int] = set()

    def before_step(self, optimizer: Any, optimizer_index: int, step: int) -> None:
        """Measured at an optimizer's first step only: later the data gradient shrinks as the model
        fits, whatever the decay."""
        if optimizer_index in self._measured:
            return
        self._measured.add(optimizer_index)
        for group in getattr(optimizer, "param_groups", []):
            decay = group.get("weight_decay")
            if not isinstance(decay, (int, float)) or decay <= 0:
                continue
            decoupled = type(optimizer).__name__ in DECOUPLED or bool(group.get("decoupled_weight_decay"))
            record = {"step": step, "optimizer": optimizer_index, "class": type(optimizer).__name__,
                      "weight_decay": float(decay), "decoupled": decoupled}
            self.records.append(record)
            weights = [p for p in group["params"]
                       if p.dim() >= 2 and p.numel() and not p.is_complex() and p.grad is not None and not p.grad.is_sparse]
            if weights and not decoupled:
                w = vector_norms([sampled_values(p) for p in weights])
                g = vector_norms([sampled_values(p.grad) for p in weights])
                self.buffer.add(len(self.records) - 1, decay * w / g.clamp_min(1e-30))

    def flush(self) -> dict[str, Any]:
        for index, ratios in self.buffer.drain():
            self.records[index]["decay_to_gradient"] = statistics.median_high(ratios)
        return {"every": self.every, "records": self.records}
