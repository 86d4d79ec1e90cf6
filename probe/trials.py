"""`mlplint probe --trials`: re-run the script from scratch once per fixable finding with that one
fix applied, under the same seed and step budget, and measure what changed.

The fix is the rule's autofix where it has one (the fixed text runs in place of the script, which
is never written), else a runtime intervention at the same place (`interventions.py`, applied in
the child). Each trial is judged on the same measurements as the run as written: its loss curve,
its final loss and the metric of its final model on the rows the baseline held back. A finding
whose trial clearly helps becomes `confirmed`, with the measured improvement as evidence. After the
single-fix trials, one combined trial applies every fix that helped (every fix, when none helped
alone): what the script reaches with all of them is the report's answer. Parent side, torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from mlplint.lint.facts import names
from mlplint.lint.finding import Finding, Runtime, Severity
from mlplint.lint.fixes import apply_fixes
from mlplint.lint.source import read_source
from mlplint.probe.detectors import fmt, judge_all
from mlplint.probe.runner import ProbeError
from mlplint.probe.stats import Stats
from mlplint.rules.optim.extreme_learning_rate import USUAL_LR

# The seed every run of a comparison starts from (the script's own seeding still wins).
SEED = 0
# A trial clearly helps (or hurts) when its metric gains (or loses) this much (accuracy, R^2), or,
# where no metric could be measured, when its final loss is this much lower (or higher); anything
# smaller is within a short run's noise: "no change".
METRIC_GAIN = {"accuracy": 0.05, "r2": 0.1}
LOSS_DROP = 0.3
# A loss that climbs above this multiple of its first value, or stops being finite, diverged.
DIVERGED_FACTOR = 10.0
# Observed symptoms a rule's intervention answers when no static finding asked for it (ML914: by loss).
SYMPTOM_RULES = {"ML910": "ML101", "ML913": "ML202"}
# What a rule's fix does, in a few words, for the combined trial's sentence ("with the softmax
# removed and lr=0.001"); the learning rate is filled in from the trial's setting.
SHORT_CHANGES = {
    "ML101": "the inputs standardised", "ML102": "the batches shuffled", "ML201": "lr={lr:g}",
    "ML202": "the gradients cleared every step", "ML203": "AdamW", "ML205": "momentum=0.9", "ML206": "the loss total kept as a number",
    "ML208": "Adam's eps=1e-8", "ML212": "the optimizer built once", "ML301": "a matching weight init",
    "ML302": "a matching weight init", "ML304": "the layers registered", "ML307": "the default weight init",
    "ML309": "no activation on the logits", "ML401": "the softmax removed", "ML402": "the sigmoid removed",
    "ML404": "log_softmax before NLLLoss", "ML502": "evaluation under no_grad",
}


@dataclass(frozen=True)
class Plan:
    """One trial: the findings it answers, the change, and how it is applied."""

    codes: tuple[str, ...]
    change: str
    fix: str  # "autofix" | "intervention" | "combined"
    findings: tuple[Finding, ...]
    short: str  # the change in a few words ("the softmax removed")
    intervention: Optional[Any] = None  # one intervention's spec, or a list of them (combined)
    source: Optional[str] = None  # the script's text with the autofix(es) applied


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


def _short(code: str, spec: Optional[dict[str, Any]]) -> str:
    settings = (spec or {}).get("settings") or {}
    return SHORT_CHANGES.get(code, f"the {code} fix").format(lr=settings.get("lr", 0))


def plan_trials(findings: Sequence[Finding], stats: Stats, symptoms: Sequence[str] = ()) -> tuple[list[Plan], list[tuple[Finding, str]]]:
    """The trials for the script's findings (errors first) and then for observed `symptoms` that
    no finding's trial already answers, and the findings no trial answers. A trial is one fix:
    findings (and symptoms) that the same change answers share it."""
    plans: list[Plan] = []
    untried: list[tuple[Finding, str]] = []
    by_intervention: dict[str, int] = {}
    text: Optional[str] = None
    autofixed: dict[str, int] = {}  # rule -> its autofix trial: one trial fixes every place the rule names
    for finding in sorted(findings, key=lambda f: (-f.severity.rank, f.sort_key)):
        if finding.fix is not None:
            text = text if text is not None else read_source(finding.path)
            index = autofixed.get(finding.code)
            if index is not None:
                together = plans[index].findings + (finding,)
                fixed, applied = apply_fixes(text, list(together), unsafe=True)
                if applied == len(together):
                    plans[index] = dataclasses.replace(plans[index], findings=together, source=fixed)
                    continue
            fixed, applied = apply_fixes(text, [finding], unsafe=True)
            if applied:
                description = finding.fix.description
                change = f"applied the {finding.code} autofix" + (f" ({description[:1].lower()}{description[1:]})" if description else "")
                autofixed.setdefault(finding.code, len(plans))
                plans.append(Plan((finding.code,), change, "autofix", (finding,), _short(finding.code, None), source=fixed))
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
        plans.append(Plan((finding.code,), change, "intervention", (finding,), _short(finding.code, spec), intervention=spec))
    for code in symptoms:
        rule = _symptom_rule(code, stats)
        # the rule's own trial (its autofix or its intervention) already applies this fix
        index = next((i for i, plan in enumerate(plans) if rule in plan.codes), None)
        chosen = _intervention(rule, stats) if rule and index is None else None
        if chosen is not None:
            index = by_intervention.get(json.dumps(chosen[1], sort_keys=True))
            if index is None:
                by_intervention[json.dumps(chosen[1], sort_keys=True)] = len(plans)
                plans.append(Plan((code,), chosen[0], "intervention", (), _short(rule, chosen[1]), intervention=chosen[1]))
                continue
        if index is not None and code not in plans[index].codes:
            plans[index] = dataclasses.replace(plans[index], codes=plans[index].codes + (code,))
    return plans, untried


def combine(plans: Sequence[Plan], trials: Sequence[dict[str, Any]], script: Optional[str]) -> Optional[Plan]:
    """One plan with every fix whose trial helped, and every fix of an error (a certain bug: its
    trial alone can show nothing while another problem dominates) that did not make things worse;
    every fix when none helped. A fix whose trial diverged counts as helping: another problem,
    such as the learning rate, made it blow up. None when that is fewer than two fixes (the single
    trial already is the answer)."""
    ran = [(plan, trial) for plan, trial in zip(plans, trials) if trial["verdict"] not in ("not run", "failed")]
    helped = [plan for plan, trial in ran if trial["verdict"] in ("helps", "diverged")]
    chosen = [plan for plan, trial in ran if plan in helped or (
        helped and trial["verdict"] == "no change" and any(f.severity is Severity.ERROR for f in plan.findings))] or [plan for plan, _ in ran]
    if len(chosen) < 2:
        return None
    source = None
    autofixed = [finding for plan in chosen if plan.fix == "autofix" for finding in plan.findings]
    if autofixed and script is not None:
        source, applied = apply_fixes(read_source(script), autofixed, unsafe=True)
        if applied < len(autofixed):  # two autofixes edit the same text: they cannot run together
            return None
    specs = [plan.intervention for plan in chosen if plan.intervention is not None]
    codes = tuple(dict.fromkeys(code for plan in chosen for code in plan.codes))
    shorts = list(dict.fromkeys(plan.short for plan in chosen))
    short = ", ".join(shorts[:-1]) + " and " + shorts[-1] if len(shorts) > 1 else shorts[0]
    return Plan(codes, f"applied the fixes together: {short}", "combined", tuple(finding for plan in chosen for finding in plan.findings),
                short, intervention=specs or None, source=source)


@dataclass
class AsWritten:
    """What the trials are compared with: the run as written."""

    final_loss: Optional[float]
    metric: Optional[float]
    metric_name: Optional[str]
    seconds: float
    loss: Sequence[Optional[float]]
    # The trial's outputs on the sample's rows -> its metric on the held-back rows (None if unknown).
    score: Callable[[Stats, str], Optional[float]]
    evaluate_on: Optional[dict[str, Any]]


def run_trials(
    plans: Sequence[Plan], as_written: AsWritten, workdir: str, timeout: float,
    run: Callable[..., Stats], final_loss: Callable[[list[float]], Optional[float]],
    script: Optional[str] = None, live: Optional[Callable[..., Any]] = None,
) -> list[dict[str, Any]]:
    """Run each plan once, one at a time, each under the same `timeout` as the run as written,
    then the combined plan (see `combine`) where there is one, reported last. `live` (a
    LiveProgress) shows each trial's steps on a terminal."""
    results = []
    for index, plan in enumerate(plans):
        results.append(_trial(plan, f"trial {index + 1}/{len(plans)}", os.path.join(workdir, f"trial-{index}"),
                              as_written, timeout, run, final_loss, live))
    combined = combine(plans, results, script)
    if combined is not None:
        results.append({**_trial(combined, "combined trial", os.path.join(workdir, "trial-combined"), as_written, timeout,
                                 run, final_loss, live), "combined": True})
    return results


