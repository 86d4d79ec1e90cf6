"""zero_grad() calls per optimizer step: `Optimizer.zero_grad` counts for that optimizer,
`Module.zero_grad` for every optimizer (the module may hold any of their parameters)."""

from __future__ import annotations

from typing import Any, Optional

from . import Collector


class ZeroGradCollector(Collector):
    name = "zero_grad"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self._optimizer_calls: dict[int, int] = {}  # id(optimizer) -> its zero_grad calls since its last step
        self._module_calls = 0  # all Module.zero_grad calls so far
        self._module_calls_at_step: dict[int, int] = {}  # id(optimizer) -> _module_calls at its last step
        self.calls: dict[int, list[list[int]]] = {}  # optimizer index -> [[step, calls], ...]

    def on_optimizer_zero_grad(self, optimizer_id: int) -> None:
        self._optimizer_calls[optimizer_id] = self._optimizer_calls.get(optimizer_id, 0) + 1

    def on_module_zero_grad(self) -> None:
        self._module_calls += 1

    def calls_since_step(self, optimizer_id: int) -> int:
        module_calls = self._module_calls - self._module_calls_at_step.get(optimizer_id, 0)
        return self._optimizer_calls.get(optimizer_id, 0) + module_calls

    def on_step(self, optimizer_id: int, optimizer_index: int, step: int) -> None:
        if self.due(step):
            self.calls.setdefault(optimizer_index, []).append([step, self.calls_since_step(optimizer_id)])
        self._optimizer_calls[optimizer_id] = 0
        self._module_calls_at_step[optimizer_id] = self._module_calls

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "calls": {str(index): calls for index, calls in self.calls.items()}}
