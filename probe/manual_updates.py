"""Training loops with no optimizer: `loss.backward()` followed by a hand-written update
(`w -= lr * w.grad`), as in from-scratch tutorials and courses.

While the script has constructed no `torch.optim.Optimizer`, each backward pass is one step. The
parameters are the leaf tensors that a backward pass reaches (read from its autograd graph) and
that the script then changed in place before the next one (`w -= lr * w.grad`, not a fresh
`x = x + eps * x.grad.sign()`), named after the script's global variables where one holds them.
From the second backward on, the collectors and detectors see these steps as they see an
optimizer's. A script that builds or steps an optimizer leaves this mode for good.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import torch

# Nodes of a backward's graph visited at most when looking for its leaf tensors.
MAX_GRAPH_NODES = 100_000
# Backward passes watched for an in-place update before the script is taken for one that trains nothing.
MAX_WATCHED_BACKWARDS = 5


class HandWrittenUpdates:
    """Stands for an optimizer (the parts of its interface the tracker reads)."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.param_groups = [{"params": params, "lr": None}]


def graph_leaves(loss: torch.Tensor) -> list[torch.Tensor]:
    """The tensors that a backward pass from `loss` accumulates gradients into, in graph order."""
    leaves: list[torch.Tensor] = []
    seen: set[int] = set()
    pending = [loss.grad_fn]
    while pending and len(seen) < MAX_GRAPH_NODES:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)  # an AccumulateGrad node
        if isinstance(variable, torch.Tensor):
            leaves.append(variable)
        pending.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def global_names() -> dict[int, str]:
    """id(tensor) -> the name of the script's global variable that holds it."""
    script = sys.modules.get("__main__")
    values = vars(script).items() if script is not None else ()
    return {id(value): name for name, value in values if isinstance(value, torch.Tensor) and not name.startswith("_")}


class ManualSteps:
    def __init__(self) -> None:
        self.optimizers_seen = 0  # optimizers built, or stepped (one built before the probe started)
        self.updates: Optional[HandWrittenUpdates] = None  # once the updated parameters are known
        self.open = False  # a step measured before its hand-written update
        self._watched: list[tuple[torch.Tensor, torch.Tensor]] = []  # (leaf, its value at the last backward)
        self._backwards = 0

    @property
    def active(self) -> bool:
        return self.optimizers_seen == 0

    def wrap_optimizer_init(self, original: Any) -> Any:
        def __init__(optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> None:
            self.optimizers_seen += 1
            original(optimizer, *args, **kwargs)

        return __init__

    def before_backward(self, loss: Any) -> Optional[HandWrittenUpdates]:
        """The parameters a hand-written update changes, once a backward pass shows them: the
        leaves watched since the previous backward whose values changed in place."""
        if self.updates is not None or self._backwards >= MAX_WATCHED_BACKWARDS:
            return self.updates
        self._backwards += 1
        changed = [leaf for leaf, before in self._watched if not torch.equal(leaf.detach(), before)]
        if changed:
            self.updates = HandWrittenUpdates(changed)
            self._watched = []
        elif isinstance(loss, torch.Tensor) and loss.grad_fn is not None:
            self._watched = [(leaf, leaf.detach().clone()) for leaf in graph_leaves(loss) if leaf.requires_grad]
        return self.updates

    def to_json(self) -> dict[str, Any]:
        return {"hand_written_updates": self.updates is not None and self.active}
