"""The signal through each weight layer at initialisation: in the model's first training forward,
for every Linear/Conv layer, the second moment of its input and of its output, the scale of its
weights (`weight_gain` = variance times fan-in, what an init scheme sets: 2 for He/Kaiming,
about 1 for Xavier between equal widths, 1/3 for PyTorch's default), whether the weights still
look like PyTorch's default init and whether the model has normalisation layers; then what the script did with the layer's output and input:
the activation function applied to the output (`relu`, `tanh`, ...) with the second moment and
saturated share of its result, and, when the input is a softmax of the previous layer's output,
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

WEIGHT_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d"}
NORMALISATION_LAYERS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "LocalResponseNorm", "RMSNorm")
ACTIVATIONS = {
    "relu": "relu", "relu_": "relu", "leaky_relu": "relu", "leaky_relu_": "relu", "relu6": "relu",
    "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
}
SOFTMAXES = {"softmax"}


def second_moment(tensor: torch.Tensor) -> torch.Tensor:
    y = tensor.detach().float()
    return (y * y).mean()


def unit_spread(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over units (dim 1) of each unit's standard deviation over the batch."""
    y = tensor.detach().float()
    y = y.reshape(y.shape[0], y.shape[1], -1).transpose(1, 2).reshape(-1, y.shape[1]) if y.dim() > 2 else y.reshape(y.shape[0], -1)
    return y.std(dim=0, unbiased=False).mean() if y.shape[0] > 1 else torch.zeros((), device=y.device)


def looks_default(weight: torch.Tensor) -> torch.Tensor:
    """1 when the weights could be PyTorch's default init for the layer: uniform within
    +-1/sqrt(fan_in) (kaiming_uniform_ with a=sqrt(5)) with the variance 1/(3 fan_in) it gives."""
    fan_in = max(1, weight[0].numel())
    bound = 1 / math.sqrt(fan_in)
    w = weight.detach().float()
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
            self.collector.on_function(name, args[0], result)
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
        self._softmaxes: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # id of a softmax result -> (it, its input spread, its spread)

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
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
        self._mode, self._model = None, None
        self._outputs, self._softmaxes = {}, {}

    def on_layer(self, layer: str, layer_type: str, module: torch.nn.Module, args: tuple, output: Any) -> None:
        if self._mode is None or layer_type not in WEIGHT_LAYERS or not args or not isinstance(args[0], torch.Tensor) \
                or not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.dim() < 2:
            return
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
            return
        x = args[0]
        index = len(self.records)
        fan_in = weight[0].numel()
        self.records.append({"model": self._model, "layer": layer, "type": layer_type, "fan_in": fan_in, "fan_out": weight.shape[0],
                             "normalised": self._normalised})
        values = [second_moment(x), second_moment(output), weight.detach().float().var(unbiased=False) * fan_in, looks_default(weight)]
        fed = self._softmaxes.get(id(x))
        if fed is not None and fed[0] is x:
            values += [fed[1], fed[2]]
            self.records[index]["after_softmax"] = True
        self.buffer.add(("layer", index), torch.stack(values))
        self._outputs[id(output)] = (index, output)

    def on_function(self, name: str, input: torch.Tensor, result: torch.Tensor) -> None:
        if name in SOFTMAXES:
            if input.dim() >= 2 and input.is_floating_point():
                self._softmaxes[id(result)] = (result, unit_spread(input), unit_spread(result))
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
        self.buffer.add(("activation", index), torch.stack([second_moment(result), saturated]))

    def flush(self) -> dict[str, Any]:
        for (kind, index), raw in self.buffer.drain():
            record = self.records[index]
            if kind == "layer":
                record.update(input_moment=raw[0], output_moment=raw[1], weight_gain=raw[2], default_init=raw[3] > 0.5)
                if len(raw) > 4:
                    record.update(softmax_input_spread=raw[4], softmax_output_spread=raw[5])
            else:
                record.update(activation_moment=raw[0], activation_saturated=raw[1])
        return {"records": self.records}
