"""
## What it detects
Regression targets on a scale the model's first predictions are nowhere near: at the first
training call of a regression loss (mse, l1, smooth_l1, huber) that the probe measures, the
targets reach a magnitude of at least `min_magnitude` and at least `min_ratio` times the largest
prediction.

## Why it matters
A freshly initialised network predicts values of about unit size. Targets in the hundreds of
thousands (house prices, salaries) start with a squared error near 1e10: the gradients are huge,
an ordinary learning rate diverges, and a small one leaves the hidden layers untrained while the
last bias crawls towards the mean. Standardising the targets (or dividing them by a fixed scale,
or taking their log) and undoing it on the predictions fixes it; a model that scales its own
outputs up (`model(x) * 1e5`) predicts on the targets' scale and is not reported.

## Thresholds
- `min_magnitude` = 1000: the largest |target|, as in ML105's `max-magnitude`.
- `min_ratio` = 100: the largest |target| over the largest |prediction| at that call.
LeCun, Bottou, Orr & Müller, "Efficient BackProp" (1998), section 4.5 (targets within the range
of the output units); it is ML105's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_magnitude": 1000.0, "min_ratio": 100.0}


def judge(stats: Stats, t: dict) -> Judgement:
    predictions = {(r["step"], r["kind"]): r for r in stats.records("loss_inputs") if r.get("training", True) and "input_min" in r}
    for record in stats.records("loss_targets"):
        prediction = predictions.get((record["step"], record["kind"]))
        if record["targets"] != "regression" or not record.get("training", True) or "min" not in record or prediction is None:
            continue
        target = max(abs(record["min"]), abs(record["max"]))
        predicted = max(abs(prediction["input_min"]), abs(prediction["input_max"]))
        measured = (f"at step {record['step']} the {record['kind']} targets reach {fmt(target)} and the predictions "
                    f"{fmt(predicted)}")
        if target >= t["min_magnitude"] and target >= t["min_ratio"] * predicted:
            return Judgement("ML935", (Observed(
                f"the regression targets reach {fmt(target)} while the model predicts at most {fmt(predicted)} "
                f"({fmt(target / max(predicted, 1e-30))}x): unscaled targets make the first errors and gradients huge",
                None, record["step"]),), True, measured)
        return Judgement("ML935", (), True, measured)
    return Judgement("ML935", (), False, "")
