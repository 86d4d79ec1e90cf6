"""
## What it detects
A loss that does not go down over the run (flat, or creeping up without reaching ML902's
divergence) and is not swinging either.

## Why it matters
A flat loss means the parameters are not changing in any useful direction: a learning rate far
too small, vanishing gradients, frozen or unregistered parameters, or a loss that cannot be
lowered (double softmax, saturated outputs).

## Thresholds
- `max_change` = 0.02: the final loss (median of the last fifth of the run) not at least 2% below
  the starting loss (median of the first 3 steps).
- `max_rise` = 0.25: a loss that ends more than 25% above its start is rising, not stalled
  (ML902 judges it).
- `max_swing` = 0.1: and the median step-to-step change below 10% of the loss (above it the loss
  oscillates, ML903), unless the weights barely move:
- `still_update_ratio` = 1e-4: a median update/weight ratio (ML911) below this means the swings
  are batch-to-batch noise around a loss that is not being lowered.
- `min_steps` = 20: fewer recorded losses are not judged (over shorter runs a healthy loss is often
  still on its initial plateau).
Not judged either: runs where several optimizers minimise different losses in turn (a GAN's
generator loss is meant to stay level), and an optimizer whose learning rate rose more than
twofold during the run (a warm-up had not finished).
AUTOTRAINER's "slow convergence" (Zhang et al., ICSE 2021) and DeepDiagnosis's "loss not
decreasing" (Wardat et al., ICSE 2022) compare the loss over a window of steps in the same way;
the 2% is mlplint's default, above the noise of window medians over a minibatch loss.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt, loss_windows
from mlplint.probe.detectors.oscillating_loss import loss_swing
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"max_change": 0.02, "max_rise": 0.25, "max_swing": 0.1, "still_update_ratio": 1e-4, "min_steps": 20}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured, checked = [], [], False
    update_ratio = stats.typical_update_ratio()
    weights_still = update_ratio is not None and update_ratio < t["still_update_ratio"]
    competing = stats.competing_losses()
    if competing > 1:
        return Judgement("ML904", (), False, f"not judged: {competing} optimizers minimise different losses in turn")
    for index, label, series in stats.indexed_loss_series():
        values = [value for _, value in series if finite(value)]
        if len(values) < t["min_steps"]:
            continue
        warm_up = stats.warming_up(index)
        if warm_up is not None:
            measured.append(f"not judged: the learning rate was still warming up ({fmt(warm_up[0])} to {fmt(warm_up[1])})")
            continue
        start, end = loss_windows(values)
        if start <= 0:
            continue
        checked = True
        change = (end - start) / start
        measured.append(f"loss changed {change:+.1%} ({fmt(start)} to {fmt(end)}) over {len(values)} steps")
        if -t["max_change"] < change < t["max_rise"] and (loss_swing(values) < t["max_swing"] or weights_still):
            verb = "barely moved" if abs(change) < t["max_change"] else "went up"
            observed.append(Observed(
                f"loss {verb} over {len(values)} steps: {fmt(start)} to {fmt(end)} ({change:+.1%})",
                label, series[0][0],
            ))
    return Judgement("ML904", tuple(observed), checked, "; ".join(measured))
