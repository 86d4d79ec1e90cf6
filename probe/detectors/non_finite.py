"""
## What it detects
NaN or Inf in the loss, in a layer's activations or in a parameter's gradient.

## Why it matters
One non-finite value spreads through every later update: once a weight is NaN the model is
lost, and an optimizer keeps "training" on garbage without raising anything.

## Thresholds
- `min_occurrences` = 1: non-finite values seen before the symptom is raised. NaN is absorbing (it
  stays once it appears), so one occurrence is enough; raise it to 2 or more for runs that use a
  GradScaler, which skips steps with Inf gradients on purpose. DeepDiagnosis (Wardat et al., ICSE
  2022) and TheDeepChecker (Braiek & Khomh, TOSEM 2023) likewise stop at the first NaN/Inf.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"min_occurrences": 1}


def judge(stats: Stats, t: dict) -> Judgement:
    observed = []
    losses = [(label, step, value) for label, series in stats.loss_series() for step, value in series]
    bad_losses = [(label, step, value) for label, step, value in losses if not finite(value)]
    if bad_losses and len(bad_losses) >= t["min_occurrences"]:
        label, step, value = bad_losses[0]
        observed.append(Observed(f"loss became {value} at step {step}", label, step))
    bad_layers = [r for r in stats.records("activations") if r.get("nonfinite")]
    if bad_layers and len(bad_layers) >= t["min_occurrences"]:
        first = bad_layers[0]
        observed.append(Observed(
            f"layer output held NaN or Inf at step {first['step']}",
            stats.layer_label(first["model"], first["layer"]), first["step"],
        ))
    bad_grads = [(r["step"], name, value) for r in stats.records("gradients") for name, value in r.get("norms", {}).items() if not finite(value)]
    if bad_grads and len(bad_grads) >= t["min_occurrences"]:
        step, name, value = bad_grads[0]
        observed.append(Observed(f"gradient norm of '{name}' was {value} at step {step}", None, step))
    checked = bool(losses)
    measured = f"all {len(losses)} recorded losses and the sampled activations and gradients were finite"
    return Judgement("ML901", tuple(observed), checked, measured)
