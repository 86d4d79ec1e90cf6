"""Per-layer activation statistics on the first training forward of a step: mean, standard
deviation and mean per-unit standard deviation over the batch (the input-dependent signal, without
per-unit offsets such as biases) for every leaf module (no children), plus what only applies to
some layer types: the fraction of exact zeros and of dead units (units, i.e. features or channels
along dim 1, with no positive value in the batch) for rectifiers, the fraction saturated for
sigmoid/tanh-like layers, and for a dropout layer in training mode the share of its non-zero
inputs it kept (`kept_share`). Fields that do not apply are None. `nonfinite` is 1 when the output
holds NaN or Inf; `values_per_unit` is how many values each unit had in the batch (samples times
positions)."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from . import Collector

# A sigmoid output within this distance of 0 or 1 (a tanh output of +-1) counts as saturated:
# the local derivative there is below about 1% of its maximum.
SATURATION_MARGIN = 0.01
RECTIFIERS = {"ReLU", "ReLU6"}
_SIGMOID_LIKE = {"Sigmoid", "Hardsigmoid"}
_TANH_LIKE = {"Tanh", "Hardtanh", "Softsign"}
# Layers whose training-mode share of kept values is measured (non-zero outputs over non-zero
# inputs); AlphaDropout sets dropped values to a negative constant, not to zero, and is left out.
DROPOUTS = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d"}

def activation_sums(output: torch.Tensor, layer_type: str, dropout_input: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Raw reductions of one activation tensor, on its device: [sum, sum of squares, sum over units
    of the unit's standard deviation over the batch], then [non-zero count, dead-unit count] for a
    rectifier, [saturated count] for a sigmoid/tanh-like layer, or [non-zero inputs, non-zero
    outputs] for a dropout layer in training mode (`dropout_input`). Only the passes a layer type needs
    are made; the ratios are formed on the host by `activation_fields`. Moments from sums lose
    precision when a unit's mean is thousands of times its spread, which the detectors (orders of
    magnitude) tolerate."""
    y = output.detach().float()
    dims = [d for d in range(y.dim()) if d != 1] if y.dim() >= 2 else [0]
    per_unit = max(1, y.numel() // (y.shape[1] if y.dim() >= 2 else 1))
    sums, squares = y.sum(dim=dims), (y * y).sum(dim=dims)
    unit_std_sum = torch.addcmul(squares, sums, sums, value=-1.0 / per_unit).clamp_min_(0).div_(max(1, per_unit - 1)).sqrt_().sum()
    parts = [sums.sum(), squares.sum(), unit_std_sum]
    # Counts are sums of sign(): bool reductions are several times slower on CPU.
    if layer_type in RECTIFIERS:  # outputs are >= 0: sign() is 1 for non-zeros, a dead unit sums to 0
        parts += [y.sign().sum(), (sums <= 0).sum(dtype=torch.float32)]
    elif layer_type in _SIGMOID_LIKE:
        parts.append(((y - 0.5).abs_() - (0.5 - SATURATION_MARGIN)).relu_().sign_().sum())
    elif layer_type in _TANH_LIKE:
        parts.append((y.abs() - (1 - SATURATION_MARGIN)).relu_().sign_().sum())
    elif dropout_input is not None:
        parts += [dropout_input.detach().float().sign().abs().sum(), y.sign().abs().sum()]
    return torch.stack(parts)


def activation_fields(raw: list[float], numel: int, units: int, layer_type: str) -> dict[str, Optional[float]]:
    """The record fields from `activation_sums` of a tensor with `numel` values in `units` units."""
    total, squares, unit_std_sum, *counts = raw
    nonfinite = not math.isfinite(total + squares)
    variance = max(0.0, squares - total * total / numel) / max(1, numel - 1)
    nonzero, dead = counts if layer_type in RECTIFIERS else (None, None)
    saturated = counts[0] if counts and (layer_type in _SIGMOID_LIKE or layer_type in _TANH_LIKE) else None
    kept = counts[1] / counts[0] if layer_type in DROPOUTS and counts and counts[0] > 0 else None
    return {
        "mean": total / numel,
        "std": math.nan if nonfinite else math.sqrt(variance),
        "unit_std": unit_std_sum / units,
        "frac_zero": None if nonzero is None else 1.0 - nonzero / numel,
        "frac_saturated": None if saturated is None else saturated / numel,
        "frac_dead_units": None if dead is None else dead / units,
        "nonfinite": 1.0 if nonfinite else 0.0,
        "values_per_unit": numel // units,
        "kept_share": kept,
    }


class ActivationCollector(Collector):
    name = "activations"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._sizes: dict[int, tuple[int, int, str]] = {}  # record index -> (numel, units, layer type) of its pending sums

    def on_layer_output(self, step: int, model: str, layer: str, layer_type: str, output: Any, dropping: bool, args: tuple) -> None:
        """`dropping`: a dropout layer that drops now (training mode) and whose input is still
        its own (not in-place: the hook would see the output twice)."""
        if not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.numel() == 0:
            return
        self.records.append({"step": step, "model": model, "layer": layer, "type": layer_type})
        index = len(self.records) - 1
        self._sizes[index] = (output.numel(), output.shape[1] if output.dim() >= 2 else 1, layer_type)
        dropped = args[0] if dropping and layer_type in DROPOUTS and args and isinstance(args[0], torch.Tensor) \
            and args[0].shape == output.shape else None
        self.buffer.add(index, activation_sums(output, layer_type, dropped))

    def flush(self) -> dict[str, Any]:
        for index, raw in self.buffer.drain():
            self.records[index].update(activation_fields(raw, *self._sizes.pop(index)))
        return {"every": self.every, "records": self.records}
