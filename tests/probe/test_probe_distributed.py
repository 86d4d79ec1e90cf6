"""`mlplint probe` on distributed scripts through the real CLI: two-rank gloo jobs started by
torch.distributed.run on this CPU machine (a clean DDP script written for nccl and CUDA, a rank
that crashes, a rank that hangs), and the same DDP script as a world of one without flags. The
runs are started concurrently once for the module; the symptom fixtures of ML942/ML943 run with
two ranks in test_probe_cli.py."""

from __future__ import annotations

import json
import os

import pytest

from probe_helpers import FIXTURES, ROOT, run_all, run_cli

pytestmark = pytest.mark.slow
HANG_TIMEOUT = "30"


def _child_processes() -> list[str]:
    """Command lines of the probe's child processes (and torchrun launchers of them) still alive."""
    child = str(ROOT / "probe" / "child.py")
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                line = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if child in line:
            found.append(line)
    return found


@pytest.fixture(scope="module")
def runs():
    probe = ["probe", "--format", "json", "--steps", "12"]
    results = run_all({  # the hang first: it lasts its whole timeout while the others run
        "hang": [*probe, "--nproc-per-node", "2", "--timeout", HANG_TIMEOUT, str(FIXTURES / "ddp_rank_hang.py")],
        "clean": [*probe, "--nproc-per-node", "2", "--device", "cpu", str(FIXTURES / "ddp_clean.py")],
        "world-of-one": [*probe, str(FIXTURES / "ddp_clean.py")],
        "crash": [*probe, "--nproc-per-node", "2", str(FIXTURES / "ddp_rank_crash.py")],
    })
    left = _child_processes()
    return {key: (json.loads(result.stdout), result) for key, result in results.items()}, left


def test_clean_ddp_script_for_gpus_runs_on_two_cpu_ranks(runs):
    document, result = runs[0]["clean"]
    assert document["status"] == "step-budget" and document["steps"] == 12, document["error"]
    assert [(r["rank"], r["status"], r["steps"]) for r in document["ranks"]] == [(0, "step-budget", 12), (1, "step-budget", 12)]
    assert document["symptoms"] == [] and result.returncode == 0
    assert {"backend nccl run as gloo", "torch.cuda.set_device() ignored", "Tensor.cuda() kept on the CPU",
            "CUDA devices in .to() mapped to the CPU",
            "DistributedDataParallel device_ids/output_device dropped (CPU module)"} == set(document["mapped"])
    assert document["failing_rank"] is None and len(document["loss"]) == 12


def test_ddp_script_without_torchrun_runs_as_a_world_of_one(runs):
    document, result = runs[0]["world-of-one"]
    assert document["status"] == "step-budget" and document["steps"] == 12, document["error"]
    assert "ranks" not in document and result.returncode == 0
    (world,) = [change for change in document["mapped"] if change.startswith("world of one")]
    assert "RANK=0, WORLD_SIZE=1" in world and "backend nccl run as gloo" in document["mapped"]


def test_a_rank_that_crashes_ends_the_job_and_is_named(runs):
    document, result = runs[0]["crash"]
    assert document["status"] == "crashed" and document["failing_rank"] == 1
    assert document["error"].startswith("ValueError: rank 1: corrupt record in shard 1 (")
    assert document["steps"] == 3 and len(document["loss"]) == 3  # what was measured before is kept
    assert [r["steps"] for r in document["ranks"]] == [3, 3]
    assert document["ranks"][1]["status"] == "crashed"


def test_a_rank_that_hangs_times_out_the_job_and_is_named(runs):
    document, result = runs[0]["hang"]
    assert document["status"] == "timeout" and document["failing_rank"] == 1
    assert "rank 1 hangs in its own code while the other ranks wait for it in torch" in document["error"]
    assert "rank 0: waiting in torch in all_reduce" in document["error"] and "ddp_rank_hang.py:" in document["error"]
    assert [(r["status"], r["steps"]) for r in document["ranks"]] == [("stopped", 3), ("hung", 3)]


def test_no_process_of_any_job_is_left(runs):
    assert runs[1] == []


def test_baseline_and_trials_cannot_run_on_several_ranks():
    result = run_cli("probe", "--nproc-per-node", "2", "--trials", str(FIXTURES / "ddp_clean.py"))
    assert result.returncode == 2 and "cannot be combined with --nproc-per-node" in result.stderr
