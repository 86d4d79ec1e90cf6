"""What the targets of a loss look like, for the task the loss assumes: for a regression loss
(mse, l1, smooth_l1, huber) the range of the targets, the share of them that are whole numbers,
how many distinct values a batch holds and the shares outside the bounds an output activation
may have (below -1, below 0, above 1, above 6); for a classification loss given float targets
(class probabilities), their range and how far their rows are from summing to 1."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector
from .loss_inputs import CLASSIFICATION, REGRESSION

# Bounds an output activation may have; the shares of targets beyond each are recorded.
BOUNDS = (-1.0, 0.0, 1.0, 6.0)
# Values looked at per call for the distinct count.
MAX_DISTINCT_VALUES = 4096
MAX_CALLS_PER_STEP = 2


def regression_summary(target: torch.Tensor) -> torch.Tensor:
    """[min, max, share integral, distinct values, share < -1, share < 0, share > 1, share > 6]."""
    t = target.detach().reshape(-1).double()
    parts = [t.min(), t.max(), (t == t.round()).double().mean(), torch.tensor(float(t[:MAX_DISTINCT_VALUES].unique().numel()), device=t.device)]
    parts += [(t < BOUNDS[0]).double().mean(), (t < BOUNDS[1]).double().mean(), (t > BOUNDS[2]).double().mean(), (t > BOUNDS[3]).double().mean()]
    return torch.stack(parts)


def probability_summary(target: torch.Tensor) -> torch.Tensor:
    """[min, max, largest deviation of a row's sum from 1] of float class targets (N, C, ...)."""
    t = target.detach().double()
    return torch.stack([t.min(), t.max(), (t.sum(dim=1) - 1).abs().max()])


class LossTargetCollector(Collector):
    name = "loss_targets"
    default_every = 5

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._calls: dict[tuple[str, int], int] = {}

    def on_loss_call(self, step: int, kind: str, input: Any, target: Any) -> None:
        if not self.due(step) or not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor) or target.numel() == 0:
            return
        if self._calls.get((kind, step), 0) >= MAX_CALLS_PER_STEP:
            return
        if kind in REGRESSION:
            values, fields = regression_summary(target), "regression"
        elif kind in CLASSIFICATION and target.is_floating_point() and target.dim() >= 2 and target.shape == input.shape:
            values, fields = probability_summary(target), "probabilities"
        else:
            return
        self._calls[(kind, step)] = self._calls.get((kind, step), 0) + 1
        self.records.append({"step": step, "kind": kind, "targets": fields, "training": torch.is_grad_enabled(),
                             "input_shape": list(input.shape), "target_shape": list(target.shape)})
        self.buffer.add(len(self.records) - 1, values)

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            record = self.records[index]
            if record["targets"] == "regression":
                names = ("min", "max", "integral_share", "distinct", "below_minus_one", "below_zero", "above_one", "above_six")
            else:
                names = ("min", "max", "row_sum_deviation")
            record.update(zip(names, values))
        return {"every": self.every, "records": self.records}
