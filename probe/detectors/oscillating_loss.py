"""
## What it detects
A loss that swings up and down from step to step without coming down over the run.

## Why it matters
Large swings with no progress usually mean the steps are too big for the curvature (learning rate
too high) or the gradient is wrong (accumulated, or computed on the wrong thing): more steps will
not help.

## Thresholds
- `min_improvement` = 0.1: the final loss (median of the last fifth of the run) is less than 10%
  below the starting loss (median of the first 3 steps): no downward trend.
- `min_swing` = 0.1: the median step-to-step change is at least 10% of the median loss.
- `min_update_ratio` = 1e-4: swings only count while the weights move (median update/weight
  ratio, see ML911, at least an order of magnitude below the usual 1e-3); when they barely move
  the swings are batch-to-batch noise and the loss is stalled (ML904), not oscillating.
- `min_steps` = 20: fewer recorded losses are not judged.
AUTOTRAINER (Zhang et al., ICSE 2021) names "oscillating loss" as one of its five training
problems and detects it from loss fluctuation without improvement; the two factors are mlplint's
defaults. A run that diverges (ML902) is not also reported as oscillating, and runs where several
optimizers minimise different losses in turn (a GAN) are not judged: their losses swing by design.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt, loss_windows
from mlplint.probe.stats import Stats, finite, median

THRESHOLDS = {"min_improvement": 0.1, "min_swing": 0.1, "min_update_ratio": 1e-4, "min_steps": 20}
# Diverging (ML902's default rise) takes precedence over oscillating.
_DIVERGING_RISE = 2.0


def loss_swing(values: list[float]) -> float:
    """Median absolute step-to-step change relative to the median loss."""
    changes = [abs(b - a) for a, b in zip(values, values[1:])]
    return median(changes) / max(abs(median(values)), 1e-12)


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured, checked = [], [], False
    update_ratio = stats.typical_update_ratio()
    weights_move = update_ratio is None or update_ratio >= t["min_update_ratio"]
    competing = stats.competing_losses()
    if competing > 1:
        return Judgement("ML903", (), False, f"not judged: {competing} optimizers minimise different losses in turn")
    for label, series in stats.loss_series():
        values = [value for _, value in series if finite(value)]
        if len(values) < t["min_steps"]:
            continue
        start, end = loss_windows(values)
        if start <= 0:
            continue
        checked = True
        swing = loss_swing(values)
        improvement = (start - end) / start
        measured.append(f"loss improved {improvement:.0%} with a median step-to-step swing of {swing:.0%}")
        no_trend = improvement < t["min_improvement"] and end < _DIVERGING_RISE * start
        if no_trend and swing >= t["min_swing"] and weights_move:
            observed.append(Observed(
                f"loss swings by {swing:.0%} of its level per step without coming down "
                f"({fmt(start)} at the start, {fmt(end)} at the end)", label, series[0][0],
            ))
    return Judgement("ML903", tuple(observed), checked, "; ".join(measured))
