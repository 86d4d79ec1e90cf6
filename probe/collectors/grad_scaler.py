"""GradScaler steps: for each `scaler.step(optimizer)`, whether the optimizer step ran or was skipped
because the scaled gradients held inf or NaN, and the scale it was checked with (kept on its
device until flushed). A skipped step is no optimizer step and does not count towards the budget."""

from __future__ import annotations

from typing import Any, Callable

import torch

from . import Collector

# Scaler steps recorded at most.
MAX_CALLS = 5000


class GradScalerCollector(Collector):
    name = "grad_scaler"
    default_every = 1

    def __init__(self, every: int | None = None) -> None:
        super().__init__(every)
        self.calls: list[list[Any]] = []  # [step, skipped, scale]

    def wrap_step(self, original: Callable, steps: Callable[[], int]) -> Callable:
        """`steps()`: optimizer steps taken so far; a scaler step after which it has not grown skipped."""
        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            before = steps()
            result = original(scaler, optimizer, *args, **kwargs)
            skipped = steps() == before
            scale = getattr(scaler, "_scale", None)
            if scaler.is_enabled() and len(self.calls) < MAX_CALLS and isinstance(scale, torch.Tensor):
                self.calls.append([before, skipped, None])
                self.buffer.add(len(self.calls) - 1, scale.clone())  # update() changes it in place
            return result

        return step

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            self.calls[index][2] = values[0]
        return {"every": self.every, "calls": self.calls}
