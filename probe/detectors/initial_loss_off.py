"""
## What it detects
A first loss far from the chance level of the task: -ln(1/C) = ln C for a C-class cross-entropy
or NLL loss, ln 2 for a binary cross-entropy (times the elements of the batch for a summed
loss), read from the shapes that reach the loss. Far above it, the network starts confidently
wrong; far below the entropy of the labels, it "knows" the answer before training.

## Why it matters
An untrained classifier should be unsure, so its loss starts near chance. A first loss far above
it means the network starts confidently wrong: unscaled inputs, an output layer with a large
initialisation, or a loss applied to the wrong thing. A first loss near 0 means the labels can
be read from the inputs without learning (a leaked label, constant labels) or the loss is not
measuring what it should.

## Thresholds
- `max_ratio` = 1.5: the smallest of the first `initial_steps` losses above 1.5x the chance level
  (ln 64 on 10 classes, 1.8x, is reported).
- `min_ratio` = 0.1: or below a tenth of the entropy of the labels seen at the first step (ln C
  where the labels were not counted; a bias initialised to the class prior starts at that entropy).
- `initial_steps` = 3: losses looked at (the smallest, so one unlucky batch does not raise it).
Each loss call is judged by the value it returned where that was recorded, so several loss calls
per step (two heads, a metric computed with autograd on) do not hide it.
Karpathy, "A Recipe for Training Neural Networks" (2019), "verify loss @ init", and the Stanford
CS231n notes (Neural Networks Part 3: expect -ln(0.1) = 2.302 for 10 classes) give the chance
level; TheDeepChecker (Braiek & Khomh, TOSEM 2023) checks the initial loss the same way.
"""

from __future__ import annotations

import math
from typing import Optional

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"max_ratio": 1.5, "min_ratio": 0.1, "initial_steps": 3}
CLASSIFICATION = ("cross_entropy", "nll_loss")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")


def chance_level(record: dict) -> Optional[float]:
    """-ln(1/C) per element, times the elements for a summed loss; None when it has none."""
    shape, reduction = record["input_shape"], record.get("reduction", "mean")
    if record["kind"] in CLASSIFICATION and len(shape) >= 2 and shape[1] >= 2:
        per_element, elements = math.log(shape[1]), math.prod(shape) // shape[1]
    elif record["kind"] in BINARY:
        per_element, elements = math.log(2), math.prod(shape)
    else:
        return None
    return per_element if reduction == "mean" else per_element * elements if reduction == "sum" else None


def label_entropy(record: dict) -> Optional[float]:
    """Entropy of the labels the call saw (the loss of a model that predicts the class prior)."""
    counts = record.get("class_counts")
    binary = record.get("binary_counts")
    if counts is None and binary is not None and binary[0] + binary[1] == binary[2]:
        counts = binary[:2]
    total = sum(counts) if counts else 0
    if not total or record.get("reduction", "mean") != "mean":
        return None
    return -sum(c / total * math.log(c / total) for c in counts if c)


def judge(stats: Stats, t: dict) -> Judgement:
    calls = [r for r in stats.records("loss_inputs") if r["step"] == 0 and r.get("training", True) and chance_level(r) is not None]
    if not calls:
        return Judgement("ML912", (), False, "")
    steps = int(t["initial_steps"])
    chance = chance_level(calls[0])
    same_chance = all(math.isclose(chance_level(r), chance) for r in calls)
    if all("value" in r and finite(r["value"]) for r in calls):
        initial, where = min(r["value"] for r in calls), "at the first step"
    elif len(calls) == 1 or same_chance:
        losses = stats.primary_loss()[:steps]
        if not losses or not all(finite(v) for v in losses):
            return Judgement("ML912", (), False, "")
        initial, where = min(losses), f"lowest of the first {steps} steps"
    else:
        return Judgement("ML912", (), False, "")
    if not same_chance:
        calls = calls[:1]
    entropy = label_entropy(calls[0])
    floor = entropy if entropy is not None else chance
    kind = calls[0]["kind"]
    measured = f"initial loss {fmt(initial)} ({where}) against a chance level of {fmt(chance)}"
    if initial > t["max_ratio"] * chance:
        return Judgement("ML912", (Observed(
            f"initial loss {fmt(initial)} ({where}) is {fmt(initial / chance)}x the chance level {fmt(chance)} "
            f"(-ln(1/C) for the {kind} loss): the untrained model is confidently wrong", None, 0),), True, measured)
    if floor > 0 and initial < t["min_ratio"] * floor:
        reference = "the entropy of the labels" if entropy is not None else "the chance level"
        why = ("a negative loss: the loss's input is not the log-probabilities (or probabilities) it expects" if initial < 0
               else "the untrained model already predicts the labels (leaked or constant labels?)")
        return Judgement("ML912", (Observed(
            f"initial loss {fmt(initial)} ({where}) is far below {reference}, {fmt(floor)}, for the {kind} loss: {why}",
            None, 0),), True, measured)
    return Judgement("ML912", (), True, measured)
