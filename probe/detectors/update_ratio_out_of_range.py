"""
## What it detects
Parameter updates far from the usual size relative to the parameters: per optimizer step, the
median over weight matrices of ||w_after - w_before|| / ||w_before||.

## Why it matters
The ratio says how fast the weights move. Far below the usual value the model barely learns (the
learning rate is too small for this optimizer and scale); far above it every step rewrites the
weights and training is unstable.

## Thresholds
- `low` = 3e-5 / `high` = 0.1: the median ratio must stay between 1.5 orders of magnitude below
  1e-3 and two above (Adam's first steps are large).
- `min_checks` = 3: consecutive update checks (default every 10 steps) that must show it, unless
- `decisive_factor` = 10: every check with a finite ratio is outside the band and the median is
  10x beyond it (an lr so high that the weights are NaN after the first checks: 64 is decisive),
  or one check 10x above the band (an update ten times the weight's own size rewrites the layer;
  Adam at lr=1 does that on its first step, after which the inflated weights hide the ratio).
The Stanford CS231n notes (Neural Networks Part 3, "ratio of weights:updates") give "somewhere
around 1e-3" as the heuristic; TheDeepChecker (Braiek & Khomh, TOSEM 2023) checks the same ratio.
The two-orders band is mlplint's default, wide enough for Adam's larger first steps.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats, median

THRESHOLDS = {"low": 3e-5, "high": 0.1, "min_checks": 3, "decisive_factor": 10.0}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    for index, checks in stats.update_ratio_checks().items():
        medians = [m for _, m in checks]
        flags = [not (t["low"] <= m <= t["high"]) for m in medians]
        measured.append(f"median update/weight ratio between {fmt(min(medians))} and {fmt(max(medians))}")
        typical = median(medians)
        decisive = (all(flags) and not (t["low"] / t["decisive_factor"] <= typical <= t["high"] * t["decisive_factor"])) \
            or max(medians) > t["high"] * t["decisive_factor"]
        if persists(flags, t["min_checks"]) or decisive:
            side = "below" if typical < t["low"] and max(medians) <= t["high"] * t["decisive_factor"] else "above"
            shown = typical if side == "below" or typical > t["high"] else max(medians)
            observed.append(Observed(
                f"median update/weight ratio {fmt(shown)} is {side} the range "
                f"[{fmt(t['low'])}, {fmt(t['high'])}] around 1e-3 in {sum(flags)} of {len(flags)} checks",
                stats.optimizer_label(str(index)), first_flagged([s for s, _ in checks], flags),
            ))
    return Judgement("ML911", tuple(observed), bool(measured), "; ".join(measured))
