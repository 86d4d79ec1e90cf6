"""`mlplint probe --baseline --trials --html` end to end through the real CLI, on the
fixtures/probe/baseline_*.py scripts: where scikit-learn's default MLP is far better, the trial
of the one fix closes most of the gap and confirms the finding; with two problems, each fix is
tried alone and then both together; on a well-configured script both agree and no trial is
offered. The HTML report is opened in headless Chromium and its charts measured there."""

from __future__ import annotations

import html as html_text
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlplint.probe.comparison_report import answer
from mlplint.probe.html_report import render
from probe_helpers import FIXTURES, run_cli

pytestmark = pytest.mark.slow

# fixture -> the finding whose trial must close the gap
FAR_BETTER = {"baseline_unscaled_inputs.py": "ML101", "baseline_two_problems.py": "ML201",
              "baseline_softmax_cross_entropy.py": "ML401"}
AGREEING = ["baseline_well_configured.py", "baseline_regression.py"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
AS_WRITTEN_BLUE, TRIAL_RED, SKLEARN_ORANGE = (0x1F, 0x6F, 0xD1), (0xD1, 0x49, 0x5B), (0xEF, 0x7D, 0x00)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    html = tmp_path_factory.mktemp("html") / "report.html"
    commands = {name: ["probe", "--format", "json", "--baseline", "--trials", str(FIXTURES / name)] for name in [*FAR_BETTER, *AGREEING]}
    # the same invocation as the JSON one, in text: the headline and verdicts must repeat
    commands["text"] = ["probe", "--baseline", "--trials", "--html", str(html), str(FIXTURES / "baseline_two_problems.py")]
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
    (trial,) = [t for t in doc["trials"] if code in t["codes"] and not t.get("combined")]
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
    rows = {row["setting"]: row for row in document(runs, "baseline_two_problems.py")["baseline"]["differences"]}
    assert rows["optimizer and lr"]["script"] == "Adam lr=10" and rows["optimizer and lr"]["script_from"] == "run"
    assert rows["Adam epsilon"]["script"] == "1e-08" and rows["Adam epsilon"]["keras"] == "1e-07"
    assert rows["batch size"]["script"] == "32" and rows["batch size"]["sklearn"] == "min(200, n_samples) = 200"
    assert rows["batch size"]["keras"] == "32"
    assert rows["shuffling"]["script"].startswith("yes") and "line 15" in rows["shuffling"]["script_from"]
    assert rows["early stopping"]["script"] == "unknown"
    assert "sklearn/neural_network/_multilayer_perceptron.py" in rows["weight init"]["defaults_from"]
    scaling = document(runs, "baseline_unscaled_inputs.py")["baseline"]["differences"][0]
    assert scaling["setting"] == "input scaling" and scaling["script"].startswith("none seen")
    loss = {row["setting"]: row for row in document(runs, "baseline_softmax_cross_entropy.py")["baseline"]["differences"]}
    assert loss["loss and output activation"]["script"] == "cross-entropy, Softmax output"


def test_two_problems_are_tried_alone_then_together(runs):
    """Softmax before the loss and lr=10: with logits and lr=10 the loss blows up (diverged), the
    learning rate alone helps, and the combined trial applies both fixes in one run."""
    doc = document(runs, "baseline_two_problems.py")
    assert doc["seed"] == 0
    single = {tuple(t["codes"]): t for t in doc["trials"] if not t.get("combined")}
    assert set(single) == {("ML401", "ML914"), ("ML201",)}  # ML914 (what the softmax looks like at run time) joins ML401's trial
    assert single["ML401", "ML914"]["verdict"] == "diverged" and single["ML201",]["verdict"] == "helps"
    assert " -> " in single["ML401", "ML914"]["effect"] and "%" not in single["ML401", "ML914"]["effect"]
    (combined,) = [t for t in doc["trials"] if t.get("combined")]
    assert combined is doc["trials"][-1] and combined["codes"] == ["ML401", "ML914", "ML201"]
    assert combined["short"] == "the softmax removed and lr=0.001" and combined["status"] == "step-budget"
    assert combined["metric"] - doc["baseline"]["script"]["metric"] >= 0.2
    assert all(t["verdict"] in ("helps", "no change", "worse", "diverged", "failed") for t in doc["trials"])


def test_text_report_leads_with_the_answer_and_repeats_the_json_one(runs):
    result = runs[0]["text"]
    doc = document(runs, "baseline_two_problems.py")
    first = result.stdout.splitlines()[0]
    assert first == answer(doc)  # two identical invocations (text and JSON), one headline
    assert first.startswith(f"scikit-learn's default MLP reaches {doc['baseline']['sklearn']['metric']:.2f} accuracy on the same data, "
                            f"this script {doc['baseline']['script']['metric']:.2f}; with the softmax removed and lr=0.001, this script "
                            f"reaches {doc['trials'][-1]['metric']:.2f} against scikit-learn's"), first
    assert "Differences (this script | scikit-learn default | Keras default):" in result.stdout
    assert "Trials (each a fresh run with one fix, seed 0," in result.stdout
    for trial in doc["trials"]:
        assert f"): {trial['verdict']}: {trial['effect']}" in result.stdout
    assert result.returncode == 1 and result.stderr == ""  # nothing extra on a pipe


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browse(html: Path, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, html.as_uri()],
                              capture_output=True, text=True, timeout=120)


