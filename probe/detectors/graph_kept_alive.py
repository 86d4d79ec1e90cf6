"""
## What it detects
An autograd graph that grows step after step: a tensor with autograd history, held in a variable
of the training loop, whose graph is larger at every check (default every 5 optimizer steps).
The usual cause is a loss total summed without `.item()` (`total_loss += loss`): each step's
graph hangs off the total, and none is ever freed.

## Why it matters
The graph of every step stays in memory (and, when no backward frees them, the activations each
one saved): memory grows until the run fails, and each step gets slower. Accumulate
`loss.item()` (or `loss.detach()`) instead.

## Thresholds
- `min_checks` = 3: consecutive checks at which the graph was larger than at the one before.
- `min_growth` = 2.0: and at least twice as large at the last of them as at the first.
The PyTorch FAQ ("My model reports 'cuda runtime error(2): out of memory'": "Don't accumulate
history across your training loop ... total_loss += loss") describes the failure; it is ML206's
static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_checks": 3, "min_growth": 2.0}


def growing_run(sizes: list[tuple[int, int]], min_checks: float) -> tuple[int, int] | None:
    """(start, end) positions of the longest run of strictly growing sizes with `min_checks` rises."""
    best, start = None, 0
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or sizes[i][1] <= sizes[i - 1][1]:
            if i - 1 - start >= min_checks and (best is None or i - 1 - start > best[1] - best[0]):
                best = (start, i - 1)
            start = i
    return best


def judge(stats: Stats, t: dict) -> Judgement:
    by_name: dict[str, list[tuple[int, int]]] = {}
    for record in stats.records("graph_growth"):
        by_name.setdefault(record["name"], []).append((record["step"], record["nodes"]))
    if not by_name:
        return Judgement("ML924", (), stats.steps >= 10 and bool(stats.collector("graph_growth")),
                         "no tensor with autograd history was held across optimizer steps" if stats.collector("graph_growth") else "")
    observed, largest = [], 0
    for name, sizes in by_name.items():
        largest = max(largest, max(n for _, n in sizes))
        run = growing_run(sizes, t["min_checks"])
        if run is None:
            continue
        (first_step, first), (last_step, last) = sizes[run[0]], sizes[run[1]]
        if last < t["min_growth"] * first:
            continue
        function, _, variable = name.partition(":")
        where = f"`{variable}`" + (f" in {function}()" if function != "<module>" else "")
        observed.append(Observed(
            f"the autograd graph behind {where} grew from {first} to {last} nodes between steps {first_step} and {last_step}: "
            "each step's graph is kept alive", None, first_step))
    measured = f"largest graph held across steps: {largest} nodes"
    return Judgement("ML924", tuple(observed), True, measured)