def _trial(plan: Plan, label: str, directory: str, as_written: AsWritten, timeout: float, run: Callable[..., Stats],
           final_loss: Callable[[list[float]], Optional[float]], live: Optional[Callable[..., Any]]) -> dict[str, Any]:
    os.makedirs(directory, exist_ok=True)
    settings: dict[str, Any] = {"seed": SEED, "intervention": plan.intervention,
                                "sample": {"directory": directory, "evaluate_on": as_written.evaluate_on}}
    if plan.source is not None:
        settings["source"] = os.path.join(directory, "fixed.py")
        with open(settings["source"], "w", encoding="utf-8") as handle:
            handle.write(plan.source)
    if live is not None:
        live.label = f"{label}: {','.join(plan.codes)} {plan.short}"
    try:
        stats = run(timeout=timeout, trial=settings, on_progress=live)
    except ProbeError as error:
        return _not_run(plan, as_written, f"the trial could not run: {error}")
    finally:
        if live is not None:
            live.close()
            live.label = None
    return _measured(plan, stats, as_written, as_written.score(stats, directory), final_loss(stats.primary_loss()))


def _base(plan: Plan, as_written: AsWritten) -> dict[str, Any]:
    return {"codes": list(plan.codes), "change": plan.change, "short": plan.short, "fix": plan.fix,
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


def diverged(losses: Sequence[Optional[float]]) -> bool:
    """Whether a loss curve blew up: a value not finite after a finite start, or above
    DIVERGED_FACTOR times its first value."""
    finite = [v for v in losses if v is not None and math.isfinite(v)]
    if not finite:
        return False
    if len(finite) < len(losses):
        return True
    return finite[0] > 0 and max(finite) > DIVERGED_FACTOR * finite[0]


def change_text(before: Optional[float], after: Optional[float]) -> str:
    """A measured change as before -> after and a ratio: "1.45 -> 0.21 (-85%)", "1.17 -> 2.6e+06
    (x2.2e+06)"; never a percentage above +900%."""
    shown = lambda v: "not finite" if v is None else fmt(v)  # noqa: E731
    text = f"{shown(before)} -> {shown(after)}"
    if before is None or after is None or before <= 0 or after < 0:
        return text
    ratio = after / before
    return text + (f" (x{fmt(ratio)})" if ratio > DIVERGED_FACTOR else f" ({(ratio - 1) * 100:+.0f}%)")


def judge_trial(as_written: AsWritten, loss: Optional[float], metric: Optional[float], stats: Stats) -> tuple[str, str]:
    """(verdict, effect): "helps", "no change", "worse", "diverged" or "failed", and the measured
    change in words ("final loss 1.45 -> 0.21 (-85%), accuracy 0.61 -> 0.93")."""
    status = stats.data.get("status")
    if status in ("crashed", "timeout", "no-training") and stats.steps == 0:
        error = (stats.data.get("error") or {}).get("message")
        return "failed", f"the trial made no optimizer step ({status}{': ' + error if error else ''})"
    parts = []
    if loss is not None or as_written.final_loss is not None:
        parts.append(f"final loss {change_text(as_written.final_loss, loss)}")
    name = as_written.metric_name
    if metric is not None:
        parts.append(f"{name} {'unknown' if as_written.metric is None else f'{as_written.metric:.2f}'} -> {metric:.2f}")
    effect = ", ".join(parts) or "nothing could be measured"
    if status == "crashed":
        error = (stats.data.get("error") or {}).get("message")
        return "failed", f"{effect} (the trial crashed after {stats.steps} steps{': ' + error if error else ''})"
    if diverged(stats.primary_loss()) and not diverged(as_written.loss):
        return "diverged", effect
    if metric is not None and as_written.metric is not None:
        gain = metric - as_written.metric
        if gain >= METRIC_GAIN[name]:
            return "helps", effect
        return ("worse" if gain <= -METRIC_GAIN[name] else "no change"), effect
    if loss is not None and as_written.final_loss is None:
        return "helps", effect  # finite where the run as written was not
    if loss is not None and as_written.final_loss not in (None, 0):
        change = (loss - as_written.final_loss) / abs(as_written.final_loss)
        if change <= -LOSS_DROP:
            return "helps", effect
        return ("worse" if change >= LOSS_DROP else "no change"), effect
    return "no change", effect


def with_trials(findings: list[Finding], plans: Sequence[Plan], trials: Sequence[dict[str, Any]]) -> list[Finding]:
    """Findings with the trials' verdicts in their runtime status and evidence."""
    verdicts: dict[int, dict[str, Any]] = {}
    for plan, trial in zip(plans, trials):
        for finding in plan.findings:
            verdicts[id(finding)] = trial
    changed = []
    for finding in findings:
        trial = verdicts.get(id(finding))
        if trial is None or trial["verdict"] in ("not run", "failed", "diverged", "worse"):
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
