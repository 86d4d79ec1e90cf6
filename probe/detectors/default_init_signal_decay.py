"""
## What it detects
A deep ReLU stack on PyTorch's default init through which the signal fades before training
starts: in the model's first training forward, over at least `min_layers` default-initialised
Linear/Conv layers each followed by a ReLU (no normalisation layer in the network), the squared
ratio of the per-unit spread over the batch after the last of them to that of the first one's
input is at most `max_total_gain`. The spread is the input-dependent signal: the biases, which
set a floor under the second moment after a few layers, do not add to it. Reported only as the evidence
for ML302: shallow stacks fade too and train fine with adaptive optimizers.

## Why it matters
PyTorch's default init (`kaiming_uniform_(a=sqrt(5))`, weight variance 1/(3 fan_in)) makes each
ReLU layer keep about a sixth of its input's second moment; He init (variance 2/fan_in) keeps
all of it. Through eight such layers the last layers see a signal a million times weaker, and
the gradients of the first layers are as small: deep plain stacks then train slowly or not at all.

## Thresholds
- `min_layers` = 4: default-initialised ReLU layers the signal passes.
- `max_total_gain` = 0.01: the variance left after the stack (about 1 under He init, about
  1/6 per layer under the default init).
He et al., "Delving Deep into Rectifiers" (ICCV 2015), section 2.2 and figure 3 (a 30-layer ReLU
net that does not learn under a variance-preserving init for linear units). It is ML302's static
hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.detectors.init_gain_mismatch import layers_by_model, rectifier_gains
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_layers": 4, "max_total_gain": 0.01}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    for model, layers in layers_by_model(stats).items():
        gains = rectifier_gains([r for r in layers if r["default_init"]])
        if not gains or "input_spread" not in gains[0][0] or "activation_spread" not in gains[-1][0]:
            continue
        first, last = gains[0][0], gains[-1][0]
        total = (last["activation_spread"] / max(first["input_spread"], 1e-30)) ** 2
        measured.append(f"{fmt(total)} of the signal's variance over the batch is left after {len(gains)} default-initialised ReLU layers of {model}")
        if len(gains) >= t["min_layers"] and total <= t["max_total_gain"]:
            observed.append(Observed(
                f"the signal fades through {len(gains)} ReLU layers on PyTorch's default init: its per-unit spread over "
                f"the batch falls from {fmt(first['input_spread'])} into layer '{first['layer']}' to "
                f"{fmt(last['activation_spread'])} after layer '{last['layer']}' ({fmt(total)} of its variance; He init keeps about 1)",
                stats.layer_label(model, gains[-1][0]["layer"]), 0))
    return Judgement("ML938", tuple(observed), bool(measured), "; ".join(measured))
