"""Per-parameter gradient norms at the optimizer step (after backward, before the update), and
which gradients were carried over from that optimizer's previous step: the same `.grad` tensor
object still in place (not set to None and re-created), still non-zero when the next backward()
starts (not zeroed in place by hand, e.g. `p.grad.data.zero_()`), and no `zero_grad()` call in
between, is a gradient that was never cleared."""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch

from . import Collector, vector_norms


class GradientCollector(Collector):
    name = "gradients"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._names: dict[int, list[str]] = {}  # record index -> names of its pending norms
        # optimizer index -> (params, their grads left by its last step) when its next step is measured
        self._previous: dict[int, tuple[list[torch.Tensor], list[Optional[weakref.ref]]]] = {}
        # optimizer index -> (positions of the grads still in place at the next backward(), key of their norms)
        self._at_backward: dict[int, tuple[list[int], int]] = {}
        self._backward_norms: dict[int, list[float]] = {}  # key -> norms moved to the host
        self._carried: dict[int, tuple[int, list[int], int]] = {}  # record index -> (key, positions in its norms, params)
        self._keys = 0

    def after_step(self, optimizer_index: int, next_step: int, params: list[torch.Tensor]) -> None:
        """Remember the gradient objects left by a step, when the next step is measured."""
        self._at_backward.pop(optimizer_index, None)
        if self.due(next_step):
            self._previous[optimizer_index] = (params, [weakref.ref(p.grad) if p.grad is not None else None for p in params])
        else:
            self._previous.pop(optimizer_index, None)

    def on_backward(self) -> None:
        """At the first backward() after a remembered step, measure the grads still in place."""
        for index, (params, refs) in self._previous.items():
            if index in self._at_backward:
                continue
            positions = [i for i, (ref, p) in enumerate(zip(refs, params)) if p.grad is not None and ref is not None and ref() is p.grad]
            self._keys += 1
            self._at_backward[index] = (positions, self._keys)
            if positions:
                self.buffer.add(("at_backward", self._keys), vector_norms([params[i].grad for i in positions]))

    def before_step(self, optimizer_index: int, step: int, named_params: list[tuple[str, torch.Tensor]], cleared: bool) -> None:
        """Measure the gradients an optimizer is about to apply; `cleared` says whether zero_grad()
        was called since its previous step."""
        previous = self._previous.pop(optimizer_index, None)
        at_backward = self._at_backward.pop(optimizer_index, None)
        if not self.due(step):
            return
        present = [(name, p.grad) for name, p in named_params if p.grad is not None]
        self.records.append({
            "step": step,
            "optimizer": optimizer_index,
            "norms": {},
            "missing": [name for name, p in named_params if p.grad is None],
            "retained": None if previous is None or at_backward is None else 0.0,
        })
        index = len(self.records) - 1
        if previous is not None and at_backward is not None and at_backward[0] and not cleared:
            positions, key = at_backward
            still = [n for n, i in enumerate(positions) if previous[1][i]() is named_params[i][1].grad]
            self._carried[index] = (key, still, len(named_params))
        if present:
            self._names[index] = [name for name, _ in present]
            self.buffer.add(index, vector_norms([g for _, g in present]))

    def flush(self) -> dict[str, Any]:
        for key, values in self.buffer.drain():
            if isinstance(key, tuple):
                self._backward_norms[key[1]] = values
            else:
                self.records[key]["norms"] = dict(zip(self._names.pop(key), values))
        for index, (key, positions, total) in list(self._carried.items()):
            norms = self._backward_norms.get(key)
            if norms is not None:
                self.records[index]["retained"] = sum(1 for n in positions if norms[n] > 0) / max(1, total)
                del self._carried[index]
        waiting = {key for _, key in self._at_backward.values()} | {key for key, _, _ in self._carried.values()}
        self._backward_norms = {key: norms for key, norms in self._backward_norms.items() if key in waiting}
        return {"every": self.every, "records": self.records}
