"""Every detector judged torch-free on recorded-statistics examples: one that must raise the
symptom and one that must stay quiet (often the near miss)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from mlplint.probe.detectors import (
    ThresholdError, default_thresholds, detector_doc, judge_all, persists, resolve_thresholds,
)
from mlplint.probe.symptoms import SYMPTOMS
from probe_helpers import activation, gradient, loss_call, mlp_model, recorded

WEIGHTS = ("0.weight", "2.weight", "4.weight")
CHECKS = range(0, 50, 10)


def grads(norm_of, **kwargs):
    return [gradient(step, {name: norm_of(step, name) for name in WEIGHTS}, **kwargs) for step in CHECKS]


def updates(ratio):
    return [{"step": step, "optimizer": 0, "ratios": {name: ratio for name in WEIGHTS}} for step in CHECKS]


def linear_stack(unit_stds):
    return [activation(step, str(2 * i), "Linear", unit_std=s) for step in CHECKS for i, s in enumerate(unit_stds)]


def eval_pass(training_layers):
    return [{"step": step, "model": "Sequential", "training": True, "training_layers": training_layers} for step in CHECKS]


def step_mode(eval_layers, steps=range(10, 50), mode_layers=2):
    return {"every": 1, "checked_steps": 50, "eval_steps": len(steps),
            "records": [{"step": s, "optimizer": 0, "model": "Sequential", "eval_layers": eval_layers, "mode_layers": mode_layers} for s in steps]}


def grad_forwards(unused):
    return [{"model": "Sequential", "grad_forwards": 50 + unused, "unused": unused, "unused_measured": unused,
             "unused_saved_bytes": 70_000 * unused, "first_unused_step": 8 if unused else None}]


def batches(inputs=(), labels=(), counts=None):
    return {"every": 1, "inputs": [list(row) for row in inputs], "labels": [list(row) for row in labels],
            "class_counts": counts or {}, "count_calls": len(labels)}


def epoch_batches(order):
    return [[step, 16, float(batch), float(batch) * 7.5] for step, batch in enumerate(order)]


def scaler_fits(held_out, fitted):
    return {"every": 1, "fits": [{"class": "StandardScaler", "rows": 400}], "fitted_rows_followed": 400, "train_rows": 300,
            "train_rows_fitted": 300, "eval_rows": held_out, "held_out_rows": held_out, "held_out_rows_fitted": fitted}


def held_graphs(steps):
    return {"every": 1, "checked_steps": 49, "max_nodes": 50000,
            "records": [{"step": s, "name": "<module>:total_loss", "nodes": 8 * s} for s in steps]}


def regression_targets(below_zero, **values):
    record = {"kind": "mse_loss", "targets": "regression", "training": True, "input_shape": [32, 1], "target_shape": [32, 1],
              "min": -2.0, "max": 2.0, "integral_share": 0.0, "distinct": 32.0, "below_minus_one": 0.1,
              "below_zero": below_zero, "above_one": 0.1, "above_six": 0.0}
    record.update(values)
    return [dict(record, step=s) for s in range(0, 50, 5)]


def outputs(operation):
    return [{"step": s, "model": "Sequential", "operation": operation, "shape": [32, 1]} for s in CHECKS]


def units(spread):
    return [{"step": s, "optimizer": 0, "param": name, "units": 8, "spread": spread, "magnitude": 0.05} for s in CHECKS for name in WEIGHTS]


def init_layers(activation_name, activation_gain, weight_gain, default_init=False, depth=3):
    """The first training forward through a stack of `depth` layers, each followed by one activation."""
    return [{"step": 0, "model": "Sequential", "layer": str(2 * i), "type": "Linear", "fan_in": 64, "fan_out": 64,
             "normalised": False, "input_moment": 1.0, "output_moment": weight_gain / 2 if activation_name == "relu" else weight_gain,
             "weight_gain": weight_gain, "default_init": default_init, "activation": activation_name,
             "activation_moment": activation_gain, "activation_saturated": 0.3, "after_softmax": False,
             "input_spread": activation_gain ** (i / 2), "activation_spread": activation_gain ** ((i + 1) / 2)}
            for i in range(depth)]


def softmax_fed(spread_after):
    return [{"step": 0, "model": "Sequential", "layer": "2", "type": "Linear", "fan_in": 64, "fan_out": 10,
             "normalised": False, "input_moment": 0.02, "output_moment": 0.01, "weight_gain": 1.0, "default_init": True,
             "activation": None, "after_softmax": True, "softmax_input_spread": 1.0, "softmax_output_spread": spread_after}]


def slow_steps(ratio):
    return [{"step": step, "optimizer": 0, "ratios": {name: ratio for name in WEIGHTS}} for step in CHECKS]


def neighbours(agreement, task="classification", rows=400, independent=0.25):
    """Four classes of equal size, each with `agreement` of its rows next to a row of its class."""
    classes = {"class_rows": [rows // 4] * 4, "class_agreeing": [round(agreement * rows / 4)] * 4} if task == "classification" else {}
    return {"every": 1, "model": "Sequential", "skipped": None, "rows": rows,
            "neighbours": {"rows": rows, "task": task, "agreement": agreement, "independent": independent, **classes}}


def adam_eps(share, eps=1.0):
    return [{"step": s, "optimizer": 0, "class": "Adam", "eps": [eps], "values": 4000, "damped": share, "amplified": 0.0} for s in CHECKS]


def input_checks(std, features=3):
    return [{"step": s, "model": "Sequential", "shape": [64, features], "mean": [0.001] * features, "std": [std] * features} for s in (0, 10, 20)]


def optimizer_builds(steps_taken, classes=("Adam",), state=("exp_avg", "exp_avg_sq")):
    """The optimizers built over one model's parameters: [[steps an optimizer took, optimizers], ...]."""
    constructions = sum(count for _, count in steps_taken)
    return [{"params": 6, "values": 200, "classes": list(classes), "constructions": constructions, "first_built_at_step": 0,
             "last_built_at_step": constructions - 1, "steps_taken": [list(pair) for pair in steps_taken], "state": list(state)}]


