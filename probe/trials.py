"""`mlplint probe --trials`: re-run the script from scratch once per fixable finding with that one
fix applied, under the same seed and step budget, and measure what changed.

The fix is the rule's autofix where it has one (the fixed text runs in place of the script, which
is never written), else a runtime intervention at the same place (`interventions.py`, applied in
the child). Each trial is judged on the same measurements as the run as written: its loss curve,
its final loss and the metric of its final model on the rows the baseline held back. A finding
whose trial clearly helps becomes `confirmed`, with the measured improvement as evidence.
Parent side, torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from mlplint.lint.facts import names
from mlplint.lint.finding import Finding, Runtime
from mlplint.lint.fixes import apply_fixes
from mlplint.lint.source import read_source
from mlplint.probe.detectors import fmt, judge_all
from mlplint.probe.runner import ProbeError
from mlplint.probe.stats import Stats
from mlplint.rules.optim.extreme_learning_rate import USUAL_LR

# The seed every run of a comparison starts from (the script's own seeding still wins).
SEED = 0
# A trial clearly helps when its metric gains this much (accuracy, R^2), or, where no metric
# could be measured, when its final loss is this much lower; it changes nothing below NO_CHANGE.
METRIC_GAIN = {"accuracy": 0.05, "r2": 0.1}
LOSS_DROP = 0.3
NO_CHANGE = {"metric": 0.02, "loss": 0.1}
# Observed symptoms a rule's intervention answers when no static finding asked for it (ML914: by loss).
SYMPTOM_RULES = {"ML910": "ML101", "ML913": "ML202"}


@dataclass(frozen=True)
class Plan:
    """One trial: the findings it answers, the change, and how it is applied."""

    codes: tuple[str, ...]
    change: str
    fix: str  # "autofix" | "intervention"
    findings: tuple[Finding, ...]
    intervention: Optional[dict[str, Any]] = None
    source: Optional[str] = None  # the script's text with the autofix applied


def _usual_lr(stats: Stats) -> Optional[tuple[str, float]]:
    optimizer = (stats.data.get("optimizers") or [{}])[0].get("class")
    family = names.optimizer_family(f"torch.optim.{optimizer}") if optimizer else None
    return (optimizer, USUAL_LR[family]) if family in USUAL_LR else None


def _intervention(code: str, stats: Stats) -> Optional[tuple[str, dict[str, Any]]]:
    """(change, intervention) for a finding of rule `code` that it cannot autofix, None when
    there is none."""
    if code == "ML101":
        return "standardised the model's input features (mean and std of the first batch)", {"kind": "standardise-inputs"}
    if code == "ML201":
        usual = _usual_lr(stats)
        if usual is None:
            return None
        return f"set the learning rate to {usual[1]:g} (the usual for {usual[0]})", {"kind": "optimizer-settings", "settings": {"lr": usual[1]}}
    if code == "ML202":
        return "cleared the gradients after every optimizer step", {"kind": "clear-gradients"}
    if code == "ML205":
        return "added momentum=0.9 to SGD", {"kind": "optimizer-settings", "settings": {"momentum": 0.9}}
    if code == "ML208":
        return "set Adam's epsilon to 1e-8", {"kind": "optimizer-settings", "settings": {"eps": 1e-8}}
    if code in ("ML301", "ML302"):
        return "re-initialised the weights to match the activation (Kaiming for ReLU, Xavier for tanh/sigmoid)", \
            {"kind": "reinitialise", "scheme": "match-activation"}
    if code == "ML307":
        return "re-initialised the weights with PyTorch's default init", {"kind": "reinitialise", "scheme": "pytorch-default"}
    if code == "ML102":
        return "set shuffle=True on the training DataLoader", {"kind": "shuffle-loaders"}
    if code == "ML401":
        return "dropped the softmax before the loss (CrossEntropyLoss gets log-probabilities)", {"kind": "loss-inputs", "loss": "cross_entropy"}
    if code == "ML402":
        return "dropped the sigmoid before the loss (BCEWithLogitsLoss gets logits)", \
            {"kind": "loss-inputs", "loss": "binary_cross_entropy_with_logits"}
    if code == "ML404":
        return "gave NLLLoss log-probabilities (log_softmax of the output)", {"kind": "loss-inputs", "loss": "nll_loss"}
    return None


def _symptom_rule(code: str, stats: Stats) -> Optional[str]:
    """The rule whose intervention answers an observed symptom, where there is one."""
    if code == "ML914":
        calls = stats.records("loss_inputs")
        kind = stats.collector("training_sample").get("loss_kind") or (calls[0]["kind"] if calls else None)
        return {"cross_entropy": "ML401", "nll_loss": "ML404", "binary_cross_entropy_with_logits": "ML402"}.get(kind)
    return SYMPTOM_RULES.get(code)


def plan_trials(findings: Sequence[Finding], stats: Stats, symptoms: Sequence[str] = ()) -> tuple[list[Plan], list[tuple[Finding, str]]]:
    """The trials for the script's findings (errors first) and then for observed `symptoms` that
    no finding's trial already answers, and the findings no trial answers."""
    plans: list[Plan] = []
    untried: list[tuple[Finding, str]] = []
    by_intervention: dict[str, int] = {}
    text: Optional[str] = None
    for finding in sorted(findings, key=lambda f: (-f.severity.rank, f.sort_key)):
        if finding.fix is not None:
            text = text if text is not None else read_source(finding.path)
            fixed, applied = apply_fixes(text, [finding], unsafe=True)
            if applied:
                description = finding.fix.description
                change = f"applied the {finding.code} autofix" + (f" ({description[:1].lower()}{description[1:]})" if description else "")
                plans.append(Plan((finding.code,), change, "autofix", (finding,), source=fixed))
                continue
        chosen = _intervention(finding.code, stats)
        if chosen is None:
            untried.append((finding, "no autofix or runtime intervention for this rule"))
            continue
        change, spec = chosen
        key = json.dumps(spec, sort_keys=True)
        if key in by_intervention:  # the same change answers several findings
            index = by_intervention[key]
            plan = plans[index]
            codes = plan.codes + ((finding.code,) if finding.code not in plan.codes else ())
            plans[index] = dataclasses.replace(plan, codes=codes, findings=plan.findings + (finding,))
            continue
        by_intervention[key] = len(plans)
        plans.append(Plan((finding.code,), change, "intervention", (finding,), intervention=spec))
    for code in symptoms:
        rule = _symptom_rule(code, stats)
        chosen = _intervention(rule, stats) if rule else None
        if chosen is None:
            continue
        change, spec = chosen
        key = json.dumps(spec, sort_keys=True)
        if key in by_intervention:
            index = by_intervention[key]
            if code not in plans[index].codes:
                plans[index] = dataclasses.replace(plans[index], codes=plans[index].codes + (code,))
            continue
        by_intervention[key] = len(plans)
        plans.append(Plan((code,), change, "intervention", (), intervention=spec))
    return plans, untried


