"""
## What it detects
A new optimizer built over the same parameters again and again, each one taking only one or two
steps before the next replaces it: at least `min_constructions` such short-lived optimizers over
one set of parameters, making up at least `min_short_share` of the optimizers that stepped on it,
and an optimizer that keeps per-parameter state between steps (Adam's `exp_avg` and
`exp_avg_sq`, SGD's `momentum_buffer`...). Read from the optimizer constructions at runtime: the
usual cause is `optimizer = torch.optim.Adam(model.parameters())` inside the batch loop.

## Why it matters
An optimizer's state is what makes it more than plain gradient descent, and a new optimizer
starts with none. SGD's momentum never builds up. Adam's first step after a reset is
lr * g / |g| per value (its bias correction makes m_hat = g and v_hat = g^2): every weight moves
by the full learning rate in the direction of the gradient's sign, whatever the gradient's size,
so training is noisy and stalls or diverges where Adam would converge. Learning-rate schedulers
attached to the first optimizer stop acting on the ones that replace it. Rebuilding the optimizer
at a few points of a run (per fold, per fine-tuning phase, per epoch over many steps) is not this
symptom; an optimizer that keeps no state (SGD without momentum) loses nothing when rebuilt and
is not reported.

## Example
```python
for x, y in loader:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
```

Use instead:
```python
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
```

## Thresholds
- `min_constructions` = 3: short-lived optimizers over the same parameters at least; one or two
  rebuilds (a fine-tuning phase, a restart) happen by design.
- `max_steps_per_optimizer` = 2: the most steps an optimizer takes to count as short-lived; an
  optimizer built per batch takes 1, and no schedule rebuilds its optimizer that often.
- `min_short_share` = 0.5: the short-lived optimizers are at least half of those that stepped on
  the parameters, so a long-lived optimizer with a few short incidental ones is not reported.
The state an optimizer keeps and how it starts: PyTorch's `torch.optim` documentation ("construct
an optimizer object that will hold the current state") and the optimizers' `step()` source; Adam's
first bias-corrected step: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015,
section 3); momentum: Sutskever et al., "On the importance of initialization and momentum in deep
learning" (ICML 2013). It is ML212's static hypothesis.
"""

from __future__ import annotations

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_constructions": 3, "max_steps_per_optimizer": 2, "min_short_share": 0.5}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    for record in stats.records("optimizer_constructions"):
        taken = {int(steps): int(count) for steps, count in record.get("steps_taken", [])}
        stepped = sum(count for steps, count in taken.items() if steps >= 1)
        if not stepped or record.get("state") is None:
            continue
        short = sum(count for steps, count in taken.items() if 1 <= steps <= t["max_steps_per_optimizer"])
        built = "/".join(record["classes"])
        what = f"{record['params']} parameters ({record['values']} values)"
        state = ", ".join(record["state"])
        measured.append(f"{record['constructions']} {built} built over the same {what}, {short} of the {stepped} that "
                        f"stepped took at most {t['max_steps_per_optimizer']:g} steps; "
                        + (f"state kept between steps: {state}" if state else "no per-parameter state kept between steps"))
        if state and short >= t["min_constructions"] and short >= t["min_short_share"] * stepped:
            observed.append(Observed(
                f"a new {built} was built over the same {what} {record['constructions']} times between steps "
                f"{record['first_built_at_step']} and {record['last_built_at_step']} ({_spread(taken)}): its state "
                f"({state}) restarts from zero each time; build the optimizer once, before the training loop",
                None, record["first_built_at_step"]))
    return Judgement("ML941", tuple(observed), bool(measured), "; ".join(measured))


def _spread(taken: dict[int, int]) -> str:
    """How many steps the optimizers took: 'each took 1 step', or '48 took 1 step, 2 took 0 steps'."""
    def steps(n: int) -> str:
        return f"{n} step{'' if n == 1 else 's'}"
    if len(taken) == 1:
        return f"each took {steps(next(iter(taken)))}"
    return ", ".join(f"{count} took {steps(n)}" for n, count in sorted(taken.items(), key=lambda item: -item[1]))