def with_ranks(stats, *per_rank):
    """A torchrun job's statistics: one dict of collectors per rank."""
    stats.data["ranks"] = [{"rank": rank, "status": "step-budget", "steps": stats.steps, "error": None, "device": "cpu",
                            "collectors": collectors} for rank, collectors in enumerate(per_rank)]
    return stats


def rank_params(*sums_per_check):
    """A rank's parameter fingerprints: per check, the sum of each of two parameters (norms alike)."""
    return {"rank_params": {"every": 10, "params": {"0": ["0.weight", "0.bias"]},
                            "records": [{"step": step, "optimizer": 0, "norms": [abs(v) for v in sums], "sums": list(sums)}
                                        for step, sums in zip((1, 2, 4, 8), sums_per_check)]}}


def rank_batches(offset):
    return {"batches": batches(inputs=[[step, 16, float(step + offset), 2.0 * step] for step in range(10)])}


def scaler_calls(skipped):
    return {"every": 1, "calls": [[step, step < skipped, 65536.0 / 2 ** min(step, skipped)] for step in range(20)]}


def plain_sgd(stats):
    """The run's optimizer made SGD without momentum: its steps follow the current gradient."""
    stats.data["optimizers"][0]["settings"] = {"momentum": 0}
    return stats


NOISE = [1.0, 1.1, 0.9] * 17  # batch-to-batch noise around a level that does not move
FALLING = [2.0 * 0.95 ** i for i in range(50)]
dropout_model = mlp_model()
dropout_model["layers"].update({"1": "Dropout", "3": "BatchNorm1d"})
unregistered = mlp_model()
unregistered["params"]["2.weight"]["in_optimizer"] = False

