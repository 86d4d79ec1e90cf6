"""
## What it detects
Optimizer steps taken while Dropout or BatchNorm layers of the model being updated are in eval
mode: `model.eval()` called in the training loop (for a validation pass) and never undone by
`model.train()`, so every later training step runs in evaluation mode.

## Why it matters
In eval mode Dropout does nothing and BatchNorm normalises with its running averages and stops
updating them. Training silently loses its regularisation (it overfits), and BatchNorm layers
train against statistics that no longer follow the data.

## Thresholds
- `min_steps` = 2: optimizer steps with such layers in eval mode before raising it. A layer's mode
  is a fact, not a noisy measurement; 2 leaves room for one step taken on purpose in eval mode.
Judged only when the model was in eval mode at some point of the run (an evaluation pass or a
step), so that "the steps after it were in training mode" means something.
- `min_share` = 0.5: the share of the model's Dropout/BatchNorm layers in eval mode at those
  steps (freezing a few BatchNorm layers while fine-tuning, a deliberate practice, stays quiet).
PyTorch's documentation of `Module.train()` / `Module.eval()` ("This has an effect only on certain
modules ... Dropout, BatchNorm") states the contract; the mistake is ML503's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_steps": 2, "min_share": 0.5}


def judge(stats: Stats, t: dict) -> Judgement:
    collected = stats.collector("step_mode")
    checked = collected.get("checked_steps", 0)
    evaluated = collected.get("eval_steps", 0) or any(not r["training"] for r in stats.records("eval_mode"))
    if not checked or not evaluated:  # the model was never put in eval mode: nothing to judge
        return Judgement("ML919", (), False, "the model was never in eval mode during the run" if checked else "")
    flagged: dict[str, list[dict]] = {}
    for record in collected.get("records", []):
        if len(record["eval_layers"]) >= t["min_share"] * record["mode_layers"]:
            flagged.setdefault(record["model"], []).append(record)
    measured = f"{collected.get('eval_steps', 0)} of {checked} optimizer steps ran with Dropout/BatchNorm layers in eval mode"
    observed = []
    for model, steps in flagged.items():
        if len(steps) < t["min_steps"]:
            continue
        layers = steps[0]["eval_layers"]
        prefix = f"{model}." if len(stats.models) > 1 else ""
        shown = ", ".join(f"{stats.layer_type(prefix + name) or 'layer'} '{name}'" for name in layers[:3]) + \
            (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        observed.append(Observed(
            f"{len(steps)} of {checked} optimizer steps updated the model while {shown} "
            f"({len(layers)} of {steps[0]['mode_layers']} mode-dependent layers) were in eval mode",
            model if len(stats.models) > 1 else None, steps[0]["step"],
        ))
    return Judgement("ML919", tuple(observed), True, measured)
