"""Whether the targets the model trains on follow from its inputs: on the distinct rows of the
training sample, how often a row's nearest other row (Euclidean, on standardised features;
near-copies of the row left out) has the same class, or how its target correlates with that
neighbour's (regression), next to what labels independent of the inputs would give."""

from __future__ import annotations

from typing import Any, Optional

import torch

from .loss_inputs import BINARY, CLASSIFICATION, REGRESSION

# Rows the statistic is computed on at most (their pairwise distances are computed at once).
MAX_ROWS = 1024
# Rows closer than this share of the median pairwise distance count as copies of one sample.
NEAR_COPY = 0.05


def class_labels(kind: str, targets: torch.Tensor) -> Optional[torch.Tensor]:
    """One integer class per row, or None where the targets are not one class per row."""
    if kind in CLASSIFICATION:
        if not targets.is_floating_point() and targets.dim() == 1:
            return targets.long()
        if targets.is_floating_point() and targets.dim() == 2:  # one-hot or class probabilities
            return targets.argmax(dim=1)
        return None
    if kind in BINARY and targets[0].numel() == 1:
        flat = targets.reshape(-1).float()
        return flat.round().long() if bool(((flat == 0) | (flat == 1)).all()) else None
    return None


def neighbour_labels(kind: str, inputs: torch.Tensor, targets: torch.Tensor) -> Optional[dict[str, Any]]:
    """{"rows", "task", "agreement", "independent"}: the leave-one-out nearest-neighbour class
    agreement and the agreement expected of labels drawn independently of the inputs (the
    chance two distinct rows share a class), with the rows of each class and how many of them
    have a neighbour of their class ("class_rows", "class_agreeing"); or, for a one-value
    regression target, the correlation between each target and its neighbour's (expected about
    0). None when the sample cannot say (too few distinct rows, several targets per row, an
    unknown loss)."""
    x = inputs.detach().reshape(inputs.shape[0], -1).float()
    keep = distinct_rows(x)[:MAX_ROWS]
    x, targets = x[keep], targets.detach()[keep]
    if x.shape[0] < 3:
        return None
    labels = class_labels(kind, targets)
    if labels is not None:  # rows with an ignored label (ignore_index=-100) are left out
        x, labels = x[labels >= 0], labels[labels >= 0]
        if x.shape[0] < 3:
            return None
    if labels is None and not (kind in REGRESSION and targets.is_floating_point() and targets[0].numel() == 1):
        return None
    std = x.std(dim=0)
    x = (x - x.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    distances = torch.cdist(x, x, compute_mode="use_mm_for_euclid_dist")
    # near-copies of a row (the same sample under light augmentation, over several epochs) are
    # the same sample, not its neighbour
    distances[distances < NEAR_COPY * distances.median()] = float("inf")
    distances.fill_diagonal_(float("inf"))
    closest, nearest = distances.min(dim=1)
    kept = torch.isfinite(closest)  # rows with nothing but copies of themselves are left out
    n = int(kept.sum())
    if n < 3:
        return None
    if labels is not None:
        own, theirs = labels[kept], labels[nearest[kept]]
        counts = torch.bincount(own).double()
        same = own == theirs
        agreeing = torch.bincount(own[same], minlength=counts.numel()).double()
        present = counts > 0
        independent = float((counts * (counts - 1)).sum() / (n * (n - 1)))
        return {"rows": n, "task": "classification", "agreement": float(same.double().mean()), "independent": independent,
                "class_rows": [int(c) for c in counts[present]], "class_agreeing": [int(a) for a in agreeing[present]]}
    y = targets.reshape(-1).double()
    correlation = torch.corrcoef(torch.stack([y[kept], y[nearest[kept]]]))[0, 1]
    return {"rows": n, "task": "regression", "agreement": float(correlation) if torch.isfinite(correlation) else None, "independent": 0.0}


def distinct_rows(x: torch.Tensor) -> torch.Tensor:
    """Indices of the first occurrence of each distinct row (epochs repeat the training rows)."""
    _, inverse = torch.unique(x, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), x.shape[0], dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(x.shape[0], device=x.device), reduce="amin")
    return first.sort().values
