"""
## What it detects
Gradient norms that are huge, or that keep growing from check to check.

## Why it matters
Exploding gradients make each update larger than the last until the weights overflow; long before
NaN they wipe out what the model had learned. Usual causes: a learning rate too high, gradients
never cleared, a deep stack without normalisation, or a loss on unscaled targets.

## Thresholds
- `max_norm` = 1000.0: a global gradient norm (all parameters of one optimizer) above this.
- `growth_ratio` = 10.0: or a norm that rose since the previous check and is at least 10x the
  first check's.
- `min_checks` = 3: consecutive gradient checks (default every 10 steps) that
  must show it.
Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks" (ICML 2013)
describe explosion as a sudden growth of the gradient norm; AUTOTRAINER (Zhang et al., ICSE 2021)
and DeepDiagnosis (Wardat et al., ICSE 2022) flag it from gradient magnitudes. The numbers are
mlplint's defaults: typical global norms of healthy small networks are below 100.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"max_norm": 1000.0, "growth_ratio": 10.0, "min_checks": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    totals = stats.gradient_totals()
    for index, checks in totals.items():
        checks = [(step, norm) for step, norm in checks if finite(norm)]
        if not checks:
            continue
        steps, norms = [s for s, _ in checks], [n for _, n in checks]
        first = norms[0]
        flags = [
            norm > t["max_norm"] or (i > 0 and norm > norms[i - 1] and norm >= t["growth_ratio"] * first)
            for i, norm in enumerate(norms)
        ]
        measured.append(f"gradient norm went from {fmt(first)} to {fmt(norms[-1])} (max {fmt(max(norms))}) over {len(norms)} checks")
        if persists(flags, t["min_checks"]):
            label = stats.optimizer_label(str(index))
            grew = max(norms) >= t["growth_ratio"] * first
            shape = f"grew from {fmt(first)} to {fmt(max(norms))}" if grew else f"stayed above {fmt(t['max_norm'])} (up to {fmt(max(norms))})"
            observed.append(Observed(
                f"gradient norm {shape} over {len(norms)} checks",
                label, first_flagged(steps, flags),
            ))
    return Judgement("ML905", tuple(observed), bool(measured), "; ".join(measured))
