"""
## What it detects
Training batches that come in a fixed order: the same sequence of batches (same rows, same
order, by a fingerprint of each batch's input) starting again in a later epoch, or a long run of
consecutive batches whose labels are all one class, with runs of different classes (data sorted
by label).

## Why it matters
Without shuffling every epoch presents the same batches in the same order, and sorted data gives
the model one class at a time: each stretch of steps pulls the weights towards one class and the
next undoes it. The loss swings from epoch to epoch and the model ends biased to the last class seen.

Integer inputs (token ids) are not fingerprinted: a language model trained with truncated
backpropagation through time keeps its batches in order on purpose. In a torchrun job
(`--nproc-per-node`) each rank's batches are judged on their own: a DistributedSampler whose
`set_epoch()` is never called gives every rank the same order in every epoch (ML107). Judged healthy only from the labels (batches of mixed classes); the absence of a repeat alone
proves nothing, as an epoch may be longer than the run.

## Thresholds
- `min_repeated_batches` = 3: consecutive batches of a later epoch identical to the first ones
  (or the whole epoch, when it is shorter); a shuffled loader repeats none.
- `min_batches_per_epoch` = 2: an epoch of one batch (full-batch training) has no order.
- `min_single_class_run` = 5 and `min_batch_size` = 8: consecutive single-class batches of at
  least 8 labels; shuffled, a batch of 8 from two balanced classes is single-class with
  probability 2 x 0.5^8 < 1%, five in a row practically never.
- `min_run_samples` = 256: with a single class seen in the run, its labels must also add up to
  this many, and the loss must have 3 or more classes (a heavily imbalanced binary task shows
  single-class batches even when shuffled).
PyTorch's DataLoader documentation (`shuffle=True` "to have the data reshuffled at every epoch")
and Bengio, "Practical Recommendations for Gradient-Based Training of Deep Architectures" (2012),
on the need for randomly ordered examples in SGD; it is ML102's static hypothesis.
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_repeated_batches": 3, "min_batches_per_epoch": 2, "min_single_class_run": 5, "min_batch_size": 8,
              "min_run_samples": 256}


def _same(a: list, b: list) -> bool:
    return a[1] == b[1] and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a[2:], b[2:]))


def repeated_epoch(inputs: list[list], t: dict) -> tuple[int, int] | None:
    """(epoch length, batches repeated) when the batches from some point repeat the first ones."""
    for length in range(1, len(inputs)):
        if not _same(inputs[length], inputs[0]):
            continue
        if length < t["min_batches_per_epoch"]:  # the same batch again at once: full-batch training
            return None
        needed = min(length, int(t["min_repeated_batches"]))
        repeated = 0
        while length + repeated < len(inputs) and repeated < length and _same(inputs[length + repeated], inputs[repeated]):
            repeated += 1
        if repeated >= needed:
            return length, repeated
    return None


def single_class_runs(labels: list[list], t: dict) -> tuple[int, set, int]:
    """(longest run of consecutive single-class batches, the classes of those runs' batches,
    labels in the longest run)."""
    longest, current, classes, samples, run_samples = 0, 0, set(), 0, 0
    run_classes: set = set()
    for _, size, low, high in labels:
        if size >= t["min_batch_size"] and low is not None and low == high:
            current += 1
            run_samples += size
            run_classes.add(low)
        else:
            current, run_samples, run_classes = 0, 0, set()
        if current > longest:
            longest, samples = current, run_samples
        if current >= t["min_single_class_run"]:
            classes |= run_classes
    return longest, classes, samples


def judge(stats: Stats, t: dict) -> Judgement:
    """A torchrun job is judged rank by rank: each rank's sampler has its own order."""
    ranks = stats.rank_collectors("batches")
    if not ranks:
        return _judge(stats.collector("batches"), t)
    judged = [(rank, _judge(collected, t, distributed=True)) for rank, collected in ranks]
    seen = [rank for rank, judgement in judged if judgement.observed]
    measured = "; ".join(f"rank {rank}: {judgement.measured}" for rank, judgement in judged if judgement.measured)
    if not seen:
        return Judgement("ML922", (), any(judgement.checked for _, judgement in judged), measured)
    where = f"on rank {seen[0]}" if len(seen) == 1 else f"on ranks {', '.join(map(str, seen))}"
    first = dict(judged)[seen[0]]
    return Judgement("ML922", tuple(Observed(f"{where}, {item.message}", item.layer, item.step) for item in first.observed),
                     True, measured)


def _judge(collected: dict, t: dict, distributed: bool = False) -> Judgement:
    inputs = [row for row in collected.get("inputs", []) if row[2] is not None]
    labels = [row for row in collected.get("labels", []) if row[2] is not None]
    sized = [row for row in labels if row[1] >= t["min_batch_size"]]
    if len(inputs) <= 2 * t["min_batches_per_epoch"] and len(sized) < t["min_single_class_run"]:
        return Judgement("ML922", (), False, "")
    observed, measured = [], []
    repeat = repeated_epoch(inputs, t)
    if repeat is not None:
        length, repeated = repeat
        observed.append(Observed(
            f"the batches repeat in the same order every {length} steps: batches {length + 1}-{length + repeated} "
            f"are batches 1-{repeated} again (an unshuffled loader"
            f"{', or a DistributedSampler whose set_epoch() is never called' if distributed else ''})", None, inputs[length][0]))
    else:
        measured.append(f"no repeated batch order in {len(inputs)} batches (an epoch longer than the run cannot show one)")
    longest, classes, samples = single_class_runs(labels, t)
    widths = [int(c) for c in collected.get("class_counts", {})]
    if longest >= t["min_single_class_run"] and (len(classes) >= 2 or (samples >= t["min_run_samples"] and max(widths, default=2) >= 3)):
        shown = ", ".join(str(int(c)) for c in sorted(classes))
        observed.append(Observed(
            f"{longest} consecutive batches held a single class each (class{'es' if len(classes) > 1 else ''} {shown}): "
            "the data comes sorted by label", None, None))
    elif labels:
        measured.append(f"longest run of single-class batches: {longest}")
    # Without a repeat, only the labels tell: a shuffled epoch mixes classes, a fixed order of
    # unsorted data may too, and an epoch longer than the run shows no repeat either way.
    checked = bool(observed) or len(sized) >= t["min_single_class_run"]
    return Judgement("ML922", tuple(observed), checked, "; ".join(measured))
