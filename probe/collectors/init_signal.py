"""The signal through each weight layer at initialisation: in the model's first training forward,
for every Linear/Conv layer, the second moment of its input and of its output, the scale of its
weights (`weight_gain` = variance times fan-in, what an init scheme sets: 2 for He/Kaiming,
about 1 for Xavier between equal widths, 1/3 for PyTorch's default), whether the weights still
look like PyTorch's default init and whether the model has normalisation layers, and the
per-unit spread of its input over the batch (the input-dependent signal, which biases do not
add to); then what the script did with the layer's output and input: the activation function
applied to the output (`relu`, `tanh`, ...) with the second moment, saturated share and
per-unit spread of its result, and, when the input is a softmax of the previous layer's output,
the per-unit spread of the signal before and after that softmax.

Functional activations (`F.relu(self.fc(x))`, `torch.tanh`) have no module to hook, so the
calls are seen through a `TorchFunctionMode` that is on during that one forward only."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode

from . import Collector
from .activations import SATURATION_MARGIN
from .updates import sampled_values

WEIGHT_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d"}
NORMALISATION_LAYERS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "LocalResponseNorm", "RMSNorm")
ACTIVATIONS = {
    "relu": "relu", "relu_": "relu", "leaky_relu": "relu", "leaky_relu_": "relu", "relu6": "relu",
    "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
}
SOFTMAXES = {"softmax"}


# Samples of the batch the statistics are computed on (the first ones): the first forward of a
# large model must not copy its activations in float32.
SAMPLE_ROWS = 32


def leading_rows(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach()[:SAMPLE_ROWS].float()


def second_moment(tensor: torch.Tensor) -> torch.Tensor:
    y = leading_rows(tensor)
    return (y * y).mean() if y.numel() else torch.zeros((), device=y.device)


def unit_spread(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over units (dim 1) of each unit's standard deviation over the batch."""
    y = leading_rows(tensor)
    if y.dim() < 2 or y.shape[0] < 2 or y.numel() == 0:
        return torch.zeros((), device=y.device)
    y = y.reshape(y.shape[0], y.shape[1], -1).transpose(1, 2).reshape(-1, y.shape[1]) if y.dim() > 2 else y.reshape(y.shape[0], -1)
    return y.std(dim=0, unbiased=False).mean()


def looks_default(weight: torch.Tensor, fan_in: int) -> torch.Tensor:
    """1 when the weights could be PyTorch's default init for the layer: uniform within
    +-1/sqrt(fan_in) (kaiming_uniform_ with a=sqrt(5)) with the variance 1/(3 fan_in) it gives
    (judged on a strided sample of the weights)."""
    bound = 1 / math.sqrt(fan_in)
    w = sampled_values(weight).float()
    variance = w.var(unbiased=False) * fan_in * 3
    return ((w.abs().max() <= bound * 1.0001) & (variance > 0.8) & (variance < 1.2)).float()


class _ActivationCalls(TorchFunctionMode):
    def __init__(self, collector: "InitSignalCollector") -> None:
        super().__init__()
        self.collector = collector

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if (name in ACTIVATIONS or name in SOFTMAXES) and args and isinstance(args[0], torch.Tensor) and isinstance(result, torch.Tensor):
            self.collector.guarded(self.collector.on_function, name, args[0], result)
        return result


