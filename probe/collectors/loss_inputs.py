"""What reaches the loss functions: for each call of a torch.nn.functional loss (the loss modules
call these too) on a measured step, the input and target shapes, the input's range, how far the
input's rows are from summing to 1 (classification losses), the targets' class counts, and the
value the call returned (when it is one number)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector

# torch.nn.functional losses that are instrumented, by the task they assume (the other collectors
# that judge loss calls take these groups from here).
CLASSIFICATION = ("cross_entropy", "nll_loss")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
REGRESSION = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
ELEMENTWISE = REGRESSION + BINARY
LOSS_FUNCTIONS = CLASSIFICATION + ELEMENTWISE
# Calls recorded per loss kind and step at most (a loss in a Python loop over samples stays cheap).
MAX_CALLS_PER_STEP = 2
# Targets with more distinct classes than this are not counted.
MAX_CLASSES = 1000
# Values of an (N, C) input whose exponential is summed (1M values, 4 MB as float32).
MAX_EXP_VALUES = 1 << 20
DEVIATIONS = ("row_sum_deviation", "column_sum_deviation", "exp_row_sum_deviation", "exp_column_sum_deviation")


def loss_input_summary(kind: str, input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, str]:
    """[min, max, row_sum_deviation, column_sum_deviation, exp_row_sum_deviation,
    exp_column_sum_deviation, class counts...] on the input's device, and what the counts are
    ("classes", "binary" or "none"). The deviations are how far the sums over the classes (rows)
    and over the batch (columns, (N, C) inputs only) of the input, and of its exponential (for
    log-probabilities), are from 1; -1 where they do not apply."""
    x = input.detach().float()
    device = x.device
    unknown = torch.full((), -1.0, device=device)
    deviations = [unknown] * 4
    if kind in CLASSIFICATION and x.dim() >= 2:
        deviations[0] = (x.sum(dim=1) - 1).abs().max()
        if x.dim() == 2 and x.shape[0] * x.shape[1] <= MAX_EXP_VALUES:  # (N, C) scores: an LM's logits are too many
            exp = x.exp()
            deviations[1] = (x.sum(dim=0) - 1).abs().max()
            deviations[2] = (exp.sum(dim=1) - 1).abs().max()
            deviations[3] = (exp.sum(dim=0) - 1).abs().max()
    parts = [x.min(), x.max(), *deviations]
    counts_kind = "none"
    t = target.detach()
    if kind in CLASSIFICATION and not t.is_floating_point() and x.dim() >= 2 and x.shape[1] <= MAX_CLASSES:
        labels = t.reshape(-1)
        labels = labels[(labels >= 0) & (labels < x.shape[1])]
        parts.append(torch.bincount(labels, minlength=x.shape[1]).float().to(device))
        counts_kind = "classes"
    elif kind in BINARY:
        t = t.float().reshape(-1)
        parts.append(torch.stack([(t == 0).sum(), (t == 1).sum(), torch.tensor(t.numel(), device=t.device)]).float().to(device))
        counts_kind = "binary"
    flat = [p.reshape(-1) for p in parts]
    return torch.cat(flat), counts_kind


class LossInputCollector(Collector):
    name = "loss_inputs"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []
        self._calls: dict[tuple[str, int], int] = {}

    def on_loss_call(self, step: int, kind: str, input: Any, target: Any, reduction: Any, failing: bool = False) -> bool:
        """Record a call's inputs on a measured step, or whenever the call is `failing` (the loss
        raised on them); True when it was recorded (its value is then `on_loss_value`)."""
        if not (failing or self.due(step)) or not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
            return False
        if input.numel() == 0 or not input.is_floating_point():
            return False
        key = (kind, step)
        if self._calls.get(key, 0) >= MAX_CALLS_PER_STEP and not failing:
            return False
        self._calls[key] = self._calls.get(key, 0) + 1
        values, counts_kind = loss_input_summary(kind, input, target)
        self.records.append({
            "step": step,
            "kind": kind,
            "input_shape": list(input.shape),
            "target_shape": list(target.shape),
            "target_dtype": str(target.dtype).replace("torch.", ""),
            "reduction": reduction if isinstance(reduction, str) else None,
            "training": torch.is_grad_enabled(),
            "counts_kind": counts_kind,
        })
        self.buffer.add(len(self.records) - 1, values)
        return True

    def on_loss_value(self, value: Any) -> None:
        """The value the latest recorded call returned."""
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            self.buffer.add(("value", len(self.records) - 1), value.detach())

    def flush(self) -> dict[str, Any]:
        for index, values in self.buffer.drain():
            if isinstance(index, tuple):
                self.records[index[1]]["value"] = values[0]
                continue
            record = self.records[index]
            counts_kind = record.pop("counts_kind")
            record["input_min"], record["input_max"] = values[0], values[1]
            for name, value in zip(DEVIATIONS, values[2:6]):
                record[name] = value if value >= 0 else None  # -1 (does not apply) and NaN are unknown
            counts = [int(c) for c in values[6:]]
            record["class_counts"] = counts if counts_kind == "classes" else None
            record["binary_counts"] = counts if counts_kind == "binary" else None
        return {"every": self.every, "records": self.records}
