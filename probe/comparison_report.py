"""Text of `--baseline` and `--trials`: the one-line answer the report leads with, the baseline, the
differences table and the trials. Formats the JSON objects (`baseline`, `trials`); decides
nothing beyond wording."""

from __future__ import annotations

from typing import Any, Optional

# Metric differences below these read as the two models agreeing (accuracy, R^2).
AGREEMENT = {"accuracy": 0.05, "r2": 0.1}
LABELS = {"accuracy": "accuracy", "r2": "R^2"}


def _number(value: Optional[float]) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def _best_trial(trials: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    helped = [t for t in trials if t["verdict"] == "helps"]
    with_metric = [t for t in helped if t.get("metric") is not None]
    if with_metric:
        return max(with_metric, key=lambda t: t["metric"])
    return helped[0] if helped else None


def _trials_answer(trials: list[dict[str, Any]], sklearn: Optional[float], key: str) -> str:
    """What the trials found, in one clause: what the combined trial (every fix that helped)
    reaches, else the best single fix, else that none helped; and a single fix that reached
    clearly more than the combined trial, when one did."""
    if not trials:
        return "no finding has a fix to try"
    singles = [t for t in trials if not t.get("combined")]
    combined = next((t for t in trials if t.get("combined") and t["verdict"] not in ("not run", "failed")), None)
    chosen = combined or _best_trial(singles)
    none_helped = "the one trial did not clearly help" if len(singles) == 1 else f"none of the {len(singles)} trials clearly helped"
    if chosen is None:
        return none_helped
    if combined is not None and not any(t["verdict"] == "helps" for t in singles):
        if combined["verdict"] != "helps":
            return f"none of the {len(singles)} fixes clearly helped, alone or together"
        prefix = f"none of the {len(singles)} fixes clearly helped alone; "
    else:
        prefix = ""
    alone = "" if combined else " alone"
    if chosen.get("metric") is None:
        return f"{prefix}with {chosen['short']}{alone}: {chosen['verdict']}: {chosen['effect']}"
    against = f" against scikit-learn's {sklearn:.2f}" if sklearn is not None else ""
    text = f"{prefix}with {chosen['short']}{alone}, this script reaches {chosen['metric']:.2f}{against}"
    better = max((t for t in singles if t.get("metric") is not None), key=lambda t: t["metric"], default=None)
    if combined is not None and better is not None and better["metric"] - chosen["metric"] >= AGREEMENT.get(key, 0.05):
        loss = " (its loss diverged)" if better["verdict"] == "diverged" else ""
        text += f"; with {better['short']} alone it reaches {better['metric']:.2f}{loss}"
    return text


def answer(comparison: dict[str, Any]) -> str:
    """One line: how scikit-learn's default MLP and the script compare, and what the script
    reaches with the fixes that helped."""
    baseline = comparison.get("baseline")
    trials = comparison.get("trials")
    sklearn = (baseline or {}).get("sklearn")
    key = (baseline or {}).get("metric") or "metric"
    tail = "" if trials is None else "; " + _trials_answer(trials, sklearn["metric"] if sklearn else None, key)
    if baseline is None:  # --trials alone
        return tail[2:]
    name = LABELS.get(key, key)
    script = baseline["script"]["metric"]
    if baseline.get("skipped") or sklearn is None:
        return f"no scikit-learn baseline: {baseline.get('skipped')}" + tail
    if script is None:
        return f"scikit-learn's default MLP reaches {sklearn['metric']:.2f} {name} on the same data; this script's model could not be measured on it" + tail
    gap = sklearn["metric"] - script
    if abs(gap) < AGREEMENT.get(key, 0.05):
        return f"scikit-learn's default MLP reaches {sklearn['metric']:.2f} {name} on the same data and this script {script:.2f}: they agree" + tail
    if gap < 0:
        return f"this script reaches {script:.2f} {name}, better than scikit-learn's default MLP ({sklearn['metric']:.2f}) on the same data" + tail
    return f"scikit-learn's default MLP reaches {sklearn['metric']:.2f} {name} on the same data, this script {script:.2f}" + tail


def comparison_lines(comparison: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    baseline = comparison.get("baseline")
    if baseline is not None:
        lines += ["", *_baseline_lines(baseline)]
    trials = comparison.get("trials")
    if trials is not None:
        lines += ["", *_trial_lines(trials, comparison.get("untried", []), comparison.get("seed"))]
    return lines


def _baseline_lines(baseline: dict[str, Any]) -> list[str]:
    script = baseline["script"]
    sklearn = baseline.get("sklearn")
    lines = []
    if baseline.get("skipped"):
        lines.append(f"Baseline skipped: {baseline['skipped']}")
    else:
        flattened = f" (each flattened from {'x'.join(map(str, baseline['flattened_from']))})" if baseline.get("flattened_from") else ""
        lines.append(f"Baseline ({baseline['task']}, {baseline['metric']} on {baseline['held_back']} of the {baseline['samples']} distinct "
                     f"rows the run fed the model{flattened}, held back from scikit-learn):")
        lines.append(f"  this script:  {baseline['metric']} {_number(script['metric'])}, final training loss {_number(script['loss'])} "
                     f"after {script['steps']} steps")
        if sklearn is not None:
            converged = "" if sklearn.get("converged", True) else ", not converged"
            lines.append(f"  scikit-learn: {baseline['metric']} {_number(sklearn['metric'])}, training loss {_number(sklearn['loss'])} "
                         f"({sklearn['estimator']} defaults, {sklearn['iterations']} epochs{converged})")
    rows = baseline.get("differences") or []
    if rows:
        lines += ["", "Differences (this script | scikit-learn default | Keras default):"]
        width = max(len(row["setting"]) for row in rows)
        for row in rows:
            lines.append(f"  {row['setting']:<{width}}  {row['script']} [{row['script_from']}] | {row['sklearn']} | {row['keras']}")
    return lines


def _trial_lines(trials: list[dict[str, Any]], untried: list[dict[str, Any]], seed: Optional[int]) -> list[str]:
    if not trials:
        lines = ["Trials: none (no finding has an autofix or a runtime intervention)"]
    else:
        lines = [f"Trials (each a fresh run with one fix, seed {seed}, the same step budget and --timeout):"]
        for trial in trials:
            if trial.get("combined"):
                lines.append(f"  then all together, {','.join(trial['codes'])} ({trial['short']}): {trial['verdict']}: {trial['effect']}")
            else:
                lines.append(f"  {','.join(trial['codes'])} {trial['change']} ({trial['fix']}): {trial['verdict']}: {trial['effect']}")
    if untried:
        lines.append("  not tried: " + "; ".join(f"{u['code']} (line {u['line']}): {u['reason']}" for u in untried))
    return lines
