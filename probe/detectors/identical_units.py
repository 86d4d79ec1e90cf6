"""
## What it detects
Weight layers whose units (rows of the weight matrix, output channels of a kernel) are identical
to each other and stay so through training: the spread of the rows (mean over inputs of the
standard deviation across units) is a negligible fraction of the weights' magnitude at every
check. Constant or zero initialisation does it.

## Why it matters
Identical units compute the same output and receive the same gradient, so they stay identical:
the layer behaves as a single unit, however wide it is (the symmetry is never broken). Zero
weights throughout also mean no gradient for the layers below.

## Thresholds
- `max_relative_spread` = 1e-6: row spread over mean weight magnitude below this (float32
  rounding leaves ~1e-7 between units that started different and stayed close; random init
  gives ~1). A layer of all zeros counts as identical; NaN or Inf weights are ML901's.
- `min_checks` = 3: consecutive checks (default every 10 steps, after the update) that show it.
Goodfellow, Bengio & Courville, "Deep Learning" (2016), section 8.4 ("the initial parameters
need to break symmetry between different units"); it is ML307's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"max_relative_spread": 1e-6, "min_checks": 3}
# Lookup tables: their rows are entries, not units.
TABLES = {"Embedding", "EmbeddingBag"}


def judge(stats: Stats, t: dict) -> Judgement:
    by_param: dict[str, list[dict]] = {}
    for record in stats.records("unit_similarity"):
        if "spread" in record and finite(record["spread"]) and finite(record["magnitude"]) and stats.layer_type(record["param"]) not in TABLES:
            by_param.setdefault(record["param"], []).append(record)
    if not by_param:
        return Judgement("ML926", (), False, "")
    observed, closest = [], None
    for name, checks in by_param.items():
        relative = [c["spread"] / c["magnitude"] if c["magnitude"] > 0 else 0.0 for c in checks]
        closest = min(relative) if closest is None else min(closest, min(relative))
        flags = [r <= t["max_relative_spread"] for r in relative]
        if persists(flags, t["min_checks"]):
            zero = all(c["magnitude"] == 0 for c in checks)
            state = "all zero" if zero else f"identical (row spread {fmt(max(relative))} of the weight magnitude)"
            observed.append(Observed(
                f"the {checks[0]['units']} units of '{name}' stayed {state} through {sum(flags)} checks: the layer acts as one unit",
                name.rsplit(".", 1)[0], first_flagged([c["step"] for c in checks], flags)))
    return Judgement("ML926", tuple(observed), True, f"smallest row spread relative to the weights: {fmt(closest)}")
