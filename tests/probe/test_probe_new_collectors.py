"""The collectors of ML919-ML927 against values computed directly from tensors, on tiny models
trained by hand under an installed session."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F

from mlplint.probe.collectors.adam_epsilon import step_scale_shares
from mlplint.probe.collectors import DENSE_STEPS, LATER_FACTOR, Collector
from mlplint.probe.collectors.batches import MAX_PENDING_VALUES, PENDING_LABELS, BatchCollector, fingerprints, row_sums
from mlplint.probe.collectors.grad_forwards import SEARCH_NODES
from mlplint.probe.collectors.graph_growth import GraphGrowthCollector
from mlplint.probe.collectors.loss_graph import pairwise_broadcast
from mlplint.probe.collectors.loss_inputs import loss_input_summary
from mlplint.probe.collectors.neighbour_labels import distinct_rows, neighbour_labels
from mlplint.probe.collectors.output_activation import output_operation
from mlplint.probe.collectors.scaler_fits import numpy_row_hashes, tensor_row_hashes
from mlplint.probe.collectors.unit_similarity import unit_spread
from mlplint.probe import instrument
from mlplint.probe.instrument import Session


def train(session, model, optimizer, steps, make_batch, loss="cross_entropy", between=None):
    session.install()
    try:
        for step in range(steps):
            x, y = make_batch(step)
            optimizer.zero_grad()
            getattr(F, loss)(model(x), y).backward()  # looked up at call time: the session patches F
            optimizer.step()
            if between is not None:
                between(step)
    finally:
        session.remove()
    return session.stats("completed", None)["collectors"]


def test_row_hashes_agree_between_numpy_and_torch():
    values = np.random.default_rng(0).normal(size=(50, 7))
    assert numpy_row_hashes(values) == tensor_row_hashes(torch.tensor(values, dtype=torch.float32)).tolist()
    assert len(set(numpy_row_hashes(values))) == 50


def test_batch_fingerprint_tells_order_and_content_apart():
    x = torch.randn(8, 3)
    def fingerprint_of(batch):
        return fingerprints(row_sums(batch).unsqueeze(0))[0]
    assert fingerprint_of(x) == fingerprint_of(x.clone())
    assert fingerprint_of(x) != fingerprint_of(x.flip(0))  # same rows, other order
    assert fingerprint_of(x)[0] == pytest.approx(x.double().sum().item())
    assert fingerprint_of(x)[1] == pytest.approx(sum(position * row.double().sum().item() for position, row in enumerate(x, 1)))
    together = fingerprints(torch.stack([row_sums(x), row_sums(x.flip(0))]))  # the steps of one stats write
    assert together == [fingerprint_of(x), fingerprint_of(x.flip(0))]
    images = torch.randn(8, 3, 4, 4)
    assert row_sums(images).tolist() == pytest.approx(images.reshape(8, -1).sum(dim=1).tolist())
    assert row_sums(x[:, 0]).tolist() == x[:, 0].tolist()  # one value per row


def test_batch_labels_summarised_together_match_each_step():
    collector = BatchCollector()
    steps = [torch.randint(0, 5, (32 if step % 7 else 20,)) for step in range(PENDING_LABELS + 10)]
    steps[3][0] = -100  # ignore_index: in the range, not in the counts
    for step, labels in enumerate(steps):
        collector.on_loss_call(step, "cross_entropy", torch.randn(labels.numel(), 5), labels)
        if step == 10:
            collector.flush()  # a stats write between two summaries
    large = torch.randint(0, 5, (MAX_PENDING_VALUES + 1,))  # summarised at once
    collector.on_loss_call(len(steps), "cross_entropy", torch.randn(large.numel(), 5), large)
    collected = collector.flush()
    every = torch.cat([*steps, large])
    assert collected["class_counts"] == {"5": torch.bincount(every[every >= 0], minlength=5).tolist()}
    assert collected["labels"] == [[step, labels.numel(), float(labels.min()), float(labels.max())]
                                   for step, labels in enumerate([*steps, large])]


def test_sampled_statistics_thin_out_after_the_first_steps():
    sampled, every_step = Collector(10), Collector(1)
    assert [step for step in range(DENSE_STEPS) if sampled.due(step)] == list(range(0, DENSE_STEPS, 10))
    assert [step for step in range(DENSE_STEPS, DENSE_STEPS + 100) if sampled.due(step)] == [100, 150]
    assert all(every_step.due(step) for step in range(DENSE_STEPS + 100))
    thinned = GraphGrowthCollector()  # every step at first, then LATER_FACTOR times less often
    assert [step for step in range(DENSE_STEPS + 20) if thinned.due(step)] == [*range(DENSE_STEPS), *range(DENSE_STEPS, DENSE_STEPS + 20, LATER_FACTOR)]


def test_unit_spread_is_zero_for_identical_rows_only():
    assert unit_spread(torch.full((4, 3), 0.5)).tolist() == [0.0, 0.5]
    w = torch.randn(4, 3)
    assert unit_spread(w)[0].item() == pytest.approx(w.std(dim=0, unbiased=False).mean().item())
    wide = torch.randn(64, 4096)  # measured on a strided subset of its inputs
    spread, magnitude = unit_spread(wide).tolist()
    assert spread == pytest.approx(wide.std(dim=0, unbiased=False).mean().item(), rel=0.05)
    assert magnitude == pytest.approx(wide.abs().mean().item(), rel=0.05)
    assert unit_spread(wide[:1].expand(64, -1)).tolist()[0] == 0.0


def test_pairwise_broadcast_and_output_operation():
    pred = torch.randn(16, 1, requires_grad=True)
    assert pairwise_broadcast(((pred - torch.randn(16)) ** 2).mean())["output_shape"] == [16, 16]
    assert pairwise_broadcast(((pred - torch.randn(16, 1)) ** 2).mean()) is None
    assert output_operation(torch.relu(pred).squeeze(1)) == "ReluBackward0"
    assert output_operation(torch.sigmoid(pred).view(-1)) == "SigmoidBackward0"


def test_step_mode_grad_forwards_and_scheduler_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    session = Session(steps=1000)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(6)]

    def evaluate_then_schedule(step):
        if step == 2:
            model.eval()  # never set back to train()
            model(torch.randn(8, 4))  # autograd on, output unused
            model(torch.randn(8, 4))
        scheduler.step()

    session.install()
    scheduler.step()  # before any optimizer step
    session.remove()
    collected = train(session, model, optimizer, 6, lambda step: data[step], between=evaluate_then_schedule)
    eval_steps = [r["step"] for r in collected["step_mode"]["records"]]
    assert eval_steps == [3, 4, 5] and collected["step_mode"]["checked_steps"] == 6
    (passes,) = collected["grad_forwards"]["records"]
    assert passes["grad_forwards"] == 8 and passes["unused"] == 2
    assert passes["unused_saved_bytes"] > 0  # the (8, 8) hidden activations at least
    (calls,) = collected["scheduler_calls"]["records"]
    assert calls["optimizer_steps_at_first_call"] == 0 and calls["calls"] == 7  # the constructor's step is not one


def test_grad_forwards_follow_every_way_a_backward_reaches_the_output():
    """A pass is used when a backward reaches its output: found behind the loss (a scaled loss too),
    or by a hook where the loss is further than the search goes or where only some inputs are
    differentiated (`inputs=`, `autograd.grad`)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))

    def far(out):
        for _ in range(SEARCH_NODES + 2):
            out = out * 1.0
        return out.sum()

    uses = [
        lambda out: (F.cross_entropy(out, y) * 1024.0).backward(),  # as GradScaler scales it
        lambda out: far(out).backward(),
        lambda out: torch.autograd.grad(F.cross_entropy(out, y), model.weight),
        lambda out: F.cross_entropy(out, y).backward(inputs=[model.weight]),
        lambda out: None,  # the only unused pass
        lambda out: F.cross_entropy(out, y).backward(),
    ]
    session = Session(steps=1000)
    session.install()
    try:
        for use in uses:
            optimizer.zero_grad()
            use(model(x))
            optimizer.step()
    finally:
        session.remove()
    (passes,) = session.stats("completed", None)["collectors"]["grad_forwards"]["records"]
    assert passes["grad_forwards"] == len(uses) and passes["unused"] == 1 and passes["first_unused_step"] == 4


