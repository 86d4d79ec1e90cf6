"""
## What it detects
An Adam-family optimizer whose `eps` changes the size of a large share of its steps: after the
measured steps, at least `min_share` of the parameter values (those with a second moment) take
a step more than twice as small or as large as Adam's default eps of 1e-8 would give, at
`min_checks` checks or more.

## Why it matters
Adam divides each step by sqrt(v_hat) + eps, where v_hat is the running mean of the squared
gradient. An eps far above the gradients' scale dominates the denominator: Adam becomes SGD
with the learning rate lr / eps, which is tiny, and training stalls. An eps far below 1e-8 lets
values whose gradients are almost zero take full-size steps (a step of lr times the noise divided
by itself). Where the gradients are far from eps either way, eps changes nothing and is not
reported.

## Thresholds
- `min_share` = 0.25: share of the values whose step size eps changes more than twofold.
- `min_checks` = 2: checks (default every 10 steps) that must show it.
Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015), Algorithm 1 (eps = 1e-8
as the default); the twofold factor is mlplint's default. It is ML208's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_share": 0.25, "min_checks": 2}


def judge(stats: Stats, t: dict) -> Judgement:
    by_optimizer: dict[int, list[dict]] = {}
    for record in stats.records("adam_epsilon"):
        if record.get("values"):
            by_optimizer.setdefault(record["optimizer"], []).append(record)
    observed, measured = [], []
    for index, checks in by_optimizer.items():
        eps = ", ".join(fmt(e) for e in checks[0]["eps"])
        changed = [(r, r["damped"] + r["amplified"]) for r in checks]
        worst, share = max(changed, key=lambda pair: pair[1])
        measured.append(f"{checks[0]['class']}(eps={eps}) changed the step size of at most {fmt(100 * share)}% of the values more than twofold")
        flagged = [r for r, s in changed if s >= t["min_share"]]
        if len(flagged) >= t["min_checks"]:
            way = "shrinks" if worst["damped"] >= worst["amplified"] else "enlarges"
            observed.append(Observed(
                f"{checks[0]['class']}'s eps={eps} {way} the steps of {fmt(100 * share)}% of the parameter values more than "
                f"twofold against the default eps 1e-8 ({len(flagged)} of {len(checks)} checks)",
                stats.optimizer_label(str(index)), flagged[0]["step"],
            ))
    return Judgement("ML933", tuple(observed), bool(measured), "; ".join(measured))
