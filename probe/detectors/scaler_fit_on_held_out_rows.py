"""
## What it detects
A scikit-learn scaler (StandardScaler, MinMaxScaler, RobustScaler, ...) fitted on rows the model
does not train on, found by following each fitted row's scaled values to the model:
- rows the model is evaluated on and never trains on (held-out rows): the scaler was fitted on
  the test set, or on all the data before the split;
- or, before any evaluation has run, rows outside the training set of the DataLoader the model
  trains from (a TensorDataset, whose rows are all known), while that training set was fitted
  too: the scaler was fitted on more rows than the model trains on.

## Why it matters
The scaler's statistics then include the test rows: the evaluation is no longer on unseen data,
and the score it reports is optimistic (data leakage). Fit the scaler on the training rows only
and apply `transform` to the others.

## Thresholds
- `min_share` = 0.5: the share of the held-out rows the model was evaluated on that a scaler had
  been fitted on (and the share of the training set it must have been fitted on).
- `min_rows` = 10: held-out evaluation rows needed to judge, and fitted rows outside the
  training set needed to report them.
- `min_extra_share` = 0.05: those rows as a share of the training set (a scaler fitted on a few
  rows the loader drops, `drop_last`, is not a leak).
Kaufman et al., "Leakage in Data Mining" (TKDD 2012) and scikit-learn's "Common pitfalls:
data leakage" guide describe the failure; it is ML103's static hypothesis. Only passes run
without autograd count as evaluation, and only rows whose values reached the model exactly as the
scaler returned them (cast to float32) can be followed.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_share": 0.5, "min_rows": 10, "min_extra_share": 0.05}


def judge(stats: Stats, t: dict) -> Judgement:
    collected = stats.collector("scaler_fits")
    fits = collected.get("fits") or []
    if not fits:
        return Judgement("ML923", (), False, "")
    classes = ", ".join(sorted({fit["class"] for fit in fits}))
    rows = max(fit["rows"] for fit in fits)
    held_out = collected.get("held_out_rows", 0)
    if held_out >= t["min_rows"]:
        leaked = collected.get("held_out_rows_fitted", 0)
        measured = f"{leaked} of {held_out} held-out evaluation rows were among the rows a scaler ({classes}) was fitted on"
        if leaked < t["min_share"] * held_out:
            return Judgement("ML923", (), True, measured)
        return Judgement("ML923", (Observed(
            f"a {classes} fitted on {rows} rows had seen {leaked} of the {held_out} rows the model was evaluated on "
            f"and never trained on: the scaler's statistics include the test data", None, None),), True, measured)
    training = collected.get("training_data_rows", 0)
    if training < t["min_rows"]:
        return Judgement("ML923", (), False, "")
    extra, fitted = collected.get("fitted_rows_outside_training_data", 0), collected.get("training_data_rows_fitted", 0)
    measured = f"a scaler ({classes}) was fitted on {fitted} of the {training} training rows and on {extra} rows outside them"
    if fitted < t["min_share"] * training or extra < max(t["min_rows"], t["min_extra_share"] * training):
        return Judgement("ML923", (), True, measured)
    return Judgement("ML923", (Observed(
        f"a {classes} fitted on {rows} rows: {fitted} are the {training} rows of the training set and {extra} are rows "
        f"the model never trains on (held-out data), so the scaling was shaped by them", None, None),), True, measured)
