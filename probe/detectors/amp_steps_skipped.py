"""
## What it detects
A GradScaler that skips most of the optimizer steps it is asked to take: `scaler.step(optimizer)`
runs the optimizer only when the unscaled gradients are all finite, and the probe records each
call, whether the optimizer step ran, and the scale. Steps skipped while the scale falls from its
large initial value (65536) to one that fits are normal; most steps skipped is not.

## Why it matters
Each skipped step is a batch the model did not learn from, and the scaler halves its scale each
time. When the inf or NaN comes from the forward pass itself (a float16 overflow in a layer fed
values beyond 65504, a log of zero, a division by a tiny norm), no scale helps: the scale decays
towards zero, and the run trains on the few batches that happen to stay finite while its loss
curve looks merely slow.

## Example
```python
with torch.autocast("cuda", dtype=torch.float16):
    loss = criterion(model(raw_features), y)   # raw values in the tens of thousands
scaler.scale(loss).backward()
scaler.step(optimizer)
```

Use instead:
```python
with torch.autocast("cuda", dtype=torch.bfloat16):   # or standardise the features first
    loss = criterion(model(scaled_features), y)
```

## Thresholds
- `min_calls` = 8: scaler steps recorded at least.
- `min_skipped_share` = 0.5: share of those steps skipped; a healthy run skips a few at its start
  while the scale settles, then about one in `growth_interval` (2000) steps.
PyTorch's automatic mixed precision documentation ("If ... infs or NaNs, optimizer.step() is
skipped ... the scale factor is reduced").
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_calls": 8, "min_skipped_share": 0.5}


def judge(stats: Stats, t: dict) -> Judgement:
    calls = stats.collector("grad_scaler").get("calls", [])
    if len(calls) < t["min_calls"]:
        return Judgement("ML944")
    skipped = [call for call in calls if call[1]]
    scales = [call[2] for call in calls if call[2] is not None]
    scale = f"; the scale went from {fmt(scales[0])} to {fmt(scales[-1])}" if scales else ""
    measured = f"GradScaler skipped {len(skipped)} of {len(calls)} steps{scale}"
    if len(skipped) < t["min_skipped_share"] * len(calls):
        return Judgement("ML944", (), True, measured)
    message = (f"GradScaler skipped {len(skipped)} of {len(calls)} optimizer steps for inf/NaN gradients{scale}: "
               "the model learns from the few batches that stay finite")
    return Judgement("ML944", (Observed(message, None, skipped[0][0]),), True, measured)