EXAMPLES = {
    "ML901": (recorded(loss=[1.0] * 20 + [math.nan] * 5), recorded(loss=FALLING)),
    "ML902": (recorded(loss=[1.0 * 1.1 ** i for i in range(50)]), recorded(loss=FALLING)),
    "ML903": (
        recorded(loss=[1.0, 1.6] * 25, updates=updates(1e-2)),
        recorded(loss=[1.0, 1.6] * 25, updates=updates(1e-7)),  # weights still: noise, not oscillation
    ),
    "ML904": (recorded(loss=NOISE, updates=updates(1e-7)), recorded(loss=NOISE, updates=updates(1e-2))),
    "ML905": (
        recorded(gradients=grads(lambda step, _: 2.0 ** (step / 5))),
        recorded(gradients=grads(lambda step, _: 1.0 + 0.1 * (step % 20 == 0))),
    ),
    "ML906": (
        recorded(gradients=grads(lambda _, name: {"0.weight": 1e-6, "2.weight": 1e-3, "4.weight": 1.0}[name])),
        recorded(gradients=grads(lambda _, name: {"0.weight": 0.2, "2.weight": 0.5, "4.weight": 1.0}[name])),
    ),
    "ML907": (
        recorded(activations=[activation(step, "1", "ReLU", frac_dead_units=0.9) for step in CHECKS]),
        # one noisy batch is not enough
        recorded(activations=[activation(step, "1", "ReLU", frac_dead_units=0.9 if step == 20 else 0.1) for step in CHECKS]),
    ),
    "ML908": (
        recorded(activations=[activation(step, "1", "Sigmoid", frac_saturated=0.95) for step in CHECKS]),
        recorded(activations=[activation(step, "1", "Sigmoid", frac_saturated=0.1) for step in CHECKS]),
    ),
    "ML909": (recorded(activations=linear_stack([1.0, 0.05, 0.001])), recorded(activations=linear_stack([1.0, 0.8, 1.2]))),
    "ML910": (
        recorded(input_features=[{"step": s, "model": "Sequential", "shape": [32, 4], "mean": [0.0] * 4,
                                  "std": [1e-3, 1e-1, 1e1, 1e3]} for s in CHECKS]),
        recorded(input_features=[{"step": s, "model": "Sequential", "shape": [32, 4], "mean": [0.1, 0.0, -0.2, 0.0],
                                  "std": [0.9, 1.1, 1.0, 1.3]} for s in CHECKS]),
    ),
    "ML911": (recorded(updates=updates(1e-7)), recorded(updates=updates(1e-3))),
    "ML912": (
        recorded(loss=[20.0, 19.0, 18.0] + FALLING, loss_inputs=[loss_call(0, "cross_entropy", [32, 10], [32])]),
        recorded(loss=[2.3, 2.2, 2.1] + FALLING, loss_inputs=[loss_call(0, "cross_entropy", [32, 10], [32])]),
    ),
    "ML913": (
        # carried over even though the norm stays flat (a saturated network adds ~0 each step)
        recorded(gradients=grads(lambda step, _: 1.0, retained=1.0)),
        # carried over at one check only (e.g. one accumulation window), cleared otherwise
        recorded(gradients=[gradient(s, {name: 1.0 for name in WEIGHTS}, retained=1.0 if s == 20 else 0.0) for s in CHECKS]),
    ),
    "ML914": (
        recorded(loss_inputs=[loss_call(s, "cross_entropy", [32, 2], [32], input_min=0.01, input_max=0.99,
                                        row_sum_deviation=1e-7) for s in CHECKS]),
        recorded(loss_inputs=[loss_call(s, "cross_entropy", [32, 2], [32], input_min=0.01, input_max=0.99,
                                        row_sum_deviation=0.4) for s in CHECKS]),
    ),
    "ML915": (
        recorded(loss_inputs=[loss_call(s, "mse_loss", [64, 1], [64]) for s in CHECKS]),
        recorded(loss_inputs=[loss_call(s, "mse_loss", [64, 1], [64, 1]) for s in CHECKS]),
    ),
    "ML916": (
        recorded(loss_inputs=[loss_call(s, "cross_entropy", [64, 2], [64], class_counts=[62, 2]) for s in CHECKS]),
        recorded(loss_inputs=[loss_call(s, "cross_entropy", [64, 2], [64], class_counts=[30, 34]) for s in CHECKS]),
    ),
    "ML917": (recorded(eval_mode=eval_pass(["2"])), recorded(eval_mode=eval_pass([]))),
    "ML918": (
        recorded(model=unregistered, gradients=grads(lambda *_: 1.0)),
        recorded(gradients=grads(lambda *_: 1.0)),
    ),
    "ML919": (
        recorded(model=dropout_model, step_mode=step_mode(["1", "3"])),
        recorded(model=dropout_model, step_mode=step_mode(["3"], mode_layers=3)),  # one BatchNorm frozen on purpose
    ),
    "ML920": (recorded(grad_forwards=grad_forwards(10)), recorded(grad_forwards=grad_forwards(1))),
    "ML921": (
        recorded(scheduler_calls=[{"class": "StepLR", "optimizer": None, "first_call_step": 0, "optimizer_steps_at_first_call": 0, "calls": 3}]),
        recorded(scheduler_calls=[{"class": "StepLR", "optimizer": 0, "first_call_step": 8, "optimizer_steps_at_first_call": 8, "calls": 3}]),
    ),
    "ML922": (
        recorded(batches=batches(epoch_batches(list(range(10)) * 5))),
        # no repeat, and every batch mixes classes
        recorded(batches=batches(epoch_batches([(7919 * i) % 10007 for i in range(50)]), [[s, 16, 0.0, 1.0] for s in range(50)])),
    ),
    "ML923": (recorded(scaler_fits=scaler_fits(100, 100)), recorded(scaler_fits=scaler_fits(100, 0))),
    "ML924": (recorded(graph_growth=held_graphs(range(2, 50))), recorded(graph_growth=held_graphs([12, 30]))),  # twice: a kept value
    "ML925": (
        recorded(output_activation=outputs("ReluBackward0"), loss_targets=regression_targets(0.5)),
        recorded(output_activation=outputs("ReluBackward0"), loss_targets=regression_targets(0.0, min=0.1)),
    ),
    "ML926": (recorded(unit_similarity=units(0.0)), recorded(unit_similarity=units(0.05))),
    "ML927": (
        recorded(loss_targets=regression_targets(0.0, min=0.0, integral_share=1.0, distinct=3.0)),
        recorded(loss_targets=regression_targets(0.3, integral_share=0.0, distinct=32.0)),
    ),
    "ML928": (
        # one call is enough: BCELoss ends the run at the first input outside [0, 1]
        recorded(loss_inputs=[loss_call(0, "binary_cross_entropy", [64, 1], [64, 1], input_min=-3.2, input_max=4.1)]),
        recorded(loss_inputs=[loss_call(s, "binary_cross_entropy", [64, 1], [64, 1], input_min=1e-7, input_max=1 - 1e-7)
                              for s in CHECKS] + [loss_call(0, "nll_loss", [32, 10], [32], input_min=-9.0, input_max=-0.01)]),
    ),
    "ML929": (
        recorded(init_signal=init_layers("relu", 0.5, 1.0)),  # Xavier between equal widths under ReLU
        recorded(init_signal=init_layers("relu", 1.0, 2.0)),  # He init keeps the signal
    ),
    "ML930": (recorded(init_signal=softmax_fed(0.01)), recorded(init_signal=softmax_fed(0.5))),
    "ML931": (
        recorded(loss=[0.69 * (1 - 0.001 * i) for i in range(50)], updates=slow_steps(3e-4)),  # -5% over the run
        recorded(loss=[0.69 * (1 - 0.001 * i) for i in range(50)], updates=slow_steps(2e-3)),  # steps of a healthy size
    ),
    "ML932": (recorded(training_sample=neighbours(0.27)), recorded(training_sample=neighbours(0.6))),
    "ML933": (recorded(adam_epsilon=adam_eps(1.0)), recorded(adam_epsilon=adam_eps(0.01, 1e-6))),
    "ML934": (recorded(input_features=input_checks(0.0012)), recorded(input_features=input_checks(0.3))),
    "ML935": (
        recorded(loss_targets=regression_targets(0.0, min=5e4, max=5e5),
                 loss_inputs=[loss_call(0, "mse_loss", [32, 1], [32, 1], input_min=-0.5, input_max=0.8)]),
        # the model scales its outputs up to the targets' scale itself
        recorded(loss_targets=regression_targets(0.0, min=5e4, max=5e5),
                 loss_inputs=[loss_call(0, "mse_loss", [32, 1], [32, 1], input_min=-5e4, input_max=8e4)]),
    ),
    "ML936": (
        recorded(loss_inputs=[loss_call(s, "nll_loss", [64, 10], [64], input_min=-8.0, input_max=-0.5, row_sum_deviation=30.0,
                                        column_sum_deviation=40.0, exp_row_sum_deviation=2.5, exp_column_sum_deviation=1e-6) for s in CHECKS]),
        recorded(loss_inputs=[loss_call(s, "nll_loss", [64, 10], [64], input_min=-8.0, input_max=-0.01, row_sum_deviation=30.0,
                                        column_sum_deviation=40.0, exp_row_sum_deviation=1e-6, exp_column_sum_deviation=5.4) for s in CHECKS]),
    ),
    "ML937": (
        recorded(activations=[activation(s, "2", "Dropout", kept_share=0.1) for s in CHECKS]),
        recorded(activations=[activation(s, "2", "Dropout", kept_share=0.5) for s in CHECKS]),
    ),
    "ML938": (
        recorded(init_signal=init_layers("relu", 1 / 6, 1 / 3, default_init=True, depth=8)),  # PyTorch's default init
        recorded(init_signal=init_layers("relu", 0.9, 1 / 3, default_init=True, depth=8)),  # the signal keeps its size
    ),
    "ML939": (
        plain_sgd(recorded(updates=[dict(record, descent=-1.0) for record in updates(1e-3)])),
        plain_sgd(recorded(updates=[dict(record, descent=0.6) for record in updates(1e-3)])),  # noisy, but downhill
    ),
    "ML940": (
        recorded(weight_decay=[{"step": s, "optimizer": 0, "class": "SGD", "weight_decay": 0.1, "decoupled": False,
                                "decay_to_gradient": 3.2} for s in CHECKS]),
        recorded(weight_decay=[{"step": s, "optimizer": 0, "class": "SGD", "weight_decay": 5e-4, "decoupled": False,
                                "decay_to_gradient": 0.02} for s in CHECKS]),
    ),
    "ML941": (
        recorded(optimizer_constructions=optimizer_builds([[1, 50]])),  # Adam built in the batch loop
        recorded(optimizer_constructions=optimizer_builds([[12, 4], [2, 1]])),  # per epoch of 12 batches, the last cut short
    ),
    "ML942": (
        with_ranks(recorded(), rank_params([1.5, 0.2], [1.4, 0.2], [1.3, 0.2]), rank_params([1.5, 0.2], [1.41, 0.2], [1.32, 0.2])),
        with_ranks(recorded(), rank_params([1.5, 0.2], [1.4, 0.2], [1.3, 0.2]), rank_params([1.5, 0.2], [1.4, 0.2], [1.3, 0.2])),
    ),
    "ML943": (
        with_ranks(recorded(), rank_batches(0), rank_batches(0)),
        with_ranks(recorded(), rank_batches(0), rank_batches(100)),  # DistributedSampler shards
    ),
    "ML944": (
        recorded(grad_scaler=scaler_calls(skipped=15)),
        recorded(grad_scaler=scaler_calls(skipped=4)),  # the scale settling during the first steps
    ),
}


