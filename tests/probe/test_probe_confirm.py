"""How a probe run turns each static finding into confirmed / not-confirmed / inconclusive."""

from __future__ import annotations

from mlplint.lint.finding import Finding, Severity
from mlplint.probe import confirm
from mlplint.probe.confirm import runtime_for, with_runtime
from mlplint.probe.detectors import judge_all
from mlplint.probe.runner import ProbeError
from probe_helpers import gradient, recorded


def finding(code: str, path: str = "train.py") -> Finding:
    return Finding(code, "name", Severity.ERROR, "message", path, 1, 1, 1, 2)


FALLING = [2.0 * 0.95 ** i for i in range(50)]
ACCUMULATING = recorded(loss=FALLING, gradients=[gradient(s, {"0.weight": 1.0 + s}, retained=1.0) for s in range(0, 50, 10)])


def test_confirmed_when_a_declared_symptom_is_seen():
    runtime = runtime_for(finding("ML202"), ACCUMULATING, judge_all(ACCUMULATING))
    assert runtime.status == "confirmed" and "ML913" in runtime.symptoms
    assert "never cleared" in runtime.evidence


def test_not_confirmed_when_the_run_trained_and_saw_nothing():
    stats = recorded(loss=FALLING, gradients=[gradient(s, {"0.weight": 1.0}) for s in range(0, 50, 10)])
    runtime = runtime_for(finding("ML202"), stats, judge_all(stats))
    assert runtime.status == "not-confirmed" and runtime.symptoms == ()
    assert "50 steps" in runtime.evidence and "gradient norm" in runtime.evidence


def test_inconclusive_when_too_few_steps():
    stats = recorded(steps=3, loss=FALLING[:3])
    assert runtime_for(finding("ML202"), stats, judge_all(stats)).status == "inconclusive"


def test_inconclusive_with_the_reason_when_no_short_run_can_test_the_rule():
    runtime = runtime_for(finding("ML203"), ACCUMULATING, judge_all(ACCUMULATING))
    assert runtime.status == "inconclusive" and "coupled weight decay" in runtime.evidence


def test_not_confirmed_only_when_the_direct_observation_was_made():
    # ML204's direct observation is the order of the scheduler's calls (ML921); a run whose
    # scheduler never stepped tells nothing about it, even though the loss was healthy
    no_scheduler = recorded(loss=FALLING)
    runtime = runtime_for(finding("ML204"), no_scheduler, judge_all(no_scheduler))
    assert runtime.status == "inconclusive" and "ML921" in runtime.evidence
    in_order = recorded(loss=FALLING, scheduler_calls=[
        {"class": "StepLR", "optimizer": 0, "first_call_step": 8, "optimizer_steps_at_first_call": 8, "calls": 5}])
    runtime = runtime_for(finding("ML204"), in_order, judge_all(in_order))
    assert runtime.status == "not-confirmed" and "first stepped after 8 optimizer steps" in runtime.evidence


def test_confirmed_only_by_a_declared_symptom_with_its_values():
    reversed_order = recorded(loss=FALLING, scheduler_calls=[
        {"class": "StepLR", "optimizer": None, "first_call_step": 0, "optimizer_steps_at_first_call": 0, "calls": 5}])
    runtime = runtime_for(finding("ML204"), reversed_order, judge_all(reversed_order))
    assert runtime.status == "confirmed" and runtime.symptoms == ("ML921",) and "StepLR.step()" in runtime.evidence
    # a symptom the rule does not declare confirms nothing
    runtime = runtime_for(finding("ML102"), reversed_order, judge_all(reversed_order))
    assert runtime.status != "confirmed"


def test_every_rule_declares_its_direct_observation_first_or_says_why_not():
    from mlplint.lint.registry import all_rules

    for rule in all_rules():
        assert rule.symptoms or rule.code in confirm.UNTESTABLE, rule.code


def test_with_runtime_keeps_the_finding_itself():
    (original,) = [finding("ML202")]
    (updated,) = with_runtime([original], ACCUMULATING, judge_all(ACCUMULATING))
    assert updated == original and updated.runtime is not None


def test_attach_runtime_probes_every_given_script_and_reports_unexplained_symptoms(monkeypatch, tmp_path):
    probed = []

    def fake_run_probe(script):
        probed.append(script)
        if script.endswith("broken.py"):
            raise ProbeError("cannot run the interpreter 'x'")
        return ACCUMULATING

    train, broken, clean, other = (str(tmp_path / name) for name in ("train.py", "broken.py", "clean.py", "other.py"))
    for path in (train, broken, clean):
        (tmp_path / path).write_text("import torch\n")
    monkeypatch.setattr(confirm, "run_probe", fake_run_probe)
    findings = [finding("ML202", train), finding("ML202", broken), finding("ML202", other)]
    attached = confirm.attach_runtime(findings, [train, broken, clean], lambda code, path: True)
    assert probed == [train, broken, clean]  # a script without static findings is run too
    by_path = {(f.path, f.code): f for f in attached}
    assert by_path[train, "ML202"].runtime.status == "confirmed"
    assert (train, "ML913") not in by_path  # ML913 is the evidence for ML202 there, not reported twice
    assert by_path[broken, "ML202"].runtime.status == "inconclusive" and "could not run" in by_path[broken, "ML202"].runtime.evidence
    assert by_path[other, "ML202"].runtime is None
    symptom = by_path[clean, "ML913"]
    assert (symptom.line, symptom.column, symptom.severity) == (1, 1, Severity.ERROR)
    assert "never cleared" in symptom.message and symptom.runtime.status == "confirmed"