@dataclass
class AsWritten:
    """What the trials are compared with: the run as written."""

    final_loss: Optional[float]
    metric: Optional[float]
    metric_name: Optional[str]
    seconds: float
    # The trial's outputs on the sample's rows -> its metric on the held-back rows (None if unknown).
    score: Callable[[Stats, str], Optional[float]]
    evaluate_on: Optional[dict[str, Any]]


def run_trials(
    plans: Sequence[Plan], as_written: AsWritten, workdir: str, deadline: float,
    run: Callable[..., Stats], final_loss: Callable[[list[float]], Optional[float]],
) -> list[dict[str, Any]]:
    """Run each plan once, one at a time, while the deadline leaves time for a run as long as the
    run as written; the rest are reported as not run."""
    results = []
    for index, plan in enumerate(plans):
        left = deadline - time.monotonic()
        if left < max(1.0, as_written.seconds):
            results.append(_not_run(plan, as_written, f"did not fit in the --timeout ({left:.0f} s left, a run takes about {as_written.seconds:.0f} s)"))
            continue
        directory = os.path.join(workdir, f"trial-{index}")
        os.makedirs(directory, exist_ok=True)
        settings: dict[str, Any] = {"seed": SEED, "intervention": plan.intervention,
                                    "sample": {"directory": directory, "evaluate_on": as_written.evaluate_on}}
        if plan.source is not None:
            settings["source"] = os.path.join(directory, "fixed.py")
            with open(settings["source"], "w", encoding="utf-8") as handle:
                handle.write(plan.source)
        try:
            stats = run(timeout=left, trial=settings)
        except ProbeError as error:
            results.append(_not_run(plan, as_written, f"the trial could not run: {error}"))
            continue
        results.append(_measured(plan, stats, as_written, as_written.score(stats, directory), final_loss(stats.primary_loss())))
    return results


def _base(plan: Plan, as_written: AsWritten) -> dict[str, Any]:
    return {"codes": list(plan.codes), "change": plan.change, "fix": plan.fix,
            "as_written_final_loss": as_written.final_loss, "as_written_metric": as_written.metric}


