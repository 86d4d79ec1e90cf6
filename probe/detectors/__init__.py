"""Detectors: one module per runtime symptom (ML9xx), each judging recorded statistics.

A detector module is named after its symptom (`dead_relu.py` for ML907 dead-relu) and defines
`THRESHOLDS` (named defaults, documented with their sources in the module docstring, which is what
`mlplint rule ML907` prints) and `judge(stats, thresholds) -> Judgement`. Detectors read plain
recorded data, never torch, so a saved run can be judged again and tested without a model.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Optional

from mlplint.probe.stats import Stats, median
from mlplint.probe.symptoms import SYMPTOMS


@dataclass(frozen=True)
class Observed:
    """One occurrence of a symptom: what was seen, where and from which step."""

    message: str
    layer: Optional[str] = None
    step: Optional[int] = None


@dataclass(frozen=True)
class Judgement:
    """A detector's verdict: the occurrences seen, whether the data needed to judge was there
    (`checked`), and one sentence with the measured values either way."""

    code: str
    observed: tuple[Observed, ...] = ()
    checked: bool = False
    measured: str = ""


class ThresholdError(ValueError):
    """An unknown symptom or threshold name, or a value that is not a number."""


def detector_module(code: str) -> ModuleType:
    symptom = SYMPTOMS[code.upper()]
    return importlib.import_module(f"{__name__}.{symptom.name.replace('-', '_')}")


def detector_doc(code: str) -> Optional[str]:
    """The documentation of the detector for an ML9xx code (What it detects / Why it matters /
    Thresholds), or None for a code that is not a symptom."""
    if code.upper() not in SYMPTOMS:
        return None
    return inspect.cleandoc(detector_module(code).__doc__ or "") or None


def default_thresholds(code: str) -> dict[str, float]:
    return dict(detector_module(code).THRESHOLDS)


def resolve_thresholds(overrides: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, dict[str, float]]:
    """Every detector's thresholds with the overrides ({code: {name: value}}) applied and checked."""
    resolved = {code: default_thresholds(code) for code in SYMPTOMS}
    for code, values in (overrides or {}).items():
        if code.upper() not in resolved:
            raise ThresholdError(f"unknown symptom code '{code}'")
        table = resolved[code.upper()]
        for name, value in values.items():
            if name not in table:
                raise ThresholdError(f"{code.upper()} has no threshold '{name}' (known: {', '.join(sorted(table))})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ThresholdError(f"{code.upper()}.{name} must be a number, got {value!r}")
            table[name] = value
    return resolved


def judge_all(stats: Stats, overrides: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, Judgement]:
    """Every detector's judgement of one run, by code."""
    thresholds = resolve_thresholds(overrides)
    return {code: detector_module(code).judge(stats, thresholds[code]) for code in SYMPTOMS}


def persists(flags: list[bool], min_checks: float) -> bool:
    """Seen in at least `min_checks` consecutive checks, so that one noisy batch does not raise a
    symptom (a run too short for that many checks raises none)."""
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest > 0 and longest >= min_checks


def first_flagged(steps: list[int], flags: list[bool]) -> Optional[int]:
    return next((step for step, flag in zip(steps, flags) if flag), None)


def fmt(value: float) -> str:
    """A measured value for a message: 3 significant digits, scientific when very small or large."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.3g}"


def judge_loss_inputs(stats: Stats, code: str, kinds: tuple[str, ...], flagged: Callable[[dict], bool],
                      message: Callable[[str, float, float, list[bool]], str], min_checks: float) -> Judgement:
    """A symptom of the inputs of some kinds of loss call: each kind's recorded calls are flagged
    one by one, and a kind whose flags persist for `min_checks` checks is observed, with the range
    its inputs took."""
    observed, measured = [], []
    for kind in kinds:
        checks = [r for r in stats.records("loss_inputs") if r["kind"] == kind]
        if not checks:
            continue
        flags = [flagged(r) for r in checks]
        low, high = min(r["input_min"] for r in checks), max(r["input_max"] for r in checks)
        measured.append(f"{kind} inputs ranged over [{fmt(low)}, {fmt(high)}]")
        if persists(flags, min_checks):
            observed.append(Observed(message(kind, low, high, flags), None, first_flagged([r["step"] for r in checks], flags)))
    return Judgement(code, tuple(observed), bool(measured), "; ".join(measured))


def loss_windows(values: list[float]) -> tuple[float, float]:
    """The starting loss (median of the first 3 steps, so one odd batch does not set it) and the
    final loss (median of the last fifth of the run, at least 3 steps)."""
    return median(values[:3]), median(values[-max(3, len(values) // 5):])



def persistent_layer_fractions(
    stats: Stats, field: str, limit: float, min_checks: float, describe: Callable[[float, int, int, str], str],
    min_values_per_unit: float = 0,
) -> tuple[int, float, tuple[Observed, ...]]:
    """For the layers whose activation records measure `field` (a fraction), counting only checks
    where each unit had at least `min_values_per_unit` values: how many layers there are, the worst
    fraction seen, and one Observed per layer where the fraction stays at or above `limit` over
    `min_checks` checks, its message `describe(highest, flagged checks, checks, type)`."""
    layers = {}
    for key, checks in stats.layer_checks().items():
        usable = [c for c in checks if c.get(field) is not None and c.get("values_per_unit", min_values_per_unit) >= min_values_per_unit]
        if usable:
            layers[key] = usable
    observed, worst = [], 0.0
    for (model, layer), checks in layers.items():
        fractions = [check[field] for check in checks]
        worst = max(worst, max(fractions))
        flags = [fraction >= limit for fraction in fractions]
        if persists(flags, min_checks):
            message = describe(max(fractions), sum(flags), len(flags), checks[0]["type"])
            observed.append(Observed(message, stats.layer_label(model, layer), first_flagged([c["step"] for c in checks], flags)))
    return len(layers), worst, tuple(observed)
