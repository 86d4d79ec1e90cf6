"""
## What it detects
Gradients carried over from one optimizer step to the next: at a gradient check, the `.grad`
tensors are the same objects the previous step left behind (not set to None and re-created),
they are still non-zero when the next backward() starts (not zeroed in place by hand), and no
`zero_grad()` ran in between.

## Why it matters
`backward()` adds into `.grad`. Never cleared, every step applies the sum of all gradients so
far: the effective step size grows with the step count, and training oscillates or diverges (or,
when the network is saturated and adds almost nothing, keeps stepping in one stale direction).
Intentional accumulation clears after each optimizer step, so it does not show here.

## Thresholds
- `min_retained` = 0.5: share of an optimizer's parameters whose gradient was carried over.
- `min_checks` = 3: consecutive gradient checks that must show the carry-over.
The carry-over is measured directly rather than inferred from the loss; PyTorch's documentation of
`Optimizer.zero_grad` and of gradient accumulation describes the mechanism. The gradient norm's
growth is reported alongside.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_retained": 0.5, "min_checks": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    totals = {index: dict(checks) for index, checks in stats.gradient_totals().items()}
    by_optimizer: dict[int, list[tuple[int, float]]] = {}
    for record in stats.records("gradients"):
        if record.get("retained") is not None:
            by_optimizer.setdefault(record["optimizer"], []).append((record["step"], record["retained"]))
    observed, measured, decided = [], [], False
    for index, checks in by_optimizer.items():
        norms = list(totals.get(index, {}).values())
        growth = norms[-1] / norms[0] if len(norms) >= 2 and norms[0] > 0 else 1.0
        flags = [retained >= t["min_retained"] for _, retained in checks]
        carried = sum(flags)
        measured.append(f"gradients were carried over at {carried} of {len(checks)} checks, gradient norm x{fmt(growth)}")
        # healthy needs a check that found the gradients cleared, or enough checks to have seen a carry-over
        decided = decided or carried < len(checks) or len(checks) >= t["min_checks"]
        if persists(flags, t["min_checks"]):
            observed.append(Observed(
                f"gradients were never cleared between steps ({carried} of {len(checks)} checks, "
                f"gradient norm x{fmt(growth)} from the first check to the last)",
                stats.optimizer_label(str(index)), first_flagged([s for s, _ in checks], flags),
            ))
    return Judgement("ML913", tuple(observed), decided, "; ".join(measured))