def test_every_symptom_has_examples():
    assert sorted(EXAMPLES) == sorted(SYMPTOMS)


@pytest.mark.parametrize("code", sorted(EXAMPLES), ids=lambda c: f"{c}-positive")
def test_detector_raises_on_positive_example(code):
    judgement = judge_all(EXAMPLES[code][0])[code]
    assert judgement.observed, judgement
    assert judgement.checked
    assert all(seen.message for seen in judgement.observed)


@pytest.mark.parametrize("code", sorted(EXAMPLES), ids=lambda c: f"{c}-negative")
def test_detector_quiet_on_negative_example(code):
    judgement = judge_all(EXAMPLES[code][1])[code]
    assert judgement.observed == ()
    assert judgement.checked and judgement.measured


def test_frozen_parameter_without_gradient_at_every_check():
    stats = recorded(gradients=[gradient(step, {"0.weight": 1.0, "4.weight": 1.0}, missing=["2.weight"]) for step in CHECKS])
    (seen,) = judge_all(stats)["ML918"].observed
    assert "'2.weight'" in seen.message and seen.layer == "2"


def test_a_slowly_rising_loss_is_not_learning_but_a_falling_one_is():
    rising = [1.1 * (1 + 0.002 * step) for step in range(50)]  # +10% over the run, no swings
    (seen,) = judge_all(recorded(loss=rising))["ML904"].observed
    assert "went up" in seen.message
    assert judge_all(recorded(loss=rising))["ML902"].observed == ()
    falling = [1.1 * (1 - 0.002 * step) for step in range(50)]
    assert judge_all(recorded(loss=falling))["ML904"].observed == ()


