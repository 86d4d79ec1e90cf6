"""
## What it detects
Activation scale that shrinks or grows layer after layer: the per-unit standard deviation over
the batch (the input-dependent signal; a learned bias does not count) of the last weight layer's
output (Linear, Conv) divided by that of the first one, in forward order.

## Why it matters
Signals that shrink towards 0 carry no information to the output (and their gradients vanish on
the way back); signals that grow overflow and saturate whatever follows. Both point at an
initialisation whose scale does not match the activation (Xavier with ReLU, too small a std,
a deep stack left on the default init).

## Thresholds
- `min_ratio` = 0.01 / `max_ratio` = 100.0: last-to-first standard deviation ratio.
- `min_layers` = 3: weight layers needed to speak of a drift.
- `min_checks` = 3: consecutive activation checks that must show it.
- `max_growth` = 1000.0: checks where the largest activation scale is more than 1000x that of the
  first check are left out: activations blowing up over the run (on the way to NaN, ML901/ML902)
  are a divergence, not a drift across layers.
Glorot & Bengio (AISTATS 2010) and He et al., "Delving Deep into Rectifiers" (ICCV 2015) derive
their initialisations from keeping this variance constant across layers; TheDeepChecker (Braiek &
Khomh, TOSEM 2023) checks activation scale per layer. Two orders of magnitude is mlplint's default.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, fmt, persists
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_ratio": 0.01, "max_ratio": 100.0, "min_layers": 3, "min_checks": 3, "max_growth": 1000.0}
WEIGHT_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d", "Bilinear", "LazyLinear"}


def judge(stats: Stats, t: dict) -> Judgement:
    passes: dict[str, dict[int, list[dict]]] = {}
    for record in stats.records("activations"):
        if record["type"] in WEIGHT_LAYERS:
            passes.setdefault(record["model"], {}).setdefault(record["step"], []).append(record)
    observed, measured = [], []
    for model, by_step in passes.items():
        checks = [(step, layers) for step, layers in sorted(by_step.items()) if len(layers) >= t["min_layers"]]
        if not checks:
            continue
        initial = max(max(layer["unit_std"] for layer in checks[0][1]), 1e-30)
        checks = [(step, layers) for step, layers in checks if max(layer["unit_std"] for layer in layers) <= t["max_growth"] * initial]
        ratios = [layers[-1]["unit_std"] / max(layers[0]["unit_std"], 1e-30) for _, layers in checks]
        flags = [not (t["min_ratio"] <= ratio <= t["max_ratio"]) for ratio in ratios]
        measured.append(f"last-to-first layer activation std ratio between {fmt(min(ratios))} and {fmt(max(ratios))}")
        if persists(flags, t["min_checks"]):
            step = first_flagged([s for s, _ in checks], flags)
            layers = checks[-1][1]
            direction = "shrinks" if ratios[-1] < 1 else "grows"
            observed.append(Observed(
                f"activation scale {direction} {fmt(ratios[-1])}x from layer '{layers[0]['layer']}' to layer "
                f"'{layers[-1]['layer']}' (std {fmt(layers[0]['unit_std'])} to {fmt(layers[-1]['unit_std'])})",
                stats.layer_label(model, layers[-1]["layer"]), step,
            ))
    return Judgement("ML909", tuple(observed), bool(measured), "; ".join(measured))
