"""`mlplint probe --baseline --trials --html` end to end through the real CLI, on the
fixtures/probe/baseline_*.py scripts: where scikit-learn's default MLP is far better, the trial
of the one fix closes most of the gap and confirms the finding; on a well-configured script
both agree and no trial is offered. The HTML report is opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from probe_helpers import FIXTURES, run_cli

pytestmark = pytest.mark.slow

# fixture -> the finding whose trial must close the gap
FAR_BETTER = {"baseline_unscaled_inputs.py": "ML101", "baseline_lr_too_high.py": "ML201",
              "baseline_softmax_cross_entropy.py": "ML401"}
AGREEING = ["baseline_well_configured.py", "baseline_regression.py"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
AS_WRITTEN_BLUE, TRIAL_RED, SKLEARN_ORANGE = (0x1F, 0x6F, 0xD1), (0xD1, 0x49, 0x5B), (0xEF, 0x7D, 0x00)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    html = tmp_path_factory.mktemp("html") / "report.html"
    commands = {name: ["probe", "--format", "json", "--baseline", "--trials", str(FIXTURES / name)] for name in [*FAR_BETTER, *AGREEING]}
    commands["text"] = ["probe", "--baseline", "--trials", "--html", str(html), str(FIXTURES / "baseline_lr_too_high.py")]
    with ThreadPoolExecutor(2) as pool:
        futures = {key: pool.submit(run_cli, *command, timeout=300) for key, command in commands.items()}
        results = {key: future.result() for key, future in futures.items()}
    return results, html


def document(runs, name) -> dict:
    result = runs[0][name]
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(FAR_BETTER))
def test_far_better_baseline_and_the_trial_closes_most_of_the_gap(runs, name):
    doc = document(runs, name)
    baseline = doc["baseline"]
    assert baseline["skipped"] is None and baseline["task"] == "classification" and baseline["metric"] == "accuracy"
    script, sklearn = baseline["script"]["metric"], baseline["sklearn"]["metric"]
    assert sklearn - script >= 0.15, (script, sklearn)
    assert baseline["held_back"] == round(0.2 * baseline["samples"]) and baseline["script"]["steps"] == 50
    assert baseline["sklearn"]["estimator"] == "MLPClassifier" and baseline["sklearn"]["params"] == "defaults" and baseline["sklearn"]["random_state"] == 0
    code = FAR_BETTER[name]
    (trial,) = [t for t in doc["trials"] if code in t["codes"]]
    assert trial["status"] == "step-budget" and len(trial["loss"]) == 50
    assert trial["as_written_metric"] == script and trial["verdict"] == "helps"
    assert trial["metric"] - script >= 0.6 * (sklearn - script), (script, trial["metric"], sklearn)
    assert f"accuracy {script:.2f} -> {trial['metric']:.2f}" in trial["effect"]
    (finding,) = [f for f in doc["findings"] if f["code"] == code]
    assert finding["runtime"]["status"] == "confirmed" and "trial" in finding["runtime"]["evidence"]


@pytest.mark.parametrize("name", AGREEING)
def test_well_configured_script_agrees_with_the_baseline_and_gets_no_trial(runs, name):
    doc = document(runs, name)
    baseline = doc["baseline"]
    assert baseline["skipped"] is None
    assert abs(baseline["sklearn"]["metric"] - baseline["script"]["metric"]) < 0.05
    assert doc["trials"] == [] and doc["findings"] == []
    assert runs[0][name].returncode == 0


def test_regression_is_measured_with_r2(runs):
    baseline = document(runs, "baseline_regression.py")["baseline"]
    assert baseline["task"] == "regression" and baseline["metric"] == "r2"
    assert baseline["sklearn"]["estimator"] == "MLPRegressor" and baseline["script"]["metric"] > 0.9


def test_differences_give_the_scripts_values_and_both_defaults(runs):
    rows = {row["setting"]: row for row in document(runs, "baseline_lr_too_high.py")["baseline"]["differences"]}
    assert rows["optimizer and lr"]["script"] == "Adam lr=0.5" and rows["optimizer and lr"]["script_from"] == "run"
    assert rows["Adam epsilon"]["script"] == "1e-08" and rows["Adam epsilon"]["keras"] == "1e-07"
    assert rows["batch size"]["script"] == "32" and rows["batch size"]["sklearn"] == "min(200, n_samples) = 200"
    assert rows["batch size"]["keras"] == "32"
    assert rows["shuffling"]["script"].startswith("yes") and "line 13" in rows["shuffling"]["script_from"]
    assert rows["early stopping"]["script"] == "unknown"
    assert "sklearn/neural_network/_multilayer_perceptron.py" in rows["weight init"]["defaults_from"]
    scaling = document(runs, "baseline_unscaled_inputs.py")["baseline"]["differences"][0]
    assert scaling["setting"] == "input scaling" and scaling["script"].startswith("none seen")
    loss = {row["setting"]: row for row in document(runs, "baseline_softmax_cross_entropy.py")["baseline"]["differences"]}
    assert loss["loss and output activation"]["script"] == "cross-entropy, Softmax output"


def test_text_report_leads_with_the_answer(runs):
    result = runs[0]["text"]
    first = result.stdout.splitlines()[0]
    doc = document(runs, "baseline_lr_too_high.py")
    baseline = doc["baseline"]
    assert first.startswith(f"scikit-learn's default MLP reaches {baseline['sklearn']['metric']:.2f} accuracy on the same data, "
                            f"this script {baseline['script']['metric']:.2f}; the trial that set the learning rate to 0.001 alone reaches"), first
    assert "Differences (this script | scikit-learn default | Keras default):" in result.stdout
    assert "ML201 set the learning rate to 0.001" in result.stdout


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browse(html: Path, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, html.as_uri()],
                              capture_output=True, text=True, timeout=120)


def _pixels_near(image, color, tolerance=40) -> int:
    return sum(count for count, pixel in image.getcolors(maxcolors=1 << 24) if all(abs(a - b) <= tolerance for a, b in zip(pixel, color)))


def test_html_report_draws_the_curves_in_chromium(runs, tmp_path):
    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium chromium-driver)")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    html = runs[1]
    text = html.read_text(encoding="utf-8")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text and "<script" not in text
    dom = _browse(html, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<polyline class="curve"') >= 3  # the run, the trial, scikit-learn's loss_curve_
    assert 'id="run-loss"' in dom.stdout and 'id="sklearn-loss"' in dom.stdout
    screenshot = tmp_path / "report.png"
    shot = _browse(html, "--window-size=1000,1200", f"--screenshot={screenshot}")
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    # each curve is a 2-px line several hundred pixels long; its legend swatch is only 12x12 px
    for color in (AS_WRITTEN_BLUE, TRIAL_RED, SKLEARN_ORANGE):
        assert _pixels_near(image, color) > 600, color
