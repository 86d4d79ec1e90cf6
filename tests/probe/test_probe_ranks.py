"""The pieces of a torchrun probe run that need no job: the parent gathering the ranks' files
(torch-free), the CPU mapping of a GPU script, and the two collectors the rank-aware symptoms read,
against values computed directly from the tensors."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from mlplint.probe.collectors.grad_scaler import GradScalerCollector
from mlplint.probe.collectors.rank_params import RankParamCollector
from mlplint.probe.distributed import CpuMapping
from mlplint.probe.ranks import RankFiles, gather
from mlplint.probe.stats import Stats
from probe_helpers import probe_json

TORCHRUN_FAILURE = """
Root Cause (first observed failure):
[0]:
  time      : 2026-12-07_17:37:00
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 25672)
"""


def rank_stats(status, steps, error_time=None):
    error = {"type": "RuntimeError", "message": f"failed at {error_time}", "time": error_time} if error_time else None
    return Stats({"status": status, "steps": steps, "error": error, "collectors": {}, "mapped": ["backend nccl run as gloo"]})


def test_the_rank_that_failed_first_is_named(tmp_path):
    stats = gather(RankFiles(str(tmp_path), 3), [rank_stats("crashed", 4, 20.0), rank_stats("crashed", 5, 10.0),
                                                  rank_stats("running", 5)], "train.py", "", timed_out=False)
    data = stats.data
    assert data["status"] == "crashed" and data["failing_rank"] == 1 and data["error"]["message"] == "rank 1: failed at 10.0"
    assert data["steps"] == 4 and [r["status"] for r in data["ranks"]] == ["crashed", "crashed", "stopped"]
    assert data["mapped"] == ["backend nccl run as gloo"]


def test_a_rank_killed_without_a_word_is_named_from_torchrun_s_report(tmp_path):
    stats = gather(RankFiles(str(tmp_path), 2), [rank_stats("running", 6), rank_stats("running", 6)], "train.py",
                   TORCHRUN_FAILURE, timed_out=False)
    assert (stats.data["failing_rank"], stats.data["exitcode"]) == (1, -9)
    assert [r["status"] for r in stats.data["ranks"]] == ["stopped", "died"]


def test_the_rank_whose_stack_is_in_its_own_code_hangs(tmp_path):
    files = RankFiles(str(tmp_path), 2)
    script = str(tmp_path / "train.py")
    torch_file = os.path.join("site-packages", "torch", "distributed", "distributed_c10d.py")
    stacks = {0: f'Thread 0x1 (most recent call first):\n  File "{torch_file}", line 3252 in all_reduce\n'
                 f'  File "{script}", line 25 in <module>\n',
              1: f'Current thread 0x2 (most recent call first):\n  File "{script}", line 20 in <module>\n'}
    for rank, text in stacks.items():
        (tmp_path / f"trace.rank{rank}.txt").write_text(text)
    stats = gather(files, [rank_stats("running", 3), rank_stats("running", 3)], script, "", timed_out=True)
    assert stats.data["failing_rank"] == 1
    assert stats.data["hang"] == ["rank 1 hangs in its own code while the other ranks wait for it in torch",
                                  "rank 0: waiting in torch in all_reduce (distributed_c10d.py:3252, called from train.py:25) after 3 steps",
                                  "rank 1: running in <module> (train.py:20) after 3 steps"]
    assert [r["status"] for r in stats.data["ranks"]] == ["stopped", "hung"]


def test_ranks_all_waiting_in_torch_name_no_rank(tmp_path):
    files = RankFiles(str(tmp_path), 2)
    for rank in (0, 1):
        (tmp_path / f"trace.rank{rank}.txt").write_text('Stack:\n  File "/x/torch/distributed/distributed_c10d.py", line 1 in barrier\n')
    stats = gather(files, [rank_stats("running", 0), rank_stats("running", 0)], "train.py", "", timed_out=True)
    assert stats.data["failing_rank"] is None and len(stats.data["hang"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="the mapping is for machines without CUDA")
def test_gpu_placements_stay_on_the_cpu_and_are_named(tmp_path):
    mapped = []
    mapping = CpuMapping(mapped)
    mapping.install()
    try:
        model = nn.Linear(2, 2).to(0).cuda()
        x = torch.zeros(3, 2, device="cuda").to("cuda:0").cuda(non_blocking=True)
        torch.cuda.set_device(0)
        torch.save(x, tmp_path / "x.pt")
        assert torch.load(tmp_path / "x.pt", map_location=torch.device("cuda", 0)).device.type == "cpu"
        assert model(x).device.type == "cpu"
        assert x.to(torch.float64).dtype == torch.float64 and not mapped[-1].startswith("device")
    finally:
        mapping.remove()
    assert mapped == ["CUDA devices in .to() mapped to the CPU", "Module.cuda() kept on the CPU",
                      "device='cuda' in tensor factories mapped to the CPU", "Tensor.cuda() kept on the CPU",
                      "torch.cuda.set_device() ignored", "torch.load(map_location=CUDA) mapped to the CPU"]
    with pytest.raises((RuntimeError, AssertionError)):  # removed: the originals are back
        torch.zeros(1, device="cuda")


def test_rank_fingerprints_are_each_parameter_s_norm_and_sum():
    collector = RankParamCollector(enabled=True)
    params = [("w", torch.tensor([[3.0, -4.0]])), ("b", torch.tensor([1.0, 2.0]))]
    for step in (1, 3, 10):
        collector.after_step(step, 0, params)
    data = collector.flush()
    assert [r["step"] for r in data["records"]] == [1, 10]  # steps 1, 2, 4, 8 and every 10th
    assert data["records"][0]["norms"] == pytest.approx([5.0, 5 ** 0.5]) and data["records"][0]["sums"] == [-1.0, 3.0]
    assert data["params"] == {"0": ["w", "b"]}
    silent = RankParamCollector(enabled=False)
    silent.after_step(1, 0, params)
    assert silent.flush()["records"] == []
    FlatParameter = type("FlatParameter", (nn.Parameter,), {})  # FSDP's shard: differs across ranks by design
    sharded = RankParamCollector(enabled=True)
    sharded.after_step(1, 0, [("flat", FlatParameter(torch.ones(4)))])
    assert sharded.flush()["records"] == [] and sharded.flush()["sharded"] == "FlatParameter"


def test_skipped_scaler_steps_and_their_scale_are_recorded():
    collector = GradScalerCollector()
    weight = nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    steps = {"taken": 0}
    optimizer.register_step_post_hook(lambda *args: steps.update(taken=steps["taken"] + 1))
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    step = collector.wrap_step(torch.amp.GradScaler.step, lambda: steps["taken"])
    for value in (1.0, float("inf"), 1.0):
        optimizer.zero_grad()
        scaler.scale((weight * value).sum()).backward()
        step(scaler, optimizer)
        scaler.update()
    assert collector.flush()["calls"] == [[0, False, 4.0], [1, True, 4.0], [1, False, 2.0]]


def test_a_saved_torchrun_job_is_judged_again_with_its_ranks(tmp_path):
    inputs = [[step, 16, float(step), 2.0 * step] for step in range(10)]
    ranks = [{"rank": rank, "status": "step-budget", "steps": 10, "error": None, "device": "cpu",
              "collectors": {"batches": {"every": 1, "inputs": inputs, "labels": [], "class_counts": {}}}} for rank in (0, 1)]
    saved = tmp_path / "job.json"
    Stats({"status": "step-budget", "error": None, "steps": 10, "budget": 10, "collectors": {}, "ranks": ranks,
           "failing_rank": None, "mapped": ["backend nccl run as gloo"]}).save(str(saved))
    document, result = probe_json("--stats", str(saved))
    assert [s["code"] for s in document["symptoms"]] == ["ML943"] and result.returncode == 1
    assert [r["status"] for r in document["ranks"]] == ["step-budget", "step-budget"]
    assert document["mapped"] == ["backend nccl run as gloo"]
