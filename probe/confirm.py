"""Join a probe run with the static findings of the same script: each rule declares the symptoms
that confirm it, so a finding becomes `confirmed`, `not-confirmed` or `inconclusive`."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from mlplint.lint.config import ConfigResolver
from mlplint.lint.engine import check_source
from mlplint.lint.finding import Finding, Runtime
from mlplint.lint.registry import rule_by_code
from mlplint.lint.source import read_source
from mlplint.probe.detectors import Judgement, judge_all
from mlplint.probe.runner import ProbeError, run_probe
from mlplint.probe.stats import Stats

# Optimizer steps a run needs before the absence of a symptom means something.
ENOUGH_STEPS = 10


def static_findings(script: str) -> list[Finding]:
    """The static checker's findings for the script, with the configuration that applies to it."""
    settings = ConfigResolver(None).for_path(script)
    return check_source(read_source(script), script, settings).findings


def runtime_for(finding: Finding, stats: Stats, judgements: dict[str, Judgement]) -> Runtime:
    rule = rule_by_code(finding.code)
    declared = tuple(rule.symptoms) if rule is not None else ()
    if not declared:
        return Runtime("inconclusive", (), "this rule declares no runtime symptom that could confirm it")
    seen = [code for code in declared if judgements[code].observed]
    if seen:
        evidence = "; ".join(f"{code}: {judgements[code].observed[0].message}" for code in seen)
        return Runtime("confirmed", tuple(seen), evidence)
    status = stats.data.get("status")
    if stats.steps < ENOUGH_STEPS:
        return Runtime("inconclusive", (), f"the run ({status}) made only {stats.steps} optimizer steps, too few to judge")
    checked = [code for code in declared if judgements[code].checked]
    if not checked:
        return Runtime("inconclusive", (), f"the run recorded no data to judge {', '.join(declared)}")
    measured = "; ".join(judgements[code].measured for code in checked if judgements[code].measured)
    unjudged = [code for code in declared if code not in checked]
    caveat = f" ({', '.join(unjudged)} could not be judged on this run)" if unjudged else ""
    return Runtime("not-confirmed", (), f"none of {', '.join(checked)} seen in {stats.steps} steps{caveat}: {measured}")


def with_runtime(findings: list[Finding], stats: Stats, judgements: dict[str, Judgement]) -> list[Finding]:
    return [dataclasses.replace(f, runtime=runtime_for(f, stats, judgements)) for f in findings]


def attach_runtime(findings: list[Finding], scripts: list[str], thresholds: Optional[dict] = None) -> list[Finding]:
    """Run the probe once per script (default budget, timeout and device) and fill in `runtime`
    for the findings of those scripts; other findings are returned unchanged. When the probe
    itself cannot run a script, its findings are `inconclusive` with the reason."""
    runtimes: dict[str, Callable[[Finding], Runtime]] = {}
    for script in scripts:
        if not any(f.path == script for f in findings):
            continue
        try:
            stats = run_probe(script)
        except ProbeError as error:
            runtimes[script] = lambda finding, reason=str(error): Runtime("inconclusive", (), f"the probe could not run: {reason}")
            continue
        judgements = judge_all(stats, thresholds)
        runtimes[script] = lambda finding, stats=stats, judgements=judgements: runtime_for(finding, stats, judgements)
    return [dataclasses.replace(f, runtime=runtimes[f.path](f)) if f.path in runtimes else f for f in findings]
