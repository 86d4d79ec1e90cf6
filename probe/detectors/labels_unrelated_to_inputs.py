"""
## What it detects
Training targets that do not follow from the model's inputs, measured on the distinct rows the
script trained on: a row's nearest other row (standardised features) has the same class no more
often than two rows drawn at random do, or, for a one-value regression target, a row's target
does not correlate with its neighbour's. Either way within `max_z` standard errors of what
labels independent of the inputs give, on at least `min_rows` distinct rows.

## Why it matters
A nearest-neighbour classifier finds structure in almost any real dataset: in the raw pixels of
MNIST or CIFAR and in tabular features its leave-one-out agreement is well above chance. When it
is at chance, row i of the inputs and row i of the targets belong to different samples (features
shuffled or sorted without their labels, labels taken from another split), and no model can
learn more than the label frequencies.

## Thresholds
- `max_z` = 2: agreement at most 2 standard errors above the independent-labels value (for
  classes: the chance p two distinct rows share a class, standard error sqrt(p(1-p)/n); for
  regression: correlation 0, standard error 1/sqrt(n)).
- `min_rows` = 100: fewer distinct rows are not judged.
Cover & Hart, "Nearest neighbor pattern classification" (IEEE Trans. Inf. Theory, 1967): the
1-NN error is at most twice the Bayes error, so targets that depend on the inputs lift the
agreement above chance. It is ML106's static hypothesis.
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_z": 2.0, "min_rows": 100}


def judge(stats: Stats, t: dict) -> Judgement:
    sample = stats.collector("training_sample")
    found = sample.get("neighbours") or {}
    if sample.get("skipped"):
        return Judgement("ML932", (), False, f"no sample of the training rows: {sample['skipped']}")
    if found.get("agreement") is None or found["rows"] < t["min_rows"]:
        rows = found.get("rows", 0)
        return Judgement("ML932", (), False, f"{rows} distinct training rows with their targets were sampled, too few to judge" if found else "")
    n, agreement, independent = found["rows"], found["agreement"], found["independent"]
    if found["task"] == "classification":
        error = math.sqrt(max(independent * (1 - independent), 1e-12) / n)
        what = f"a row's nearest neighbour has the same class in {fmt(100 * agreement)}% of {n} distinct rows"
        expected = f"{fmt(100 * independent)}% for labels independent of the inputs"
    else:
        error = 1 / math.sqrt(n)
        what = f"a row's target correlates {fmt(agreement)} with its nearest neighbour's over {n} distinct rows"
        expected = "about 0 for targets independent of the inputs"
    measured = f"{what} ({expected})"
    observed = ()
    if agreement <= independent + t["max_z"] * error:
        observed = (Observed(f"the targets do not follow from the inputs: {measured}", None, 0),)
    return Judgement("ML932", observed, True, measured)
