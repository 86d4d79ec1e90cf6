"""
## What it detects
Forward passes of a model run with autograd on whose output no backward pass ever used:
evaluation (validation, metrics, predictions, a target network) without `torch.no_grad()` or
`torch.inference_mode()`. The count of such passes, and the activation memory autograd saved for
them (measured on the passes after the first of a step).

## Why it matters
Every such pass records a graph and keeps the activations its backward would need, for nothing:
evaluation takes more memory (often the cause of out-of-memory errors at validation time) and
more time, and a result kept in a list keeps its whole graph alive.

## Thresholds
- `min_passes` = 2: unused passes with autograd on before raising it (one may be a training pass
  whose loss the script skipped, e.g. a NaN guard).
- `min_steps` = 10: optimizer steps the run needs before "no backward used it" is judged. A run
  with no evaluation pass at all (none without autograd, none unused) is not judged.
PyTorch's documentation of `torch.no_grad` ("Disabling gradient calculation is useful for
inference ... It will reduce memory consumption for computations that would otherwise have
requires_grad=True") describes the cost; it is ML502's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats


THRESHOLDS = {"min_passes": 2, "min_steps": 10}


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def judge(stats: Stats, t: dict) -> Judgement:
    records = stats.records("grad_forwards")
    no_grad = stats.collector("eval_mode").get("no_grad_forwards", 0)
    if not records or stats.steps < t["min_steps"]:
        return Judgement("ML920", (), False, "")
    total = sum(r["grad_forwards"] for r in records)
    unused = sum(r["unused"] for r in records)
    if not unused and not no_grad:  # no evaluation ran within the run: nothing to judge
        return Judgement("ML920", (), False, f"no evaluation pass ran in {stats.steps} steps (all {total} passes trained)")
    measured = f"{unused} of {total} forward passes with autograd on were used by no backward; {no_grad} ran without autograd"
    observed = []
    for record in records:
        if record["unused"] < t["min_passes"]:
            continue
        memory = ""
        if record["unused_measured"]:
            per_pass = record["unused_saved_bytes"] / record["unused_measured"]
            memory = f", keeping about {_size(per_pass)} of activations each for a backward that never came"
        observed.append(Observed(
            f"{record['unused']} forward passes ran with autograd on and no backward used their output{memory}",
            record["model"] if len(stats.models) > 1 else None, record["first_unused_step"],
        ))
    return Judgement("ML920", tuple(observed), True, measured)
