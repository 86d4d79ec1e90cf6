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
- `trend_rise` = 0.25 and `min_trend` = 0.6: or a final loss at least 25% above the start with a
  steady upward trend (Spearman rank correlation of the loss with the step at least 0.6), as
  gradient ascent gives: 2.31 rising to 4.44 is divergence, not a stall.
- `min_steps` = 10: fewer recorded losses are not judged.
Comparing windows of the loss instead of single steps follows the "loss not decreasing" /
"loss increasing" checks of DeepDiagnosis (Wardat et al., ICSE 2022) and TheDeepChecker (Braiek &
Khomh, TOSEM 2023); the factors are mlplint's defaults, chosen to sit well above minibatch noise.
Losses that start at or below zero are not judged (the ratios assume a positive loss).
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, loss_windows, persists
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"rise_ratio": 2.0, "blowup_ratio": 10.0, "trend_rise": 0.25, "min_trend": 0.6, "min_checks": 3, "min_steps": 10}


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    for rank, index in enumerate(order):
        ranks[index] = float(rank)
    return ranks


def upward_trend(values: list[float]) -> float:
    """Spearman rank correlation between the step and the loss (1: rises at every step)."""
    n = len(values)
    ranks = _ranks(values)
    return 1 - 6 * sum((rank - step) ** 2 for step, rank in enumerate(ranks)) / (n * (n * n - 1))


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
        elif end >= (1 + t["trend_rise"]) * start and upward_trend(values) >= t["min_trend"]:
            rising = [v >= (1 + t["trend_rise"]) * start for v in values]
            observed.append(Observed(
                f"loss rose steadily from {fmt(start)} to {fmt(end)} over {len(values)} steps "
                f"(rank correlation with the step {upward_trend(values):.2f}): the updates climb the loss",
                label, first_flagged(steps, rising)))
        elif persists(blown, t["min_checks"]):
            observed.append(Observed(
                f"loss blew up to {fmt(max(values))}, {fmt(max(values) / start)}x its start of {fmt(start)}",
                label, first_flagged(steps, blown),
            ))
    return Judgement("ML902", tuple(observed), checked, "; ".join(measured))