def test_dead_units_need_enough_values_per_unit():
    dead = [activation(step, "1", "ReLU", frac_dead_units=0.6, values_per_unit=1) for step in CHECKS]
    assert judge_all(recorded(activations=dead))["ML907"].observed == ()  # batch size 1: zeros by chance
    for record in dead:
        record["values_per_unit"] = 64
    assert judge_all(recorded(activations=dead))["ML907"].observed


def test_parameters_frozen_on_purpose_are_not_reported():
    model = mlp_model()
    model["params"]["0.weight"]["requires_grad"] = model["params"]["0.bias"]["requires_grad"] = False
    stats = recorded(model=model, gradients=[gradient(s, {"2.weight": 1.0, "4.weight": 1.0}, missing=["0.weight", "0.bias"]) for s in CHECKS])
    assert judge_all(stats)["ML918"].observed == ()


def test_embedding_tables_are_not_compared_for_vanishing_gradients():
    model = mlp_model()
    model["layers"]["0"] = "Embedding"
    stats = recorded(model=model, gradients=grads(lambda _, name: {"0.weight": 1e-6, "2.weight": 1e-3, "4.weight": 1.0}[name]))
    assert judge_all(stats)["ML906"].observed == ()


def test_competing_losses_and_warm_up_are_not_judged_as_stalled():
    gan = recorded(loss=NOISE, updates=updates(1e-7))
    gan.data["collectors"]["loss"]["series"]["1"] = [[i, 0.7 + 0.01 * (i % 3)] for i in range(50)]
    gan.data["optimizers"].append(dict(gan.data["optimizers"][0]))
    judgement = judge_all(gan)["ML904"]
    assert judgement.observed == () and "different losses" in judgement.measured
    same_loss = recorded(loss=NOISE, updates=updates(1e-7))  # two optimizers stepping on one loss count once
    same_loss.data["collectors"]["loss"]["series"]["1"] = list(same_loss.data["collectors"]["loss"]["series"]["0"])
    assert judge_all(same_loss)["ML904"].observed
    warm_up = recorded(loss=NOISE, updates=updates(1e-7))
    warm_up.data["optimizers"][0].update(first_lr=[1e-6], lr=[5e-5])
    judgement = judge_all(warm_up)["ML904"]
    assert judgement.observed == () and "warming up" in judgement.measured


