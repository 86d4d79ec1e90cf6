"""Broadcasts inside a hand-written loss: at a measured backward(), the last few autograd nodes
before the loss (the loss's own arithmetic) are searched for an elementwise operation whose result
has the shape (N, N) while one of its inputs was (N, 1) or (N,): an (N, 1) prediction minus an
(N,) target pairs every prediction with every target."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector

ELEMENTWISE = {"SubBackward0", "RsubBackward0", "RsubBackward1", "AddBackward0", "MulBackward0", "DivBackward0"}
# Nodes looked at from the loss backwards (a loss written by hand is a few operations deep).
MAX_NODES = 12
MAX_RECORDS = 50


def _shape(node: Any) -> Optional[list[int]]:
    metadata = getattr(node, "_input_metadata", None)
    return list(metadata[0].shape) if metadata else None


def pairwise_broadcast(loss: torch.Tensor) -> Optional[dict[str, Any]]:
    """The first elementwise node near the loss that broadcast (N, 1) against (N,) into (N, N)."""
    queue, seen = [loss.grad_fn], set()
    while queue and len(seen) < MAX_NODES:
        node = queue.pop(0)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        inputs = [next_node for next_node, _ in node.next_functions]
        queue.extend(inputs)
        if type(node).__name__ not in ELEMENTWISE:
            continue
        output = _shape(node)
        if output is None or len(output) != 2 or output[0] != output[1] or output[0] < 2:
            continue
        shapes = [_shape(n) for n in inputs if n is not None]
        batch = output[0]
        if any(s in ([batch, 1], [batch]) for s in shapes) and [1, batch] not in shapes:
            return {"operation": type(node).__name__, "output_shape": output, "input_shapes": [s for s in shapes if s is not None]}
    return None


class LossGraphCollector(Collector):
    name = "loss_graph"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self.checked = 0

    def on_backward(self, step: int, loss: torch.Tensor) -> None:
        if not self.due(step) or loss.grad_fn is None or len(self.records) >= MAX_RECORDS:
            return
        self.checked += 1
        found = pairwise_broadcast(loss)
        if found is not None:
            self.records.append({"step": step, **found})

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "checked": self.checked, "records": self.records}
