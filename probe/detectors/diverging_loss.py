"""
## What it detects
A loss that trends upward over the run, or that repeatedly blows far past its starting value.

## Why it matters
Training is supposed to lower the loss. A rising loss means the updates overshoot (learning rate
too high, gradients never cleared, wrong sign) and the run is wasting its budget.

## Thresholds
- `rise_ratio` = 2.0: the final loss (median of the last fifth of the run) at least this many
  times the starting loss (median of the first 3 steps).
- `blowup_ratio` = 10.0 and `min_checks` = 3: or at least 3 consecutive steps at 10x the start.
- `min_steps` = 10: fewer recorded losses are not judged.
Comparing windows of the loss instead of single steps follows the "loss not decreasing" /
"loss increasing" checks of DeepDiagnosis (Wardat et al., ICSE 2022) and TheDeepChecker (Braiek &
Khomh, TOSEM 2023); the factors are mlplint's defaults, chosen to sit well above minibatch noise.
Losses that start at or below zero are not judged (the ratios assume a positive loss).
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, loss_windows, persists
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"rise_ratio": 2.0, "blowup_ratio": 10.0, "min_checks": 3, "min_steps": 10}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured, checked = [], [], False
    for label, series in stats.loss_series():
        points = [(step, value) for step, value in series if finite(value)]
        if len(points) < t["min_steps"]:
            continue
        steps, values = [s for s, _ in points], [v for _, v in points]
        start, end = loss_windows(values)
        if start <= 0:
            continue
        checked = True
        measured.append(f"loss went from {fmt(start)} to {fmt(end)} over {len(values)} steps")
        blown = [v >= t["blowup_ratio"] * start for v in values]
        if end >= t["rise_ratio"] * start:
            rising = [v >= t["rise_ratio"] * start for v in values]
            observed.append(Observed(f"loss rose from {fmt(start)} to {fmt(end)} over {len(values)} steps", label, first_flagged(steps, rising)))
        elif persists(blown, t["min_checks"]):
            observed.append(Observed(
                f"loss blew up to {fmt(max(values))}, {fmt(max(values) / start)}x its start of {fmt(start)}",
                label, first_flagged(steps, blown),
            ))
    return Judgement("ML902", tuple(observed), checked, "; ".join(measured))
