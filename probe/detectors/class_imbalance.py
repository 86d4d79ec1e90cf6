"""
## What it detects
Training targets dominated by a few classes: the class counts of the targets that reach a
classification loss, summed over every training step (over the sampled loss calls for binary
losses), with the largest class at least `max_imbalance` times the smallest (a class never seen
counts as 0).

## Why it matters
A model trained on skewed targets can reach a low loss and a high accuracy by predicting the
majority class. Class weights, resampling, or a metric that sees the minority classes (balanced
accuracy, per-class recall) are then needed. This is information: some tasks are skewed by nature.

## Thresholds
- `max_imbalance` = 10.0: largest-to-smallest class count ratio.
- `min_samples_per_class` = 20: targets seen per class (on average) before judging, so that a few
  small batches do not raise it; `min_checks` = 3 loss calls measured.
He & Garcia, "Learning from Imbalanced Data" (IEEE TKDE 2009) and Buda, Maki & Mazurowski (Neural
Networks 2018) describe imbalance by this ratio; 10:1 is mlplint's default for "dominated".
Binary-loss calls whose targets are all 0 or all 1 are left out: a constant target per call is a
label made by the script (the real/fake labels of a GAN), not a class distribution.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_imbalance": 10.0, "min_samples_per_class": 20, "min_checks": 3}


def class_counts(stats: Stats) -> tuple[list[int], int]:
    """Summed class counts of the training loss calls, and how many calls they come from: the
    counts of every step where they were recorded (the widest loss), else the sampled calls'."""
    every_step = stats.collector("batches").get("class_counts") or {}
    if every_step:
        widest = max(every_step, key=int)
        return every_step[widest], stats.collector("batches").get("count_calls", 0)
    totals: list[int] = []
    calls = 0
    for record in stats.records("loss_inputs"):
        if not record.get("training", True):
            continue
        counts = record.get("class_counts")
        binary = record.get("binary_counts")
        if binary is not None and binary[0] + binary[1] == binary[2] and min(binary[0], binary[1]) > 0:
            counts = binary[:2]
        if counts is None:
            continue
        if len(counts) > len(totals):
            totals += [0] * (len(counts) - len(totals))
        totals = [a + b for a, b in zip(totals, counts + [0] * (len(totals) - len(counts)))]
        calls += 1
    return totals, calls


def judge(stats: Stats, t: dict) -> Judgement:
    counts, calls = class_counts(stats)
    if len(counts) < 2 or calls < t["min_checks"] or sum(counts) < t["min_samples_per_class"] * len(counts):
        return Judgement("ML916", (), False, "")
    largest, smallest = max(counts), min(counts)
    ratio = largest / smallest if smallest else float("inf")
    share = largest / sum(counts)
    measured = f"largest-to-smallest class ratio {fmt(ratio)} over {sum(counts)} targets" if smallest else \
        f"class {counts.index(smallest)} never appears in {sum(counts)} targets"
    if ratio >= t["max_imbalance"]:
        rarest = f"the rarest class has {smallest} ({fmt(ratio)}x fewer)" if smallest else \
            f"{sum(1 for c in counts if c == 0)} of the {len(counts)} classes never appear"
        return Judgement("ML916", (Observed(
            f"class {counts.index(largest)} makes up {share:.0%} of {sum(counts)} training targets; {rarest}",
            None, None),), True, measured)
    return Judgement("ML916", (), True, measured)
