"""
## What it detects
An optimizer whose steps move the weights by a small fraction of their size while the loss
barely falls: over the run, the median update/weight ratio of the weight matrices is between
`min_update_ratio` and `max_update_ratio`, and the loss fell less than `max_progress` of its
starting value.

## Why it matters
How far a step moves the weights relative to their size sets how fast the model can learn. A
ratio well below 1e-3 with a loss that crawls means training is limited by the step size: plain
SGD with a small learning rate, or an lr scaled for another optimizer. Momentum 0.9 (which makes
each step about ten times longer along a consistent direction), a larger learning rate or Adam
reach the same loss many times faster. A loss that falls well while the steps are small (fine-
tuning a pretrained model) is not reported.

## Thresholds
- `max_update_ratio` = 1e-3: the CS231n heuristic for a healthy ratio ("somewhere around 1e-3");
  below it the steps are small.
- `min_update_ratio` = 3e-5: below it the ratio is out of range (ML911 reports it).
- `max_progress` = 0.1: the final loss (median of the last fifth of the run) less than 10% below
  the starting loss (median of the first 3 steps).
- `max_rise` = 0.25: a loss that ends more than 25% above its start is rising (ML902 judges it).
- `min_checks` = 3 update checks and `min_steps` = 20 recorded losses.
Not judged: runs where several optimizers minimise different losses in turn, and an optimizer
whose learning rate was still warming up. Stanford CS231n, Neural Networks Part 3 ("ratio of
weights:updates"); Sutskever et al., "On the importance of initialization and momentum in deep
learning" (ICML 2013) for momentum's longer effective step. It is ML205's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt, loss_windows
from mlplint.probe.stats import Stats, finite, median

THRESHOLDS = {"max_update_ratio": 1e-3, "min_update_ratio": 3e-5, "max_progress": 0.1, "max_rise": 0.25,
              "min_checks": 3, "min_steps": 20}


def judge(stats: Stats, t: dict) -> Judgement:
    if stats.competing_losses() > 1:
        return Judgement("ML931", (), False, "not judged: several optimizers minimise different losses in turn")
    checks = stats.update_ratio_checks()
    observed, measured = [], []
    for index, label, series in stats.indexed_loss_series():
        ratios = [ratio for _, ratio in checks.get(int(index), [])]
        values = [value for _, value in series if finite(value)]
        if len(ratios) < t["min_checks"] or len(values) < t["min_steps"] or stats.warming_up(index) is not None:
            continue
        start, end = loss_windows(values)
        if start <= 0:
            continue
        ratio, fell = median(ratios), (start - end) / start
        measured.append(f"median update/weight ratio {fmt(ratio)}, loss {fmt(start)} to {fmt(end)} ({-fell:+.1%})")
        if t["min_update_ratio"] <= ratio < t["max_update_ratio"] and -t["max_rise"] <= fell < t["max_progress"]:
            observed.append(Observed(
                f"each step moved the weights by {fmt(ratio)} of their size (median update/weight ratio; about 1e-3 is "
                f"healthy) and the loss changed only {-fell:+.1%} over {len(values)} steps ({fmt(start)} to {fmt(end)})",
                label, series[0][0],
            ))
    return Judgement("ML931", tuple(observed), bool(measured), "; ".join(measured))