def test_graph_growth_finds_a_total_that_keeps_the_graphs():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    session = Session(steps=1000)
    session.install()
    try:
        total = 0
        for _ in range(5):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(torch.randn(4, 3)), torch.randint(0, 2, (4,)))
            loss.backward()
            optimizer.step()
            total = total + loss
    finally:
        session.remove()
    records = session.stats("completed", None)["collectors"]["graph_growth"]["records"]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and {r["name"].split(":")[1] for r in records} == {"total"}


def test_scaler_rows_followed_to_the_evaluation_passes():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3))
    session = Session(steps=1000)
    session.install()
    try:
        scaled = StandardScaler().fit_transform(features)  # fitted on every row, test rows included
        train_x, test_x = torch.tensor(scaled[:30], dtype=torch.float32), torch.tensor(scaled[30:], dtype=torch.float32)
        model = nn.Linear(3, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        optimizer.zero_grad()
        F.cross_entropy(model(train_x), torch.zeros(30, dtype=torch.long)).backward()
        optimizer.step()
        with torch.no_grad():
            model(test_x)
    finally:
        session.remove()
    collected = session.stats("completed", None)["collectors"]["scaler_fits"]
    assert collected["fits"] == [{"class": "StandardScaler", "rows": 40}]
    assert (collected["train_rows_fitted"], collected["held_out_rows"], collected["held_out_rows_fitted"]) == (30, 10, 10)
    assert "fit_transform" not in StandardScaler.__dict__  # the inherited method is restored, not shadowed


def test_the_whole_training_set_is_known_from_its_dataloader():
    """Before any evaluation: the TensorDataset behind the training loader gives every training
    row, so a scaler fitted on more rows than that is seen after one step."""
    from torch.utils.data import DataLoader, TensorDataset

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3))
    outcomes = {}
    for fitted_on in ("all", "train"):
        session = Session(steps=1000)
        session.install()
        try:
            if fitted_on == "all":  # fitted on every row before the split
                scaled = StandardScaler().fit_transform(features)
            else:  # fitted on the training rows, then applied to all of them
                scaler = StandardScaler().fit(features[:30])
                scaled = scaler.transform(features)
            train_x = torch.tensor(scaled[:30], dtype=torch.float32)
            loader = DataLoader(TensorDataset(train_x, torch.zeros(30, dtype=torch.long)), batch_size=8)
            model = nn.Linear(3, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            xb, yb = next(iter(loader))  # one batch of 8: the other 22 training rows are never reached
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        finally:
            session.remove()
        collected = session.stats("completed", None)["collectors"]["scaler_fits"]
        outcomes[fitted_on] = (collected["training_data_rows"], collected["training_data_rows_fitted"], collected["fitted_rows_outside_training_data"])
    assert outcomes == {"all": (30, 30, 10), "train": (30, 30, 0)}


def test_loss_targets_and_batch_labels():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    targets = torch.tensor([[0.0], [1.0], [2.0], [2.0]])
    collected = train(Session(steps=1000, every={"loss_targets": 1}), model, optimizer, 2,
                      lambda step: (torch.randn(4, 3), targets), loss="mse_loss")
    record = collected["loss_targets"]["records"][0]
    assert (record["min"], record["max"], record["integral_share"], record["distinct"]) == (0.0, 2.0, 1.0, 3.0)
    assert record["below_zero"] == 0.0 and record["above_one"] == 0.5
    classifier = nn.Linear(3, 3)
    labels = torch.tensor([2, 2, 0, 1])
    collected = train(Session(steps=1000), classifier, torch.optim.SGD(classifier.parameters(), lr=0.01), 3,
                      lambda step: (torch.randn(4, 3), labels))
    assert collected["batches"]["class_counts"] == {"3": [3, 3, 6]}
    assert [row[2:] for row in collected["batches"]["labels"]] == [[0.0, 2.0]] * 3


def test_a_loss_call_that_raises_is_recorded_on_any_step():
    """BCE rejects an input outside [0, 1] at step 6, between the measured steps (every 5): the
    call that ends the run is still recorded, so ML403 is confirmed by it."""
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    session = Session(steps=1000, every={"loss_inputs": 5})

    def batch(step):
        with torch.no_grad():
            model.bias.fill_(0.5 if step < 6 else 3.0)
        return torch.zeros(4, 3), torch.ones(4, 1)

    with pytest.raises(RuntimeError, match="between 0 and 1"):
        train(session, model, optimizer, 10, batch, loss="binary_cross_entropy")
    records = session.stats("crashed", None)["collectors"]["loss_inputs"]["records"]
    assert [(r["step"], r["input_max"]) for r in records] == [(0, 0.5), (5, 0.5), (6, 3.0)]


def test_neighbour_labels_tell_paired_from_shuffled_rows():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (300,))
    inputs = torch.randn(3, 8)[labels] * 4 + torch.randn(300, 8)
    paired = neighbour_labels("cross_entropy", inputs, labels)
    shuffled = neighbour_labels("cross_entropy", inputs[torch.randperm(300)], labels)
    counts = torch.bincount(labels).double()
    assert paired["independent"] == pytest.approx(float((counts * (counts - 1)).sum() / (300 * 299)))
    assert paired["agreement"] > 0.95 and abs(shuffled["agreement"] - shuffled["independent"]) < 0.1
    targets = inputs[:, 0:1] * 2.0
    assert neighbour_labels("mse_loss", inputs, targets)["agreement"] > 0.8
    assert abs(neighbour_labels("mse_loss", inputs, targets[torch.randperm(300)])["agreement"]) < 0.2
    assert neighbour_labels("mse_loss", inputs, torch.randn(300, 4)) is None  # several targets per row


