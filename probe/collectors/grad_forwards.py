"""Forward passes of a root model run with autograd on, and whether a backward pass used their
output: a hook on the output tensor marks it used when a gradient reaches it. A pass is judged
at the next step of an optimizer that updates the model (a backward uses a training pass before
that), or at the end of the run. Passes after the first of a step also measure the activation
memory autograd saved for them (tensors saved for backward that are not parameters)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector


def first_grad_tensor(output: Any) -> Optional[torch.Tensor]:
    """The first tensor that requires grad in a forward's output (a tensor, tuple, list or dict)."""
    if isinstance(output, torch.Tensor):
        return output if output.requires_grad else None
    values = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else ()
    for value in values:
        found = first_grad_tensor(value)
        if found is not None:
            return found
    return None


class _Pass:
    __slots__ = ("step", "used", "handle", "saved_bytes")

    def __init__(self, step: int, saved_bytes: Optional[int]) -> None:
        self.step, self.used, self.handle, self.saved_bytes = step, False, None, saved_bytes

    def mark_used(self, grad: torch.Tensor) -> None:
        self.used = True


class GradForwardCollector(Collector):
    name = "grad_forwards"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self._pending: dict[str, list[_Pass]] = {}
        self._totals: dict[str, dict[str, Any]] = {}
        self._saving: Optional[Any] = None  # the saved-tensor hooks context of the pass being measured
        self._saved_bytes = 0
        self._param_storages: set[int] = set()

    # -- measuring the memory one pass keeps ---------------------------------------------------
    def start_measuring(self, params: list[torch.Tensor]) -> None:
        self._param_storages = {p.untyped_storage().data_ptr() for p in params}
        self._saved_bytes = 0
        self._saving = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._saving.__enter__()

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.untyped_storage().data_ptr() not in self._param_storages:
            self._saved_bytes += tensor.numel() * tensor.element_size()
        return tensor

    def stop_measuring(self) -> Optional[int]:
        if self._saving is None:
            return None
        self._saving.__exit__(None, None, None)
        self._saving = None
        return self._saved_bytes

    # -- passes --------------------------------------------------------------------------------
    def on_forward(self, step: int, model: str, output: Any, saved_bytes: Optional[int]) -> None:
        totals = self._totals.setdefault(model, {"model": model, "grad_forwards": 0, "unused": 0, "unused_measured": 0,
                                                 "unused_saved_bytes": 0, "first_unused_step": None})
        totals["grad_forwards"] += 1
        tensor = first_grad_tensor(output)
        if tensor is None:
            return
        record = _Pass(step, saved_bytes)
        record.handle = tensor.register_hook(record.mark_used)
        self._pending.setdefault(model, []).append(record)

    def judge_pending(self, models: Optional[list[str]] = None) -> None:
        """Settle the passes of `models` (all when None): a pass no gradient reached is unused."""
        for model in list(self._pending) if models is None else models:
            for record in self._pending.pop(model, []):
                record.handle.remove()
                if record.used:
                    continue
                totals = self._totals[model]
                totals["unused"] += 1
                if totals["first_unused_step"] is None:
                    totals["first_unused_step"] = record.step
                if record.saved_bytes is not None:
                    totals["unused_measured"] += 1
                    totals["unused_saved_bytes"] += record.saved_bytes

    def remove_hooks(self) -> None:
        self.stop_measuring()
        for records in self._pending.values():
            for record in records:
                record.handle.remove()

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "records": list(self._totals.values())}
