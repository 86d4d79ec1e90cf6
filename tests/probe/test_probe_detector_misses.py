"""Misses and false alarms found on unseen buggy scripts (issue 11, item 3), each replayed on
recorded statistics shaped like those runs'."""

from __future__ import annotations

import math

from mlplint.probe.detectors import judge_all
from probe_helpers import activation, gradient, loss_call, mlp_model, recorded

CHECKS = range(0, 50, 10)
WEIGHTS = ("0.weight", "2.weight", "4.weight")
FALLING = [2.0 * 0.95 ** i for i in range(50)]


def updates(ratios):
    return [{"step": step, "optimizer": 0, "ratios": {name: ratio for name in WEIGHTS}} for step, ratio in zip(CHECKS, ratios)]


def test_a_loss_rising_steadily_is_diverging_not_stalled():
    ascent = [2.31 + (4.44 - 2.31) * step / 49 + 0.05 * math.sin(step) for step in range(50)]  # gradient ascent
    judgements = judge_all(recorded(loss=ascent, updates=updates([1e-3] * 5)))
    assert judgements["ML902"].observed, judgements["ML902"]
    assert judgements["ML904"].observed == ()


def test_update_ratios_far_too_high_or_too_low_are_reported():
    # lr far too high: the first update is 64x the weights, then the weights are NaN
    blown = judge_all(recorded(loss=FALLING, updates=updates([64.0, math.nan, math.nan, math.nan, math.nan])))["ML911"]
    assert blown.observed and "above" in blown.observed[0].message
    slow = judge_all(recorded(loss=FALLING, updates=updates([1e-5] * 5)))["ML911"]
    assert slow.observed and "below" in slow.observed[0].message
    assert judge_all(recorded(loss=FALLING, updates=updates([5e-4] * 5)))["ML911"].observed == ()


def first_loss(values, classes, **call):
    return recorded(loss=values + FALLING, loss_inputs=[loss_call(0, "cross_entropy", [32, classes], [32], **call)])


def test_initial_loss_far_from_chance_is_reported():
    assert judge_all(first_loss([10.7, 10.1, 9.8], 2))["ML912"].observed  # 15x ln 2
    assert judge_all(first_loss([4.16, 4.1, 4.0], 10))["ML912"].observed  # ln 64 on 10 classes: 1.8x ln 10
    low = judge_all(first_loss([0.0175, 0.015, 0.012], 10))["ML912"]  # far below chance: nothing left to learn
    assert low.observed and "below" in low.observed[0].message
    assert judge_all(first_loss([2.4, 2.3, 2.2], 10))["ML912"].observed == ()
    negative = judge_all(first_loss([-0.078, -0.2, -0.5], 10))["ML912"]  # nll_loss on raw scores
    assert "negative loss" in negative.observed[0].message and "leaked" not in negative.observed[0].message


def test_initial_loss_is_judged_per_loss_call():
    # two training calls at the first step (a metric computed with autograd on, or two heads): each
    # call's own value is compared with its chance level
    calls = [loss_call(0, "cross_entropy", [32, 2], [32], value=8.9), loss_call(0, "cross_entropy", [32, 2], [32], value=8.8)]
    stats = recorded(loss=[8.85, 8.0, 7.5] + FALLING, loss_inputs=calls)
    assert judge_all(stats)["ML912"].observed
    # a summed loss: the chance level is ln C per element
    summed = recorded(loss=[22.0, 21.0, 20.0] + FALLING,
                      loss_inputs=[loss_call(0, "cross_entropy", [32, 2], [32], reduction="sum", value=22.0)])
    assert judge_all(summed)["ML912"].observed == ()  # 22 is 32 x ln 2 = 22.2


def test_a_few_dominant_classes_are_reported_from_every_step():
    shares = [0.002, 0.004, 0.006, 0.008, 0.01, 0.012] + [0.24] * 4
    per_step = [round(1600 * share) for share in shares]
    # the sampled loss calls saw too few targets to judge on their own
    sampled = [loss_call(s, "cross_entropy", [32, 10], [32], class_counts=[0, 0, 0, 0, 0, 1, 8, 8, 8, 7]) for s in CHECKS]
    stats = recorded(loss=FALLING, loss_inputs=sampled)
    stats.data["collectors"]["batches"] = {"every": 1, "inputs": [], "labels": [], "class_counts": {"10": per_step}, "count_calls": 50}
    (seen,) = judge_all(stats)["ML916"].observed
    assert "class 6" in seen.message


def test_a_broadcast_inside_a_hand_written_loss_is_seen():
    stats = recorded(loss=FALLING)
    stats.data["collectors"]["loss_graph"] = {"every": 10, "checked": 5, "records": [
        {"step": s, "operation": "SubBackward0", "output_shape": [32, 32], "input_shapes": [[32, 1]]} for s in CHECKS]}
    (seen,) = judge_all(stats)["ML915"].observed
    assert "(32, 32)" in seen.message and "(32, 1)" in seen.message


def test_vanishing_gradients_in_a_two_layer_network_and_in_forward_order():
    two = mlp_model(layers=2)
    stats = recorded(model=two, gradients=[gradient(s, {"0.weight": 1e-6, "2.weight": 1.0}) for s in CHECKS])
    assert judge_all(stats)["ML906"].observed
    # the output layer registered first: forward order (from the activation records) decides
    forward = [activation(s, layer, "Linear") for s in CHECKS for layer in ("2", "0")]
    reordered = recorded(model=two, activations=forward, gradients=[gradient(s, {"0.weight": 1.0, "2.weight": 1e-6}) for s in CHECKS])
    (seen,) = judge_all(reordered)["ML906"].observed
    assert seen.layer == "2"


def test_activations_blowing_up_towards_nan_are_not_a_scale_drift():
    records = []
    for step, scale in zip(CHECKS, [1.0, 1.0, 1e8, 1e16, 1e24]):
        records += [activation(step, str(2 * i), "Linear", unit_std=scale ** i) for i in range(3)]
    judgements = judge_all(recorded(loss=FALLING[:45] + [math.nan] * 5, activations=records))
    assert judgements["ML901"].observed
    assert judgements["ML909"].observed == ()
    # a drift there from the start is still one
    drift = [activation(step, str(2 * i), "Linear", unit_std=0.01 ** i) for step in CHECKS for i in range(3)]
    assert judge_all(recorded(loss=FALLING, activations=drift))["ML909"].observed
