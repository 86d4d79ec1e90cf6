"""
## What it detects
Model inputs that hardly vary: in every input check of a model, no feature (or channel of an
image batch) has a standard deviation over the batch above `max_std`.

## Why it matters
Weights are initialised for inputs of about unit scale (PyTorch's default and He/Xavier init
assume it), so inputs whose values differ by less than 0.01 give the first layer almost nothing
to tell samples apart: its outputs are nearly the same for every sample, the gradients of the
first layer are as small as the inputs, and training crawls. Pixels that `ToTensor()` already
mapped to [0, 1] and are divided by 255 again vary by about 0.001; so do features put through a
fitted scaler a second time when their raw spread was large. Reported only as the evidence
for ML104: some inputs are small by nature (daily returns vary by about 0.01).

## Thresholds
- `max_std` = 0.01: the largest per-feature standard deviation (unit-variance inputs have 1;
  [0, 1] pixels have 0.2 to 0.4, divided again by 255 about 0.001).
LeCun, Bottou, Orr & Müller, "Efficient BackProp" (1998), section 4.3: inputs should have a
variance of about 1 (and the same for every input). It is ML104's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_std": 0.01}


def judge(stats: Stats, t: dict) -> Judgement:
    by_model: dict[str, list[tuple[int, float]]] = {}
    for record in stats.records("input_features"):
        if record.get("std"):
            by_model.setdefault(record["model"], []).append((record["step"], max(record["std"])))
    observed, measured = [], []
    for model, checks in by_model.items():
        largest = max(std for _, std in checks)
        measured.append(f"the inputs of {model} vary by up to {fmt(largest)} (largest per-feature standard deviation)")
        if largest <= t["max_std"]:
            observed.append(Observed(
                f"the model's inputs barely vary: the largest per-feature standard deviation is {fmt(largest)} over "
                f"{len(checks)} checks (about 1 for standardised inputs)",
                None, checks[0][0],
            ))
    return Judgement("ML934", tuple(observed), bool(measured), "; ".join(measured))