def test_rank_symptoms_need_a_torchrun_job():
    single = recorded(grad_scaler=scaler_calls(skipped=0), **rank_params([1.0], [1.0]), **rank_batches(0))
    assert not judge_all(single)["ML942"].checked and not judge_all(single)["ML943"].checked


def test_ranks_updating_other_parameters_are_not_compared():
    first, other_stage = rank_params([1.5, 0.2], [1.4, 0.2]), rank_params([7.0, 0.1], [6.0, 0.1])
    other_stage["rank_params"]["params"] = {"0": ["4.weight", "4.bias"]}  # a later pipeline stage
    assert not judge_all(with_ranks(recorded(), first, other_stage))["ML942"].checked


def test_tensor_parallel_ranks_may_share_their_batches():
    tensor_parallel = {**rank_batches(0), "rank_params": {"records": [], "params": {}, "sharded": "DTensor"}}
    assert not judge_all(with_ranks(recorded(), tensor_parallel, tensor_parallel))["ML943"].checked


def test_batch_order_is_judged_on_every_rank():
    repeating = {"batches": batches(inputs=epoch_batches([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]))}
    shuffled = {"batches": batches(inputs=epoch_batches([0, 1, 2, 3, 4, 3, 0, 4, 1, 2]))}
    (seen,) = judge_all(with_ranks(recorded(), shuffled, repeating))["ML922"].observed
    assert seen.message.startswith("on rank 1, the batches repeat") and "set_epoch()" in seen.message
    assert judge_all(with_ranks(recorded(), shuffled, shuffled))["ML922"].observed == ()


def test_full_batch_training_has_no_batch_order():
    assert judge_all(recorded(batches=batches(epoch_batches([0] * 50))))["ML922"].observed == ()


def test_batch_order_is_not_judged_healthy_without_labels_or_a_repeat():
    # an epoch longer than the run repeats nothing, shuffled or not: that is no evidence
    judgement = judge_all(recorded(batches=batches(epoch_batches(range(50)))))["ML922"]
    assert judgement.observed == () and not judgement.checked


def test_no_evaluation_pass_means_nothing_to_judge_for_evaluation_symptoms():
    judgements = judge_all(recorded(model=dropout_model, grad_forwards=grad_forwards(0), step_mode=step_mode([], steps=[])))
    assert not judgements["ML920"].checked and not judgements["ML919"].checked


def test_a_single_update_far_larger_than_the_weights_is_enough():
    (seen,) = judge_all(recorded(updates=[{"step": s, "optimizer": 0, "ratios": {n: 13.9 if s == 0 else 0.07 for n in WEIGHTS}}
                                          for s in CHECKS]))["ML911"].observed
    assert "13.9" in seen.message and "above" in seen.message


def test_a_short_run_raises_no_stall():
    assert judge_all(recorded(steps=10, loss=NOISE[:10], updates=updates(1e-7)))["ML904"].observed == ()


def test_one_evaluation_pass_in_training_mode_is_enough():
    model = mlp_model()
    model["layers"]["1"] = "Dropout"
    (seen,) = judge_all(recorded(model=model, eval_mode=eval_pass(["1"])[:1]))["ML917"].observed
    assert "Dropout '1'" in seen.message and "1 no-grad (evaluation) pass ran" in seen.message


def test_a_scaler_fitted_beyond_the_training_set_is_seen_before_any_evaluation():
    def fitted(training, training_fitted, outside):
        return recorded(scaler_fits={**scaler_fits(0, 0), "training_data_rows": training,
                                     "training_data_rows_fitted": training_fitted, "fitted_rows_outside_training_data": outside})
    (seen,) = judge_all(fitted(455, 455, 114))["ML923"].observed
    assert "455 are the 455 rows of the training set and 114 are rows the model never trains on" in seen.message
    for healthy in (fitted(455, 455, 0), fitted(455, 455, 12), fitted(455, 0, 569)):  # fitted on the training set; drop_last; other data
        judgement = judge_all(healthy)["ML923"]
        assert judgement.checked and judgement.observed == ()


