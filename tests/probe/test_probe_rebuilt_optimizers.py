"""Scripts that build a new optimizer during training (per epoch, or per batch): the new one takes
its predecessor's place, so the steps add up to the budget, the probe lets the replaced optimizers
go, and a step costs the same however many optimizers were built before. Optimizers that coexist
over the same parameters keep their own places."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mlplint.probe.instrument import Session, StepBudgetReached


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def step(model, optimizer):
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def under_session(loop, budget=1000):
    """Run `loop()` under an installed session; the session and its stats."""
    session = Session(steps=budget)
    session.install()
    try:
        loop()
    finally:
        session.remove()
    return session, session.stats("completed", None)


def test_an_optimizer_built_per_step_takes_its_predecessor_s_place():
    torch.manual_seed(0)
    model = make_model()
    built = []

    def loop():  # a function: its frame's locals are read by the probe (graph_growth)
        for _ in range(7):
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            step(model, optimizer)
            built.append(weakref.ref(optimizer))

    _, stats = under_session(loop)
    assert stats["steps"] == 7 and [o["steps"] for o in stats["optimizers"]] == [7]
    assert stats["collectors"]["loss"]["series"].keys() == {"0"} and len(stats["collectors"]["loss"]["series"]["0"]) == 7
    gc.collect()
    assert sum(ref() is not None for ref in built) == 1  # the probe let the six replaced optimizers go


def test_optimizers_built_per_step_and_all_kept_by_the_script_still_take_each_other_s_place():
    torch.manual_seed(0)
    model = make_model()
    kept = []

    def loop():
        for _ in range(6):
            kept.append(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
            step(model, kept[-1])

    _, stats = under_session(loop)
    assert stats["steps"] == 6 and [o["steps"] for o in stats["optimizers"]] == [6]


def test_an_optimizer_built_before_the_other_s_last_step_keeps_its_own_place():
    torch.manual_seed(0)
    model = make_model()

    def loop():
        first = torch.optim.SGD(model.parameters(), lr=0.1)
        second = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(3):  # two optimizers over the same parameters, alternated
            step(model, first)
            step(model, second)

    _, stats = under_session(loop)
    assert [o["steps"] for o in stats["optimizers"]] == [3, 3] and stats["steps"] == 3


def test_a_switch_to_another_optimizer_class_is_a_new_optimizer():
    torch.manual_seed(0)
    model = make_model()

    def loop():
        for make in (torch.optim.Adam, torch.optim.SGD):  # Adam first, then SGD to fine-tune
            optimizer = make(model.parameters(), lr=1e-3)
            for _ in range(3):
                step(model, optimizer)

    _, stats = under_session(loop)
    assert [(o["class"], o["steps"]) for o in stats["optimizers"]] == [("Adam", 3), ("SGD", 3)] and stats["steps"] == 3


class Wrapper(torch.optim.Optimizer):
    """An optimizer that steps an inner one over its own parameters (as SAM and Lookahead do)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})
        self.inner = torch.optim.SGD(self.param_groups, lr=lr, momentum=0.9)

    def step(self, closure=None):
        return self.inner.step(closure)


def test_an_inner_optimizer_stepped_inside_its_wrapper_keeps_its_own_place():
    torch.manual_seed(0)
    model = make_model()

    def loop():
        optimizer = Wrapper(model.parameters())
        for _ in range(5):
            step(model, optimizer)

    _, stats = under_session(loop)
    assert stats["steps"] == 5 and sorted((o["class"], o["steps"]) for o in stats["optimizers"]) == [("SGD", 5), ("Wrapper", 5)]


def test_an_optimizer_built_per_step_reaches_the_step_budget():
    torch.manual_seed(0)
    model = make_model()

    def loop():
        for _ in range(100):
            step(model, torch.optim.Adam(model.parameters()))

    with pytest.raises(StepBudgetReached):
        under_session(loop, budget=20)


def test_the_early_stats_writes_happen_once_per_step_with_several_optimizers(tmp_path):
    torch.manual_seed(0)
    models = [make_model(), make_model()]
    session = Session(steps=1000, stats_path=str(tmp_path / "stats.json"))
    written = []
    write = session.write
    session.write = lambda stats: (written.append(stats["steps"]), write(stats))
    session.install()
    try:
        optimizers = [torch.optim.SGD(model.parameters(), lr=0.1) for model in models]
        for _ in range(8):  # two optimizers each reach steps 1, 2, 4 and 8
            for model, optimizer in zip(models, optimizers):
                step(model, optimizer)
    finally:
        session.remove()
    assert {1, 2, 4, 8} <= set(written) and len(written) == len(set(written))
