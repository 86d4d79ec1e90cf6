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


def test_inconclusive_when_the_rule_declares_no_symptom():
    runtime = runtime_for(finding("ML203"), ACCUMULATING, judge_all(ACCUMULATING))
    assert runtime.status == "inconclusive" and "declares no runtime symptom" in runtime.evidence


def test_with_runtime_keeps_the_finding_itself():
    (original,) = [finding("ML202")]
    (updated,) = with_runtime([original], ACCUMULATING, judge_all(ACCUMULATING))
    assert updated == original and updated.runtime is not None


def test_attach_runtime_probes_only_the_given_scripts(monkeypatch):
    probed = []

    def fake_run_probe(script):
        probed.append(script)
        if script == "broken.py":
            raise ProbeError("cannot run the interpreter 'x'")
        return ACCUMULATING

    monkeypatch.setattr(confirm, "run_probe", fake_run_probe)
    findings = [finding("ML202", "train.py"), finding("ML202", "broken.py"), finding("ML202", "other.py")]
    train, broken, other = confirm.attach_runtime(findings, ["train.py", "broken.py", "unrelated.py"])
    assert probed == ["train.py", "broken.py"]  # a script without findings is not run
    assert train.runtime.status == "confirmed"
    assert broken.runtime.status == "inconclusive" and "could not run" in broken.runtime.evidence
    assert other.runtime is None
