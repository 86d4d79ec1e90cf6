"""
## What it detects
Probabilities or log-probabilities normalised over the batch instead of over the classes: a
classification loss (cross_entropy, nll_loss) given an (N, C) input whose columns sum to 1
(its exponential's, for log-probabilities) within `max_column_deviation` while its rows miss 1
by more than `min_row_deviation`, in `min_checks` of the measured calls.

## Why it matters
A softmax over dim 0 makes each class's scores a distribution over the samples of the batch: a
sample's prediction then depends on the other samples it was batched with, the per-sample
probabilities do not sum to 1, and the loss rewards pushing one sample up at the expense of the
others instead of one class over the others. The model learns little, and its predictions
change with the batch size.

## Thresholds
- `max_column_deviation` = 1e-3: the largest |column sum - 1| (float32 sums of a softmax are
  within 1e-5 of 1).
- `min_row_deviation` = 0.01: the largest |row sum - 1| above which the rows are not normalised.
- `min_checks` = 1: one call shows it (a softmax's dim does not change between steps).
PyTorch's `torch.nn.Softmax` documentation: `dim` is the dimension along which the values sum
to 1; it is ML407's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_column_deviation": 1e-3, "min_row_deviation": 0.01, "min_checks": 1}


def normalised_over_batch(record: dict, t: dict) -> str:
    """"probabilities" or "log-probabilities" when the (N, C) input is normalised over its batch, else ""."""
    def over_batch(columns, rows):
        return columns is not None and rows is not None and columns <= t["max_column_deviation"] and rows > t["min_row_deviation"]
    if record["input_min"] >= 0 and over_batch(record.get("column_sum_deviation"), record.get("row_sum_deviation")):
        return "probabilities"
    if record["input_max"] <= 0 and over_batch(record.get("exp_column_sum_deviation"), record.get("exp_row_sum_deviation")):
        return "log-probabilities"
    return ""


def judge(stats: Stats, t: dict) -> Judgement:
    calls = [r for r in stats.records("loss_inputs")
             if r["kind"] in ("cross_entropy", "nll_loss") and len(r["input_shape"]) == 2 and min(r["input_shape"]) >= 2
             and "input_min" in r and r.get("column_sum_deviation") is not None]
    if not calls:
        return Judgement("ML936", (), False, "")
    flagged = [(r, what) for r in calls if (what := normalised_over_batch(r, t))]
    first = calls[0]
    rows, columns = first.get("row_sum_deviation"), first["column_sum_deviation"]
    measured = (f"{first['kind']} input {tuple(first['input_shape'])}: rows {fmt(rows) if rows is not None else 'unknown'} and "
                f"columns {fmt(columns)} from summing to 1")
    if len(flagged) < t["min_checks"]:
        return Judgement("ML936", (), True, measured)
    record, what = flagged[0]
    rows = record["row_sum_deviation"] if what == "probabilities" else record["exp_row_sum_deviation"]
    return Judgement("ML936", (Observed(
        f"{record['kind']} got {what} normalised over the batch: the columns of its {tuple(record['input_shape'])} input sum "
        f"to 1 and its rows miss 1 by up to {fmt(rows)} ({len(flagged)} of {len(calls)} calls)", None, record["step"]),), True, measured)