def _pixels_near(image, color, tolerance=40) -> int:
    return sum(count for count, pixel in image.getcolors(maxcolors=1 << 24) if all(abs(a - b) <= tolerance for a, b in zip(pixel, color)))


# Measures every chart of the page once it is laid out: each curve's box, each label's box.
GEOMETRY = """<script>
const charts = {};
for (const svg of document.querySelectorAll("svg[id]")) {
  charts[svg.id] = {
    curves: [...svg.querySelectorAll(".curve")].map(c => ({series: c.dataset.series, height: c.getBBox().height,
                                                          top: c.getBBox().y, dash: c.getAttribute("stroke-dasharray")})),
    labels: [...svg.querySelectorAll("text")].map(t => { const b = t.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom, t.textContent]; }),
  };
}
const out = document.createElement("pre"); out.id = "geometry"; out.textContent = JSON.stringify(charts); document.body.append(out);
</script>"""


def _measure(page: str, tmp_path: Path, name: str) -> dict:
    path = tmp_path / f"{name}.html"
    path.write_text(page.replace("</body>", GEOMETRY + "</body>"), encoding="utf-8")
    dom = _browse(path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    return json.loads(html_text.unescape(dom.stdout.split('<pre id="geometry">')[1].split("</pre>")[0]))


def _overlapping(labels: list) -> list:
    return [(a[4], b[4]) for i, a in enumerate(labels) for b in labels[i + 1:]
            if a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5]


def _need_chromium() -> None:
    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium chromium-driver)")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")


def test_html_report_draws_the_curves_in_chromium(runs, tmp_path):
    _need_chromium()
    html = runs[1]
    text = html.read_text(encoding="utf-8")
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text and "<script" not in text
    charts = _measure(text, tmp_path, "report")
    doc = document(runs, "baseline_two_problems.py")
    run = charts["run-loss"]
    series = [doc["loss"], *[t["loss"] for t in doc["trials"]]]
    assert len({c["series"] for c in run["curves"]}) == len(series) and "sklearn-loss" in charts
    for index, values in enumerate(series):  # every curve whose values differ spans more than a few pixels
        height = sum(c["height"] for c in run["curves"] if c["series"] == str(index))
        assert max(values) - min(values) < 1e-6 or height > 8, (index, height)
    assert min(c["top"] for c in run["curves"]) >= 15  # the diverged trial is clipped inside the plot
    assert "diverged: reaches" in text and "ML401/ML914 diverged" in text
    for chart in charts.values():
        assert not _overlapping(chart["labels"]), _overlapping(chart["labels"])
        assert sum(1 for label in chart["labels"] if label[0] < 72) >= 5  # y tick labels and the axis title
    screenshot = tmp_path / "report.png"
    shot = _browse(html, "--window-size=1000,1200", f"--screenshot={screenshot}")
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    from PIL import Image

    image = Image.open(screenshot).convert("RGB")
    # each curve is a 2-px line several hundred pixels long; its legend swatch is only 28x3 px
    for color in (AS_WRITTEN_BLUE, TRIAL_RED, SKLEARN_ORANGE):
        assert _pixels_near(image, color) > 600, color


def test_identical_curves_stay_distinguishable_in_chromium(tmp_path):
    """A trial that changes nothing draws the same curve as the run: dashed over a wider line."""
    _need_chromium()
    loss = [2.0 * 0.97 ** i for i in range(50)]
    document = {"script": "train.py", "status": "step-budget", "steps": 50, "device": "cpu", "loss": loss, "symptoms": [],
                "findings": [], "error": None,
                "trials": [{"codes": ["ML203"], "short": "AdamW", "change": "used AdamW", "fix": "autofix", "verdict": "no change",
                            "effect": "final loss 0.46 -> 0.46 (+0%)", "loss": list(loss)}]}
    curves = _measure(render(document), tmp_path, "identical")["run-loss"]["curves"]
    assert [c["dash"] for c in curves] == [None, "9 6"] and curves[0]["height"] > 100
    assert curves[0]["height"] == pytest.approx(curves[1]["height"])
    assert "(coincides with as written)" in render(document)
