"""
## What it detects
Weight layers whose initial scale does not suit the activation that follows them, seen in the
model's first training forward (at initialisation):
- before a ReLU, a layer the script initialised itself (not PyTorch's default) through which
  the signal's second moment falls to at most `max_rectifier_gain` of its input's (He/Kaiming
  init keeps about 1; Xavier between equal widths gives 0.5), the whole stack of such layers
  keeping at most `max_total_gain` of it;
- before a tanh or sigmoid, a layer with He/Kaiming's weight scale (variance times fan-in
  within `he_gain_band` of 2) whose pre-activations have at least `min_saturating_gain` times
  the second moment of its input (a Glorot/Xavier init keeps about 1).

## Why it matters
Glorot & Bengio (2010) choose the weight variance so that the signal keeps its size through
each layer of a network of roughly linear units. A ReLU zeroes half of its input, so under that
scale the signal halves at every ReLU layer and deep stacks start with vanishing activations
and gradients; He et al. (2015) double the variance for it. He's doubled variance under tanh or
sigmoid makes the pre-activations twice as large as intended, moving units towards saturation.
Layers left on PyTorch's default init, and networks with normalisation layers (which rescale the
signal whatever the init), are not judged here. Reported only as the evidence for ML301: RL
policies use orthogonal init with gain sqrt(2) before tanh on purpose, and VGG-style nets use
He's fan_out mode, and both train well.

## Thresholds
- `max_rectifier_gain` = 0.6: second moment after a Linear/Conv and its ReLU over that of the
  layer's input (1.0 under He init, 0.5 under Xavier between equal widths).
- `max_total_gain` = 0.5: product of those gains over the mismatched ReLU layers.
- `min_saturating_gain` = 1.6 and `he_gain_band` = 0.25: pre-activation to input second moment
  before a tanh/sigmoid (about 1 under Xavier, 2 under He), with weights at He's scale, 2 +- 25%.
- `min_layers` = 2: mismatched layers needed either way (the harm compounds with depth; one
  layer's scale is a constant factor the next layer's init absorbs). All-zero weights are
  ML926's, not judged here.
Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks"
(AISTATS 2010); He et al., "Delving Deep into Rectifiers" (ICCV 2015), section 2.2. It is
ML301's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_rectifier_gain": 0.6, "max_total_gain": 0.5, "min_saturating_gain": 1.6, "he_gain_band": 0.25, "min_layers": 2}


def layers_by_model(stats: Stats) -> dict[str, list[dict]]:
    """The first training forward's weight layers followed by an activation, per model, in
    networks without normalisation layers."""
    by_model: dict[str, list[dict]] = {}
    for record in stats.records("init_signal"):
        if not record.get("normalised") and record.get("activation") and "activation_moment" in record:
            by_model.setdefault(record["model"], []).append(record)
    return by_model


def rectifier_gains(layers: list[dict]) -> list[tuple[dict, float]]:
    """(layer, second moment after its ReLU over that of its input) for the layers before a ReLU."""
    return [(r, r["activation_moment"] / max(r["input_moment"], 1e-30)) for r in layers if r["activation"] == "relu"]


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    for model, layers in layers_by_model(stats).items():
        own = [r for r in layers if not r["default_init"] and r["weight_gain"] > 0]  # all-zero weights are ML926's
        if not own:
            measured.append(f"the layers of {model} before an activation keep PyTorch's default init")
        rectified = rectifier_gains(own)
        saturating = [(r, r["output_moment"] / max(r["input_moment"], 1e-30)) for r in own if r["activation"] in ("tanh", "sigmoid")]
        if rectified:
            measured.append("signal gain through ReLU layers " + ", ".join(f"'{r['layer']}' {fmt(g)}" for r, g in rectified))
        if saturating:
            measured.append("pre-activation gain of tanh/sigmoid layers " + ", ".join(f"'{r['layer']}' {fmt(g)}" for r, g in saturating))
        shrinking = [(r, g) for r, g in rectified if g <= t["max_rectifier_gain"]]
        total = 1.0
        for _, gain in shrinking:
            total *= gain
        if len(shrinking) >= t["min_layers"] and total <= t["max_total_gain"]:
            observed.append(Observed(
                f"the signal shrinks through the ReLU layers at initialisation: {describe(shrinking)}; "
                f"{fmt(total)} of its second moment is left after them (an init matched to ReLU keeps about 1)",
                stats.layer_label(model, shrinking[0][0]["layer"]), 0,
            ))
        low, high = 2 * (1 - t["he_gain_band"]), 2 * (1 + t["he_gain_band"])
        swelling = [(r, g) for r, g in saturating if g >= t["min_saturating_gain"] and low <= r["weight_gain"] <= high]
        if len(swelling) >= t["min_layers"]:
            saturated = ", ".join(f"{fmt(100 * r['activation_saturated'])}%" for r, _ in swelling)
            observed.append(Observed(
                f"He-scaled weights before {swelling[0][0]['activation']} units at initialisation: pre-activations have "
                f"{describe(swelling)} the second moment of their inputs (Xavier keeps about 1); saturated units {saturated}",
                stats.layer_label(model, swelling[0][0]["layer"]), 0,
            ))
    return Judgement("ML929", tuple(observed), bool(measured), "; ".join(measured))


def describe(layers: list[tuple[dict, float]]) -> str:
    return ", ".join(f"'{r['layer']}' {fmt(gain)}x (weight variance x fan-in {fmt(r['weight_gain'])})" for r, gain in layers)
