"""Each collector against a brute-force value computed directly from the tensors of a tiny model
trained by hand under an installed session (Cockpit's Autograd<Quantity> tests)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlplint.probe.collectors.activations import SATURATION_MARGIN
from mlplint.probe.instrument import Session

STEPS = 4
EVERY_STEP = {name: 1 for name in ("loss", "activations", "gradients", "updates", "input_features", "loss_inputs", "zero_grad", "eval_mode")}


def close(a, b, rel=1e-4):
    return a == pytest.approx(b, rel=rel, abs=1e-6)


@pytest.fixture(scope="module")
def run():
    """Train a tiny model for STEPS steps under a session; keep what a brute force needs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Dropout(0.5), nn.Linear(4, 3))
    with torch.no_grad():
        model[0].bias[:2] = -50.0  # two dead ReLU units
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.CrossEntropyLoss()
    session = Session(steps=1000, every=EVERY_STEP)
    truth = []
    session.install()
    try:
        for step in range(STEPS):
            x = torch.randn(6, 3) * torch.tensor([1.0, 10.0, 0.1])
            y = torch.tensor([0, 1, 2, 2, 2, 1])
            if step != 2:  # step 2 keeps step 1's gradients (never cleared)
                optimizer.zero_grad()
            output = model(x)
            loss = criterion(output, y)
            loss.backward()
            with torch.no_grad():  # brute force: each layer's output, with plain functional ops
                first = nn.functional.linear(x, model[0].weight, model[0].bias)
                second = nn.functional.linear(first.relu(), model[2].weight, model[2].bias)
                outputs = [first, first.relu(), second, second.tanh()]
            before = [p.detach().clone() for p in model.parameters()]
            grads = [p.grad.detach().clone() for p in model.parameters()]
            optimizer.step()
            after = [p.detach().clone() for p in model.parameters()]
            truth.append({"x": x, "y": y, "logits": output.detach(), "loss": loss.item(), "grads": grads,
                          "before": before, "after": after, "outputs": outputs})
        with torch.no_grad():
            model(torch.randn(2, 3))  # an evaluation pass without model.eval()
    finally:
        session.remove()
    return session.stats("step-budget", None), truth, [name for name, _ in model.named_parameters()]


def test_loss_per_step(run):
    stats, truth, _ = run
    series = stats["collectors"]["loss"]["series"]["0"]
    assert [step for step, _ in series] == list(range(STEPS))
    assert all(close(value, t["loss"]) for (_, value), t in zip(series, truth))


@pytest.mark.parametrize("layer_index, kind", [(0, "Linear"), (1, "ReLU"), (2, "Linear"), (3, "Tanh")])
def test_activation_statistics(run, layer_index, kind):
    stats, truth, _ = run
    for step, t in enumerate(truth):
        y = t["outputs"][layer_index]
        (record,) = [r for r in stats["collectors"]["activations"]["records"] if r["step"] == step and r["layer"] == str(layer_index)]
        assert record["type"] == kind
        assert close(record["mean"], y.mean().item())
        assert close(record["std"], y.std().item())
        assert close(record["unit_std"], y.std(dim=0).mean().item())
        if kind == "ReLU":
            assert close(record["frac_zero"], (y == 0).float().mean().item())
            dead_units = sum(1 for unit in range(y.shape[1]) if (y[:, unit] <= 0).all())
            assert close(record["frac_dead_units"], dead_units / y.shape[1])
        else:
            assert record["frac_zero"] is None and record["frac_dead_units"] is None
        assert record["nonfinite"] == 0
        if kind == "Tanh":
            assert close(record["frac_saturated"], (y.abs() > 1 - SATURATION_MARGIN).float().mean().item())
        else:
            assert record["frac_saturated"] is None


def test_dead_units_are_seen(run):
    stats, _, _ = run
    relu = [r for r in stats["collectors"]["activations"]["records"] if r["layer"] == "1"]
    assert all(close(r["frac_dead_units"], 2 / 5) for r in relu)


def test_gradient_norms_and_carry_over(run):
    stats, truth, names = run
    records = stats["collectors"]["gradients"]["records"]
    assert [r["step"] for r in records] == list(range(STEPS))
    for record, t in zip(records, truth):
        for name, grad in zip(names, t["grads"]):
            assert close(record["norms"][name], grad.norm().item())
    assert [r["retained"] for r in records] == [None, 0.0, 1.0, 0.0]


def test_update_ratios(run):
    stats, truth, names = run
    for record, t in zip(stats["collectors"]["updates"]["records"], truth):
        for name, before, after in zip(names, t["before"], t["after"]):
            assert close(record["ratios"][name], ((after - before).norm() / before.norm()).item())


