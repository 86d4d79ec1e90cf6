"""The in-process session: hooks and patches are gone after a run, whatever the script did, and a
second run in the same process starts from nothing."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

from mlplint.probe.instrument import Session
from probe_helpers import FIXTURES

PATCHED = [(torch.autograd, "backward"), (torch.optim.Optimizer, "zero_grad"), (torch.optim.Optimizer, "__init__"), (torch.nn.Module, "zero_grad"),
           (F, "cross_entropy"), (F, "mse_loss"), (F, "binary_cross_entropy_with_logits")]


def global_hooks() -> list[int]:
    return [len(module_hooks._global_forward_pre_hooks), len(module_hooks._global_forward_hooks),
            len(optimizer_hooks._global_optimizer_pre_hooks), len(optimizer_hooks._global_optimizer_post_hooks)]


@pytest.mark.parametrize("script, args, status", [
    ("healthy.py", [], "step-budget"),
    ("crash.py", [], "crashed"),
    ("exits.py", ["4"], "crashed"),
    ("exits.py", ["0"], "completed"),
])
def test_hooks_and_patches_are_removed_after_the_run(script, args, status, tmp_path):
    originals = [getattr(owner, name) for owner, name in PATCHED]
    hooks_before, argv_before, path_before = global_hooks(), list(sys.argv), list(sys.path)
    stats = Session(steps=20, stats_path=str(tmp_path / "stats.json")).run_script(str(FIXTURES / script), args)
    assert stats["status"] == status
    assert global_hooks() == hooks_before
    assert [getattr(owner, name) for owner, name in PATCHED] == originals
    assert sys.argv == argv_before and sys.path == path_before
    assert json.loads((tmp_path / "stats.json").read_text())["status"] == status


def test_second_run_in_the_same_process_does_not_see_the_first(tmp_path):
    first = Session(steps=6).run_script(str(FIXTURES / "dead_relu.py"), [])
    second = Session(steps=6).run_script(str(FIXTURES / "crash.py"), [])
    assert first["steps"] == 6 and second["steps"] == 6
    assert second["seen"] == {"models": 1, "optimizers": 1, "forward": 6, "backward": 6}
    assert [len(s) for s in second["collectors"]["loss"]["series"].values()] == [6]
    # and after both, training with no session installed records nothing anywhere
    model = torch.nn.Linear(2, 1)
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert global_hooks() == [0, 0, 0, 0]


def test_crash_keeps_the_location_in_the_script():
    stats = Session(steps=50).run_script(str(FIXTURES / "crash.py"), [])
    assert stats["error"]["type"] == "RuntimeError" and stats["error"]["line"] == 15
    assert stats["steps"] == 12 and len(stats["collectors"]["loss"]["series"]["0"]) == 12


def train_steps(model, optimizer, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        optimizer.step()


def test_model_hooks_are_removed_and_global_hooks_are_off_between_discoveries():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    session = Session(steps=100, every={"activations": 2})
    session.install()
    try:
        train_steps(model, optimizer, 3)
        assert len(module_hooks._global_forward_pre_hooks) == 0  # the model is known: no global hook
        assert model._forward_pre_hooks and model._forward_hooks
    finally:
        session.remove()
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert global_hooks() == [0, 0, 0, 0]
    assert {r["step"] for r in session.stats("completed", None)["collectors"]["activations"]["records"]} == {0, 2}


def test_a_model_first_trained_after_the_first_step_is_discovered():
    first = torch.nn.Sequential(torch.nn.Linear(4, 1))
    late = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    first_optimizer = torch.optim.SGD(first.parameters(), lr=0.01)
    late_optimizer = torch.optim.SGD(late.parameters(), lr=0.01)
    session = Session(steps=100, every={"activations": 1})
    session.install()
    try:
        train_steps(first, first_optimizer, 2)
        train_steps(late, late_optimizer, 3)
    finally:
        session.remove()
    stats = session.stats("completed", None)
    assert set(stats["models"]) == {"Sequential", "Sequential#2"}
    assert {r["layer"] for r in stats["collectors"]["activations"]["records"] if r["model"] == "Sequential#2"} == {"0", "1", "2"}
