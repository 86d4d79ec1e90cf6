"""
## What it detects
Parameter updates that go up the gradient instead of down: at the measured steps, the cosine
between the whole step (all parameters' changes) and the negative gradient it followed is at
most `max_descent_cosine`, at the median over at least `min_checks` checks. Judged for steps
that follow the current gradient alone (hand-written updates, SGD without momentum): a momentum
buffer may point against the current gradient while the loss oscillates across a valley.
Reported only as the evidence for ML209 (a diverging loss, ML902, shows ascent on its own).

## Why it matters
Gradient descent moves the weights against the gradient: plain SGD's step has a cosine of 1 with
the negative gradient, momentum and Adam keep it positive on average. A step along +gradient
(`w += lr * w.grad` in a hand-written update, a negated loss) raises the loss by design: it
climbs, then overflows. Steps of a GAN's discriminator or any model trained on a negated loss on
purpose are ascent on the script's loss too; such runs have several optimizers and are not
judged.

## Thresholds
- `max_descent_cosine` = -0.5: the median cosine between the step and -gradient (1 for SGD).
- `min_checks` = 3: update checks (default every 10 steps) with a measured cosine.
Rumelhart, Hinton & Williams, "Learning representations by back-propagating errors" (Nature,
1986): the weight change is minus the learning rate times the gradient. It is ML209's static
hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats, median

THRESHOLDS = {"max_descent_cosine": -0.5, "min_checks": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    if len(stats.data.get("optimizers", [])) > 1:
        return Judgement("ML939", (), False, "not judged: several optimizers")
    optimizers = stats.data.get("optimizers", [])
    memoryless = {index for index, optimizer in enumerate(optimizers)
                  if optimizer.get("class") == "HandWrittenUpdates"
                  or (optimizer.get("class") == "SGD" and not (optimizer.get("settings") or {}).get("momentum", 1))}
    by_optimizer: dict[int, list[tuple[int, float]]] = {}
    for record in stats.records("updates"):
        if record.get("descent") is not None and record["optimizer"] in memoryless:
            by_optimizer.setdefault(record["optimizer"], []).append((record["step"], record["descent"]))
    observed, measured = [], []
    for index, checks in by_optimizer.items():
        if len(checks) < t["min_checks"]:
            continue
        typical = median([cosine for _, cosine in checks])
        measured.append(f"median cosine between the steps and the negative gradient {fmt(typical)} over {len(checks)} checks")
        if typical <= t["max_descent_cosine"]:
            observed.append(Observed(
                f"the updates go up the gradient: the median cosine between a step and the negative gradient is "
                f"{fmt(typical)} over {len(checks)} checks (1 for gradient descent)", stats.optimizer_label(str(index)), checks[0][0]))
    return Judgement("ML939", tuple(observed), bool(measured), "; ".join(measured))
