"""Join a probe run with the static findings of the same script: each rule declares the symptoms
that confirm it, so a finding becomes `confirmed`, `not-confirmed` or `inconclusive`."""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional

from mlplint.lint.config import ConfigResolver
from mlplint.lint.engine import check_source
from mlplint.lint.facts.names import OPTIMIZER_FAMILIES
from mlplint.lint.finding import Finding, Runtime
from mlplint.lint.registry import rule_by_code
from mlplint.lint.source import read_source
from mlplint.lint.suppression import Suppressions
from mlplint.probe.detectors import Judgement, judge_all
from mlplint.probe.report import error_text
from mlplint.probe.runner import ProbeError, Progress, run_probe
from mlplint.probe.stats import Stats
from mlplint.probe.symptoms import SYMPTOMS

# Optimizer steps a run needs before the absence of a symptom means something.
ENOUGH_STEPS = 10
TORCH_OPTIMIZERS = {qualname.rsplit(".", 1)[-1] for qualname in OPTIMIZER_FAMILIES}


def static_check(script: str) -> tuple[list[Finding], Callable[[str], bool]]:
    """The static checker's findings for the script, with the configuration that applies to it,
    and which of its runtime symptoms that configuration lets through (`symptom_filter`)."""
    text = read_source(script)
    settings = ConfigResolver(None).for_path(script)
    return check_source(text, script, settings).findings, symptom_filter(script, text, settings.enabled)


# Why a short run cannot test some rules' hypotheses (their effect shows only over a long run or
# against a corrected run, which `--trials` makes).
UNTESTABLE = {
    "ML203": "coupled weight decay only shows against decoupled decay over a long run",
    "ML306": "two stacked Linear layers train as one linear map; nothing in a short run tells it from a linear model",
    "ML210": "decoupled weight decay (AdamW) shrinks the weights by lr x decay per step, which shows over a long run",
    "ML214": "the GradScaler is disabled where no GPU runs the script, and on a GPU clipped scaled gradients shrink "
             "the updates, which shows only over a long run",
    "ML215": "the second scaler.step() without scaler.update() raises RuntimeError, so the run crashes at its second "
             "step instead of showing a symptom",
    "ML309": "a class the head can no longer predict shows in the accuracy, not in the run's statistics (the dead-ReLU "
             "detector needs half a layer's units dead; a binary head's logit merely stays >= 0)",
}


def named_optimizer(message: str) -> Optional[str]:
    """The torch.optim class a finding's message starts with ("AdamW lr=20 ...", "SGD(weight_decay=...")."""
    match = re.match(r"(\w+)[ (]", message)
    return match.group(1) if match and match.group(1) in TORCH_OPTIMIZERS else None


def runtime_for(finding: Finding, stats: Stats, judgements: dict[str, Judgement]) -> Runtime:
    """`confirmed` by a symptom the rule declares (its measured values in the evidence);
    `not-confirmed` only when the run made the rule's direct observation (its first declared
    symptom) and found it healthy; `inconclusive`, with the reason, otherwise (also when the
    finding is about an optimizer class the run never built: a branch or flag not taken)."""
    rule = rule_by_code(finding.code)
    declared = tuple(rule.symptoms_for(finding.message)) if rule is not None else ()
    built = [optimizer.get("class") for optimizer in stats.data.get("optimizers", [])]
    named = named_optimizer(finding.message)
    if named is not None and built and named not in built:
        trained_with = sorted({"hand-written updates" if c == "HandWrittenUpdates" else c for c in built})
        return Runtime("inconclusive", (), f"the run never built {named} (the code path that builds it was not taken); "
                                           f"it trained with {', '.join(trained_with)}")
    if not declared:
        reason = UNTESTABLE.get(finding.code, "no runtime observation tests this rule")
        return Runtime("inconclusive", (), f"a short run cannot test this: {reason}; a trial run with the fix applied can")
    seen = [code for code in declared if judgements[code].observed]
    if seen:
        evidence = "; ".join(f"{code}: {judgements[code].observed[0].message}" for code in seen)
        return Runtime("confirmed", tuple(seen), evidence)
    status = stats.data.get("status")
    if stats.steps < ENOUGH_STEPS:
        return Runtime("inconclusive", (), f"the run ({status}) made only {stats.steps} optimizer steps, too few to judge")
    direct = declared[0]
    if not judgements[direct].checked:
        why = f": {judgements[direct].measured}" if judgements[direct].measured else ""
        return Runtime("inconclusive", (), f"the run could not observe {direct} {SYMPTOMS[direct].name}, which tests this finding{why}")
    checked = [code for code in declared if judgements[code].checked]
    measured = "; ".join(judgements[code].measured for code in checked if judgements[code].measured)
    return Runtime("not-confirmed", (), f"{direct} {SYMPTOMS[direct].name} was observed healthy over {stats.steps} steps, "
                                        f"and none of {', '.join(checked)} seen: {measured}")


