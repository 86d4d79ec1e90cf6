"""Short epochs, so that what a script does once per epoch happens inside the step budget.

Most findings about evaluation (`eval()` left on, evaluation with autograd on), schedulers stepped
per epoch and batch order across epochs are tested by code that runs at the end of an epoch; with
an epoch of 469 batches and a budget of 50 steps it never runs. Like PyTorch Lightning's
`limit_train_batches`, each pass over a DataLoader that is longer than the budget allows ends after
`batches_per_epoch(budget)` batches, so a run sees at least `EPOCHS_IN_BUDGET` epochs. Loaders
that fit the budget are untouched, and the number of shortened passes is reported in the stats.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

EPOCHS_IN_BUDGET = 4
MIN_BATCHES_PER_EPOCH = 5


def batches_per_epoch(budget: int) -> int:
    return max(MIN_BATCHES_PER_EPOCH, budget // EPOCHS_IN_BUDGET)


class ShortEpochs:
    """Wraps `DataLoader.__iter__` while installed (see Session.install); `on_pass(loader)` is
    told of every pass over a loader."""

    def __init__(self, budget: int, on_pass: Callable[[Any], None] = lambda loader: None) -> None:
        self.cap = batches_per_epoch(budget)
        self.budget = budget
        self.on_pass = on_pass
        self.shortened = 0  # passes over a loader that were ended early

    def wrap_iter(self, original: Any) -> Any:
        def __iter__(loader: Any) -> Iterator:
            self.on_pass(loader)
            iterator = original(loader)
            try:
                length = len(loader)
            except TypeError:  # an IterableDataset without a length: the script decides
                return iterator
            return self._shortened(iterator) if length > self.budget else iterator

        return __iter__

    def _shortened(self, iterator: Iterator) -> Iterator:
        for count, batch in enumerate(iterator, start=1):
            yield batch
            if count >= self.cap:
                self.shortened += 1
                return

    def to_json(self) -> dict[str, Any]:
        return {"batches_per_epoch": self.cap, "shortened_epochs": self.shortened}
