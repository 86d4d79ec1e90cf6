"""DataLoaders and the training loops they feed: which DataLoader calls a loop iterates (through
`enumerate`, `iter`, `zip`, `tqdm`), indexed once per file; the loops that run such a pass epoch
after epoch; whether a loader's dataset streams its own items."""

from __future__ import annotations

import functools
from typing import Union

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts
from mlplint.lint.facts.iterations import IterationCounts
from mlplint.lint.facts.training import MAX_CALL_DEPTH

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
    def training_loaders(self) -> dict[cst.For, list[cst.Call]]:
        """Each training loop (a `for` that runs an optimizer step) over DataLoaders, with the
        DataLoader calls it may iterate, in source order."""
        training = self.facts.training
        fed: dict[cst.For, list[cst.Call]] = {}
        for loop in self.facts.loops:
            if not isinstance(loop, cst.For):
                continue
            loaders = self.loaders(loop.iter)
            if loaders and any(training.is_optimizer_step(node) for node in training.reachable(loop)):
                fed[loop] = loaders
        return fed

    @functools.cached_property
    def training_loops(self) -> dict[cst.Call, list[cst.For]]:
        """Each DataLoader call that feeds a training loop, with those loops in source order."""
        fed: dict[cst.Call, list[cst.For]] = {}
        for loop, loaders in self.training_loaders.items():
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

    def epoch_loops(self, loop: cst.For, loader: cst.Call) -> list[Union[cst.For, cst.While]]:
        """The loops that run a pass of `loop` over `loader` again and again: the next loop around
        it in its function, else the loops around the calls of its function (those that pass the
        loader along, when some do), and so on outwards. Loops that run once (`range(1)`) are left out."""
        found = self._outer_loops(loop, loader, MAX_CALL_DEPTH, set())
        return [outer for outer in dict.fromkeys(found) if not (isinstance(outer, cst.For) and self.iterations(outer.iter) == 1)]

    def _outer_loops(self, node: cst.CSTNode, loader: cst.Call, depth: int, seen: set) -> list[Union[cst.For, cst.While]]:
        facts = self.facts
        enclosing = facts.enclosing_loops(node)
        if enclosing:
            return [enclosing[0]]
        function = facts.enclosing_function(node)
        if function is None or depth == 0 or function in seen:
            return []
        seen.add(function)
        sites = facts.training.caller_sites(function)
        passing = [site for site in sites if any(loader in facts.origins(arg.value) for arg in site.args)]
        return [outer for site in passing or sites for outer in self._outer_loops(site, loader, depth - 1, seen)]
