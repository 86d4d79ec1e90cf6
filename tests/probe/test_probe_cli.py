"""`mlplint probe` end to end through the real CLI, on the scripts under fixtures/probe/.

The runs are independent subprocesses, so each group is started concurrently once per module and
the tests then read their results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import os
import stat
import subprocess
import sys

import pytest

from mlplint.probe.symptoms import SYMPTOMS
from probe_helpers import FIXTURES, codes, run_all, run_cli

# Each test here reads runs of real training scripts under the probe (about 90 s for the module).
pytestmark = pytest.mark.slow

SYMPTOM_FIXTURES = {code: f"{symptom.name.replace('-', '_')}.py" for code, symptom in SYMPTOMS.items()}
# Symptoms seen across the ranks of a torchrun job: their fixtures run with two ranks.
RANK_SYMPTOMS = {"ML942", "ML943"}
# Near misses of the newer symptoms: the same script with the mistake put right.
NEAR_MISSES = sorted((FIXTURES / "healthy_variants").glob("*.py"))
pytestmark = pytest.mark.slow


def fingerprint(path) -> tuple:
    info = os.stat(path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mtime_ns, stat.S_IMODE(info.st_mode)


@pytest.fixture(scope="module")
def symptom_runs(tmp_path_factory):
    stats_dir = tmp_path_factory.mktemp("stats")
    scripts = {code: FIXTURES / name for code, name in SYMPTOM_FIXTURES.items()}
    scripts["healthy"] = FIXTURES / "healthy.py"
    scripts.update({f"near-miss-{path.stem}": path for path in NEAR_MISSES})
    before = {key: fingerprint(path) for key, path in scripts.items()}
    results = run_all({
        key: ["probe", "--format", "json", "--save-stats", str(stats_dir / f"{key}.json"),
              *(["--nproc-per-node", "2"] if key in RANK_SYMPTOMS else []), str(path)]
        for key, path in scripts.items()
    })
    after = {key: fingerprint(path) for key, path in scripts.items()}
    return results, stats_dir, before, after


@pytest.mark.parametrize("code", sorted(SYMPTOMS))
def test_fixture_produces_its_symptom(symptom_runs, code):
    result = symptom_runs[0][code]
    document = json.loads(result.stdout)
    assert code in codes(document), (code, document["symptoms"])
    assert document["status"] == "step-budget" and document["steps"] == 50
    assert document["version"] == 1 and document["script"].endswith(SYMPTOM_FIXTURES[code])
    assert result.returncode == (1 if any(s["severity"] != "info" for s in document["symptoms"]) else 0)


def test_ranks_without_set_epoch_repeat_their_order_on_every_rank(symptom_runs):
    document = json.loads(symptom_runs[0]["ML942"].stdout)  # the fixture never calls sampler.set_epoch()
    (repeat,) = [s for s in document["symptoms"] if s["code"] == "ML922"]
    assert repeat["message"].startswith("on ranks 0, 1, the batches repeat") and "set_epoch()" in repeat["message"]
    assert [r["status"] for r in document["ranks"]] == ["step-budget", "step-budget"]


def test_healthy_script_has_no_symptom(symptom_runs):
    result = symptom_runs[0]["healthy"]
    document = json.loads(result.stdout)
    assert document["symptoms"] == [] and document["findings"] == [] and document["error"] is None
    assert result.returncode == 0
    assert len(document["loss"]) == 50 and document["loss"][-1] < document["loss"][0] / 2


def test_every_newer_symptom_has_a_near_miss():
    names = {path.stem for path in NEAR_MISSES}
    assert {SYMPTOM_FIXTURES[f"ML{n}"][:-3] for n in [*range(919, 942), 944]} <= names  # ML942/ML943: ddp_clean.py


@pytest.mark.parametrize("path", NEAR_MISSES, ids=lambda p: p.stem)
def test_near_miss_shows_no_symptom(symptom_runs, path):
    document = json.loads(symptom_runs[0][f"near-miss-{path.stem}"].stdout)
    assert document["status"] == "step-budget" and document["steps"] == 50, document["error"]
    assert document["symptoms"] == []


def test_probing_never_changes_the_scripts(symptom_runs):
    _, _, before, after = symptom_runs
    assert before == after


def test_static_findings_get_runtime_evidence(symptom_runs):
    document = json.loads(symptom_runs[0]["ML914"].stdout)
    (finding,) = [f for f in document["findings"] if f["code"] == "ML401"]
    assert finding["runtime"]["status"] == "confirmed" and "ML914" in finding["runtime"]["symptoms"]
    assert "softmax outputs" in finding["runtime"]["evidence"]


def test_saved_stats_are_judged_again_without_running(symptom_runs):
    results, stats_dir, _, _ = symptom_runs
    saved = stats_dir / "ML907.json"
    again = run_cli("probe", "--format", "json", "--stats", str(saved))
    assert again.returncode == 1
    assert json.loads(again.stdout)["symptoms"] == json.loads(results["ML907"].stdout)["symptoms"]
    relaxed = run_cli("probe", "--format", "json", "--stats", str(saved), "--threshold", "ML907.max_dead_fraction=1.01")
    assert "ML907" not in codes(json.loads(relaxed.stdout))


@pytest.fixture(scope="module")
def scenario_runs(tmp_path_factory):
    no_mlplint = tmp_path_factory.mktemp("python") / "python-without-mlplint"
    no_mlplint.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c \"import sys, runpy; sys.modules['mlplint'] = None; "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')\" \"$@\"\n"
    )
    no_mlplint.chmod(0o755)
    scenarios = {  # key: (options, script, script arguments)
        "crash": ([], "crash.py", []),
        "timeout": (["--timeout", "15"], "hangs.py", []),
        "exit-3": ([], "exits.py", ["3"]),
        "exit-0": ([], "exits.py", ["0"]),
        "killed": ([], "killed.py", []),
        "no-training": ([], "no_training.py", []),
        "args": ([], "script_args.py", ["--epochs", "3", "--name", "two words"]),
        "args-missing": ([], "script_args.py", []),
        "workers": (["--steps", "40"], "dataloader_workers.py", []),
        "two-models": (["--steps", "40"], "two_models.py", []),
        "device-cpu": (["--device", "cpu"], "hidden_accelerators.py", []),
        "other-python": (["--python", str(no_mlplint), "--steps", "20"], "healthy.py", []),
        "swallowed": (["--steps", "20"], "swallows_budget.py", []),
        "autograd-backward": (["--steps", "30", "--device", "cuda"], "autograd_backward.py", []),
        "segfault": ([], "dies_abruptly.py", ["segfault"]),
        "os-exit": ([], "dies_abruptly.py", ["os-exit"]),
        "orphan": (["--steps", "20"], "leaves_orphan.py", [str(tmp_path_factory.mktemp("orphan") / "helper.pid")]),
    }
    commands = {
        key: ["probe", "--format", "json", *options, str(FIXTURES / script), "--", *script_args]
        for key, (options, script, script_args) in scenarios.items()
    }
    commands["text"] = ["probe", "--steps", "20", str(FIXTURES / "healthy.py")]
    disabled = tmp_path_factory.mktemp("disabled") / "stalled_loss.py"
    disabled.write_text("# mlplint: disable=ML904\n" + (FIXTURES / "stalled_loss.py").read_text())
    commands["disabled"] = ["probe", "--format", "json", str(disabled)]
    commands["check-probe"] = ["check", "--probe", "--format", "json", str(FIXTURES / "gradient_accumulation.py")]
    commands["check-probe-no-static"] = ["check", "--probe", "--format", "json", str(FIXTURES / "dead_relu.py"), str(FIXTURES / "healthy.py")]
    buggy = FIXTURES.parent / "buggy"
    commands["check-probe-loss-crash"] = ["check", "--probe", "--format", "json", str(buggy / "bce_loss_raw_logits.py")]
    commands["long-epochs"] = ["probe", "--format", "json", "--save-stats", str(tmp_path_factory.mktemp("epochs") / "stats.json"),
                               str(buggy / "argparse_lr_eval_in_loop.py")]
    commands["manual-sgd"] = ["probe", "--format", "json", "--save-stats", str(tmp_path_factory.mktemp("manual") / "stats.json"),
                              str(FIXTURES / "manual_sgd.py")]
    commands["manual-ascent"] = ["probe", "--format", "json", "--save-stats", str(tmp_path_factory.mktemp("ascent") / "stats.json"),
                                 str(buggy / "manual_sgd_gradient_ascent.py")]
    commands["input-gradients"] = ["probe", "--format", "json", str(FIXTURES / "input_gradients.py")]
    commands["manual-accumulates"] = ["probe", "--format", "json", str(buggy / "manual_regression_grads_never_cleared.py")]
    commands["optimizer-per-step"] = ["probe", "--format", "json", "--steps", "200", "--timeout", "60", "--save-stats",
                                      str(tmp_path_factory.mktemp("per-step") / "stats.json"), str(FIXTURES / "optimizer_state_reset.py")]
    return run_all(commands)


def saved_stats(result) -> dict:
    """The stats file a run was told to save (`--save-stats`)."""
    arguments = list(result.args)
    return json.loads(Path(arguments[arguments.index("--save-stats") + 1]).read_text())


def scenario(runs, key) -> dict:
    return json.loads(runs[key].stdout)


def test_crash_reports_exception_location_and_what_was_measured(scenario_runs):
    document = scenario(scenario_runs, "crash")
    assert document["status"] == "crashed" and document["steps"] == 12 and len(document["loss"]) == 12
    assert document["error"].startswith("RuntimeError: checkpoint directory is missing")
    assert "crash.py, line 15" in document["error"]
    # a script that crashes after some steps is broken: CI must not read it as a pass
    result = scenario_runs["crash"]
    assert result.returncode == 2
    assert result.stderr == f"mlplint: error: the run crashed after 12 optimizer steps: {document['error']}\n"


def test_timeout_keeps_what_was_measured(scenario_runs):
    document = scenario(scenario_runs, "timeout")
    assert document["status"] == "timeout" and "within 15 s" in document["error"]
    assert document["steps"] >= 8 and len(document["loss"]) == document["steps"]  # flushed at step 8
    assert scenario_runs["timeout"].returncode == 2 and "mlplint: error: the run timed out after" in scenario_runs["timeout"].stderr


def test_sys_exit_with_failure_status_is_a_crash(scenario_runs):
    document = scenario(scenario_runs, "exit-3")
    assert document["status"] == "crashed" and "exited with status 3" in document["error"]
    assert document["steps"] == 5 and scenario_runs["exit-3"].returncode == 2


def test_sys_exit_zero_completes(scenario_runs):
    document = scenario(scenario_runs, "exit-0")
    assert document["status"] == "completed" and document["steps"] == 5 and document["error"] is None
    assert scenario_runs["exit-0"].returncode == 0


def test_process_killed_by_a_signal_is_a_crash(scenario_runs):
    document = scenario(scenario_runs, "killed")
    assert document["status"] == "crashed" and "SIGKILL" in document["error"]
    assert document["steps"] >= 8 and len(document["loss"]) == document["steps"]  # flushed at step 8
    assert scenario_runs["killed"].returncode == 2


def test_no_training_says_what_was_seen(scenario_runs):
    document = scenario(scenario_runs, "no-training")
    assert document["status"] == "no-training" and document["steps"] == 0
    assert "the probe saw 1 model called once and no backward() call" in document["error"]
    assert scenario_runs["no-training"].returncode == 2  # nothing judged is not a pass
    assert scenario_runs["no-training"].stderr.startswith("mlplint: error: no optimizer step was made")


@pytest.mark.parametrize("key, reason", [("segfault", "killed by SIGSEGV"), ("os-exit", "exited with status 3 (os._exit)")])
def test_steps_before_an_abrupt_end_are_kept(scenario_runs, key, reason):
    document = scenario(scenario_runs, key)
    assert document["status"] == "crashed" and reason in document["error"]
    assert document["steps"] == 6 and len(document["loss"]) == 6
    assert scenario_runs[key].returncode == 2 and "Extension modules" not in document["error"]


def test_a_segfault_names_the_script_s_line_from_faulthandler(scenario_runs):
    document = scenario(scenario_runs, "segfault")
    assert document["error"].endswith("(Segmentation fault) (" + str(FIXTURES / "dies_abruptly.py") + ", line 19)"), document["error"]


def test_processes_the_script_left_in_another_session_are_ended(scenario_runs):
    result = scenario_runs["orphan"]
    assert scenario(scenario_runs, "orphan")["status"] == "step-budget"
    helper = int(Path(result.args[-1]).read_text())  # started with start_new_session=True, ignores SIGTERM
    try:
        state = Path(f"/proc/{helper}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z"), f"the script's helper {helper} is still running ({state})"


def test_a_bare_except_does_not_outlive_the_step_budget(scenario_runs):
    document = scenario(scenario_runs, "swallowed")
    assert document["status"] == "step-budget" and document["steps"] == 20, document["error"]


def test_losses_backpropagated_with_autograd_backward_are_recorded(scenario_runs):
    document = scenario(scenario_runs, "autograd-backward")
    assert document["status"] == "step-budget" and len(document["loss"]) == 30
    assert document["loss"][-1] < document["loss"][0]


def test_device_cuda_warns_when_the_script_ran_elsewhere(scenario_runs):
    document = scenario(scenario_runs, "autograd-backward")
    if document["device"].startswith("cuda"):
        pytest.skip("the script ran on CUDA here")
    assert "mlplint: warning: --device cuda, but the script ran on cpu" in scenario_runs["autograd-backward"].stderr


def test_a_symptom_disabled_in_the_script_is_not_reported(scenario_runs):
    document = scenario(scenario_runs, "disabled")
    assert document["status"] == "step-budget" and "ML904" not in codes(document)  # the fixture's own run has it
    assert document["findings"]  # static findings are still checked against the run


def test_a_script_with_a_syntax_error_is_not_run(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import torch\nfor x in range(3)\n    pass\n")
    result = run_cli("probe", str(script))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"mlplint: error: {script}: syntax error at line 2, column 18: expected ':'"


def test_an_argparse_error_shows_the_script_s_message(scenario_runs):
    document = scenario(scenario_runs, "args-missing")
    assert document["status"] == "crashed" and "exited with status 2" in document["error"]
    assert "error: the following arguments are required: --epochs, --name" in document["error"]


def test_script_arguments_reach_the_script(scenario_runs):
    document = scenario(scenario_runs, "args")
    assert document["status"] == "completed" and document["steps"] == 12, document["error"]


def test_dataloader_with_two_workers(scenario_runs):
    document = scenario(scenario_runs, "workers")
    assert document["status"] == "step-budget" and document["steps"] == 40 and document["symptoms"] == []


def test_two_models_are_reported_per_model(scenario_runs):
    document = scenario(scenario_runs, "two-models")
    layers = {(s["code"], s["layer"]) for s in document["symptoms"]}
    assert ("ML907", "Discriminator.act") in layers
    assert not any(layer and layer.startswith("Generator.") for code, layer in layers if code == "ML907")
    assert "ML916" not in codes(document) and "ML914" not in codes(document)


def test_device_cpu_hides_accelerators(scenario_runs):
    document = scenario(scenario_runs, "device-cpu")
    assert document["status"] == "completed" and document["device"] == "cpu", document["error"]


def test_child_runs_under_an_interpreter_without_mlplint(scenario_runs):
    document = scenario(scenario_runs, "other-python")
    assert document["status"] == "step-budget" and document["steps"] == 20, document["error"]


def test_text_output_says_the_script_was_executed(scenario_runs):
    result = scenario_runs["text"]
    assert result.returncode == 0
    assert result.stdout.startswith("mlplint probe executed ")
    assert "status: step-budget after 20 optimizer steps on cpu" in result.stdout


def test_check_probe_attaches_runtime_to_static_findings(scenario_runs):
    result = scenario_runs["check-probe"]
    findings = json.loads(result.stdout)["findings"]
    (finding,) = [f for f in findings if f["code"] == "ML202"]
    assert finding["runtime"]["status"] == "confirmed" and "ML913" in finding["runtime"]["symptoms"]


def test_check_probe_reports_symptoms_no_static_rule_explains(scenario_runs):
    result = scenario_runs["check-probe-no-static"]
    findings = json.loads(result.stdout)["findings"]
    assert result.returncode == 1
    assert {Path(f["path"]).name for f in findings} == {"dead_relu.py"}  # the healthy script stays clean
    (symptom,) = [f for f in findings if f["code"] == "ML907"]
    assert (symptom["line"], symptom["column"]) == (1, 1) and symptom["runtime"]["status"] == "confirmed"
    assert all(f["code"].startswith("ML9") for f in findings)


@pytest.mark.parametrize("args, message", [
    (["probe", "fixtures/probe/does_not_exist.py"], "no such file"),
    (["probe", "--python", "/nonexistent/python", "fixtures/probe/healthy.py"], "cannot run the interpreter"),
    (["probe", "--stats", "fixtures/probe/healthy.py"], "not a probe statistics file"),
    (["probe", "--stats", "x.json", "fixtures/probe/healthy.py"], "not both"),
    (["probe", "--threshold", "ML907.nope=1", "fixtures/probe/healthy.py"], "no threshold 'nope'"),
    (["probe"], "missing SCRIPT"),
])
def test_usage_and_input_errors_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_rule_command_prints_detector_documentation():
    result = run_cli("rule", "ML913")
    assert result.returncode == 0
    assert "## Thresholds" in result.stdout and "min_retained" in result.stdout


def run_on_terminal(*args: str) -> tuple[subprocess.CompletedProcess, bytes]:
    """The CLI with stderr on a pseudo-terminal (stdout captured): what the terminal received."""
    import pty
    import select

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "mlplint", *args], stdout=subprocess.PIPE, stderr=slave,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(slave)
    received = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        elif process.poll() is not None:
            break
    stdout, _ = process.communicate(timeout=120)
    os.close(master)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout.decode(), ""), received


def test_live_progress_on_a_terminal_only_with_text_output():
    result, terminal = run_on_terminal("probe", "--steps", "20", str(FIXTURES / "healthy.py"))
    assert result.returncode == 0 and "status: step-budget" in result.stdout
    assert b"healthy.py: step " in terminal and b" of 20, " in terminal and b", loss " in terminal
    assert terminal.endswith(b"\r\x1b[K")  # the line is erased when the run ends
    assert "\x1b[K" not in result.stdout
    _, quiet = run_on_terminal("probe", "--format", "json", "--steps", "20", str(FIXTURES / "healthy.py"))
    assert quiet == b""


def test_no_progress_when_stderr_is_not_a_terminal(scenario_runs):
    assert scenario_runs["text"].stderr == ""


def test_a_loss_that_ends_the_run_at_its_first_call_is_still_measured(scenario_runs):
    """BCELoss raises on raw scores before the first optimizer step; the input it was given is
    recorded before the call, so the static finding is confirmed by what reached the loss."""
    (finding,) = [f for f in scenario(scenario_runs, "check-probe-loss-crash")["findings"] if f["code"] == "ML403"]
    assert finding["runtime"]["status"] == "confirmed" and "ML928" in finding["runtime"]["symptoms"], finding["runtime"]
    assert "binary_cross_entropy expects probabilities in [0, 1]" in finding["runtime"]["evidence"]


def test_epochs_longer_than_the_budget_are_shortened_so_per_epoch_code_runs(scenario_runs):
    """63 batches per epoch against a budget of 50 steps: each epoch ends after 12 batches, so
    the evaluation at the end of the epoch (which leaves Dropout in eval mode) is reached."""
    document = scenario(scenario_runs, "long-epochs")
    assert document["status"] == "step-budget" and document["steps"] == 50
    assert "ML919" in codes(document)
    epochs = saved_stats(scenario_runs["long-epochs"])["epochs"]
    assert epochs == {"batches_per_epoch": 12, "shortened_epochs": 4}


def test_hand_written_updates_are_steps(scenario_runs):
    """No optimizer: each backward pass followed by an in-place update of the parameters is a
    step, so a from-scratch loop is measured (healthy) and a flipped update sign is seen."""
    document = scenario(scenario_runs, "manual-sgd")
    assert document["status"] == "step-budget" and document["steps"] == 50 and document["symptoms"] == []
    stats = saved_stats(scenario_runs["manual-sgd"])
    assert stats["hand_written_updates"] is True and stats["optimizers"][0]["class"] == "HandWrittenUpdates"
    ascent = scenario(scenario_runs, "manual-ascent")
    assert ascent["steps"] == 50 and "ML902" in codes(ascent)
    # raw tensors are named after the script's variables
    assert saved_stats(scenario_runs["manual-ascent"])["optimizers"][0]["params"] == ["b", "w"]


def test_hand_written_updates_that_never_clear_grads_confirm_ml202(scenario_runs):
    """`w -= lr * w.grad` with w.grad never cleared: the carried-over gradients are measured."""
    document = scenario(scenario_runs, "manual-accumulates")
    finding = next(f for f in document["findings"] if f["code"] == "ML202")
    assert finding["runtime"]["status"] == "confirmed" and "ML913" in finding["runtime"]["symptoms"], finding["runtime"]
    assert "ML913" in codes(document)


def test_an_optimizer_built_at_every_step_reaches_the_step_budget(scenario_runs):
    """A new Adam per batch takes its predecessor's place: the steps add up to the budget (they
    used to stay at 1, one per optimizer, until the script ended or the timeout)."""
    document = scenario(scenario_runs, "optimizer-per-step")
    assert document["status"] == "step-budget" and document["steps"] == 200, document["error"]
    assert "ML941" in codes(document)
    stats = saved_stats(scenario_runs["optimizer-per-step"])
    assert [o["steps"] for o in stats["optimizers"]] == [200]
    (built,) = stats["collectors"]["optimizer_constructions"]["records"]
    assert built["constructions"] == 200 and built["steps_taken"] == [[1, 200]]


def test_gradients_of_the_input_alone_are_not_training(scenario_runs):
    document = scenario(scenario_runs, "input-gradients")
    assert document["status"] == "no-training" and document["steps"] == 0
    assert scenario_runs["input-gradients"].returncode == 2
