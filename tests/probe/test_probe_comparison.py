"""The parts of --baseline / --trials / --html that need no script run: the metrics against
scikit-learn's, the ways a model's outputs are read, the trials' verdicts and plans, the child's
sample collector and interventions on a tiny model, and the SVG chart."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, r2_score
from torch import nn

from mlplint.lint.finding import Edit, Finding, Fix, Severity
from mlplint.probe.baseline import Sample, accuracy, final_loss, fit_sklearn, r2, run_baseline, script_metric
from mlplint.probe.differences import differences
from mlplint.probe.collectors.training_sample import TrainingSampleCollector, read_float32, write_float32
from mlplint.probe.comparison_report import answer
from mlplint.probe import html_report
from mlplint.probe.html_report import chart, render
from mlplint.probe.interventions import LossInputs, StandardiseInputs
from mlplint.probe.live import LiveProgress
from mlplint.probe.runner import Progress
from mlplint.probe import trials as trials_module
from mlplint.probe.trials import AsWritten, judge_trial, plan_trials, run_trials
from probe_helpers import recorded, run_cli


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    truth, predicted = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    assert r2(truth, predicted) == pytest.approx(r2_score(truth, predicted))
    assert r2(truth[:, 0], truth[:, 0] * 0.9) == pytest.approx(r2_score(truth[:, 0], truth[:, 0] * 0.9))
    labels, guesses = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    assert accuracy(labels, guesses) == pytest.approx(accuracy_score(labels, guesses))


def test_final_loss_is_the_mean_of_the_last_five_and_unknown_when_not_finite():
    assert final_loss([9.0, 1.0, 2.0, 3.0, 4.0, 5.0]) == 3.0
    assert final_loss([1.0, float("nan")]) is None and final_loss([]) is None


def _sample(kind: str, targets: np.ndarray, reads_output: bool = True) -> Sample:
    meta = {"loss_kind": kind, "rows": len(targets), "loss_reads_model_output": reads_output}
    return Sample(np.zeros((len(targets), 2), np.float32), targets.astype(np.float32), None, meta, None, "")


def test_outputs_are_read_the_way_the_loss_reads_them():
    rows = np.arange(4)
    ce = _sample("cross_entropy", np.array([[0], [1], [1], [0]]))
    assert script_metric(ce, np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 0.0]]), rows, True) == 0.75  # argmax
    logits = _sample("binary_cross_entropy_with_logits", np.array([[0], [1], [1], [0]]))
    assert script_metric(logits, np.array([[-0.2], [0.3], [0.1], [-3.0]]), rows, True) == 1.0  # threshold 0
    probabilities = _sample("binary_cross_entropy", np.array([[0], [1], [1], [0]]))
    assert script_metric(probabilities, np.array([[0.4], [0.7], [0.3], [0.1]]), rows, True) == 0.75  # threshold 0.5
    # BCE fed sigmoid(output) applied outside the model: raw outputs are logits, read at 0
    assert script_metric(_sample("binary_cross_entropy", np.array([[0], [1], [1], [0]]), False),
                         np.array([[-2.0], [1.5], [0.2], [-0.1]]), rows, False) == 1.0
    regression = _sample("mse_loss", np.array([[1.0], [2.0], [3.0], [4.0]]))
    assert script_metric(regression, np.array([[1.0], [2.0], [3.0], [4.0]]), rows, True) == 1.0
    assert script_metric(regression, np.array([[1.0, 0.0]] * 4), rows, True) is None  # width mismatch: unknown
    assert script_metric(ce, np.array([[np.nan, 1.0]] * 4), rows, True) is None


def _trial_stats(status="step-budget", steps=50):
    stats = recorded(steps=steps, loss=[1.0] * steps)
    stats.data["status"] = status
    return stats


def _as_written(loss=1.0, metric=0.6, name="accuracy"):
    return AsWritten(loss, metric, name, 3.0, [1.2, 1.1, 1.0], lambda stats, directory: None, None)


def test_trial_verdicts_follow_the_measured_change():
    assert judge_trial(_as_written(), 0.2, 0.9, _trial_stats()) == ("helps", "final loss 1 -> 0.2 (-80%), accuracy 0.60 -> 0.90")
    assert judge_trial(_as_written(), 0.98, 0.61, _trial_stats())[0] == "no change"
    assert judge_trial(_as_written(), 0.98, 0.57, _trial_stats())[0] == "no change"  # within a short run's noise
    assert judge_trial(_as_written(), 1.5, 0.4, _trial_stats())[0] == "worse"
    assert judge_trial(_as_written(metric=None), 0.5, None, _trial_stats())[0] == "helps"  # loss -50%, no metric
    assert judge_trial(_as_written(metric=None), 1.5, None, _trial_stats())[0] == "worse"
    assert judge_trial(_as_written(loss=None, metric=None), 0.5, None, _trial_stats())[0] == "helps"  # finite where it was not
    assert judge_trial(_as_written(), None, None, _trial_stats("crashed", 0))[0] == "failed"
    assert judge_trial(_as_written(), 0.5, 0.7, _trial_stats("crashed", 20))[0] == "failed"


def test_a_trial_whose_loss_blows_up_diverged_and_its_change_is_a_ratio_not_a_huge_percentage():
    blown = recorded(steps=50, loss=[1.1 * 3 ** (i / 5) for i in range(50)])  # 1.1 -> 2.6e4
    verdict, effect = judge_trial(_as_written(loss=1.17, metric=0.37), 2.6e6, 0.64, blown)
    assert verdict == "diverged"
    assert effect == "final loss 1.17 -> 2.6e+06 (x2.22e+06), accuracy 0.37 -> 0.64"
    assert "%" not in effect
    assert trials_module.change_text(1.0, 9.0) == "1 -> 9 (+800%)" and trials_module.change_text(1.0, None) == "1 -> not finite"
    nan_later = recorded(steps=4, loss=[1.0, 0.9, float("nan"), float("nan")])
    assert judge_trial(_as_written(), None, None, nan_later)[0] == "diverged"
    # the run as written diverged too: the trial is judged on what it reaches, not on the blow-up
    as_written = AsWritten(1.0, 0.3, "accuracy", 3.0, [1.0, 50.0], lambda stats, directory: None, None)
    assert judge_trial(as_written, 2.6e6, 0.31, blown)[0] == "no change"


def _finding(code, severity=Severity.WARNING, line=3, fix=None, path="train.py"):
    return Finding(code, code.lower(), severity, "message", path, line, 1, line, 5, fix)


def test_plans_use_the_autofix_else_an_intervention_and_merge_identical_changes(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import torch\nopt = torch.optim.Adam(params, weight_decay=1e-4)\n")
    autofix = Fix("unsafe", (Edit(2, 7, 2, 23, "torch.optim.AdamW"),), "use AdamW")
    stats = recorded()
    stats.data["optimizers"][0]["class"] = "Adam"
    findings = [_finding("ML203", line=2, fix=autofix, path=str(script)), _finding("ML101", line=5),
                _finding("ML910", line=1), _finding("ML201", Severity.ERROR, line=2), _finding("ML103", line=7)]
    findings[2] = _finding("ML101", line=9)
    plans, untried = plan_trials(findings, stats)
    by_code = {plan.codes: plan for plan in plans}
    assert plans[0].codes == ("ML201",)  # errors first
    assert by_code[("ML201",)].intervention == {"kind": "optimizer-settings", "settings": {"lr": 1e-3}}
    assert by_code[("ML203",)].fix == "autofix" and "torch.optim.AdamW(params" in by_code[("ML203",)].source
    assert by_code[("ML203",)].change == "applied the ML203 autofix (use AdamW)"
    assert len(by_code[("ML101",)].findings) == 2  # one standardisation trial answers both ML101 findings
    assert [(f.code, reason) for f, reason in untried] == [("ML103", "no autofix or runtime intervention for this rule")]


def test_one_rule_s_autofixes_at_several_places_are_one_trial(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("a = F.softmax(x, dim=1)\nb = F.softmax(y, dim=1)\n")
    fixes = [Fix("unsafe", (Edit(line, 5, line, 24, name),), "Remove F.softmax()") for line, name in ((1, "x"), (2, "y"))]
    findings = [_finding("ML401", Severity.ERROR, line, fix, str(script)) for line, fix in zip((1, 2), fixes)]
    (plan,), _ = plan_trials(findings, recorded())
    assert plan.source == "a = x\nb = y\n" and len(plan.findings) == 2 and plan.short == "the softmax removed"


def test_standardise_inputs_uses_the_first_batch_statistics():
    first = torch.randn(64, 3) * torch.tensor([1.0, 100.0, 0.01]) + 5
    intervention = StandardiseInputs()
    (standardised,) = intervention.before_model(nn.Linear(3, 1), (first,))
    assert torch.allclose(standardised.mean(dim=0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(standardised.std(dim=0), torch.ones(3), atol=1e-4)
    (later,) = intervention.before_model(nn.Linear(3, 1), (first[:4] * 2,))
    assert torch.allclose(later, (first[:4] * 2 - first.mean(dim=0)) / first.std(dim=0), atol=1e-4)


def test_dropping_the_softmax_gives_cross_entropy_the_gradient_of_the_logits():
    logits = torch.randn(8, 5, requires_grad=True)
    target = torch.randint(0, 5, (8,))
    expected = torch.autograd.grad(F.cross_entropy(logits, target), logits)[0]
    original = F.cross_entropy
    try:
        LossInputs("cross_entropy").install()
        loss = nn.CrossEntropyLoss()(torch.softmax(logits, dim=1), target)
    finally:
        F.cross_entropy = original
    assert torch.allclose(torch.autograd.grad(loss, logits)[0], expected, atol=1e-6)


def test_sample_collector_pairs_inputs_with_targets_and_evaluates_the_final_model(tmp_path):
    collector = TrainingSampleCollector(None, str(tmp_path))
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)]
    for x, y in batches:
        collector.on_model_input("Sequential", (x,))
        output = model(x)
        collector.on_model_output(output)
        collector.on_loss_call("cross_entropy", output, y)
    collector.finish(model)
    meta = collector.flush()
    assert meta["rows"] == 15 and meta["loss_kind"] == "cross_entropy" and meta["loss_reads_model_output"] is True
    inputs = read_float32(str(tmp_path / "inputs.f32"), [15, 4])
    assert torch.equal(inputs, torch.cat([x for x, _ in batches]))
    assert torch.equal(read_float32(str(tmp_path / "targets.f32"), [15]), torch.cat([y for _, y in batches]).float())
    model.eval()
    with torch.no_grad():
        expected = model(inputs)
    assert torch.allclose(read_float32(str(tmp_path / "outputs.f32"), [15, 3]), expected)


def test_sample_collector_says_why_it_cannot_sample():
    tokens = TrainingSampleCollector(None, "/nonexistent")
    tokens.on_model_input("LM", (torch.randint(0, 9, (4, 7)),))
    assert "token ids" in tokens.flush()["skipped"]
    pairs = TrainingSampleCollector(None, "/nonexistent")
    pairs.on_model_input("Siamese", (torch.randn(4, 2), torch.randn(4, 2)))
    assert pairs.flush()["skipped"] == "the model takes several inputs"


def test_float32_files_round_trip(tmp_path):
    values = torch.randn(6, 2, 3)
    write_float32(str(tmp_path / "v.f32"), values)
    assert torch.equal(read_float32(str(tmp_path / "v.f32"), [6, 2, 3]), values)


def test_chart_draws_one_polyline_per_finite_run():
    svg = chart([("run", [3.0, 2.0, None, 1.0, 0.5], "#000000"), ("trial", [1.0, 0.9, 0.8, 0.7, 0.6], "#ff0000")], "step", "loss", "c")
    assert svg.count("<polyline") == 3 and svg.count("<circle") == 0  # [3, 2] and [1, 0.5] of the run, and the trial
    points = re.findall(r'points="([^"]+)"', svg)
    assert all(len(p.split()) >= 2 for p in points)
    assert "log scale" not in svg
    lone = chart([("run", [1.0, None, 2.0, 3.0], "#000")], "step", "loss", "f")
    assert lone.count("<circle") == 1 and lone.count("<polyline") == 1
    assert "log scale" in chart([("run", [1000.0, 1.0], "#000")], "step", "loss", "d")
    assert "No finite loss" in chart([("run", [None], "#000")], "step", "loss", "e")


def _polylines(svg: str) -> dict[int, list[tuple[float, float]]]:
    return {int(series): [tuple(map(float, point.split(","))) for point in points.split()]
            for series, points in re.findall(r'<polyline class="curve" data-series="(\d+)"[^>]*points="([^"]+)"', svg)}


def test_a_diverging_curve_is_clipped_and_marked_and_the_others_keep_the_height():
    as_written = [1.0 + 0.02 * (i % 5) for i in range(50)]
    fixed = [1.0 - 0.015 * i for i in range(50)]
    blown = [1.0 * 1.4 ** i for i in range(50)]  # reaches 1.4e7
    svg = chart([("as written", as_written, "#000"), ("trial: ML401 the softmax removed", blown, "#f00"),
                 ("trial: ML201 lr=0.001", fixed, "#0f0")], "optimizer step", "loss", "c")
    lines = _polylines(svg)
    height = lambda points: max(y for _, y in points) - min(y for _, y in points)  # noqa: E731
    assert height(lines[2]) > 100 and height(lines[0]) > 10  # of 264 px: not a flat band under a 1e7 scale
    assert "log scale" not in svg
    assert "diverged: reaches 1.45e+07, clipped at 1.5" in svg and "ML401 diverged" in svg
    assert min(y for _, y in lines[1]) >= 16  # clipped at the top of the plot, not drawn above it
    labels = [float(v) for v in re.findall(r'<text class="tick" x="66"[^>]*>([^<]+)</text>', svg)]
    assert len(labels) >= 4 and labels == sorted(labels)


def test_coinciding_curves_are_dashed_and_the_legend_says_so():
    curve = [2.0 - 0.02 * i for i in range(30)]
    svg = chart([("as written", curve, "#000"), ("trial: ML203 AdamW", list(curve), "#f00"), ("trial: ML201", [1.0] * 30, "#0f0")],
                "optimizer step", "loss", "c")
    assert re.search(r'data-series="1"[^>]*stroke-dasharray="[\d ]+"', svg)
    assert not re.search(r'data-series="[02]"[^>]*stroke-dasharray', svg)
    assert re.search(r'data-series="0"[^>]*stroke-width="4"', svg)  # drawn wider underneath
    assert "trial: ML203 AdamW (coincides with as written)" in svg


def test_axis_ticks_are_round_values_that_cover_the_data():
    assert html_report._linear_ticks(0.77, 1.61) == [0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8]
    assert html_report._linear_ticks(0, 49, integers=True) == [0, 10, 20, 30, 40, 50]
    assert html_report._log_ticks(0.04, 1.2) == [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    assert html_report._log_ticks(1e-5, 3.0) == [1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]


def test_findings_show_code_spans_and_severities():
    document = {"script": "t.py", "status": "step-budget", "steps": 3, "device": "cpu", "loss": [1.0], "error": None, "symptoms": [],
                "findings": [{"code": "ML202", "severity": "error", "line": 4, "message": "call `optimizer.zero_grad()` <here>",
                              "runtime": None}]}
    page = render(document)
    assert "call <code>optimizer.zero_grad()</code> &lt;here&gt;" in page and "`" not in page.split("<h2>Findings</h2>")[1]
    assert '<span class="sev sev-error">error</span>' in page


def test_answer_line_says_who_wins_and_what_fix_closes_the_gap():
    trial = {"verdict": "helps", "metric": 0.93, "change": "standardised the model's input features (mean and std of the first batch)",
             "effect": "", "codes": ["ML101"], "short": "the inputs standardised"}
    baseline = {"metric": "accuracy", "skipped": None, "script": {"metric": 0.61}, "sklearn": {"metric": 0.94}}
    assert answer({"baseline": baseline, "trials": [trial]}) == (
        "scikit-learn's default MLP reaches 0.94 accuracy on the same data, this script 0.61; "
        "with the inputs standardised alone, this script reaches 0.93 against scikit-learn's 0.94")
    combined = {"verdict": "helps", "metric": 0.9, "codes": ["ML401", "ML201"], "short": "the softmax removed and lr=0.001",
                "combined": True, "effect": ""}
    assert answer({"baseline": baseline, "trials": [trial, combined]}).endswith(
        "this script 0.61; with the softmax removed and lr=0.001, this script reaches 0.90 against scikit-learn's 0.94")
    diverging = {**trial, "verdict": "diverged", "metric": 0.96, "short": "the softmax removed"}
    assert answer({"baseline": baseline, "trials": [diverging, combined]}).endswith(
        "reaches 0.90 against scikit-learn's 0.94; with the softmax removed alone it reaches 0.96 (its loss diverged)")
    unhelpful = {**trial, "verdict": "no change", "metric": 0.6}
    assert answer({"baseline": baseline, "trials": [unhelpful, unhelpful, combined]}).endswith(
        "; none of the 2 fixes clearly helped alone; with the softmax removed and lr=0.001, this script reaches 0.90 against scikit-learn's 0.94")
    agreeing = {**baseline, "script": {"metric": 0.93}}
    assert answer({"baseline": agreeing, "trials": []}).endswith("this script 0.93: they agree; no finding has a fix to try")
    skipped = {**baseline, "skipped": "the model takes several inputs", "sklearn": None}
    assert answer({"baseline": skipped}) == "no scikit-learn baseline: the model takes several inputs"


def test_observed_symptoms_get_the_trial_of_the_rule_that_explains_them():
    stats = recorded(loss_inputs=[{"step": 0, "kind": "cross_entropy"}])
    plans, _ = plan_trials([_finding("ML101")], stats, ["ML910", "ML913", "ML914", "ML907"])
    assert [(plan.codes, plan.intervention["kind"]) for plan in plans] == [
        (("ML101", "ML910"), "standardise-inputs"), (("ML913",), "clear-gradients"), (("ML914",), "loss-inputs")]
    assert plans[2].intervention["loss"] == "cross_entropy" and plans[1].findings == ()


def test_a_symptom_whose_rule_has_an_autofix_trial_joins_it_instead_of_a_second_trial(tmp_path):
    """ML913 is what a missing zero_grad (ML202) looks like and ML914 what a softmax before the
    loss (ML401) looks like: the same fix, tried once."""
    script = tmp_path / "train.py"
    script.write_text("out = F.softmax(x, dim=1)\nopt.step()\n")
    softmax = Fix("unsafe", (Edit(1, 7, 1, 26, "x"),), "Remove F.softmax()")
    zero_grad = Fix("safe", (Edit(2, 1, 2, 1, "opt.zero_grad()\n"),), "Clear the gradients before the backward pass")
    stats = recorded(loss_inputs=[{"step": 0, "kind": "cross_entropy"}])
    findings = [_finding("ML401", Severity.ERROR, 1, softmax, str(script)), _finding("ML202", Severity.ERROR, 2, zero_grad, str(script))]
    plans, _ = plan_trials(findings, stats, ["ML913", "ML914"])
    assert [(plan.codes, plan.fix) for plan in plans] == [(("ML401", "ML914"), "autofix"), (("ML202", "ML913"), "autofix")]
    assert [plan.short for plan in plans] == ["the softmax removed", "the gradients cleared every step"]


def test_every_trial_runs_under_the_run_s_timeout_then_the_fixes_that_helped_together(tmp_path):
    stats = recorded()
    stats.data["optimizers"][0]["class"] = "Adam"
    plans, _ = plan_trials([_finding("ML101"), _finding("ML202", Severity.ERROR), _finding("ML201", Severity.ERROR)], stats)
    started = []
    metrics = {"optimizer-settings": 0.8, "clear-gradients": 0.62, "standardise-inputs": 0.61}

    def run(timeout, trial, on_progress=None):
        started.append((timeout, trial))
        return _trial_stats()

    def score(stats, directory):
        spec = started[-1][1]["intervention"]
        return 0.9 if isinstance(spec, list) else metrics[spec["kind"]]

    as_written = AsWritten(1.0, 0.6, "accuracy", 5.0, [1.0] * 50, score, None)
    trials = run_trials(plans, as_written, str(tmp_path), 30.0, run, final_loss)
    assert [t for t, _ in started] == [30.0] * 4 and all(trial["seed"] == 0 for _, trial in started)
    assert [trial["intervention"]["kind"] for _, trial in started[:3]] == ["optimizer-settings", "clear-gradients", "standardise-inputs"]
    assert [t["verdict"] for t in trials] == ["helps", "no change", "no change", "helps"]
    # together: the fix that helped, and the error's fix (a certain bug that lr=10 hid), not the
    # warning's fix that changed nothing
    assert started[-1][1]["intervention"] == [{"kind": "optimizer-settings", "settings": {"lr": 0.001}}, {"kind": "clear-gradients"}]
    assert trials[-1]["combined"] is True and trials[-1]["codes"] == ["ML201", "ML202"] and trials[-1]["metric"] == 0.9
    assert trials[-1]["short"] == "lr=0.001 and the gradients cleared every step" and trials[-1]["fix"] == "combined"
    assert "combined" not in trials[0]


def test_each_trial_shows_its_progress_under_its_own_label(tmp_path):
    stream = io.StringIO()
    live = LiveProgress(stream)
    plans, _ = plan_trials([_finding("ML101"), _finding("ML205")], recorded())
    seen = []

    def run(timeout, trial, on_progress=None):
        progress = Progress("train.py", 50)
        progress.steps, progress.loss = 23, 0.5
        on_progress(progress)
        seen.append(stream.getvalue().rsplit("\r\x1b[K", 1)[-1])
        return _trial_stats()

    as_written = AsWritten(1.0, 0.6, "accuracy", 5.0, [1.0] * 50, lambda stats, directory: 0.6, None)
    live.announce(len(plans), 5.0)
    run_trials(plans, as_written, str(tmp_path), 30.0, run, final_loss, live=live)
    assert stream.getvalue().startswith("mlplint probe: 2 trials (and a combined one) follow, each about as long as the run (5 s): up to 15 s in all\n")
    assert seen[0].startswith("mlplint probe: trial 1/2: ML101 the inputs standardised: step 23 of 50, ")
    assert seen[1].startswith("mlplint probe: trial 2/2: ML205 momentum=0.9: step 23 of 50, ")
    assert stream.getvalue().endswith("\r\x1b[K") and live.label is None  # erased after each trial
    live.fitting("MLPClassifier", 1280, 37, 4.2)
    assert stream.getvalue().endswith("mlplint probe: baseline: fitting scikit-learn's MLPClassifier on 1280 rows, epoch 37, 4 s")


def test_the_scikit_learn_fit_reports_its_epochs_while_it_runs(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(300, 4)).astype(np.float32)
    targets = (inputs[:, :1] > 0).astype(np.float32)
    sample = Sample(inputs, targets, None, {"loss_kind": "cross_entropy", "rows": 300}, None, str(tmp_path))
    fitted, held = sample.split()
    seen = []
    result = fit_sklearn(sample, fitted, held, targets[:, 0].astype(np.int64), 60, lambda *args: seen.append(args))
    assert seen and all(estimator == "MLPClassifier" and rows == len(fitted) for estimator, rows, _, _ in seen)
    epochs = [epoch for _, _, epoch, _ in seen]
    assert epochs == sorted(epochs) and epochs[-1] <= result["iterations"] and result["metric"] > 0.9


def test_a_single_fix_that_helps_is_not_run_again_combined(tmp_path):
    plans, _ = plan_trials([_finding("ML101"), _finding("ML205")], recorded())
    scores = iter([0.9, 0.6])
    as_written = AsWritten(1.0, 0.6, "accuracy", 5.0, [1.0] * 50, lambda stats, directory: next(scores), None)
    trials = run_trials(plans, as_written, str(tmp_path), 30.0, lambda timeout, trial, on_progress=None: _trial_stats(), final_loss)
    assert len(trials) == 2 and not any(t.get("combined") for t in trials)


def test_combined_autofixes_are_applied_to_one_text(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("out = F.softmax(x, dim=1)\nopt.step()\n")
    softmax = Fix("unsafe", (Edit(1, 7, 1, 26, "x"),), "Remove F.softmax()")
    zero_grad = Fix("safe", (Edit(2, 1, 2, 1, "opt.zero_grad()\n"),), "Clear the gradients")
    plans, _ = plan_trials([_finding("ML401", Severity.ERROR, 1, softmax, str(script)),
                            _finding("ML202", Severity.ERROR, 2, zero_grad, str(script))], recorded())
    verdicts = [{"verdict": "diverged"}, {"verdict": "worse"}]
    assert trials_module.combine(plans, verdicts, str(script)) is None  # one fix is no combination
    both = trials_module.combine(plans, [{"verdict": "no change"}] * 2, str(script))  # none helped: every fix
    assert both.source == "out = x\nopt.zero_grad()\nopt.step()\n" and both.intervention is None
    assert both.short == "the softmax removed and the gradients cleared every step"


def test_html_without_a_comparison_still_draws_the_run(tmp_path):
    document = {"script": "train.py", "status": "step-budget", "steps": 3, "device": "cpu", "loss": [2.0, 1.0, 0.5],
                "symptoms": [], "findings": [], "error": None}
    page = render(document)
    assert page.count("<polyline") == 1 and "sklearn-loss" not in page and "class=\"answer\"" not in page
    assert "No runtime symptoms and no static findings." in page


def test_baseline_and_trials_need_a_script_run(tmp_path):
    stats = tmp_path / "stats.json"
    recorded().save(str(stats))
    result = run_cli("probe", "--stats", str(stats), "--baseline")
    assert result.returncode == 2 and "--baseline and --trials run the script" in result.stderr


def _interventions_in_a_child(specs: list[dict], code: str) -> str:
    """Install each intervention in a fresh interpreter (they patch torch) and run `code`."""
    program = (
        "import json, sys, torch\nfrom torch import nn\n"
        "from mlplint.probe.interventions import from_config\n"
        f"for spec in json.loads({json.dumps(json.dumps(specs))}):\n    from_config(spec).install()\n" + code
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_intervention_installs_and_changes_what_it_names():
    specs = [{"kind": "standardise-inputs"}, {"kind": "reinitialise", "scheme": "match-activation"},
             {"kind": "reinitialise", "scheme": "pytorch-default"}, {"kind": "loss-inputs", "loss": "nll_loss"},
             {"kind": "loss-inputs", "loss": "binary_cross_entropy_with_logits"}]
    _interventions_in_a_child(specs, "")
    out = _interventions_in_a_child(
        [{"kind": "clear-gradients"}, {"kind": "optimizer-settings", "settings": {"lr": 0.001, "momentum": 0.9}},
         {"kind": "shuffle-loaders"}],
        "w = nn.Parameter(torch.ones(3))\n"
        "opt = torch.optim.SGD([w], lr=10.0)\n"
        "(w * 2).sum().backward(); opt.step()\n"
        "loader = torch.utils.data.DataLoader(list(range(8)), batch_size=4)\n"
        "print(opt.param_groups[0]['lr'], opt.param_groups[0]['momentum'], w.grad is None or bool((w.grad == 0).all()),"
        " type(loader.sampler).__name__)\n",
    )
    assert out.split() == ["0.001", "0.9", "True", "RandomSampler"]


def test_answer_line_of_trials_alone_names_the_best_fix():
    trials = [{"verdict": "no change", "metric": 0.35, "change": "used AdamW", "effect": "final loss +0%", "short": "AdamW"},
              {"verdict": "helps", "metric": 0.69, "change": "set the learning rate to 0.001 (the usual for Adam)",
               "effect": "final loss -22%, accuracy 0.37 -> 0.69", "short": "lr=0.001"}]
    assert answer({"trials": trials}) == "with lr=0.001 alone, this script reaches 0.69"
    assert answer({"trials": trials[:1]}) == "the one trial did not clearly help"
    assert answer({"trials": [trials[0], trials[0]]}) == "none of the 2 trials clearly helped"
    together = {**trials[0], "combined": True, "short": "AdamW and lr=0.001"}
    assert answer({"trials": [trials[0], trials[0], together]}) == "none of the 2 fixes clearly helped, alone or together"
    assert answer({"trials": []}) == "no finding has a fix to try"


def test_baseline_says_why_it_was_skipped(tmp_path):
    stats = recorded()
    stats.data["collectors"]["training_sample"] = {"wanted": True, "skipped": "the model takes several inputs", "rows": 0}
    result = run_baseline(stats, str(tmp_path), 10)
    assert result["skipped"] == "the model takes several inputs" and result["sklearn"] is None
    assert result["script"]["metric"] is None and result["task"] is None
    stats.data["collectors"]["training_sample"] = {"wanted": True, "skipped": None, "rows": 0, "loss_kind": None}
    assert "targets are unknown" in run_baseline(stats, str(tmp_path), 10)["skipped"]


def test_differences_say_unknown_where_the_run_and_the_source_do_not_tell():
    stats = recorded()
    stats.data["script"] = None
    stats.data["models"] = {}
    stats.data["optimizers"] = []
    rows = {row["setting"]: row for row in differences(stats, {"task": None}, [])}
    for setting in ("input scaling", "hidden layers", "weight init", "optimizer and lr", "Adam epsilon", "batch size",
                    "shuffling", "early stopping", "loss and output activation"):
        assert rows[setting]["script"] == "unknown" and rows[setting]["script_from"].startswith("unknown"), setting
    assert all(row["sklearn"] and row["keras"] and row["defaults_from"] for row in rows.values())
