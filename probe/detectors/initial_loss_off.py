"""
## What it detects
A first loss far above the chance level of the task: -ln(1/C) = ln C for a C-class cross-entropy
or NLL loss, ln 2 for a binary cross-entropy, read from the shapes that reach the loss.

## Why it matters
An untrained classifier should be unsure, so its loss starts near chance. A first loss far above
it means the network starts confidently wrong: unscaled inputs, an output layer with a large
initialisation, or a loss applied to the wrong thing. The first steps are then spent undoing it.

## Thresholds
- `max_ratio` = 2.0: the smallest of the first `initial_steps` losses above 2x the chance level.
- `initial_steps` = 3: losses looked at (the smallest, so one unlucky batch does not raise it).
Karpathy, "A Recipe for Training Neural Networks" (2019), "verify loss @ init", and the Stanford
CS231n notes (Neural Networks Part 3: expect -ln(0.1) = 2.302 for 10 classes) give the chance
level; TheDeepChecker (Braiek & Khomh, TOSEM 2023) checks the initial loss the same way. Only one
classification loss per step with `reduction='mean'` is judged: sums and mixtures have no single
chance level. A loss below chance at the start is not reported (a prior-initialised bias does that).
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"max_ratio": 2.0, "initial_steps": 3}


def chance_level(record: dict) -> float | None:
    if record.get("reduction", "mean") != "mean":
        return None
    if record["kind"] in ("cross_entropy", "nll_loss") and len(record["input_shape"]) >= 2 and record["input_shape"][1] >= 2:
        return math.log(record["input_shape"][1])
    if record["kind"] in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        return math.log(2)
    return None


def judge(stats: Stats, t: dict) -> Judgement:
    first_calls = [r for r in stats.records("loss_inputs") if r["step"] == 0 and r.get("training", True)]
    losses = stats.primary_loss()[: int(t["initial_steps"])]
    if len(first_calls) != 1 or not losses or not all(finite(v) for v in losses):
        return Judgement("ML912", (), False, "")
    chance = chance_level(first_calls[0])
    if chance is None:
        return Judgement("ML912", (), False, "")
    initial = min(losses)
    measured = f"initial loss {fmt(initial)} (lowest of the first {int(t['initial_steps'])} steps) against a chance level of {fmt(chance)}"
    if initial > t["max_ratio"] * chance:
        return Judgement("ML912", (Observed(
            f"initial loss {fmt(initial)} (lowest of the first {int(t['initial_steps'])} steps) is {fmt(initial / chance)}x the chance level {fmt(chance)} "
            f"(-ln(1/C) for the {first_calls[0]['kind']} loss)", None, 0),), True, measured)
    return Judgement("ML912", (), True, measured)
