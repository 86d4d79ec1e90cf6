"""Autograd graphs kept alive from step to step: at each optimizer step (each LATER_FACTOR-th one
after the first DENSE_STEPS), whether a tensor held in a local variable of the script's frames
(the training loop and the functions that call it) still reaches, through its autograd graph,
the loss that was backpropagated before the previous step.
A loss total summed without `.item()` (`total_loss += loss`) does: each step's graph hangs off
it. The size of the graph behind such a tensor is counted too."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Optional

import torch

from . import Collector

# Nodes followed from a held tensor when looking for an earlier loss (a total adds one or two
# nodes per step), and counted at most when measuring the graph kept.
SEARCH_NODES = 64
MAX_NODES = 50_000
# Script frames looked at, from the innermost, and tensors per frame.
MAX_FRAMES = 4
MAX_TENSORS_PER_FRAME = 32
MAX_RECORDS = 2000
_LIBRARY_DIRS = (os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,
                 os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep)


def reaches(node: Any, targets: set[int], limit: int = SEARCH_NODES) -> bool:
    """Whether one of the nodes with ids `targets` is among the first `limit` nodes behind `node`."""
    seen, queue = set(), [node]
    while queue and len(seen) < limit:
        current = queue.pop(0)
        if current is None or id(current) in seen:
            continue
        if id(current) in targets:
            return True
        seen.add(id(current))
        queue.extend(next_node for next_node, _ in current.next_functions)
    return False


def graph_size(node: Any, limit: int = MAX_NODES) -> int:
    """Autograd nodes reachable from `node`, counting at most `limit`."""
    seen, stack = set(), [node]
    while stack and len(seen) < limit:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        stack.extend(next_node for next_node, _ in current.next_functions)
    return len(seen)


def script_frames(frame: Any) -> list[Any]:
    """The innermost frames that run neither torch nor the probe (the script's own code)."""
    frames = []
    while frame is not None and len(frames) < MAX_FRAMES:
        if _is_script_file(frame.f_code.co_filename):
            frames.append(frame)
        frame = frame.f_back
    return frames


@functools.lru_cache(maxsize=1024)
def _is_script_file(filename: str) -> bool:
    return not os.path.abspath(filename).startswith(_LIBRARY_DIRS) and not filename.startswith("<frozen")


class GraphGrowthCollector(Collector):
    name = "graph_growth"
    default_every = 1
    thinned = True  # reading the script's frames is the costliest check of a step; a total keeps the graphs at every step

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self.checked_steps = 0
        self._since_step: list[Any] = []  # grad_fn of the losses backpropagated since the last step
        self._before_last: list[Any] = []  # ... and of those before the last step (held: ids stay valid)

    def on_backward(self, loss: torch.Tensor) -> None:
        if loss.grad_fn is not None:
            self._since_step.append(loss.grad_fn)

    def before_step(self, step: int) -> None:
        if self._before_last and self.due(step) and len(self.records) < MAX_RECORDS:
            earlier, current = {id(node) for node in self._before_last}, {id(node) for node in self._since_step}
            self.checked_steps += 1
            for frame in script_frames(sys._getframe(1)):
                tensors = [(name, value) for name, value in list(frame.f_locals.items())
                           if isinstance(value, torch.Tensor) and value.grad_fn is not None][:MAX_TENSORS_PER_FRAME]
                for name, value in tensors:
                    if id(value.grad_fn) not in current and reaches(value.grad_fn, earlier):
                        self.records.append({"step": step, "name": f"{frame.f_code.co_name}:{name}", "nodes": graph_size(value.grad_fn)})
        self._before_last, self._since_step = self._since_step, []

    def remove(self) -> None:
        self._before_last, self._since_step = [], []

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "checked_steps": self.checked_steps, "max_nodes": MAX_NODES, "records": self.records}
