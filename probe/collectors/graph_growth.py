"""Autograd graphs that stay alive from step to step: at each measured optimizer step, the size of
the graph behind every tensor with autograd history held in a local variable of the script's
frames (the training loop and the functions that call it). A loss total summed without `.item()`
keeps every step's graph, so the graph behind it grows by one step's worth each step."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import torch

from . import Collector

# Nodes counted per graph at most (a larger graph is reported as at least this many).
MAX_NODES = 50_000
# Script frames looked at, from the innermost, and tensors per frame.
MAX_FRAMES = 4
MAX_TENSORS_PER_FRAME = 32
MAX_RECORDS = 2000
_LIBRARY_DIRS = tuple(os.path.dirname(os.path.abspath(module.__file__)) + os.sep for module in (torch,)) + (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,)


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
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_LIBRARY_DIRS) and not frame.f_code.co_filename.startswith("<frozen"):
            frames.append(frame)
        frame = frame.f_back
    return frames


class GraphGrowthCollector(Collector):
    name = "graph_growth"
    default_every = 5

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []

    def before_step(self, step: int) -> None:
        if not self.due(step) or len(self.records) >= MAX_RECORDS:
            return
        for frame in script_frames(sys._getframe(1)):
            found = 0
            for name, value in list(frame.f_locals.items()):
                if found >= MAX_TENSORS_PER_FRAME:
                    break
                if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                    found += 1
                    self.records.append({"step": step, "name": f"{frame.f_code.co_name}:{name}", "nodes": graph_size(value.grad_fn)})

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "max_nodes": MAX_NODES, "records": self.records}
