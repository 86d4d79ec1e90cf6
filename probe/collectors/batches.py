"""What each training batch holds, at every step: a fingerprint of the model's input (the sum
of its values and their sum weighted by row position, so the same rows in the same order give the
same pair, on the input's device) and the range of the class labels that reach a classification
loss (binary targets too), plus the class counts of the classification losses summed over all
steps (every step, so that rare classes are counted)."""

from __future__ import annotations

import math
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
    """Each row's sum, in float32: one reduction per step. The fingerprint (the sum of the row sums
    and their sum weighted by row position) is formed in float64 on the host when the stats are
    read; the same rows in the same order give the same pair."""
    return x.detach().reshape(x.shape[0], -1).sum(dim=1, dtype=torch.float32)


def fingerprint(sums: list[float]) -> list[float]:
    return [math.fsum(sums), math.fsum(position * value for position, value in enumerate(sums, 1))]


class BatchCollector(Collector):
    name = "batches"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.inputs: list[list[Any]] = []  # [step, batch size, sum, weighted sum]
        self.labels: list[list[Any]] = []  # [step, batch size, lowest label, highest label]
        self._label_steps: set[int] = set()
        # number of classes -> summed counts on the device: [negative labels, class 0, ..., class C-1, labels >= C]
        self._counts: dict[int, torch.Tensor] = {}
        self._count_calls = 0
        self._pending: list[tuple[int, Optional[int], torch.Tensor]] = []  # (labels index, classes or None, copied labels)

    def on_model_input(self, step: int, args: tuple) -> None:
        x = args[0] if args else None
        if not self.due(step) or len(self.inputs) >= MAX_STEPS or not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] < 1:
            return
        if not x.is_floating_point():  # token ids: a stateful sequence model keeps its order on purpose
            return
        self.inputs.append([step, int(x.shape[0]), None, None])
        self.buffer.add(("input", len(self.inputs) - 1), row_sums(x))

    def on_loss_call(self, step: int, kind: str, input: Any, target: Any) -> None:
        """The labels of the first classification loss call of each training step."""
        if not self.due(step) or step in self._label_steps or len(self.labels) >= MAX_STEPS:
            return
        if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor) or target.numel() == 0:
            return
        t = target.detach().reshape(-1)
        classes = None
        if kind in CLASSIFICATION and not t.is_floating_point() and input.dim() >= 2 and input.shape[1] <= MAX_CLASSES:
            classes = input.shape[1]
            self._count_calls += 1
        elif kind not in BINARY:
            return
        self._label_steps.add(step)
        self.labels.append([step, int(t.numel()), None, None])
        self._pending.append((len(self.labels) - 1, classes, t.clone() if t.numel() <= MAX_PENDING_VALUES else t))
        if len(self._pending) >= PENDING_LABELS or t.numel() > MAX_PENDING_VALUES:
            self._summarise_labels()

    def _summarise_labels(self) -> None:
        """Each pending step's lowest and highest label, and the class counts, from stacked copies."""
        groups: dict[tuple, list[tuple[int, Optional[int], torch.Tensor]]] = {}
        for pending in self._pending:
            groups.setdefault((pending[1], pending[2].numel(), pending[2].dtype, pending[2].device), []).append(pending)
        self._pending = []
        for (classes, _, _, device), members in groups.items():
            stacked = torch.stack([labels for _, _, labels in members])
            low, high = torch.aminmax(stacked, dim=1)
            self.buffer.add(("labels", tuple(index for index, _, _ in members)), torch.stack([low, high], dim=1))
            if classes is None:
                continue
            counts = self._counts.get(classes)
            if counts is None or counts.device != device:
                counts = self._counts[classes] = torch.zeros(classes + 2, dtype=torch.float64, device=device)
            bins = stacked.reshape(-1).long().clamp(-1, classes).add_(1)  # out-of-range labels (ignore_index) go to the end bins
            counts.index_add_(0, bins, torch.ones((), dtype=torch.float64, device=device).expand(bins.numel()))

    def flush(self) -> dict[str, Any]:
        self._summarise_labels()
        for (kind, index), values in self.buffer.drain():
            if kind == "input":
                self.inputs[index][2:] = fingerprint(values)
                continue
            for position, labels_index in enumerate(index):
                self.labels[labels_index][2:] = values[2 * position : 2 * position + 2]
        counts = {str(classes): [int(c) for c in total[1:-1].tolist()] for classes, total in self._counts.items()}
        return {"every": self.every, "inputs": self.inputs, "labels": self.labels,
                "class_counts": counts, "count_calls": self._count_calls}
