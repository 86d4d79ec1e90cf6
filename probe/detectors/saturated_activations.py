"""
## What it detects
Sigmoid and tanh layers whose outputs sit at their bounds: within 0.01 of 0 or 1 for a sigmoid,
beyond +-0.99 for a tanh (the collector's margin).

## Why it matters
At the bounds the derivative of a sigmoid or tanh is close to 0, so almost no gradient flows back
through the layer: it stops learning and starves the layers before it. Causes: large
pre-activations from unscaled inputs, a large initialisation or a learning rate too high.

## Thresholds
- `max_saturated_fraction` = 0.5: share of the layer's outputs at the bounds.
- `min_checks` = 3: consecutive activation checks that must show it.
Glorot & Bengio (AISTATS 2010) show top sigmoid layers saturating at 0 and the training stalling
for it; DeepDiagnosis's "saturated activation" and TheDeepChecker's activation checks (Braiek &
Khomh, TOSEM 2023) detect it from the share of outputs near the bounds. The share is mlplint's
default.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, persistent_layer_fractions
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_saturated_fraction": 0.5, "min_checks": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    layers, worst, observed = persistent_layer_fractions(
        stats, "frac_saturated", t["max_saturated_fraction"], t["min_checks"],
        lambda highest, flagged, checks, kind: f"{highest:.0%} of the {kind} outputs were at their bounds ({flagged} of {checks} checks)",
    )
    measured = f"at most {worst:.0%} of the outputs of {layers} sigmoid/tanh layers were saturated"
    return Judgement("ML908", observed, bool(layers), measured)