def test_early_stats_writes_keep_the_neighbour_statistic_for_the_later_ones(tmp_path, monkeypatch):
    """The writes at the first steps (EARLY_FLUSH_STEPS) do not compute the neighbour statistic of
    the small sample again; the run's final stats do."""
    monkeypatch.setattr(instrument, "FLUSH_SECONDS", 1e9)  # no timed write in between, however slow the machine
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    session = Session(steps=1000, stats_path=str(tmp_path / "stats.json"))
    final = train(session, model, optimizer, 8, lambda step: (x[8 * step : 8 * step + 8], y[8 * step : 8 * step + 8]))
    written = json.loads((tmp_path / "stats.json").read_text())["collectors"]["training_sample"]  # the write at step 8
    assert written["rows"] == 64 and written["neighbours"] is None
    assert final["training_sample"]["neighbours"]["rows"] == 64


def test_the_stats_file_holds_the_stats_with_a_complete_record_encoded_once(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    session = Session(steps=1000, stats_path=str(tmp_path / "stats.json"))
    train(session, model, optimizer, 25, lambda step: (torch.randn(8, 4), torch.randint(0, 3, (8,))))
    stats = session.stats("completed", None)
    session.write(stats)
    assert json.loads((tmp_path / "stats.json").read_text()) == json.loads(json.dumps(stats))
    assert len(stats["collectors"]["input_features"]["records"]) == 3  # complete: the same object from now on
    assert session.stats("completed", None)["collectors"]["input_features"] is stats["collectors"]["input_features"]


def test_augmented_copies_of_a_row_are_not_its_neighbours():
    """100 samples with labels unrelated to them, seen in 5 epochs under light noise: each row's
    closest rows are its own noisy copies, which must not count as agreeing neighbours."""
    torch.manual_seed(0)
    base, labels = torch.randn(100, 16), torch.randint(0, 4, (100,))
    epochs = torch.arange(100).repeat(5)
    found = neighbour_labels("cross_entropy", base[epochs] + 0.01 * torch.randn(500, 16), labels[epochs])
    assert abs(found["agreement"] - found["independent"]) < 0.15, found


def test_repeated_rows_are_counted_once():
    rows = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0]])
    assert distinct_rows(rows).tolist() == [0, 1, 3]
    labels = torch.tensor([0, 1, 0, 1, 1])
    assert neighbour_labels("cross_entropy", rows, labels)["rows"] == 3


