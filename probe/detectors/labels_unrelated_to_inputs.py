"""
## What it detects
Training targets that do not follow from the model's inputs, measured on the distinct rows the
script trained on: rows whose nearest other row (standardised features) has the same class no
more often than labels drawn independently of the inputs would give, or, for a one-value
regression target, a target that does not correlate with its neighbour's. Either way at most
`max_z` standard errors above the independent-labels value, on at least `min_rows` distinct
rows. Reported only as evidence for a static finding (ML106): random demo data has labels
unrelated to its inputs by design.

## Why it matters
A nearest-neighbour classifier finds structure in almost any real dataset: in the raw pixels of
MNIST or CIFAR and in tabular features its leave-one-out agreement is well above chance. When it
is at chance, row i of the inputs and row i of the targets belong to different samples (features
shuffled or sorted without their labels, labels taken from another split), and no model can
learn more than the label frequencies.

## Thresholds
- `max_z` = 2: classes: z = sum_k (S_k - n_k q_k) / sqrt(sum_k n_k q_k (1 - q_k)), where class k
  has n_k rows, S_k of them with a same-class neighbour, and q_k = (n_k - 1) / (n - 1) is the
  chance under independence (each class weighs by its own variance, so a rare class that the
  features separate lifts z even when one class dominates); regression: z = r sqrt(n).
- `min_rows` = 100: fewer distinct rows are not judged; classes need `min_class_rows` = 5 rows
  each, in at least two classes.
Cover & Hart, "Nearest neighbor pattern classification" (IEEE Trans. Inf. Theory, 1967): the
1-NN error is at most twice the Bayes error, so targets that depend on the inputs lift the
agreement above chance. It is ML106's static hypothesis.
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_z": 2.0, "min_rows": 100, "min_class_rows": 5}


def judge(stats: Stats, t: dict) -> Judgement:
    sample = stats.collector("training_sample")
    found = sample.get("neighbours") or {}
    if sample.get("skipped"):
        return Judgement("ML932", (), False, f"no sample of the training rows: {sample['skipped']}")
    if found.get("agreement") is None or found["rows"] < t["min_rows"]:
        rows = found.get("rows", 0)
        return Judgement("ML932", (), False, f"{rows} distinct training rows with their targets were sampled, too few to judge" if found else "")
    n, agreement = found["rows"], found["agreement"]
    if found["task"] == "classification":
        classes = [(rows, agreeing) for rows, agreeing in zip(found.get("class_rows", []), found.get("class_agreeing", []))
                   if rows >= t["min_class_rows"]]
        if len(classes) < 2:
            return Judgement("ML932", (), False, f"the {n} sampled rows hold fewer than two classes of {t['min_class_rows']} rows or more")
        chance = [(rows, agreeing, (rows - 1) / (n - 1)) for rows, agreeing in classes]
        variance = sum(rows * q * (1 - q) for rows, _, q in chance)
        z = sum(agreeing - rows * q for rows, agreeing, q in chance) / math.sqrt(max(variance, 1e-12))
        measured = (f"a row's nearest neighbour has the same class in {fmt(100 * agreement)}% of {n} distinct rows "
                    f"({fmt(100 * found['independent'])}% for labels independent of the inputs; z = {fmt(z)})")
    else:
        z = agreement * math.sqrt(n)
        measured = (f"a row's target correlates {fmt(agreement)} with its nearest neighbour's over {n} distinct rows "
                    f"(about 0 for targets independent of the inputs; z = {fmt(z)})")
    observed = (Observed(f"the targets do not follow from the inputs: {measured}", None, 0),) if z <= t["max_z"] else ()
    return Judgement("ML932", observed, True, measured)
