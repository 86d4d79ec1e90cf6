"""Train/eval mode at each optimizer step: which Dropout/BatchNorm layers of the models an
optimizer updates are in eval mode while it steps (`model.eval()` left on during training)."""

from __future__ import annotations

from typing import Any, Optional

from . import Collector

# Records of steps with layers in eval mode kept at most; the counts keep going.
MAX_RECORDS = 200


class StepModeCollector(Collector):
    name = "step_mode"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.checked_steps = 0  # steps whose stepped models have mode-dependent layers
        self.eval_steps = 0  # of those, steps with at least one such layer in eval mode
        self.records: list[dict[str, Any]] = []

    def before_step(self, step: int, optimizer_index: int, models: list[Any]) -> None:
        """`models`: the tracker's ModelInfo of each model whose parameters the optimizer updates."""
        if not self.due(step):
            return
        with_layers = [model for model in models if model.mode_layers]
        if not with_layers:
            return
        self.checked_steps += 1
        found = False
        for model in with_layers:
            in_eval = [name for name, module in model.mode_layers if not module.training]
            if not in_eval:
                continue
            found = True
            if len(self.records) < MAX_RECORDS:
                self.records.append({"step": step, "optimizer": optimizer_index, "model": model.name,
                                     "eval_layers": in_eval, "mode_layers": len(model.mode_layers)})
        self.eval_steps += found

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "checked_steps": self.checked_steps, "eval_steps": self.eval_steps, "records": self.records}