def test_adam_eps_share_of_changed_steps_against_the_default():
    v = torch.tensor([0.0, 1e-20, 1e-6, 1.0])  # sqrt: 0 (never a gradient), 1e-10, 1e-3, 1
    assert step_scale_shares(v, 1, 0.0, 1e-8).tolist() == [3.0, 0.0, 0.0]
    assert step_scale_shares(v, 1, 0.0, 1.0).tolist() == [3.0, 2.0, 0.0]  # 1e-10 and 1e-3 are damped
    assert step_scale_shares(v, torch.tensor(1.0), 0.0, 1e-14).tolist() == [3.0, 0.0, 1.0]  # 1e-10 is amplified
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1.0)
    collected = train(Session(steps=1000, every={"adam_epsilon": 1}), model, optimizer, 2,
                      lambda step: (torch.randn(8, 4), torch.randint(0, 2, (8,))))
    first = collected["adam_epsilon"]["records"][0]
    assert (first["class"], first["eps"], first["values"], first["damped"]) == ("Adam", [1.0], 10, 1.0)


def test_loss_input_sums_over_classes_and_over_the_batch():
    scores = torch.randn(16, 5)
    labels = torch.randint(0, 5, (16,))
    over_batch, _ = loss_input_summary("nll_loss", F.log_softmax(scores, dim=0), labels)
    over_classes, _ = loss_input_summary("nll_loss", F.log_softmax(scores, dim=1), labels)
    rows, columns, exp_rows, exp_columns = over_batch[2:6].tolist()
    assert exp_columns < 1e-5 and exp_rows > 0.1
    assert over_classes[4].item() < 1e-5 and over_classes[5].item() > 0.1
    probabilities, _ = loss_input_summary("cross_entropy", F.softmax(scores, dim=0), labels)
    assert probabilities[3].item() < 1e-5 and probabilities[2].item() > 0.1
    assert loss_input_summary("mse_loss", scores, scores)[0][2:6].tolist() == [-1.0] * 4


