"""What each training batch holds, at every step: a fingerprint of the model's input (the sum
of its values and their sum weighted by row position, so the same rows in the same order give the
same pair, on the input's device) and the range of the class labels that reach a classification
loss (binary targets too), plus the class counts of the classification losses summed over all
steps (every step, so that rare classes are counted)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector
from .loss_inputs import BINARY, CLASSIFICATION

# Steps recorded at most (four numbers each).
MAX_STEPS = 5000
MAX_CLASSES = 1000
# Label tensors copied and summarised together, every PENDING_LABELS steps and when the stats are
# read (a few stacked reductions instead of a dozen small ones per step); larger targets
# (segmentation masks) are summarised at once.
PENDING_LABELS = 64
MAX_PENDING_VALUES = 1 << 14


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """Each row's sum, in float32: one reduction per step. The fingerprints (the sum of the row
    sums and their sum weighted by row position) are formed together in float64 on the host when
    the stats are read; the same rows in the same order give the same pair."""
    if x.requires_grad:
        x = x.detach()
    if x.dim() == 1:
        x = x.reshape(-1, 1)
    return x.sum(dim=tuple(range(1, x.dim())), dtype=torch.float32)


def fingerprints(sums: torch.Tensor) -> list[list[float]]:
    """[sum, sum weighted by row position] of each row of row sums (steps x batch size)."""
    sums = sums.to("cpu", torch.float64)
    positions = torch.arange(1, sums.shape[1] + 1, dtype=torch.float64)
    return torch.stack([sums.sum(dim=1), (sums * positions).sum(dim=1)], dim=1).tolist()


class BatchCollector(Collector):
    name = "batches"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.inputs: list[list[Any]] = []  # [step, batch size, sum, weighted sum]
        self.labels: list[list[Any]] = []  # [step, batch size, lowest label, highest label]
        self._label_step = -1  # the latest step whose labels were recorded
        # number of classes -> summed counts on the device: [negative labels, class 0, ..., class C-1, labels >= C]
        self._counts: dict[int, torch.Tensor] = {}
        self._count_calls = 0
        self._pending: list[tuple[int, Optional[int], torch.Tensor]] = []  # (labels index, classes or None, copied labels)
        self._pending_inputs: list[tuple[int, torch.Tensor]] = []  # (inputs index, row sums on the input's device)

    def on_model_input(self, step: int, args: tuple) -> None:
        x = args[0] if args else None
        if not self.due(step) or len(self.inputs) >= MAX_STEPS or not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] < 1:
            return
        if not x.is_floating_point():  # token ids: a stateful sequence model keeps its order on purpose
            return
        self._pending_inputs.append((len(self.inputs), row_sums(x)))
        self.inputs.append([step, int(x.shape[0]), None, None])

    def on_loss_call(self, step: int, kind: str, input: Any, target: Any) -> None:
        """The labels of the first classification loss call of each training step."""
        if not self.due(step) or step == self._label_step or len(self.labels) >= MAX_STEPS:
            return
        if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
            return
        size = target.numel()
        if size == 0:
            return
        classes = None
        if kind in CLASSIFICATION and not target.is_floating_point() and input.dim() >= 2 and input.shape[1] <= MAX_CLASSES:
            classes = input.shape[1]
            self._count_calls += 1
        elif kind not in BINARY:
            return
        t = target.detach() if target.requires_grad else target
        self._label_step = step
        self.labels.append([step, size, None, None])
        self._pending.append((len(self.labels) - 1, classes, t.clone() if size <= MAX_PENDING_VALUES else t))
        if len(self._pending) >= PENDING_LABELS or size > MAX_PENDING_VALUES:
            self._summarise_labels()

    def _summarise_labels(self) -> None:
        """Each pending step's lowest and highest label, and the class counts, from stacked copies."""
        groups: dict[tuple, list[tuple[int, Optional[int], torch.Tensor]]] = {}
        for pending in self._pending:
            groups.setdefault((pending[1], pending[2].shape, pending[2].dtype, pending[2].device), []).append(pending)
        self._pending = []
        for (classes, _, _, device), members in groups.items():
            stacked = torch.stack([labels for _, _, labels in members]).reshape(len(members), -1)
            low, high = torch.aminmax(stacked, dim=1)
            self.buffer.add(tuple(index for index, _, _ in members), torch.stack([low, high], dim=1))
            if classes is None:
                continue
            counts = self._counts.get(classes)
            if counts is None or counts.device != device:
                counts = self._counts[classes] = torch.zeros(classes + 2, dtype=torch.float64, device=device)
            bins = stacked.reshape(-1).long().clamp(-1, classes).add_(1)  # out-of-range labels (ignore_index) go to the end bins
            counts.index_add_(0, bins, torch.ones((), dtype=torch.float64, device=device).expand(bins.numel()))

    def flush(self) -> dict[str, Any]:
        self._summarise_labels()
        groups: dict[tuple, list[tuple[int, torch.Tensor]]] = {}
        for pending in self._pending_inputs:
            groups.setdefault((pending[1].numel(), pending[1].device), []).append(pending)
        self._pending_inputs = []
        for members in groups.values():
            for (index, _), pair in zip(members, fingerprints(torch.stack([sums for _, sums in members]))):
                self.inputs[index][2:] = pair
        for index, values in self.buffer.drain():
            for position, labels_index in enumerate(index):
                self.labels[labels_index][2:] = values[2 * position : 2 * position + 2]
        counts = {str(classes): [int(c) for c in total[1:-1].tolist()] for classes, total in self._counts.items()}
        return {"every": self.every, "inputs": self.inputs, "labels": self.labels,
                "class_counts": counts, "count_calls": self._count_calls}
