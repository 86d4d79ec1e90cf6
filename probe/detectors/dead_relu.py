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
- `min_values_per_unit` = 16: checks where a unit had fewer values in the batch (samples times
  positions) are not judged: a healthy unit that is positive half the time looks dead in a batch
  of one sample half the time, and in one of 16 samples with probability 2^-16.
The Stanford CS231n notes (Neural Networks Part 1, "dying ReLU") warn that "as much as 40% of
your network can be dead" with a learning rate set too high; AUTOTRAINER (Zhang et al., ICSE 2021)
and DeepDiagnosis (Wardat et al., ICSE 2022) detect dying ReLU / dead nodes from the share of
units with zero output. Only ReLU modules are measured: a `torch.relu` call inside `forward` is
not a module and is not seen.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, persistent_layer_fractions
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_dead_fraction": 0.5, "min_checks": 3, "min_values_per_unit": 16}


def judge(stats: Stats, t: dict) -> Judgement:
    limit = t["max_dead_fraction"]
    layers, worst, observed = persistent_layer_fractions(
        stats, "frac_dead_units", limit, t["min_checks"],
        lambda highest, flagged, checks, _: f"{highest:.0%} of the units never activated in a batch "
                                            f"({flagged} of {checks} checks at or above {limit:.0%})",
        t["min_values_per_unit"],
    )
    measured = f"at most {worst:.0%} of the units of {layers} ReLU layers were dead in a batch"
    return Judgement("ML907", observed, bool(layers), measured)
