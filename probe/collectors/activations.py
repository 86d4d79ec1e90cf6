"""Per-layer activation statistics on the first training forward of a step: mean, standard
deviation, mean per-unit standard deviation over the batch (the input-dependent signal, without
per-unit offsets such as biases), fraction of exact zeros, fraction saturated (sigmoid/tanh-like layers only), fraction of
dead units (units, i.e. features or channels along dim 1, with no positive value in the batch) and
the count of non-finite values. Only leaf modules (no children) are measured."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector

# A sigmoid output within this distance of 0 or 1 (a tanh output of +-1) counts as saturated:
# the local derivative there is below about 1% of its maximum.
SATURATION_MARGIN = 0.01
_SIGMOID_LIKE = {"Sigmoid", "Hardsigmoid"}
_TANH_LIKE = {"Tanh", "Hardtanh", "Softsign"}
FIELDS = ("mean", "std", "unit_std", "frac_zero", "frac_saturated", "frac_dead_units", "nonfinite")


def activation_summary(output: torch.Tensor, layer_type: str) -> torch.Tensor:
    """The FIELDS of one activation tensor, as one tensor on its device.

    Moments come from per-unit sums of y and y*y (a few passes over the tensor instead of one per
    statistic). frac_saturated is -1 where it does not apply; nonfinite is 1 when the output holds
    NaN or Inf (the sums are then not finite either)."""
    y = output.detach().float()
    numel = y.numel()
    dims = [d for d in range(y.dim()) if d != 1] if y.dim() >= 2 else [0]
    per_unit = max(1, numel // (y.shape[1] if y.dim() >= 2 else 1))
    sums, squares, peaks = y.sum(dim=dims), (y * y).sum(dim=dims), y.amax(dim=dims)
    mean = sums.sum() / numel
    variance = (squares.sum() / numel - mean * mean).clamp_min(0) * (numel / max(1, numel - 1))
    unit_means = sums / per_unit
    unit_variance = (squares / per_unit - unit_means * unit_means).clamp_min(0) * (per_unit / max(1, per_unit - 1))
    frac_zero = 1.0 - torch.count_nonzero(y) / numel
    frac_dead = (peaks <= 0).float().mean()
    if layer_type in _SIGMOID_LIKE:
        frac_saturated = ((y < SATURATION_MARGIN) | (y > 1 - SATURATION_MARGIN)).sum() / numel
    elif layer_type in _TANH_LIKE:
        frac_saturated = (y.abs() > 1 - SATURATION_MARGIN).sum() / numel
    else:
        frac_saturated = torch.full((), -1.0, device=y.device)
    nonfinite = (~torch.isfinite(sums.sum() + squares.sum())).float()
    return torch.stack([mean, variance.sqrt(), unit_variance.sqrt().mean(), frac_zero, frac_saturated, frac_dead, nonfinite])


class ActivationCollector(Collector):
    name = "activations"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []

    def on_layer_output(self, step: int, model: str, layer: str, layer_type: str, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.numel() == 0:
            return
        self.records.append({"step": step, "model": model, "layer": layer, "type": layer_type})
        self.buffer.add(len(self.records) - 1, activation_summary(output, layer_type))

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            record = self.records[index]
            record.update(zip(FIELDS, values))
            if record["frac_saturated"] < 0:
                record["frac_saturated"] = None
        return {"every": self.every, "records": self.records}
