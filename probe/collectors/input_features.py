"""Per-feature mean and standard deviation of the input to a root model's first training forward
of a step: features of a (N, F) input, channels of an (N, C, ...) input."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector

# Wider inputs are summarised by their shape only (per-feature lists would dominate the stats file).
MAX_FEATURES = 4096
# Checks kept at most: the input pipeline does not change during training, and per-feature lists are
# the largest part of the stats, which are rewritten at every flush.
MAX_RECORDS = 3


def feature_moments(x: torch.Tensor) -> torch.Tensor:
    """Per-feature means followed by per-feature standard deviations (population), on x's device."""
    x = x.detach().float()
    per_feature = x.transpose(0, 1).reshape(x.shape[1], -1)
    return torch.cat([per_feature.mean(dim=1), per_feature.std(dim=1, unbiased=False)])


class InputFeatureCollector(Collector):
    name = "input_features"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._complete: Optional[dict[str, Any]] = None  # the record once MAX_RECORDS are in (the same object at each flush)

    def on_model_input(self, step: int, model: str, args: tuple) -> None:
        x = args[0] if args else None
        if len(self.records) >= MAX_RECORDS:
            return
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] < 2:
            return
        self.records.append({"step": step, "model": model, "shape": list(x.shape)})
        if x.shape[1] <= MAX_FEATURES:
            self.buffer.add(len(self.records) - 1, feature_moments(x))

    def flush(self) -> dict[str, Any]:
        if self._complete is not None:
            return self._complete
        for index, values in self.buffer.drain():
            half = len(values) // 2
            self.records[index].update(mean=values[:half], std=values[half:])
        collected = {"every": self.every, "records": self.records}
        if len(self.records) >= MAX_RECORDS:
            self._complete = collected
        return collected
