"""Optimizers built over the same parameters, and how many steps each took: a script that builds
`torch.optim.Adam(model.parameters())` inside its batch loop gets a fresh optimizer, with empty
state, at every step.

Each construction (`torch.optim.Optimizer.__init__`) is keyed by the identity of its parameter
set (the ids of its parameters, with a weak reference to one of them so that a new model whose
tensors reuse a freed model's addresses starts a new set). For each set: how many optimizers were
built and when, their classes, how many steps each took (the newest one's so far), and which
per-parameter state the optimizers keep between steps (read from an optimizer's state after its
first step: `exp_avg`, `momentum_buffer`...; none for SGD without momentum, which a rebuild
cannot reset). A construction costs one pass over its parameters, a step one dictionary look-up.
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch

from . import Collector

# Parameter sets followed at most; constructions over further sets are only counted.
MAX_PARAM_SETS = 64


class _ParamSet:
    """The optimizers built over one set of parameters."""

    def __init__(self, params: list[torch.Tensor], step: int) -> None:
        self.anchor = weakref.ref(params[0])
        self.params = len(params)
        self.values = sum(p.numel() for p in params)
        self.classes: list[str] = []
        self.constructions = 0
        self.first_built = self.last_built = step
        self.finished: dict[int, int] = {}  # steps taken -> optimizers that took that many (all but the newest)
        self.newest: Optional[int] = None  # id() of the newest optimizer over the set
        self.newest_steps = 0
        self.state: Optional[list[str]] = None  # per-parameter state kept between steps, once an optimizer stepped

    def retire_newest(self) -> None:
        if self.newest is not None:
            self.finished[self.newest_steps] = self.finished.get(self.newest_steps, 0) + 1
            self.newest, self.newest_steps = None, 0

    def to_json(self) -> dict[str, Any]:
        taken = dict(self.finished)
        if self.newest is not None:
            taken[self.newest_steps] = taken.get(self.newest_steps, 0) + 1
        return {
            "params": self.params, "values": self.values, "classes": self.classes,
            "constructions": self.constructions, "first_built_at_step": self.first_built, "last_built_at_step": self.last_built,
            "steps_taken": [[steps, optimizers] for steps, optimizers in sorted(taken.items())],
            "state": self.state,
        }


def kept_state(optimizer: Any) -> list[str]:
    """The names of the per-parameter state an optimizer keeps between steps (a tensor under any
    key but the step count), read from the first parameter that has such state."""
    for state in optimizer.state.values():
        if isinstance(state, dict):
            names = sorted(str(key) for key, value in state.items() if key != "step" and isinstance(value, torch.Tensor))
            if names:
                return names
    return []


class OptimizerConstructionCollector(Collector):
    name = "optimizer_constructions"

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.sets: list[_ParamSet] = []
        self.untracked = 0  # constructions over parameter sets beyond MAX_PARAM_SETS
        self._by_ids: dict[frozenset[int], _ParamSet] = {}
        self._newest: dict[int, _ParamSet] = {}  # id(optimizer) -> its set, for the newest optimizer of each set

    def on_construction(self, optimizer: Any, step: int) -> None:
        """At the end of `torch.optim.Optimizer.__init__`; `step`: the optimizer steps taken so far."""
        stale = self._newest.pop(id(optimizer), None)  # an optimizer freed without a successor had this address
        if stale is not None:
            stale.retire_newest()
        params = [p for group in optimizer.param_groups for p in group.get("params", []) if isinstance(p, torch.Tensor)]
        if not params:
            return
        ids = frozenset(id(p) for p in params)
        found = self._by_ids.get(ids)
        if found is None or found.anchor() is None:  # never seen, or freed tensors whose addresses were reused
            if len(self.sets) >= MAX_PARAM_SETS:
                self.untracked += 1
                return
            found = self._by_ids[ids] = _ParamSet(params, step)
            self.sets.append(found)
        if found.newest is not None:
            self._newest.pop(found.newest, None)
            found.retire_newest()
        found.constructions += 1
        found.last_built = step
        if type(optimizer).__name__ not in found.classes:
            found.classes.append(type(optimizer).__name__)
        found.newest = id(optimizer)
        self._newest[id(optimizer)] = found

    def after_step(self, optimizer: Any) -> None:
        found = self._newest.get(id(optimizer))
        if found is None:  # an older optimizer of its set, or no optimizer (hand-written updates)
            return
        found.newest_steps += 1
        if found.newest_steps == 1 and not found.state:
            found.state = kept_state(optimizer)

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "records": [found.to_json() for found in self.sets], "untracked_constructions": self.untracked}