def with_runtime(findings: list[Finding], stats: Stats, judgements: dict[str, Judgement]) -> list[Finding]:
    return [dataclasses.replace(f, runtime=runtime_for(f, stats, judgements)) for f in findings]


def unexplained_symptoms(script: str, judgements: dict[str, Judgement], findings: list[Finding]) -> list[Finding]:
    """Observed symptoms that confirm none of the script's static findings, as findings of their
    own at line 1 (a run has no source location), so `check --probe` reports what the run showed
    even where the static rules saw nothing (symptoms that only confirm a finding excepted)."""
    explained = {code for f in findings if f.path == script and f.runtime is not None for code in f.runtime.symptoms}
    added = []
    for code, judgement in sorted(judgements.items()):
        symptom = SYMPTOMS[code]
        if code in explained or symptom.confirms_only:
            continue
        for seen in judgement.observed:
            layer = f"layer '{seen.layer}': " if seen.layer else ""
            step = f" (from step {seen.step})" if seen.step is not None else ""
            added.append(Finding(
                code, symptom.name, symptom.severity, f"{layer}{seen.message}{step}", script, 1, 1, 1, 1,
                runtime=Runtime("confirmed", (code,), "observed by the probe; no static rule explains it"),
            ))
    return added


def symptom_filter(script: str, text: str, enabled: Callable[[str, str], bool]) -> Callable[[str], bool]:
    """Whether a symptom observed on `script` (source `text`) is reported: enabled by the
    configuration and not disabled in the script (`# mlplint: disable=ML904`, or a `# noqa` on
    line 1, where `check --probe` reports symptoms)."""
    suppressions = Suppressions.from_source(text)
    return lambda code: enabled(code, script) and not suppressions.suppresses(code, 1, 1)


def reported(judgements: dict[str, Judgement], shown: Callable[[str], bool], findings: list[Finding]) -> dict[str, Judgement]:
    """The judgements with the observations of symptoms that are not reported left out: those
    `shown` rejects, and those that only confirm a finding (`confirms_only`) where no finding of
    `findings` was confirmed by them."""
    confirming = {code for f in findings if f.runtime is not None for code in f.runtime.symptoms}
    return {code: j if shown(code) and (code in confirming or not SYMPTOMS[code].confirms_only) else dataclasses.replace(j, observed=())
            for code, j in judgements.items()}


def attach_runtime(
    findings: list[Finding], scripts: list[str], enabled: Callable[[str, str], bool], thresholds: Optional[dict] = None,
    warn: Callable[[str], None] = lambda line: None, progress: Optional[Callable[[Progress], None]] = None,
) -> list[Finding]:
    """Run the probe once per script (default budget, timeout and device), fill in `runtime` for
    the findings of those scripts (other findings are returned unchanged) and add the symptoms no
    finding explains, where `enabled(code, script)`. When the probe itself cannot run a script,
    its findings are `inconclusive` with the reason; a run that crashed, timed out or never
    trained is also told to `warn` in one line; `progress` is told how each run is getting on."""
    runtimes: dict[str, Callable[[Finding], Runtime]] = {}
    observed: dict[str, dict[str, Judgement]] = {}
    for script in scripts:
        try:
            stats = run_probe(script, on_progress=progress) if progress is not None else run_probe(script)
        except ProbeError as error:
            runtimes[script] = lambda finding, reason=str(error): Runtime("inconclusive", (), f"the probe could not run: {reason}")
            warn(f"{script}: the probe could not run: {error}")
            continue
        if stats.data.get("status") in ("crashed", "timeout", "no-training"):
            warn(f"{script}: the probe run ended with status {stats.data['status']} after {stats.steps} optimizer steps: {error_text(stats)}")
        judgements = observed[script] = judge_all(stats, thresholds)
        runtimes[script] = lambda finding, stats=stats, judgements=judgements: runtime_for(finding, stats, judgements)
    attached = [dataclasses.replace(f, runtime=runtimes[f.path](f)) if f.path in runtimes else f for f in findings]
    for script, judgements in observed.items():
        attached += unexplained_symptoms(script, reported(judgements, symptom_filter(script, read_source(script), enabled), attached), attached)
    return attached
