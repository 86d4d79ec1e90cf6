"""DataLoaders and the training loops they feed: which DataLoader calls a loop iterates (through
`enumerate`, `iter`, `zip`, `tqdm`), indexed once per file."""

from __future__ import annotations

import functools
from typing import Optional, Union

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts
from mlplint.lint.facts.iterations import IterationCounts

ITERATION_WRAPPERS = {"builtins.enumerate", "builtins.iter", "builtins.zip", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm"}


class LoaderAnalysis(IterationCounts):
    def __init__(self, facts: ScriptFacts):
        self.facts = facts

    def loaders(self, iterable: cst.BaseExpression) -> list[cst.Call]:
        """The DataLoader constructor calls an iterated expression may hold."""
        found: list[cst.Call] = []
        for origin in self.facts.origins(iterable):
            if not isinstance(origin, cst.Call):
                continue
            qualified = self.facts.qualname(origin.func)
            if qualified == names.DATALOADER:
                found.append(origin)
            elif qualified in ITERATION_WRAPPERS:
                for arg in origin.args:
                    found.extend(self.loaders(arg.value))
        return list(dict.fromkeys(found))

    @functools.cached_property
    def training_loops(self) -> dict[cst.Call, list[cst.For]]:
        """Each DataLoader call that feeds a training loop (a `for` over it that runs an optimizer
        step), with those loops in source order."""
        training = self.facts.training
        fed: dict[cst.Call, list[cst.For]] = {}
        for loop in self.facts.loops:
            if not isinstance(loop, cst.For):
                continue
            loaders = self.loaders(loop.iter)
            if loaders and any(training.is_optimizer_step(node) for node in training.reachable(loop)):
                for loader in loaders:
                    fed.setdefault(loader, []).append(loop)
        return fed

    def streams(self, loader: cst.Call) -> bool:
        """The loader's dataset is a local IterableDataset subclass: it yields its own items, which
        the loader can neither shuffle nor split across ranks."""
        facts = self.facts
        dataset = facts.argument(loader, 0, "dataset")
        return any(isinstance(cls, cst.ClassDef) and facts.class_bases(cls) & names.ITERABLE_DATASETS
                   for cls in (facts.classes_of(dataset) if dataset is not None else ()))

    def epoch_loop(self, loop: cst.For) -> Optional[Union[cst.For, cst.While]]:
        """The loop that runs a pass over a loader again and again (the next loop around it, in its
        function or around a call of it), None when there is none or it runs once (`range(1)`)."""
        outer = next(self.facts.training.loops_around(loop), None)
        if isinstance(outer, cst.For) and self.iterations(outer.iter) == 1:
            return None
        return outer
