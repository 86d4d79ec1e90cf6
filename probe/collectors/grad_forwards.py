"""Forward passes of a root model run with autograd on, and whether a backward pass used their
output. A pass's output node is watched until the next backward pass, which uses it when it starts
from a loss computed from the output, or when the node is among the first SEARCH_NODES nodes behind
the tensors it differentiates (no hook needed, and the pass is judged at once); otherwise, and
before another forward or an `autograd.grad` call, a hook on the node marks the pass used when a
gradient reaches it, so that no node is held for long. Such a pass is judged at the next step of an
optimizer that updates the model (a backward uses a training pass before that), or at the end of
the run. Passes after the first of a step also measure the activation memory autograd saved for
them (tensors saved for backward that are not parameters)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector
from .graph_growth import reaches

# Nodes searched behind a backward pass's tensors for the output node of a watched pass.
SEARCH_NODES = 16


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
    __slots__ = ("model", "step", "used", "handle", "saved_bytes", "node", "loss")

    def __init__(self, model: str, step: int, saved_bytes: Optional[int]) -> None:
        self.model, self.step, self.used, self.handle, self.saved_bytes = model, step, False, None, saved_bytes
        self.node: Optional[Any] = None  # the output's autograd node, while watched without a hook
        self.loss: Optional[Any] = None  # ... and the node of a loss computed from the output

    def mark_used(self, *grads: Any) -> None:
        self.used = True


class GradForwardCollector(Collector):
    name = "grad_forwards"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.pending: dict[str, list[_Pass]] = {}  # model -> its passes not judged yet (a pass found used is at once)
        self.watched: list[_Pass] = []  # pending passes whose node is held, not hooked (see settle)
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
        totals = self._totals.get(model)
        if totals is None:
            totals = self._totals[model] = {"model": model, "grad_forwards": 0, "unused": 0, "unused_measured": 0,
                                            "unused_saved_bytes": 0, "first_unused_step": None}
        totals["grad_forwards"] += 1
        tensor = first_grad_tensor(output)
        if tensor is None:
            return
        record = _Pass(model, step, saved_bytes)
        if tensor.grad_fn is None:  # a leaf returned as the output
            record.handle = tensor.register_hook(record.mark_used)
        else:
            record.node = tensor.grad_fn
            self.watched.append(record)
        self.pending.setdefault(model, []).append(record)

    def on_loss(self, input: Any, loss: Any) -> None:
        """A loss function computed `loss` from `input` (a watched pass's output, or not)."""
        if self.watched and isinstance(input, torch.Tensor) and isinstance(loss, torch.Tensor):
            node = input.grad_fn
            for record in self.watched:
                if record.node is node:
                    record.loss = loss.grad_fn

    def settle(self, roots: Optional[list[Any]] = None) -> None:
        """A backward pass from the autograd nodes `roots` is about to run (None: another forward, or
        a backward that differentiates some inputs only): the watched passes it reaches are used, the
        others get a hook, so that no node is held past it."""
        if not self.watched:
            return
        for record in self.watched:
            if roots and (record.loss is roots[0] or any(reaches(root, {id(record.node)}, SEARCH_NODES) for root in roots)):
                passes = self.pending[record.model]
                passes.remove(record)  # used: nothing left to judge
                if not passes:
                    del self.pending[record.model]
            else:
                record.handle = record.node.register_prehook(record.mark_used)
            record.node = record.loss = None
        self.watched = []

    def judge_pending(self, models: Optional[list[str]] = None) -> None:
        """Settle the passes of `models` (all when None): a pass no gradient reached is unused."""
        for model in list(self.pending) if models is None else models:
            for record in self.pending.pop(model, []):
                if record.handle is not None:
                    record.handle.remove()
                if record.node is not None:  # watched, and no backward pass ran since
                    record.node = record.loss = None
                    self.watched.remove(record)
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
        for records in self.pending.values():
            for record in records:
                if record.handle is not None:
                    record.handle.remove()
                record.node = record.loss = None
        self.watched = []

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "records": list(self._totals.values())}
