"""
## What it detects
Ranks of a distributed run that train on the same batches: each rank fingerprints the model's
input at every step (the sum of its values and their sum weighted by row position), and the
parent compares every rank's fingerprints with rank 0's step by step. Only a `--nproc-per-node`
run with two ranks or more is judged; integer inputs (token ids) are not fingerprinted. A job with
DTensor parameters (tensor parallelism, whose ranks share their batches by design, or FSDP2) is
not judged.

## Why it matters
Data parallelism is meant to split the data: N ranks each see 1/N of an epoch, so the job goes
through the data N times faster. A loader without a DistributedSampler (or another sharding)
gives every rank the whole dataset, and with the same seed the same order: the ranks compute the
same gradients, the all-reduce averages identical values, and N GPUs do the work of one.

## Example
```python
loader = DataLoader(dataset, batch_size=32, shuffle=True)
```

Use instead:
```python
sampler = DistributedSampler(dataset)
loader = DataLoader(dataset, batch_size=32, sampler=sampler)
```

## Thresholds
- `min_steps` = 3: steps compared at least.
- `min_identical_share` = 0.9: share of the compared steps where every rank's batch equals rank
  0's; shards of a DistributedSampler hold different rows, so they match at no step.
PyTorch's DistributedSampler documentation ("restricts data loading to a subset of the dataset ...
each process ... a DistributedSampler instance ... load a subset of the original dataset that is
exclusive to it"); it is ML108's static hypothesis.
"""

from __future__ import annotations

import math

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_steps": 3, "min_identical_share": 0.9}


def _same(a: list, b: list) -> bool:
    return a[1] == b[1] and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for x, y in zip(a[2:], b[2:]))


def judge(stats: Stats, t: dict) -> Judgement:
    ranks = stats.rank_collectors("batches")
    if len(ranks) < 2 or any(params.get("sharded") == "DTensor" for _, params in stats.rank_collectors("rank_params")):
        return Judgement("ML943")
    by_rank = [{row[0]: row for row in collected.get("inputs", []) if row[2] is not None} for _, collected in ranks]
    steps = sorted(set.intersection(*(set(rows) for rows in by_rank)))
    if len(steps) < t["min_steps"]:
        return Judgement("ML943")
    identical = [step for step in steps if all(_same(rows[step], by_rank[0][step]) for rows in by_rank[1:])]
    measured = f"{len(identical)} of {len(steps)} steps fed every rank the same batch"
    if len(identical) < t["min_identical_share"] * len(steps):
        return Judgement("ML943", (), True, measured)
    message = (f"all {len(ranks)} ranks fed the model identical batches at {len(identical)} of {len(steps)} steps: every rank "
               f"trains on the same data (no DistributedSampler), so {len(ranks)} ranks do the work of one")
    return Judgement("ML943", (Observed(message, None, identical[0]),), True, measured)