def test_nll_loss_on_probabilities_is_outside_the_log_probability_domain():
    stats = recorded(loss_inputs=[loss_call(s, "nll_loss", [32, 3], [32], input_min=0.01, input_max=0.97) for s in CHECKS])
    (seen,) = judge_all(stats)["ML928"].observed
    assert "nll_loss expects log-probabilities" in seen.message and "0.97" in seen.message


def test_no_data_means_not_checked():
    judgements = judge_all(recorded(loss=[]))
    assert not any(j.observed for j in judgements.values())
    assert not judgements["ML907"].checked and not judgements["ML902"].checked


def test_thresholds_are_configurable():
    stats = EXAMPLES["ML907"][0]
    assert judge_all(stats)["ML907"].observed
    assert not judge_all(stats, {"ML907": {"max_dead_fraction": 0.95}})["ML907"].observed


@pytest.mark.parametrize("overrides, message", [
    ({"ML999": {"x": 1}}, "unknown symptom"),
    ({"ML907": {"nope": 1}}, "no threshold 'nope'"),
    ({"ML907": {"min_checks": "3"}}, "must be a number"),
])
def test_bad_threshold_overrides_are_rejected(overrides, message):
    with pytest.raises(ThresholdError, match=message):
        resolve_thresholds(overrides)


@pytest.mark.parametrize("flags, min_checks, expected", [
    ([False, True, False, True, False], 2, False),  # scattered hits do not persist
    ([False, True, True, True, False], 3, True),
    ([True, True], 3, False),  # a run too short for the checks asked for raises nothing
    ([True, False], 3, False),
    ([], 1, False),
])
def test_persistence(flags, min_checks, expected):
    assert persists(flags, min_checks) is expected


@pytest.mark.parametrize("code", sorted(SYMPTOMS))
def test_detector_doc_has_sections_and_documents_every_threshold(code):
    doc = detector_doc(code)
    for section in ("## What it detects", "## Why it matters", "## Thresholds"):
        assert section in doc
    for name in default_thresholds(code):
        assert f"`{name}`" in doc


def test_detector_doc_is_none_for_static_rules():
    assert detector_doc("ML401") is None


def test_judging_never_imports_torch():
    script = (
        "import sys, mlplint.cli\n"
        "from mlplint.probe.detectors import judge_all, detector_doc\n"
        "from probe_helpers import recorded\n"
        "judge_all(recorded(loss=[1.0, 2.0] * 10)); detector_doc('ML902')\n"
        "print(sorted(m for m in ('torch', 'numpy', 'sklearn') if m in sys.modules))\n"
    )
    import pathlib
    here = pathlib.Path(__file__).parent
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=here, check=True)
    assert out.stdout.strip() == "[]"


def test_small_steps_with_a_loss_that_falls_well_are_healthy():
    stats = recorded(loss=FALLING, updates=slow_steps(3e-4))  # fine-tuning: small steps, loss -60%
    judgement = judge_all(stats)["ML931"]
    assert judgement.checked and judgement.observed == ()


@pytest.mark.parametrize("agreement, rows, observed", [
    (0.02, 400, True),  # regression targets uncorrelated with their neighbours'
    (0.5, 400, False),
    (0.02, 50, False),  # too few distinct rows to judge
])
def test_regression_targets_judged_by_neighbour_correlation(agreement, rows, observed):
    judgement = judge_all(recorded(training_sample=neighbours(agreement, "regression", rows, 0.0)))["ML932"]
    assert bool(judgement.observed) is observed and judgement.checked is (rows >= 100)


def test_a_rare_class_the_features_separate_lifts_the_agreement_above_chance():
    """95% of the rows in one class: overall agreement near the 90% of independent labels, but the
    rare classes find their own kind, which independent labels would not."""
    found = {"rows": 1000, "task": "classification", "agreement": 0.93, "independent": 0.905,
             "class_rows": [950, 30, 20], "class_agreeing": [905, 20, 5]}
    stats = recorded(training_sample={"every": 1, "skipped": None, "neighbours": found})
    judgement = judge_all(stats)["ML932"]
    assert judgement.checked and judgement.observed == (), judgement.measured
    single = dict(found, class_rows=[1000], class_agreeing=[1000], agreement=1.0, independent=1.0)
    assert not judge_all(recorded(training_sample={"every": 1, "skipped": None, "neighbours": single}))["ML932"].checked