class InitSignalCollector(Collector):
    name = "init_signal"

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self.models_seen: set[str] = set()
        self._model: Optional[str] = None
        self._normalised = False  # whether the model measured has normalisation layers
        self._mode: Optional[_ActivationCalls] = None
        self._outputs: dict[int, tuple[int, torch.Tensor]] = {}  # id of a layer's output -> (record index, the output)
        self._softmaxes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id of a softmax result -> (it, its input)
        self.error: Optional[str] = None  # what stopped the measurement, if anything did

    def start(self, model: str, module: torch.nn.Module) -> None:
        """Called before a model's first training forward."""
        if model in self.models_seen or self._mode is not None:
            return
        self.models_seen.add(model)
        self._normalised = any(type(m).__name__.startswith(NORMALISATION_LAYERS) for m in module.modules())
        self._model = model
        self._mode = _ActivationCalls(self)
        self._mode.__enter__()

    def stop(self) -> None:
        if self._mode is None:  # after every root forward: nothing to do but at a model's first
            return
        self._mode.__exit__(None, None, None)
        self._mode, self._model = None, None
        self._outputs, self._softmaxes = {}, {}

    def guarded(self, measure: Any, *args: Any) -> None:
        """Run one measurement; an error in it ends this collector's measuring, never the script."""
        if self.error is not None:
            return
        try:
            measure(*args)
        except Exception as error:  # an unusual layer or tensor: keep what was measured, measure no more
            self.error = f"{type(error).__name__}: {error}"[:200]

    def on_layer(self, layer: str, layer_type: str, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if self._mode is None or layer_type not in WEIGHT_LAYERS or not args or not isinstance(args[0], torch.Tensor) \
                or not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.dim() < 2:
            return
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or weight.numel() == 0 or weight.is_complex() \
                or args[0].numel() == 0 or output.numel() == 0:
            return
        self.guarded(self._measure_layer, layer, layer_type, weight, args[0], output)

    def _measure_layer(self, layer: str, layer_type: str, weight: torch.Tensor, x: torch.Tensor, output: torch.Tensor) -> None:
        index = len(self.records)
        fan_in = weight.numel() // weight.shape[0]
        values = [second_moment(x), second_moment(output), sampled_values(weight).float().var(unbiased=False) * fan_in,
                  looks_default(weight, fan_in), unit_spread(x)]
        fed = self._softmaxes.get(id(x))
        after_softmax = fed is not None and fed[0] is x
        if after_softmax:  # the spreads are measured only for a softmax a weight layer takes
            values += [unit_spread(fed[1]), unit_spread(x)]
        stacked = torch.stack(values)
        self.records.append({"model": self._model, "layer": layer, "type": layer_type, "fan_in": fan_in, "fan_out": weight.shape[0],
                             "normalised": self._normalised, **({"after_softmax": True} if after_softmax else {})})
        self.buffer.add(("layer", index), stacked)
        self._outputs[id(output)] = (index, output)

    def on_function(self, name: str, input: torch.Tensor, result: torch.Tensor) -> None:
        if name in SOFTMAXES:
            if input.dim() >= 2 and input.is_floating_point():
                self._softmaxes[id(result)] = (result, input)
            return
        pending = self._outputs.pop(id(input), None)
        if pending is None or pending[1] is not input:
            return
        index = pending[0]
        kind = ACTIVATIONS[name]
        self.records[index]["activation"] = kind
        y = result.detach().float()
        if kind == "tanh":
            saturated = (y.abs() >= 1 - SATURATION_MARGIN).float().mean()
        elif kind == "sigmoid":
            saturated = ((y - 0.5).abs() >= 0.5 - SATURATION_MARGIN).float().mean()
        else:
            saturated = torch.zeros((), device=y.device)
        self.buffer.add(("activation", index), torch.stack([second_moment(result), saturated, unit_spread(result)]))

    def flush(self) -> dict[str, Any]:
        for (kind, index), raw in self.buffer.drain():
            record = self.records[index]
            if kind == "layer":
                record.update(input_moment=raw[0], output_moment=raw[1], weight_gain=raw[2], default_init=raw[3] > 0.5,
                              input_spread=raw[4])
                if len(raw) > 5:
                    record.update(softmax_input_spread=raw[5], softmax_output_spread=raw[6])
            else:
                record.update(activation_moment=raw[0], activation_saturated=raw[1], activation_spread=raw[2])
        return {"records": self.records, "error": self.error}