def _not_run(plan: Plan, as_written: AsWritten, reason: str) -> dict[str, Any]:
    return {**_base(plan, as_written), "status": "not-run", "loss": [], "final_loss": None, "metric": None,
            "symptoms": [], "verdict": "not run", "effect": reason}


def _measured(plan: Plan, stats: Stats, as_written: AsWritten, metric: Optional[float], loss: Optional[float]) -> dict[str, Any]:
    verdict, effect = judge_trial(as_written, loss, metric, stats)
    return {**_base(plan, as_written), "status": stats.data.get("status"),
            "loss": [v if v == v and abs(v) != float("inf") else None for v in stats.primary_loss()],
            "final_loss": loss, "metric": metric,
            "symptoms": sorted(code for code, judgement in judge_all(stats).items() if judgement.observed),
            "verdict": verdict, "effect": effect}


def judge_trial(as_written: AsWritten, loss: Optional[float], metric: Optional[float], stats: Stats) -> tuple[str, str]:
    """(verdict, effect): "helps", "no change", "worse", "unclear" or "failed", and the measured
    change in words ("final loss -85%, accuracy 0.61 -> 0.93")."""
    if stats.data.get("status") in ("crashed", "timeout", "no-training") and stats.steps == 0:
        error = (stats.data.get("error") or {}).get("message")
        return "failed", f"the trial made no optimizer step ({stats.data.get('status')}{': ' + error if error else ''})"
    parts = []
    loss_change = None
    if loss is not None and as_written.final_loss not in (None, 0):
        loss_change = (loss - as_written.final_loss) / abs(as_written.final_loss)
        parts.append(f"final loss {loss_change * 100:+.0f}%")
    elif loss is not None and as_written.final_loss is None:
        parts.append(f"final loss {fmt(loss)} (non-finite or unknown as written)")
    name = as_written.metric_name
    if metric is not None and as_written.metric is not None:
        parts.append(f"{name} {as_written.metric:.2f} -> {metric:.2f}")
    elif metric is not None:
        parts.append(f"{name} {metric:.2f} (unknown as written)")
    effect = ", ".join(parts) or "nothing could be measured"
    if stats.data.get("status") == "crashed":
        effect += f" (the trial crashed after {stats.steps} steps)"
    if metric is not None and as_written.metric is not None:
        gain = metric - as_written.metric
        if gain >= METRIC_GAIN[name]:
            return "helps", effect
        if gain <= -METRIC_GAIN[name]:
            return "worse", effect
        if abs(gain) < NO_CHANGE["metric"] and (loss_change is None or abs(loss_change) < NO_CHANGE["loss"]):
            return "no change", effect
        return "unclear", effect
    if loss_change is not None:
        if loss_change <= -LOSS_DROP:
            return "helps", effect
        if abs(loss_change) < NO_CHANGE["loss"]:
            return "no change", effect
        return ("worse" if loss_change > LOSS_DROP else "unclear"), effect
    if loss is not None and as_written.final_loss is None:
        return "helps", effect  # finite where the run as written was not
    return "unclear", effect


def with_trials(findings: list[Finding], plans: Sequence[Plan], trials: Sequence[dict[str, Any]]) -> list[Finding]:
    """Findings with the trials' verdicts in their runtime status and evidence."""
    verdicts: dict[int, dict[str, Any]] = {}
    for plan, trial in zip(plans, trials):
        for finding in plan.findings:
            verdicts[id(finding)] = trial
    changed = []
    for finding in findings:
        trial = verdicts.get(id(finding))
        if trial is None or trial["verdict"] in ("not run", "failed", "unclear", "worse"):
            if trial is not None and finding.runtime is not None:
                note = f"; trial ({trial['change']}): {trial['verdict']}: {trial['effect']}"
                finding = dataclasses.replace(finding, runtime=dataclasses.replace(finding.runtime, evidence=finding.runtime.evidence + note))
            changed.append(finding)
            continue
        runtime = finding.runtime or Runtime("inconclusive", (), "")
        if trial["verdict"] == "helps":
            evidence = f"the trial that {trial['change']} helped: {trial['effect']}"
            if runtime.status == "confirmed":
                evidence = f"{runtime.evidence}; {evidence}"
            runtime = Runtime("confirmed", runtime.symptoms, evidence)
        else:
            note = f"the trial that {trial['change']} changed nothing: {trial['effect']}"
            runtime = Runtime(runtime.status, runtime.symptoms, f"{runtime.evidence}; {note}" if runtime.evidence else note)
        changed.append(dataclasses.replace(finding, runtime=runtime))
    return changed
