"""
## What it detects
Loss inputs that do not fit the loss's task: a regression loss (MSE, L1, Huber, SmoothL1) whose
targets are class labels (whole numbers taking only a few values, 0, 1, 2, ...), or a
classification loss given float targets that are not class probabilities (values outside [0, 1]
or rows that do not sum to 1). Read from the targets that reach the loss.

## Why it matters
Regressing class ids treats "class 2" as twice "class 1" and predicts in-between values that are
no class at all; cross-entropy against values that are not probabilities is not a likelihood of
anything, and its minimum is not where the targets are.

## Thresholds
- `max_classes` = 20 and `min_classes` = 2: distinct whole-number target values that read as
  class labels (a count or a rating with more values is a regression target).
- `min_integral_share` = 1.0: share of whole-number targets (all of them).
- `max_row_deviation` = 1e-3: a row of float class targets further than this from summing to 1,
  or a value outside [0, 1], is not a probability.
- `min_checks` = 2: loss calls (default every 5 steps) that must show it.
Goodfellow, Bengio & Courville, "Deep Learning" (2016), section 6.2.2 (output units and their
losses: Gaussian/MSE for real values, softmax/cross-entropy for classes); it is ML405's static
hypothesis. Targets of shape (N, C) with a regression loss (one-hot targets) are left out.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_classes": 20, "min_classes": 2, "min_integral_share": 1.0, "max_row_deviation": 1e-3, "min_checks": 2}


def _labels_like(record: dict, t: dict) -> bool:
    shape = record["target_shape"]
    column = len(shape) <= 1 or (len(shape) == 2 and shape[1] == 1)
    return (column and record["integral_share"] >= t["min_integral_share"] and record["min"] >= 0
            and t["min_classes"] <= record["distinct"] <= t["max_classes"] and record["max"] <= t["max_classes"])


def _not_probabilities(record: dict, t: dict) -> bool:
    return record["min"] < 0 or record["max"] > 1 or record["row_sum_deviation"] > t["max_row_deviation"]


def judge(stats: Stats, t: dict) -> Judgement:
    records = [r for r in stats.records("loss_targets") if r.get("training", True) and "min" in r]
    regression = [r for r in records if r["targets"] == "regression"]
    probabilities = [r for r in records if r["targets"] == "probabilities"]
    if not regression and not probabilities:
        return Judgement("ML927", (), False, "")
    observed, measured = [], []
    if regression:
        labels = [r for r in regression if _labels_like(r, t)]
        distinct = max(r["distinct"] for r in regression)
        measured.append(f"regression targets: {fmt(distinct)} distinct values at most per batch, "
                        f"{min(r['integral_share'] for r in regression):.0%} whole numbers at least")
        if len(labels) >= t["min_checks"]:
            first = labels[0]
            observed.append(Observed(
                f"{first['kind']} got whole-number targets with only {int(max(r['distinct'] for r in labels))} distinct values "
                f"({fmt(min(r['min'] for r in labels))} to {fmt(max(r['max'] for r in labels))}): class labels regressed as numbers",
                None, first["step"]))
    if probabilities:
        bad = [r for r in probabilities if _not_probabilities(r, t)]
        measured.append(f"float class targets between {fmt(min(r['min'] for r in probabilities))} and {fmt(max(r['max'] for r in probabilities))}")
        if len(bad) >= t["min_checks"]:
            first = bad[0]
            observed.append(Observed(
                f"{first['kind']} got float targets from {fmt(first['min'])} to {fmt(first['max'])} whose rows are "
                f"{fmt(first['row_sum_deviation'])} from summing to 1: continuous values, not class probabilities", None, first["step"]))
    return Judgement("ML927", tuple(observed), True, "; ".join(measured))
