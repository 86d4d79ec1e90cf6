"""
## What it detects
Parameters that take part in the model but never change: a `requires_grad` parameter of a
trained model that no optimizer holds (often a layer kept in a plain list or dict, which
`model.parameters()` does not see, or an optimizer built before a layer was replaced), or one an
optimizer holds that never received a gradient at any gradient check (not on the loss's path).

## Why it matters
Those weights stay at their random initial values while the rest of the model adapts around them.
When it is intended, set `requires_grad=False` (then it is not reported).

## Thresholds
- `min_checks` = 3: gradient checks in which a held parameter must lack a gradient (or have a
  zero one) before it is reported.
DeepDiagnosis's "unchanged weight" symptom (Wardat et al., ICSE 2022) and TheDeepChecker's
parameter-update checks (Braiek & Khomh, TOSEM 2023) look for the same thing.
"""

from __future__ import annotations

from typing import Optional

from mlplint.probe.detectors import Judgement, Observed
from mlplint.probe.stats import Stats

THRESHOLDS = {"min_checks": 3}


def _named(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _common_layer(names: list[str]) -> Optional[str]:
    """The layer all the parameters belong to, or None when they span several."""
    layers = {name.rsplit(".", 1)[0] for name in names}
    return layers.pop() if len(layers) == 1 else None


def judge(stats: Stats, t: dict) -> Judgement:
    if not stats.data.get("optimizers"):
        return Judgement("ML918", (), False, "")
    observed = []
    trained = {name.split(".")[0] for o in stats.data["optimizers"] for name in o["params"]} if len(stats.models) > 1 else set(stats.models)
    for model, info in stats.models.items():
        if model not in trained:
            continue
        orphans = [name for name, p in info["params"].items() if p["requires_grad"] and not p.get("in_optimizer")]
        if orphans:
            where = "" if all(info["params"][n]["registered"] for n in orphans) else " (not registered on the model)"
            layer = _common_layer(orphans)
            observed.append(Observed(
                f"{len(orphans)} parameters are in no optimizer and are never updated{where}: {_named(orphans)}",
                stats.layer_label(model, layer) if layer else None, None,
            ))
    checks = stats.records("gradients")
    checks_per_optimizer: dict[int, int] = {}
    gradless: dict[str, tuple[int, int]] = {}  # name -> (optimizer, checks without a gradient)
    for record in checks:
        index = record["optimizer"]
        checks_per_optimizer[index] = checks_per_optimizer.get(index, 0) + 1
        zero = [name for name, norm in record.get("norms", {}).items() if norm == 0]
        for name in record.get("missing", []) + zero:
            if stats.param_info(name).get("requires_grad") is False:
                continue  # frozen on purpose
            gradless[name] = (index, gradless.get(name, (index, 0))[1] + 1)
    never = [
        name for name, (index, count) in gradless.items()
        if count == checks_per_optimizer[index] and count >= t["min_checks"]
    ]
    if never:
        observed.append(Observed(
            f"{len(never)} parameters never received a non-zero gradient in {checks_per_optimizer[gradless[never[0]][0]]} checks: {_named(never)}",
            _common_layer(never), None,
        ))
    measured = f"every parameter of {len(trained)} trained model(s) was held by an optimizer and got gradients at {len(checks)} checks"
    return Judgement("ML918", tuple(observed), bool(checks), measured)
