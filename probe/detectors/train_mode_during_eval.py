"""
## What it detects
Forward passes of a model under `torch.no_grad()` / `torch.inference_mode()` (evaluation) while
its Dropout or BatchNorm layers are still in training mode.

## Why it matters
In training mode Dropout drops units at random and BatchNorm normalises with the batch's own
statistics (and updates its running averages with evaluation data). Evaluation results are then
noisy, depend on the batch size, and the model's state is altered by the test set. Call
`model.eval()` before evaluating and `model.train()` after.

## Thresholds
- `min_passes` = 1: no-grad passes with such layers in training mode before raising it. A layer's
  mode is a fact, not a noisy measurement, so one pass is enough; raise it to tolerate a
  deliberate Monte Carlo dropout sample.
PyTorch's documentation of `Module.eval()` and of `torch.no_grad` ("no_grad does not change the
module's mode") states the contract.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_passes": 1}


def judge(stats: Stats, t: dict) -> Judgement:
    records = stats.records("eval_mode")
    if not records:
        return Judgement("ML917", (), False, "")
    bad = [r for r in records if r["training_layers"]]
    measured = f"{len(bad)} of {len(records)} no-grad forward passes ran with Dropout/BatchNorm in training mode"
    by_model: dict[str, list[dict]] = {}
    for record in bad:
        by_model.setdefault(record["model"], []).append(record)
    observed = []
    for model, passes in by_model.items():
        if len(passes) >= t["min_passes"]:
            layers = passes[0]["training_layers"]
            prefix = f"{model}." if len(stats.models) > 1 else ""
            shown = ", ".join(f"{stats.layer_type(prefix + name) or 'layer'} '{name}'" for name in layers[:3]) + \
                (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
            observed.append(Observed(
                f"{len(passes)} no-grad (evaluation) pass{'es' if len(passes) > 1 else ''} ran with {shown} in training mode",
                model if len(stats.models) > 1 else None, passes[0]["step"],
            ))
    return Judgement("ML917", tuple(observed), True, measured)
