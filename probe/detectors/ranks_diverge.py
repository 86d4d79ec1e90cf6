"""
## What it detects
Ranks of a distributed run whose parameters differ after an optimizer step: each rank records the
2-norm and the sum of every parameter an optimizer updates after steps 1, 2, 4, 8 and every 10th,
and the parent compares every rank's fingerprint with rank 0's at the same step. Only a
`--nproc-per-node` run with two ranks or more is judged.

## Why it matters
Data parallelism trains one model: DistributedDataParallel broadcasts rank 0's weights when it
wraps the model and averages the gradients in backward(), so every rank takes the same step and
holds the same weights. A model that is not wrapped in DDP (or a hand-written loop that forgets to
all-reduce its gradients) trains one independent model per rank, each on its own shard: the
checkpoint saved by rank 0 has seen 1/N of the data, and evaluation on another rank measures
another model.

## Example
```python
model = nn.Linear(20, 2)                     # never wrapped
for x, y in loader:                          # DistributedSampler: each rank its own shard
    criterion(model(x), y).backward()
    optimizer.step()
```

Use instead:
```python
model = DistributedDataParallel(nn.Linear(20, 2))
```

Sharded parameters (FSDP, tensor parallelism) are not fingerprinted, and ranks whose optimizers
update other parameters than rank 0's (pipeline stages) are not compared.

## Thresholds
- `relative_tolerance` = 1e-5: a parameter differs when its norm or sum on a rank is further than
  this share of its size from rank 0's; the all-reduce gives every rank bit-identical gradients, so
  synchronised ranks differ by nothing.
- `min_checks` = 2: consecutive compared checks with a difference (ranks that drifted never meet again).
PyTorch's DistributedDataParallel documentation ("each process ... the same initial values ...
gradients are averaged") and its notes on ranks that must stay in sync.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, first_flagged, persists
from mlplint.probe.stats import Stats

THRESHOLDS = {"relative_tolerance": 1e-5, "min_checks": 2}


def _differs(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) > tolerance * max(abs(a), abs(b), 1e-12)


def judge(stats: Stats, t: dict) -> Judgement:
    ranks = stats.rank_collectors("rank_params")
    if len(ranks) < 2:
        return Judgement("ML942")
    names = ranks[0][1].get("params", {})
    # ranks whose optimizers update other parameters (pipeline stages) are not compared
    ranks = [(rank, collected) for rank, collected in ranks if collected.get("params", {}) == names]
    if len(ranks) < 2:
        return Judgement("ML942")
    by_rank = [{(r["step"], r["optimizer"]): r for r in collected.get("records", []) if r.get("norms")} for _, collected in ranks]
    keys = sorted(set.intersection(*(set(records) for records in by_rank)))
    flags, worst = [], None
    for key in keys:
        reference = by_rank[0][key]
        differing = []
        for position, records in enumerate(by_rank[1:], start=1):
            for index, (norm, total) in enumerate(zip(records[key]["norms"], records[key]["sums"])):
                if _differs(norm, reference["norms"][index], t["relative_tolerance"]) or \
                        _differs(total, reference["sums"][index], t["relative_tolerance"]):
                    differing.append((ranks[position][0], position, index))
        flags.append(bool(differing))
        if differing and worst is None:
            worst = (key, differing)
    if not keys:
        return Judgement("ML942")
    measured = f"{len(ranks)} ranks' parameters compared at {len(keys)} checks"
    if not persists(flags, t["min_checks"]):
        return Judgement("ML942", (), True, measured + ": identical at every check" if not any(flags) else measured)
    (step, optimizer), differing = worst
    rank, position, index = differing[0]
    param_names = names.get(str(optimizer), [])
    name = param_names[index] if index < len(param_names) else f"parameter {index}"
    count = len({i for _, _, i in differing})
    message = (f"after step {step}, {count} of {len(by_rank[0][(step, optimizer)]['norms'])} parameters differ between ranks "
               f"(e.g. '{name}': sum {by_rank[0][(step, optimizer)]['sums'][index]:.6g} on rank 0, "
               f"{by_rank[position][(step, optimizer)]['sums'][index]:.6g} on rank {rank}): each rank trains its own copy "
               "(a model not wrapped in DistributedDataParallel, or a missing gradient all-reduce)")
    return Judgement("ML942", (Observed(message, None, first_flagged([k[0] for k in keys], flags)),), True, measured)
