"""
## What it detects
Early layers that get gradients orders of magnitude smaller than the last layers: the RMS
gradient of the first weight matrix (or kernel) divided by that of the last one.

## Why it matters
When the gradient shrinks layer after layer on its way back, the early layers stop learning while
the late ones fit noise on top of random features. Causes: saturating activations (sigmoid, tanh)
in a deep stack, initial weights too small, no normalisation or residual paths.

## Thresholds
- `min_ratio` = 1e-3: first-to-last RMS gradient ratio below this ("orders of magnitude").
- `min_layers` = 2: weight matrices needed (a gap of three orders between two layers is already
  a fact worth knowing).
- `min_checks` = 3: consecutive gradient checks that must show it.
Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks"
(AISTATS 2010) measure exactly this layer-to-layer decay; AUTOTRAINER's vanishing-gradient rule
(Zhang et al., ICSE 2021) also compares the gradients of the first and last layers. Layers are
taken in forward order (the order of the activation records), else in the optimizer's parameter
order, which is the modules' registration order.
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats, finite

THRESHOLDS = {"min_ratio": 1e-3, "min_layers": 2, "min_checks": 3}
# Lookup tables: a batch touches a few rows, so their RMS gradient over the whole table is small
# by construction, not vanishing.
SPARSE_LAYERS = {"Embedding", "EmbeddingBag"}


def forward_order(stats: Stats) -> dict[str, int]:
    """Position of each layer (by its name in parameter names) in the first recorded forward."""
    records = stats.records("activations")
    first = records[0]["step"] if records else None
    order: dict[str, int] = {}
    for record in records:
        if record["step"] != first:
            break
        prefix = f"{record['model']}." if len(stats.models) > 1 else ""
        order.setdefault(prefix + record["layer"], len(order))
    return order


def weight_rms(stats: Stats, norms: dict[str, float], order: dict[str, int]) -> list[tuple[str, float]]:
    """(name, RMS gradient) of the weight matrices and kernels (2 or more dimensions, embedding
    tables left out), in forward order where known, else in the optimizer's order."""
    result = []
    for name, norm in norms.items():
        shape = stats.param_info(name).get("shape", [])
        if len(shape) >= 2 and finite(norm) and stats.layer_type(name) not in SPARSE_LAYERS:
            result.append((name, norm / math.sqrt(max(1, math.prod(shape)))))
    if order and all(name.rsplit(".", 1)[0] in order for name, _ in result):
        result.sort(key=lambda item: order[item[0].rsplit(".", 1)[0]])
    return result


def judge(stats: Stats, t: dict) -> Judgement:
    by_optimizer: dict[int, list[tuple[int, str, float]]] = {}
    order = forward_order(stats)
    for record in stats.records("gradients"):
        weights = weight_rms(stats, record.get("norms", {}), order)
        if len(weights) >= t["min_layers"] and weights[-1][1] > 0:
            ratio = weights[0][1] / weights[-1][1]
            by_optimizer.setdefault(record["optimizer"], []).append((record["step"], weights[0][0], ratio))
    observed, measured = [], []
    for index, checks in by_optimizer.items():
        flags = [ratio < t["min_ratio"] for _, _, ratio in checks]
        ratios = [ratio for _, _, ratio in checks]
        measured.append(f"first-to-last layer gradient ratio between {fmt(min(ratios))} and {fmt(max(ratios))}")
        if persists(flags, t["min_checks"]):
            step = first_flagged([s for s, _, _ in checks], flags)
            layer = checks[0][1].rsplit(".", 1)[0]
            lowest = min(ratios)
            observed.append(Observed(
                f"the first layer's gradients are {fmt(lowest)} times the last layer's (RMS)" if lowest > 0
                else "the first layer gets no gradient at all while the last layer does",
                layer, step,
            ))
    return Judgement("ML906", tuple(observed), bool(measured), "; ".join(measured))
