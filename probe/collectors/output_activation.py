"""The operation that produces a root model's output in a training forward (its output
activation: ReLU, Sigmoid, Tanh, Softplus, ...), read from the output's autograd node with the
reshapes after it skipped, so functional activations (`torch.sigmoid(x)` in `forward`) count too."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector
from .grad_forwards import first_grad_tensor

# Nodes that only reshape, select or copy: the output activation is behind them.
RESHAPES = {"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "SqueezeBackward0", "SqueezeBackward1",
            "SqueezeBackward2", "UnsqueezeBackward0", "CloneBackward0", "SelectBackward0", "SliceBackward0",
            "TBackward0", "PermuteBackward0", "TransposeBackward0", "AliasBackward0", "ExpandBackward0", "ToCopyBackward0"}
MAX_RECORDS = 20


def output_operation(tensor: torch.Tensor) -> Optional[str]:
    node = tensor.grad_fn
    for _ in range(8):
        if node is None or type(node).__name__ not in RESHAPES or not node.next_functions:
            break
        node = node.next_functions[0][0]
    return type(node).__name__ if node is not None else None


class OutputActivationCollector(Collector):
    name = "output_activation"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []

    def on_output(self, step: int, model: str, output: Any) -> None:
        if not self.due(step) or len(self.records) >= MAX_RECORDS:
            return
        tensor = first_grad_tensor(output)
        if tensor is not None:
            self.records.append({"step": step, "model": model, "operation": output_operation(tensor), "shape": list(tensor.shape)})

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "records": self.records}
