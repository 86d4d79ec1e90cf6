"""
## What it detects
Inputs to a loss that expects probabilities or log-probabilities which are neither: for
`binary_cross_entropy` (BCELoss) a value outside [0, 1], for `nll_loss` (NLLLoss) a value above
0 (a log-probability never is). Read from the input of each recorded loss call before the loss
runs, so a run that the loss itself ends ("all elements of input should be between 0 and 1")
still shows it.

## Why it matters
BCELoss takes `log(input)`: raw scores make it fail, or on older versions clamp the log to -100
and train on nonsense. NLLLoss only picks `-input[target]`: fed raw scores (or probabilities), it
is minimised by making the true class's score huge, with no normalisation across classes, so the
loss goes below zero and predictions mean nothing.

## Thresholds
- `tolerance` = 1e-6: how far outside [0, 1] (BCE) or above 0 (NLL) a value may lie before it
  counts (rounding of a sigmoid or log-softmax output).
- `min_checks` = 1: loss-input checks that must show it. One is enough: a value outside the
  domain of the loss is never a transient, and BCELoss stops the run at the first.
The PyTorch documentation states both contracts (BCELoss: "the input should be probabilities";
NLLLoss: "the input given through a forward call is expected to contain log-probabilities");
these are ML403's and ML404's static hypotheses.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, fmt, judge_loss_inputs
from mlplint.probe.stats import Stats

THRESHOLDS = {"tolerance": 1e-6, "min_checks": 1}
EXPECTED = {"binary_cross_entropy": "probabilities in [0, 1]", "nll_loss": "log-probabilities (at most 0)"}


def outside_domain(record: dict, tolerance: float) -> bool:
    if record["kind"] == "binary_cross_entropy":
        return record["input_min"] < -tolerance or record["input_max"] > 1 + tolerance
    return record["input_max"] > tolerance


def judge(stats: Stats, t: dict) -> Judgement:
    def message(kind: str, low: float, high: float, flags: list[bool]) -> str:
        return f"{kind} expects {EXPECTED[kind]} but received values in [{fmt(low)}, {fmt(high)}] in {sum(flags)} of {len(flags)} checks"

    return judge_loss_inputs(stats, "ML928", tuple(EXPECTED), lambda r: outside_domain(r, t["tolerance"]), message, t["min_checks"])
