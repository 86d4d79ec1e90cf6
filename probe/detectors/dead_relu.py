"""
## What it detects
ReLU layers where a large share of the units never activate: for a whole batch, the unit
(feature, or channel of a convolution) outputs 0 for every sample.

## Why it matters
A dead ReLU unit has zero gradient for every input, so it never recovers: that capacity is gone.
Large shares usually come from a learning rate too high (one big step pushes the biases far
negative), a bad initialisation, or unscaled inputs.

## Thresholds
- `max_dead_fraction` = 0.5: share of the layer's units dead in a batch.
- `min_checks` = 3: consecutive activation checks (default every 10 steps) that must show it.
The Stanford CS231n notes (Neural Networks Part 1, "dying ReLU") warn that "as much as 40% of
your network can be dead" with a learning rate set too high; AUTOTRAINER (Zhang et al., ICSE 2021)
and DeepDiagnosis (Wardat et al., ICSE 2022) detect dying ReLU / dead nodes from the share of
units with zero output. Only ReLU modules are measured: a `torch.relu` call inside `forward` is
not a module and is not seen.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, persists
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_dead_fraction": 0.5, "min_checks": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, worst = [], 0.0
    layers = {key: checks for key, checks in stats.layer_checks().items() if checks[0].get("frac_dead_units") is not None}
    for (model, layer), checks in layers.items():
        fractions = [check["frac_dead_units"] for check in checks]
        worst = max(worst, max(fractions))
        flags = [fraction >= t["max_dead_fraction"] for fraction in fractions]
        if persists(flags, t["min_checks"]):
            observed.append(Observed(
                f"{max(fractions):.0%} of the units never activated in a batch "
                f"({sum(flags)} of {len(flags)} checks at or above {t['max_dead_fraction']:.0%})",
                stats.layer_label(model, layer), first_flagged([c["step"] for c in checks], flags),
            ))
    measured = f"at most {worst:.0%} of the units of {len(layers)} ReLU layers were dead in a batch"
    return Judgement("ML907", tuple(observed), bool(layers), measured)
