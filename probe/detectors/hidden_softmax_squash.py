"""
## What it detects
A softmax between two layers that squashes the signal the next weight layer sees: in the
model's first training forward, a Linear/Conv layer whose input is a softmax of a wider signal,
with the per-unit spread over the batch after the softmax at most `max_spread_ratio` of the
spread before it.

## Why it matters
A softmax turns its input into a probability vector: with n units every value is about 1/n, so
the layer after it sees a signal n times smaller than before and the gradient that flows back
through the softmax (its Jacobian, diag(p) - p p^T) is as small. The network learns slowly or
stalls; a ReLU, GELU or tanh between hidden layers does not shrink the signal. A softmax that
produces attention weights (multiplied with values, not fed to a layer) and one on the model's
output are not judged here.

## Thresholds
- `max_spread_ratio` = 0.1: mean per-unit standard deviation after the softmax over that before
  it (a ReLU keeps about half).
- `min_units` = 4: the softmax must run over at least this many units.
Goodfellow, Bengio & Courville, "Deep Learning" (2016), section 6.2.2.3 (softmax units for
output distributions) and 6.3 (hidden units); it is ML308's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_spread_ratio": 0.1, "min_units": 4}


def judge(stats: Stats, t: dict) -> Judgement:
    fed = [r for r in stats.records("init_signal") if r.get("after_softmax") and "softmax_input_spread" in r and r["fan_in"] >= t["min_units"]]
    observed, measured = [], []
    for record in fed:
        ratio = record["softmax_output_spread"] / max(record["softmax_input_spread"], 1e-30)
        measured.append(f"layer '{record['layer']}' takes a softmax over {record['fan_in']} units: spread {fmt(ratio)}x")
        if ratio <= t["max_spread_ratio"]:
            observed.append(Observed(
                f"a softmax over {record['fan_in']} hidden units shrinks the signal layer '{record['layer']}' sees "
                f"{fmt(1 / max(ratio, 1e-30))}x: per-unit spread {fmt(record['softmax_input_spread'])} before it, "
                f"{fmt(record['softmax_output_spread'])} after it",
                stats.layer_label(record["model"], record["layer"]), 0,
            ))
    checked = any(r.get("model") for r in stats.records("init_signal"))
    return Judgement("ML930", tuple(observed), checked, "; ".join(measured) or "no weight layer takes a softmax's output")
