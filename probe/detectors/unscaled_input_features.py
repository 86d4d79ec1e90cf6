"""
## What it detects
Input features whose scales differ by orders of magnitude, measured on the batch that enters the
model: per feature (or channel) the root mean square sqrt(mean^2 + std^2), then the ratio of the
90th to the 10th percentile across features (constant-zero features left out).

## Why it matters
Features on very different scales make the loss surface badly conditioned: one learning rate is
too large for the big features and too small for the small ones, so training is slow or unstable.
Standardising the inputs (e.g. StandardScaler fitted on the training split) fixes it.

## Thresholds
- `max_scale_ratio` = 100.0: 90th-to-10th percentile ratio of the per-feature scales.
- `min_checks` = 2: consecutive input checks (default every 10 steps) that must show it.
LeCun, Bottou, Orr & Müller, "Efficient BackProp" (1998) recommend inputs with zero mean and
similar variances for exactly this reason; TheDeepChecker (Braiek & Khomh, TOSEM 2023) checks that
inputs are normalised. Percentiles rather than min/max keep a few rare, near-empty features (e.g.
border pixels) from raising it.
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_scale_ratio": 100.0, "min_checks": 2}


def scale_spread(means: list[float], stds: list[float]) -> tuple[float, float, float]:
    """(90th percentile scale, 10th percentile scale, their ratio) over non-constant-zero features."""
    scales = sorted(s for s in (math.sqrt(m * m + d * d) for m, d in zip(means, stds)) if s > 0)
    if len(scales) < 2:
        return 0.0, 0.0, 1.0
    high, low = scales[round(0.9 * (len(scales) - 1))], scales[round(0.1 * (len(scales) - 1))]
    return high, low, high / low


def judge(stats: Stats, t: dict) -> Judgement:
    by_model: dict[str, list[tuple[int, float, float, float]]] = {}
    for record in stats.records("input_features"):
        if "mean" in record and len(record["mean"]) >= 2:
            by_model.setdefault(record["model"], []).append((record["step"], *scale_spread(record["mean"], record["std"])))
    observed, measured = [], []
    for model, checks in by_model.items():
        flags = [ratio >= t["max_scale_ratio"] for _, _, _, ratio in checks]
        _, high, low, ratio = checks[-1]
        measured.append(f"input feature scales span a {fmt(ratio)}x range (10th to 90th percentile)")
        if persists(flags, t["min_checks"]):
            observed.append(Observed(
                f"input feature scales differ by {fmt(ratio)}x (90th percentile {fmt(high)}, 10th {fmt(low)})",
                model if len(stats.models) > 1 else None, first_flagged([c[0] for c in checks], flags),
            ))
    return Judgement("ML910", tuple(observed), bool(measured), "; ".join(measured))
