"""
## What it detects
Regression targets that the model's output activation can never produce: negative targets
behind a ReLU, Softplus or exp output, targets outside (0, 1) behind a sigmoid or outside (-1, 1)
behind a tanh. The output activation is read from the output's autograd node (so
`torch.sigmoid(x)` in `forward` counts), the targets from the regression loss calls.

## Why it matters
The loss cannot go below the error on those targets: the model clamps them at the activation's
bound and its gradient there is zero (ReLU) or vanishing (sigmoid, tanh), so training stalls
with a large residual error. A regression output should usually be linear; scale the targets if
a bounded output is wanted.

## Thresholds
- `min_share` = 0.05: share of the targets beyond the activation's bounds.
- `min_checks` = 2: loss calls (default every 5 steps) that must show it.
Goodfellow, Bengio & Courville, "Deep Learning" (2016), section 6.2.2.1, recommend linear output
units for regression targets; the bounds are the activations' ranges. It is ML305's static
hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_share": 0.05, "min_checks": 2}
# Output operation -> (activation, share fields of the targets beyond its bounds).
BOUNDED = {
    "ReluBackward0": ("ReLU", ("below_zero",), "[0, inf)"),
    "SoftplusBackward0": ("Softplus", ("below_zero",), "(0, inf)"),
    "ExpBackward0": ("exp", ("below_zero",), "(0, inf)"),
    "AbsBackward0": ("abs", ("below_zero",), "[0, inf)"),
    "SigmoidBackward0": ("sigmoid", ("below_zero", "above_one"), "(0, 1)"),
    "TanhBackward0": ("tanh", ("below_minus_one", "above_one"), "(-1, 1)"),
    "EluBackward0": ("ELU", ("below_minus_one",), "(-1, inf)"),
}


def judge(stats: Stats, t: dict) -> Judgement:
    operations = [r["operation"] for r in stats.records("output_activation")]
    targets = [r for r in stats.records("loss_targets") if r["targets"] == "regression" and r.get("training", True) and "min" in r]
    if not operations or not targets:
        return Judgement("ML925", (), False, "")
    operation = max(set(operations), key=operations.count)
    if operation not in BOUNDED:
        return Judgement("ML925", (), True, f"the output comes from {operation.replace('Backward0', '')}, which bounds nothing")
    activation, fields, bounds = BOUNDED[operation]
    shares = [sum(r[field] for field in fields) for r in targets]
    lowest, highest = min(r["min"] for r in targets), max(r["max"] for r in targets)
    measured = f"{max(shares):.0%} of the regression targets (range {fmt(lowest)} to {fmt(highest)}) lie outside the {activation} output's range {bounds}"
    flagged = [share >= t["min_share"] for share in shares]
    if sum(flagged) < t["min_checks"]:
        return Judgement("ML925", (), True, measured)
    worst = max(shares)
    return Judgement("ML925", (Observed(
        f"{worst:.0%} of the regression targets (range {fmt(lowest)} to {fmt(highest)}) lie outside the range {bounds} "
        f"of the model's {activation} output, which can never produce them", None,
        next(r["step"] for r, flag in zip(targets, flagged) if flag)),), True, measured)
