"""
## What it detects
Coupled weight decay (L2 added to the gradient) that pulls the weights nearly as hard as the
data does: at the first measured step (before the model has fitted anything), the median over
weight matrices of weight_decay * ||w|| / ||grad|| is at least `min_ratio`. Reported only as the evidence for
ML210: late in a long training run, or when fine-tuning weights whose gradients are already
small, decay and data balance by design.

## Why it matters
With L2 decay each step follows grad + weight_decay * w. When the second term is as large as the
first from the start, every step pulls the weights towards zero as hard as the data pulls them
anywhere, and the model underfits: the loss stalls high. Usual values (1e-5 to 5e-4) make the
decay term a small fraction of a fresh model's gradient.

## Thresholds
- `min_ratio` = 0.1: the decay term at least a tenth of the data gradient at the first step
  (usual decays of 1e-5 to 5e-4 make it a few thousandths; it grows linearly with the decay).
  Later steps are not compared: once the model fits, the data gradient shrinks towards the
  decay term whatever the decay.
Decoupled decay (AdamW) shrinks the weights outside the gradient; its effect shows over a long
run and is not judged. Krogh & Hertz, "A Simple Weight Decay Can Improve Generalization" (NIPS
1991); Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019). It is ML210's
static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_ratio": 0.1}


def judge(stats: Stats, t: dict) -> Judgement:
    first: dict[int, dict] = {}
    for record in stats.records("weight_decay"):
        if record.get("decay_to_gradient") is not None:
            first.setdefault(record["optimizer"], record)
    observed, measured = [], []
    for index, record in first.items():
        ratio = record["decay_to_gradient"]
        measured.append(f"{record['class']}(weight_decay={fmt(record['weight_decay'])}): the decay term is {fmt(ratio)}x the data gradient")
        if ratio >= t["min_ratio"]:
            observed.append(Observed(
                f"{record['class']}'s weight_decay={fmt(record['weight_decay'])} pulls the weights {fmt(ratio)}x as hard as the "
                f"data gradient at step {record['step']} (median over the weight matrices of decay * |w| / |grad|; usual "
                f"decays give a few thousandths)",
                stats.optimizer_label(str(index)), record["step"]))
    return Judgement("ML940", tuple(observed), bool(measured), "; ".join(measured))
