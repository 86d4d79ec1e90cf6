"""
## What it detects
Inputs to a loss that expects logits which already look like probabilities: for `cross_entropy`
every value in [0, 1] and every row summing to 1 (a softmax output); for
`binary_cross_entropy_with_logits` every value in [0, 1] (a sigmoid output). A constant input
(e.g. a dead network's bias) says nothing either way and is not counted.

## Why it matters
These losses apply log-softmax or log-sigmoid themselves. Fed probabilities, they squash them a
second time: the loss can never get near 0, gradients are tiny, and training stalls near chance.

## Thresholds
- `row_sum_tolerance` = 1e-3: the largest |row sum - 1| that still counts as a softmax output.
- `min_checks` = 2: consecutive loss-input checks (default every 10 steps) that must show it.
The PyTorch documentation of CrossEntropyLoss ("the input is expected to contain the unnormalized
logits") and BCEWithLogitsLoss states the contract; the double-softmax bug is among the most common
loss faults in Humbatova et al., "Taxonomy of Real Faults in Deep Learning Systems" (ICSE 2020).
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, judge_loss_inputs
from mlplint.probe.stats import Stats

THRESHOLDS = {"row_sum_tolerance": 1e-3, "min_checks": 2}
LOGIT_LOSSES = ("cross_entropy", "binary_cross_entropy_with_logits")


def looks_like_probabilities(record: dict, tolerance: float) -> bool:
    in_unit_range = 0 <= record["input_min"] < record["input_max"] <= 1
    if record["kind"] == "cross_entropy":
        deviation = record.get("row_sum_deviation")
        return in_unit_range and deviation is not None and deviation <= tolerance
    return in_unit_range


def judge(stats: Stats, t: dict) -> Judgement:
    def message(kind: str, low: float, high: float, flags: list[bool]) -> str:
        what = "softmax outputs (in [0, 1], rows summing to 1)" if kind == "cross_entropy" else "sigmoid outputs (all in [0, 1])"
        return f"{kind} expects logits but received {what} in {sum(flags)} of {len(flags)} checks"

    return judge_loss_inputs(stats, "ML914", LOGIT_LOSSES, lambda r: looks_like_probabilities(r, t["row_sum_tolerance"]),
                             message, t["min_checks"])