def test_a_momentum_step_against_the_current_gradient_is_not_ascent():
    """SGD with momentum oscillating across a valley: the buffer points against the gradient."""
    stats = recorded(updates=[dict(record, descent=-1.0) for record in updates(1e-3)])
    stats.data["optimizers"][0]["settings"] = {"momentum": 0.9}
    assert not judge_all(stats)["ML939"].checked
    stats.data["optimizers"][0]["settings"] = {"momentum": 0}
    assert judge_all(stats)["ML939"].observed


def test_a_shallow_default_init_stack_is_not_judged_deep():
    judgement = judge_all(recorded(init_signal=init_layers("relu", 1 / 6, 1 / 3, default_init=True, depth=2)))["ML938"]
    assert judgement.checked and judgement.observed == ()


def test_he_weights_before_tanh_swell_the_pre_activations():
    swelling = init_layers("tanh", 0.8, 2.0)  # output_moment = weight gain x input: 2x
    assert judge_all(recorded(init_signal=swelling))["ML929"].observed
    xavier = init_layers("tanh", 0.6, 1.0)
    assert judge_all(recorded(init_signal=xavier))["ML929"].observed == ()


def test_carried_gradients_at_too_few_checks_are_not_judged_healthy():
    """Two checks, both carrying the gradients over: too few to report, and no evidence of health."""
    judgement = judge_all(recorded(gradients=[gradient(s, {name: 1.0 for name in WEIGHTS}, retained=1.0) for s in CHECKS[:2]]))["ML913"]
    assert not judgement.observed and not judgement.checked
    cleared = judge_all(recorded(gradients=[gradient(s, {name: 1.0 for name in WEIGHTS}, retained=0.0) for s in CHECKS[:2]]))["ML913"]
    assert not cleared.observed and cleared.checked


@pytest.mark.parametrize("steps_taken, state, reported", [
    ([[1, 3]], ("momentum_buffer",), True),  # three is enough
    ([[1, 2]], ("momentum_buffer",), False),  # one or two rebuilds happen by design
    ([[2, 10]], ("exp_avg", "exp_avg_sq"), True),  # two steps each is still short-lived
    ([[3, 10]], ("exp_avg", "exp_avg_sq"), False),
    ([[1, 50]], (), False),  # SGD without momentum keeps no state: a rebuild resets nothing
    ([[0, 1], [1, 3], [40, 4]], ("exp_avg", "exp_avg_sq"), False),  # mostly long-lived: 3 short of 7 that stepped
    ([[0, 20], [1, 4], [40, 1]], ("exp_avg", "exp_avg_sq"), True),  # built and never stepped do not count against it
])
def test_optimizer_state_reset_needs_several_short_lived_stateful_optimizers(steps_taken, state, reported):
    judgement = judge_all(recorded(optimizer_constructions=optimizer_builds(steps_taken, state=state)))["ML941"]
    assert judgement.checked and bool(judgement.observed) is reported, judgement


def test_optimizer_state_reset_message_and_thresholds():
    stats = recorded(optimizer_constructions=optimizer_builds([[1, 50]]))
    (seen,) = judge_all(stats)["ML941"].observed
    assert seen.step == 0
    assert "a new Adam was built over the same 6 parameters (200 values) 50 times between steps 0 and 49" in seen.message
    assert "(each took 1 step): its state (exp_avg, exp_avg_sq) restarts" in seen.message
    (mixed,) = judge_all(recorded(optimizer_constructions=optimizer_builds([[0, 2], [1, 40], [2, 8]])))["ML941"].observed
    assert "(40 took 1 step, 8 took 2 steps, 2 took 0 steps)" in mixed.message
    assert not judge_all(stats, {"ML941": {"max_steps_per_optimizer": 0}})["ML941"].observed
    assert not judge_all(stats, {"ML941": {"min_constructions": 51}})["ML941"].observed


def test_optimizer_state_reset_is_not_judged_before_any_optimizer_stepped():
    judgement = judge_all(recorded(optimizer_constructions=[dict(optimizer_builds([[0, 5]])[0], state=None)]))["ML941"]
    assert not judgement.checked and judgement.observed == ()


def test_a_class_that_never_appears_is_said_in_words():
    stats = recorded(loss_inputs=[loss_call(s, "cross_entropy", [64, 3], [64], class_counts=[60, 4, 0]) for s in CHECKS])
    (seen,) = judge_all(stats)["ML916"].observed
    assert "1 of the 3 classes never appear" in seen.message and "inf" not in seen.message
