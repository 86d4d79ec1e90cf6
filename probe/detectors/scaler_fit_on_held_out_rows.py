"""
## What it detects
A scikit-learn scaler (StandardScaler, MinMaxScaler, RobustScaler, ...) fitted on rows that the
model is then evaluated on and never trains on (held-out rows), found by following each fitted
row's scaled values to the model's inputs: the scaler was fitted on the test set, or on all the
data before the split.

## Why it matters
The scaler's statistics then include the test rows: the evaluation is no longer on unseen data,
and the score it reports is optimistic (data leakage). Fit the scaler on the training rows only
and apply `transform` to the others.

## Thresholds
- `min_share` = 0.5: the share of the held-out rows the model was evaluated on that a scaler had
  been fitted on.
- `min_rows` = 10: held-out evaluation rows needed to judge.
Kaufman et al., "Leakage in Data Mining" (TKDD 2012) and scikit-learn's "Common pitfalls:
data leakage" guide describe the failure; it is ML103's static hypothesis. Only passes run
without autograd count as evaluation, and only rows whose values reached the model exactly as the
scaler returned them (cast to float32) can be followed.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_share": 0.5, "min_rows": 10}


def judge(stats: Stats, t: dict) -> Judgement:
    collected = stats.collector("scaler_fits")
    fits = collected.get("fits") or []
    held_out = collected.get("held_out_rows", 0)
    if not fits or held_out < t["min_rows"]:
        return Judgement("ML923", (), False, "")
    leaked = collected.get("held_out_rows_fitted", 0)
    classes = ", ".join(sorted({fit["class"] for fit in fits}))
    measured = f"{leaked} of {held_out} held-out evaluation rows were among the rows a scaler ({classes}) was fitted on"
    if leaked < t["min_share"] * held_out:
        return Judgement("ML923", (), True, measured)
    rows = max(fit["rows"] for fit in fits)
    return Judgement("ML923", (Observed(
        f"a {classes} fitted on {rows} rows had seen {leaked} of the {held_out} rows the model was evaluated on "
        f"and never trained on: the scaler's statistics include the test data", None, None),), True, measured)
