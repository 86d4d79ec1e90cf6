"""
## What it detects
Parameter updates far from the usual size relative to the parameters: per optimizer step, the
median over weight matrices of ||w_after - w_before|| / ||w_before||.

## Why it matters
The ratio says how fast the weights move. Far below the usual value the model barely learns (the
learning rate is too small for this optimizer and scale); far above it every step rewrites the
weights and training is unstable.

## Thresholds
- `low` = 1e-5 / `high` = 0.1: the median ratio must stay within two orders of magnitude of 1e-3.
- `min_checks` = 3: consecutive update checks (default every 10 steps) that must show it.
The Stanford CS231n notes (Neural Networks Part 3, "ratio of weights:updates") give "somewhere
around 1e-3" as the heuristic; TheDeepChecker (Braiek & Khomh, TOSEM 2023) checks the same ratio.
The two-orders band is mlplint's default, wide enough for Adam's larger first steps.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats, median

THRESHOLDS = {"low": 1e-5, "high": 0.1, "min_checks": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    for index, checks in stats.update_ratio_checks().items():
        medians = [m for _, m in checks]
        flags = [not (t["low"] <= m <= t["high"]) for m in medians]
        measured.append(f"median update/weight ratio between {fmt(min(medians))} and {fmt(max(medians))}")
        if persists(flags, t["min_checks"]):
            side = "below" if median(medians) < t["low"] else "above"
            observed.append(Observed(
                f"median update/weight ratio {fmt(median(medians))} is {side} the range "
                f"[{fmt(t['low'])}, {fmt(t['high'])}] around 1e-3 in {sum(flags)} of {len(flags)} checks",
                stats.optimizer_label(str(index)), first_flagged([s for s, _ in checks], flags),
            ))
    return Judgement("ML911", tuple(observed), bool(measured), "; ".join(measured))
