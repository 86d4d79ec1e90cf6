"""The optimizer constructions collector (ML941) against what each training loop did, counted
directly: optimizers built per parameter set, the steps each took, the state they keep."""

from __future__ import annotations

import gc

import torch

from test_probe_rebuilt_optimizers import Wrapper, make_model, step, under_session


def size(model):
    params = list(model.parameters())
    return len(params), sum(p.numel() for p in params)


def constructions(stats):
    return stats["collectors"]["optimizer_constructions"]["records"]


def test_an_optimizer_built_per_step_is_counted_with_its_one_step_and_its_state():
    torch.manual_seed(0)
    model = make_model()

    def loop():
        for _ in range(7):
            step(model, torch.optim.Adam(model.parameters(), lr=1e-3))

    _, stats = under_session(loop)
    params, values = size(model)
    assert constructions(stats) == [{"params": params, "values": values, "classes": ["Adam"], "constructions": 7,
                                     "first_built_at_step": 0, "last_built_at_step": 6, "steps_taken": [[1, 7]],
                                     "state": ["exp_avg", "exp_avg_sq"]}]
    assert stats["collectors"]["optimizer_constructions"]["untracked_constructions"] == 0


def test_optimizers_built_per_epoch_and_without_state():
    torch.manual_seed(0)
    model, stateless_model = make_model(), make_model()

    def loop():
        for epoch in range(3):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1 * 0.5 ** epoch, momentum=0.9)
            for _ in range(4):
                step(model, optimizer)
        for _ in range(5):
            step(stateless_model, torch.optim.SGD(stateless_model.parameters(), lr=0.1))

    _, stats = under_session(loop)
    per_epoch, stateless = constructions(stats)
    assert (per_epoch["constructions"], per_epoch["steps_taken"], per_epoch["state"]) == (3, [[4, 3]], ["momentum_buffer"])
    assert (per_epoch["first_built_at_step"], per_epoch["last_built_at_step"]) == (0, 8)
    # SGD without momentum keeps no state: a rebuild resets nothing
    assert (stateless["constructions"], stateless["steps_taken"], stateless["state"]) == (5, [[1, 5]], [])
    assert (stateless["params"], stateless["values"]) == size(stateless_model)
    # steps are the run's (the most any optimizer took): the first model's 12 while the second trains
    assert (stateless["first_built_at_step"], stateless["last_built_at_step"]) == (12, 12)


def test_a_new_model_per_fold_is_a_new_parameter_set():
    torch.manual_seed(0)

    def loop():
        for _ in range(3):  # each fold's tensors may reuse the freed addresses of the last fold's
            model = make_model()
            optimizer = torch.optim.Adam(model.parameters())
            for _ in range(4):
                step(model, optimizer)
            del model, optimizer
            gc.collect()

    _, stats = under_session(loop)
    assert [(r["constructions"], r["steps_taken"]) for r in constructions(stats)] == [(1, [[4, 1]])] * 3


def test_coexisting_optimizers_follow_the_newest():
    torch.manual_seed(0)
    model = make_model()

    def loop():
        first = torch.optim.SGD(model.parameters(), lr=0.1)
        second = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(3):
            step(model, first)
            step(model, second)

    _, stats = under_session(loop)
    (record,) = constructions(stats)
    assert record["constructions"] == 2 and record["steps_taken"] == [[0, 1], [3, 1]]  # the first is no longer followed


def test_a_switch_of_class_and_a_wrapped_inner_optimizer_are_counted_by_class():
    torch.manual_seed(0)
    model, wrapped = make_model(), make_model()

    def loop():
        for make in (torch.optim.Adam, torch.optim.SGD):
            optimizer = make(model.parameters(), lr=1e-3)
            for _ in range(3):
                step(model, optimizer)
        optimizer = Wrapper(wrapped.parameters())
        for _ in range(5):
            step(wrapped, optimizer)

    _, stats = under_session(loop)
    switched, inner = constructions(stats)
    assert switched["classes"] == ["Adam", "SGD"] and switched["steps_taken"] == [[3, 2]]
    # the wrapper's own constructor returns first; the inner SGD, built after it, is the one followed
    assert inner["classes"] == ["Wrapper", "SGD"] and inner["steps_taken"] == [[0, 1], [5, 1]]
    assert inner["state"] == ["momentum_buffer"]