def test_dropout_kept_share_is_measured_in_training_mode_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Dropout(0.9), nn.Linear(256, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def batch(step):
        model.train(step < 1)  # the second measured forward runs in eval mode
        return torch.randn(64, 8), torch.randint(0, 2, (64,))

    collected = train(Session(steps=1000, every={"activations": 1}), model, optimizer, 2, batch)
    kept = [r["kept_share"] for r in collected["activations"]["records"] if r["type"] == "Dropout"]
    assert kept[0] == pytest.approx(0.1, abs=0.03) and kept[1] is None
    relu = next(r for r in collected["activations"]["records"] if r["type"] == "ReLU")
    assert relu["kept_share"] is None and relu["frac_zero"] is not None


@pytest.mark.parametrize("make_optimizer, low, high", [
    (lambda params: torch.optim.SGD(params, lr=0.01), 0.999, 1.001),  # the step is -lr * gradient
    (lambda params: torch.optim.SGD(params, lr=0.01, maximize=True), -1.001, -0.999),  # up the gradient
    (lambda params: torch.optim.Adam(params, lr=1e-3), 0.0, 1.0),
])
def test_update_direction_against_the_gradient(make_optimizer, low, high):
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    collected = train(Session(steps=1000, every={"updates": 1}), model, make_optimizer(model.parameters()), 3,
                      lambda step: (torch.randn(16, 6), torch.randint(0, 3, (16,))))
    records = collected["updates"]["records"]
    assert len(records) == 3 and all(low <= r["descent"] <= high for r in records), records


def test_weight_decay_against_the_data_gradient():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.1)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    collected = train(Session(steps=1000, every={"weight_decay": 1}), model, optimizer, 1, lambda step: (x, y))
    (record,) = collected["weight_decay"]["records"]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    expected = 0.1 * model.weight.detach().norm() / model.weight.grad.norm()  # the only weight matrix, before its step
    assert record["decoupled"] is False and record["decay_to_gradient"] == pytest.approx(expected.item(), rel=0.05)
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    collected = train(Session(steps=1000, every={"weight_decay": 1}), model, adamw, 1, lambda step: (x, y))
    assert collected["weight_decay"]["records"][0]["decoupled"] is True and "decay_to_gradient" not in collected["weight_decay"]["records"][0]


