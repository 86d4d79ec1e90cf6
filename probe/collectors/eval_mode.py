"""Root-model forwards run without autograd (torch.no_grad / inference_mode, i.e. evaluation), and
which of the model's Dropout/BatchNorm layers were in training mode during them."""

from __future__ import annotations

from typing import Any, Optional

from . import Collector

# Records kept at most; the count of passes keeps going.
MAX_RECORDS = 200


class EvalModeCollector(Collector):
    name = "eval_mode"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.no_grad_forwards = 0
        self.records: list[dict[str, Any]] = []

    def on_no_grad_forward(self, step: int, model: str, training: bool, mode_layers: list[tuple[str, Any]]) -> None:
        self.no_grad_forwards += 1
        if self.due(step) and len(self.records) < MAX_RECORDS:
            training_layers = [name for name, module in mode_layers if module.training]
            self.records.append({"step": step, "model": model, "training": training, "training_layers": training_layers})

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "no_grad_forwards": self.no_grad_forwards, "records": self.records}