def test_input_feature_moments(run):
    stats, truth, _ = run
    for record, t in zip(stats["collectors"]["input_features"]["records"], truth):
        assert record["shape"] == [6, 3]
        assert all(close(a, b) for a, b in zip(record["mean"], t["x"].mean(dim=0).tolist()))
        assert all(close(a, b) for a, b in zip(record["std"], t["x"].std(dim=0, unbiased=False).tolist()))


def test_loss_inputs(run):
    stats, truth, _ = run
    for record, t in zip(stats["collectors"]["loss_inputs"]["records"], truth):
        assert record["kind"] == "cross_entropy" and record["input_shape"] == [6, 3] and record["target_shape"] == [6]
        assert close(record["input_min"], t["logits"].min().item())
        assert close(record["input_max"], t["logits"].max().item())
        assert close(record["row_sum_deviation"], (t["logits"].sum(dim=1) - 1).abs().max().item())
        assert record["class_counts"] == torch.bincount(t["y"], minlength=3).tolist()


def test_zero_grad_calls_per_step(run):
    stats, _, _ = run
    assert stats["collectors"]["zero_grad"]["calls"]["0"] == [[0, 1], [1, 1], [2, 0], [3, 1]]


def test_eval_mode_during_no_grad_pass(run):
    stats, _, _ = run
    eval_mode = stats["collectors"]["eval_mode"]
    assert eval_mode["no_grad_forwards"] == 1
    assert eval_mode["records"] == [{"step": STEPS, "model": "Sequential", "training": True, "training_layers": ["4"]}]


def test_model_and_optimizer_structure(run):
    stats, _, names = run
    model = stats["models"]["Sequential"]
    assert model["layers"]["3"] == "Tanh"
    assert list(model["params"]) == names and all(p["in_optimizer"] for p in model["params"].values())
    assert stats["optimizers"][0]["params"] == names and stats["steps"] == STEPS


def test_update_ratio_of_a_large_parameter_is_estimated_on_a_strided_subset():
    from mlplint.probe.collectors.updates import SAMPLE_SIZE, UpdateRatioCollector

    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(300, 200))  # 60,000 values, larger than the sample
    weight.grad = torch.ones_like(weight)
    before = weight.detach().clone()
    collector = UpdateRatioCollector(every=1)
    collector.before_step(0, 0, [("w", weight)])
    with torch.no_grad():
        weight.add_(torch.randn_like(weight) * 1e-3)
    collector.after_step(0)
    (record,) = collector.flush()["records"]
    exact = ((weight.detach() - before).norm() / before.norm()).item()
    assert record["ratios"]["w"] == pytest.approx(exact, rel=0.05)
    assert SAMPLE_SIZE < weight.numel()


@pytest.mark.parametrize("clear, retained", [
    (lambda model, optimizer: None, 1.0),  # never cleared
    (lambda model, optimizer: [p.grad.data.zero_() for p in model.parameters() if p.grad is not None], 0.0),  # by hand
    (lambda model, optimizer: optimizer.zero_grad(set_to_none=False), 0.0),
    (lambda model, optimizer: model.zero_grad(), 0.0),
])
def test_carry_over_is_measured_at_the_next_backward(clear, retained):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    session = Session(steps=1000, every=EVERY_STEP)
    session.install()
    try:
        for _ in range(4):
            clear(model, optimizer)
            model(torch.randn(8, 3)).pow(2).mean().backward()
            optimizer.step()
    finally:
        session.remove()
    records = session.stats("step-budget", None)["collectors"]["gradients"]["records"]
    assert [r["retained"] for r in records] == [None, retained, retained, retained]


def test_two_optimizers_cleared_at_different_times_are_not_carry_over():
    """GAN order: the generator's loss backpropagates through the discriminator after its step,
    and each optimizer clears its own gradients just before its own backward."""
    torch.manual_seed(0)
    generator, discriminator = nn.Linear(2, 3), nn.Linear(3, 1)
    g_optimizer = torch.optim.SGD(generator.parameters(), lr=0.01)
    d_optimizer = torch.optim.SGD(discriminator.parameters(), lr=0.01)
    session = Session(steps=1000, every=EVERY_STEP)
    session.install()
    try:
        for _ in range(4):
            fake = generator(torch.randn(8, 2))
            d_optimizer.zero_grad()
            discriminator(fake.detach()).mean().backward()
            d_optimizer.step()
            g_optimizer.zero_grad()
            (-discriminator(fake).mean()).backward()
            g_optimizer.step()
    finally:
        session.remove()
    records = session.stats("step-budget", None)["collectors"]["gradients"]["records"]
    assert {r["optimizer"] for r in records} == {0, 1}
    assert all(r["retained"] in (None, 0.0) for r in records)