def test_dropout_in_place_or_alpha_is_not_measured():
    torch.manual_seed(0)
    for dropout in (nn.Dropout(0.9, inplace=True), nn.AlphaDropout(0.9)):
        model = nn.Sequential(nn.Linear(8, 64), dropout, nn.Linear(64, 2))
        collected = train(Session(steps=1000, every={"activations": 1}), model, torch.optim.SGD(model.parameters(), lr=0.01), 1,
                          lambda step: (torch.randn(16, 8), torch.randint(0, 2, (16,))))
        (record,) = [r for r in collected["activations"]["records"] if r["layer"] == "1"]
        assert record["kept_share"] is None


class FunctionalNet(nn.Module):
    def __init__(self, init):
        super().__init__()
        self.hidden, self.middle, self.out = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 3)
        if init is not None:
            for layer in (self.hidden, self.middle):
                init(layer.weight)

    def forward(self, x):
        h = F.relu(self.hidden(x))
        return self.out(torch.softmax(self.middle(h), dim=1))


@pytest.mark.parametrize("init, default", [(None, True), (nn.init.xavier_uniform_, False)])
def test_init_signal_sees_functional_activations_and_a_softmax_fed_to_a_layer(init, default):
    torch.manual_seed(0)
    model = FunctionalNet(init)
    x = torch.randn(32, 16)
    collected = train(Session(steps=1000), model, torch.optim.SGD(model.parameters(), lr=0.01), 1,
                      lambda step: (x, torch.randint(0, 3, (32,))))
    records = {r["layer"]: r for r in collected["init_signal"]["records"]}
    assert records["hidden"]["activation"] == "relu" and records["hidden"]["default_init"] is default
    hidden = F.relu(model.hidden(x))  # the first step changed the weights a little; the moments stay close
    assert records["hidden"]["activation_moment"] == pytest.approx((hidden ** 2).mean().item(), rel=0.1)
    assert records["out"]["after_softmax"] is True and "activation" not in records["out"]
    assert records["out"]["softmax_output_spread"] < records["out"]["softmax_input_spread"]
    assert collected["init_signal"]["error"] is None


def test_init_signal_never_fails_the_script_on_odd_layers():
    with pytest.warns(UserWarning, match="zero-element"):  # torch's own note on initialising them
        model = nn.Sequential(nn.Linear(4, 0), nn.Linear(0, 3))  # zero-width layers
    collected = train(Session(steps=1000), model, torch.optim.SGD(model.parameters(), lr=0.01), 2,
                      lambda step: (torch.randn(8, 4), torch.randint(0, 3, (8,))))
    assert collected["init_signal"]["records"] == []