def test_unexplained_symptoms_follow_selection_and_file_level_disable(monkeypatch, tmp_path):
    monkeypatch.setattr(confirm, "run_probe", lambda script: ACCUMULATING)
    observed = sorted(code for code, judgement in judge_all(ACCUMULATING).items() if judgement.observed)
    assert "ML913" in observed and len(observed) >= 2
    plain, disabled = tmp_path / "plain.py", tmp_path / "disabled.py"
    plain.write_text("import torch\n")
    disabled.write_text("# mlplint: disable=ML913\nimport torch\n")
    codes = lambda found: sorted(f.code for f in found)  # noqa: E731
    assert codes(confirm.attach_runtime([], [str(plain)], lambda code, path: True)) == observed
    without = [code for code in observed if code != "ML913"]
    assert codes(confirm.attach_runtime([], [str(plain)], lambda code, path: code != "ML913")) == without
    assert codes(confirm.attach_runtime([], [str(disabled)], lambda code, path: True)) == without


def test_attach_runtime_warns_about_runs_that_did_not_train_to_the_budget(monkeypatch, tmp_path):
    timed_out = recorded(steps=0, loss=[])
    timed_out.data.update(status="timeout", error={"type": "Timeout", "message": "the run did not finish within 120 s"})
    monkeypatch.setattr(confirm, "run_probe", lambda script: timed_out if "hangs" in script else ACCUMULATING)
    hangs, trains = tmp_path / "hangs.py", tmp_path / "train.py"
    for path in (hangs, trains):
        path.write_text("import torch\n")
    warnings = []
    confirm.attach_runtime([], [str(hangs), str(trains)], lambda code, path: True, warn=warnings.append)
    assert warnings == [f"{hangs}: the probe run ended with status timeout after 0 optimizer steps: "
                        "Timeout: the run did not finish within 120 s"]


def test_a_confirm_only_symptom_is_reported_as_evidence_never_alone(monkeypatch, tmp_path):
    """ML932 (labels unrelated to the inputs) is by design on random demo data: it confirms ML106
    but is not reported as a symptom of its own."""
    unrelated = {"rows": 400, "task": "classification", "agreement": 0.25, "independent": 0.25,
                 "class_rows": [100] * 4, "class_agreeing": [25] * 4}
    stats = recorded(loss=FALLING, training_sample={"every": 1, "skipped": None, "neighbours": unrelated})
    judgements = judge_all(stats)
    assert judgements["ML932"].observed
    (misaligned,) = with_runtime([finding("ML106")], stats, judgements)
    assert misaligned.runtime.status == "confirmed" and misaligned.runtime.symptoms == ("ML932",)
    assert confirm.reported(judgements, lambda code: True, [misaligned])["ML932"].observed
    assert confirm.reported(judgements, lambda code: True, [])["ML932"].observed == ()
    monkeypatch.setattr(confirm, "run_probe", lambda script: stats)
    script = tmp_path / "demo.py"
    script.write_text("import torch\n")
    assert "ML932" not in [f.code for f in confirm.attach_runtime([], [str(script)], lambda code, path: True)]


def test_a_rule_with_two_hypotheses_is_tested_by_the_one_its_finding_states():
    """ML210 reports a Dropout rate and a weight decay: each finding is confirmed by its own
    observation only, and a decoupled decay (a long-run effect) stays inconclusive."""
    from mlplint.lint.config import ConfigResolver
    from mlplint.lint.engine import check_source

    source = (
        "import torch\nfrom torch import nn\n"
        "model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.9), nn.Linear(64, 2))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.1)\n"
        "opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)\n"
    )
    found = [f for f in check_source(source, "train.py", ConfigResolver(None).for_path("train.py")).findings if f.code == "ML210"]
    dropout, coupled, decoupled = sorted(found, key=lambda f: f.line)
    stats = recorded(loss=FALLING, weight_decay=[{"step": 0, "optimizer": 0, "class": "SGD", "weight_decay": 0.1,
                                                   "decoupled": False, "decay_to_gradient": 3.0}],
                     activations=[{"step": s, "model": "Sequential", "layer": "2", "type": "Dropout", "kept_share": 0.5} for s in (0, 10, 20)])
    judgements = judge_all(stats)
    assert runtime_for(coupled, stats, judgements).symptoms == ("ML940",)
    assert runtime_for(dropout, stats, judgements).status == "not-confirmed"  # it kept half: no ML940 evidence
    stats.data["optimizers"][0]["class"] = "AdamW"  # a run that built the AdamW the finding is about
    runtime = runtime_for(decoupled, stats, judgements)
    assert runtime.status == "inconclusive" and "long run" in runtime.evidence, runtime


def test_a_finding_about_an_optimizer_the_run_never_built_is_inconclusive():
    """pytorch/examples' word_language_model builds AdamW(lr=args.lr) only with --use-optimizer
    and otherwise updates by hand: a run without the flag says nothing about AdamW at lr=20."""
    adamw = Finding("ML201", "extreme-learning-rate", Severity.WARNING, "AdamW lr=20 (from `args.lr`) is about 20,000x the usual",
                    "train.py", 1, 1, 1, 2)
    stats = recorded(loss=FALLING, updates=[{"step": s, "optimizer": 0, "ratios": {"0.weight": 1e-3}} for s in range(0, 50, 10)])
    runtime = runtime_for(adamw, stats, judge_all(stats))  # the run trained with SGD
    assert runtime.status == "inconclusive" and "never built AdamW" in runtime.evidence and "SGD" in runtime.evidence
    sgd = Finding("ML201", "extreme-learning-rate", Severity.WARNING, "SGD lr=20 is about 200x the usual", "train.py", 1, 1, 1, 2)
    assert runtime_for(sgd, stats, judge_all(stats)).status == "not-confirmed"
