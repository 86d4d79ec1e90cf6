"""
## What it detects
Autograd graphs kept alive across optimizer steps: at a step, a tensor held in a variable of the
training loop whose autograd graph still reaches the loss backpropagated before the previous
step. The usual cause is a loss total summed without `.item()` (`total_loss += loss`): each
step's graph hangs off the total, none is ever freed, and the graph behind it grows step after step.

## Why it matters
The graph of every step stays in memory (and, when no backward frees them, the activations each
one saved): memory grows until the run fails, and each step gets slower. Accumulate
`loss.item()` (or `loss.detach()`) instead.

## Thresholds
- `min_steps` = 3: steps at which a held tensor reached an earlier step's loss (one may be a
  value kept for logging on purpose; a running total does it at every step of an epoch).
The PyTorch FAQ ("My model reports 'cuda runtime error(2): out of memory'": "Don't accumulate
history across your training loop ... total_loss += loss") describes the failure; it is ML206's
static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_steps": 3}


def judge(stats: Stats, t: dict) -> Judgement:
    collected = stats.collector("graph_growth")
    checked = collected.get("checked_steps", 0)
    if not checked:
        return Judgement("ML924", (), False, "")
    by_name: dict[str, list[dict]] = {}
    for record in collected.get("records", []):
        by_name.setdefault(record["name"], []).append(record)
    measured = f"{sum(len(r) for r in by_name.values())} of {checked} step checks found a variable keeping an earlier step's graph"
    observed = []
    for name, records in by_name.items():
        if len(records) < t["min_steps"]:
            continue
        function, _, variable = name.partition(":")
        where = f"`{variable}`" + (f" in {function}()" if function != "<module>" else "")
        largest = max(records, key=lambda r: r["nodes"])
        observed.append(Observed(
            f"{where} kept the autograd graph of earlier steps' losses alive at {len(records)} of {checked} steps "
            f"(up to {largest['nodes']} nodes, at step {largest['step']})", None, records[0]["step"]))
    return Judgement("ML924", tuple(observed), True, measured)
