"""
## What it detects
A learning-rate scheduler whose `step()` was called before its optimizer had taken a single
step (the step a scheduler takes in its own constructor does not count), read from the order of
the calls at runtime.

## Why it matters
Since PyTorch 1.1 a scheduler is meant to step after the optimizer. Stepping it first skips the
first value of the schedule: the warm-up or the initial learning rate is never used, and every
later epoch runs one schedule step ahead.

## Thresholds
- `max_optimizer_steps` = 0: optimizer steps taken before the scheduler's first call at most for
  the call to count as "before the optimizer".
PyTorch's documentation of `torch.optim.lr_scheduler` ("If you use the learning rate scheduler
(calling scheduler.step()) before the optimizer's update (calling optimizer.step()), this will
skip the first value of the learning rate schedule") and the warning PyTorch raises; the probe
reads the order itself and does not need the warning. It is ML204's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_optimizer_steps": 0}


def judge(stats: Stats, t: dict) -> Judgement:
    records = stats.records("scheduler_calls")
    if not records:
        return Judgement("ML921", (), False, "")
    measured = "; ".join(f"{r['class']} first stepped after {r['optimizer_steps_at_first_call']} optimizer steps" for r in records)
    observed = tuple(
        Observed(f"{r['class']}.step() was called before the optimizer's first step() "
                 f"(after {r['optimizer_steps_at_first_call']} optimizer steps): the schedule's first value is skipped",
                 None, r["first_call_step"])
        for r in records if r["optimizer_steps_at_first_call"] <= t["max_optimizer_steps"]
    )
    return Judgement("ML921", observed, True, measured)
