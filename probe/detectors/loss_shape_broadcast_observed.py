"""
## What it detects
An elementwise loss (mse, l1, smooth_l1, huber, binary cross-entropy) called with an input and a
target of different shapes, so that broadcasting silently pairs every prediction with every target,
e.g. an (N, 1) prediction against an (N,) target computes N x N differences; and the same
broadcast inside a loss written by hand (`((pred - y) ** 2).mean()`), seen in the operations
between the loss and the backward call.

## Why it matters
The loss is then a meaningless average over all pairs: it trains towards the mean target and
the model learns nothing per sample, with no error raised (PyTorch only warns once, if at all).

## Thresholds
- `min_checks` = 2: consecutive loss-input checks (default every 10 steps) with mismatched shapes.
PyTorch's own `mse_loss` warning ("Using a target size that is different to the input size")
describes the failure; shape faults are a large class in Humbatova et al., "Taxonomy of Real
Faults in Deep Learning Systems" (ICSE 2020).
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, persists
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_checks": 2}
ELEMENTWISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits")


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    graph = stats.collector("loss_graph")
    broadcasts = graph.get("records", [])
    if graph.get("checked"):
        measured.append(f"{len(broadcasts)} of {graph['checked']} hand-written loss checks broadcast (N, 1) against (N,)")
    if len(broadcasts) >= t["min_checks"]:
        first = broadcasts[0]
        inputs = " and ".join(str(tuple(shape)) for shape in first["input_shapes"])
        observed.append(Observed(
            f"a hand-written loss broadcast {inputs} into {tuple(first['output_shape'])} ({first['operation'].replace('Backward0', '')}): "
            "every prediction was paired with every target", None, first["step"]))
    for kind in ELEMENTWISE:
        checks = [r for r in stats.records("loss_inputs") if r["kind"] == kind]
        if not checks:
            continue
        flags = [r["input_shape"] != r["target_shape"] for r in checks]
        last = checks[-1]
        measured.append(f"{kind} input {tuple(last['input_shape'])} and target {tuple(last['target_shape'])}")
        if persists(flags, t["min_checks"]):
            bad = next(r for r, flag in zip(checks, flags) if flag)
            observed.append(Observed(
                f"{kind} got input of shape {tuple(bad['input_shape'])} and target of shape "
                f"{tuple(bad['target_shape'])}: they were broadcast against each other",
                None, first_flagged([r["step"] for r in checks], flags),
            ))
    return Judgement("ML915", tuple(observed), bool(measured), "; ".join(measured))
