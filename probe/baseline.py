"""`mlplint probe --baseline`: fit scikit-learn's default MLP on the rows the run fed the model and
measure it and the script's final model the same way on rows held back from it.

The child records a capped sample of the model's input rows and their targets, and the final
model's outputs on them (`collectors/training_sample.py`); this parent-side module reads them,
decides the task from the loss the run used, fits `MLPClassifier()` / `MLPRegressor()` with their
default settings in a worker process under a time limit (`python -m mlplint.probe.baseline DIR`),
and reports accuracy or R^2 and each one's training loss. Needs numpy and scikit-learn here, not
where the script runs; torch is not imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from mlplint.probe.stats import Stats

# Share of the (de-duplicated) sample held back from scikit-learn and used to measure both models.
HELD_BACK = 0.2
# Fewest distinct rows a comparison is made on.
MIN_ROWS = 50
# Wall-clock limit of the scikit-learn fit.
SKLEARN_SECONDS = 60.0
# How often the fit's progress (its epochs so far) is looked at, in seconds.
POLL_SECONDS = 0.25
# Seed of the held-back split and of scikit-learn's weight init and batch shuffling: the same run
# gets the same comparison every time (defaults otherwise).
SEED = 0
# BLAS threads of the fit, unless the user's environment sets them: the MLP's matrices (200-row
# batches, 100 hidden units) are too small to gain from threads, which cost 10x on a busy machine.
FIT_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLASSIFICATION_LOSSES = {"cross_entropy": "argmax", "nll_loss": "argmax",
                         "binary_cross_entropy_with_logits": "threshold 0", "binary_cross_entropy": "threshold 0.5"}
REGRESSION_LOSSES = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"}
METRIC_NAMES = {"classification": "accuracy", "regression": "r2"}


class BaselineSkipped(Exception):
    """The comparison cannot be made on this run; str(error) says why, in one line."""


@dataclass
class Sample:
    """The de-duplicated rows a run fed its model, as flat features, with targets and the final
    model's outputs on the same rows (None where the child could not evaluate the model)."""

    inputs: np.ndarray
    targets: np.ndarray
    outputs: Optional[np.ndarray]
    meta: dict[str, Any]
    flattened_from: Optional[list[int]]
    directory: str

    @property
    def task(self) -> str:
        return "classification" if self.meta["loss_kind"] in CLASSIFICATION_LOSSES else "regression"

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows scikit-learn fits on, rows both models are measured on): a seeded shuffle."""
        order = np.random.default_rng(SEED).permutation(len(self.inputs))
        held = max(1, int(round(HELD_BACK * len(order))))
        return np.sort(order[held:]), np.sort(order[:held])


def read_float32(path: str, rows: int) -> np.ndarray:
    values = np.fromfile(path, dtype="<f4")
    return values.reshape(rows, -1) if rows else values.reshape(0, 0)


def read_sample(stats: Stats, directory: str) -> Sample:
    """The sample the child wrote for the run in `stats`, or BaselineSkipped with the reason."""
    meta = dict(stats.collector("training_sample"))  # a copy: the kept rows are added to it
    if not meta:
        raise BaselineSkipped(f"the run ended ({stats.data.get('status')}) before the probe could record a sample")
    if meta.get("skipped"):
        raise BaselineSkipped(meta["skipped"])
    kind = meta.get("loss_kind")
    if kind is None:
        raise BaselineSkipped("no torch.nn loss the probe sees (cross-entropy, NLL, BCE, MSE, L1, Huber) received the model's output, so the targets are unknown")
    if kind not in CLASSIFICATION_LOSSES and kind not in REGRESSION_LOSSES:
        raise BaselineSkipped(f"the loss {kind} is neither a classification nor a regression loss the baseline knows")
    inputs_path = os.path.join(directory, "inputs.f32")
    if not os.path.exists(inputs_path):
        raise BaselineSkipped(f"the run ended ({stats.data.get('status')}) before the sample was written")
    rows = int(meta["rows"])
    inputs = read_float32(inputs_path, rows)
    targets = read_float32(os.path.join(directory, "targets.f32"), rows)
    outputs = None
    if os.path.exists(os.path.join(directory, "outputs.f32")) and meta.get("evaluation", {}).get("rows") == rows:
        outputs = read_float32(os.path.join(directory, "outputs.f32"), rows)
    row_shape = meta.get("row_shape") or []
    flattened_from = row_shape if len(row_shape) > 1 else None
    # Epochs repeat rows: keep each distinct row once, so no held-back row is also fitted on.
    _, first = np.unique(np.concatenate([inputs, targets], axis=1), axis=0, return_index=True)
    keep = np.sort(first)
    sample = Sample(inputs[keep], targets[keep], outputs[keep] if outputs is not None else None, meta, flattened_from, directory)
    sample.meta["kept_rows"] = keep
    if len(keep) < MIN_ROWS:
        raise BaselineSkipped(f"the run fed the model only {len(keep)} distinct rows (the comparison needs {MIN_ROWS})")
    if not np.isfinite(sample.inputs).all():
        raise BaselineSkipped("the model's input rows contain NaN or Inf")
    return sample


def labels(sample: Sample) -> np.ndarray:
    """The class labels of a classification sample: indices for cross-entropy (one-hot targets
    turned into indices), 0/1 for binary losses (one column per label)."""
    targets, kind = sample.targets, sample.meta["loss_kind"]
    if kind in ("cross_entropy", "nll_loss"):
        if targets.shape[1] == 1:
            return targets[:, 0].astype(np.int64)
        one_hot = np.isin(targets, (0.0, 1.0)).all() and (targets.sum(axis=1) == 1).all()
        if not one_hot:
            raise BaselineSkipped("the cross-entropy targets are soft probabilities, which scikit-learn's MLPClassifier cannot fit")
        return targets.argmax(axis=1)
    if not np.isin(targets, (0.0, 1.0)).all():
        raise BaselineSkipped("the binary cross-entropy targets are not all 0 or 1")
    return (targets[:, 0] if targets.shape[1] == 1 else targets).astype(np.int64)


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of rows predicted exactly (every label of the row, for several binary labels)."""
    same = truth == predicted
    return float((same.all(axis=1) if same.ndim > 1 else same).mean())


def r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Coefficient of determination, averaged over target columns (scikit-learn's r2_score)."""
    truth, predicted = truth.reshape(len(truth), -1), predicted.reshape(len(predicted), -1)
    residual = ((truth - predicted) ** 2).sum(axis=0)
    total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    scores = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual == 0, 1.0, 0.0))
    return float(scores.mean())


def final_loss(losses: list[float], last: int = 5) -> Optional[float]:
    """A run's final training loss: the mean of its last `last` recorded losses (one mini-batch
    is noisy), None when it recorded none or the last ones are not finite."""
    tail = [v for v in losses[-last:] if v is not None]
    if not tail or not all(np.isfinite(tail)):
        return None
    return float(np.mean(tail))


def script_metric(sample: Sample, outputs: Optional[np.ndarray], rows: np.ndarray, reads_output: bool) -> Optional[float]:
    """The metric of a script's final model (its `outputs` on the sample's rows) on `rows`, its
    predictions read the way its loss reads them: argmax for cross-entropy and NLL, threshold 0
    for logits (BCE with logits) and 0.5 for probabilities (BCE), the raw output for regression.
    `reads_output`: whether the loss received the model's output itself; when it did not (the
    script applies sigmoid outside the model), an output within [0, 1] is read as probabilities.
    None when the outputs cannot be read that way (width, NaN)."""
    if outputs is None or not np.isfinite(outputs[rows]).all():
        return None
    if sample.task == "regression":
        return r2(sample.targets[rows], outputs[rows]) if outputs.shape[1] == sample.targets.shape[1] else None
    truth = labels(sample)[rows]
    reading = CLASSIFICATION_LOSSES[sample.meta["loss_kind"]]
    if reading == "argmax":
        return accuracy(truth, outputs[rows].argmax(axis=1)) if outputs.shape[1] >= 2 else None
    width = truth.shape[1] if truth.ndim > 1 else 1
    if outputs.shape[1] != width:
        return None
    if not reads_output:
        reading = "threshold 0.5" if ((outputs >= 0) & (outputs <= 1)).all() else "threshold 0"
    predicted = (outputs[rows] > (0.0 if reading == "threshold 0" else 0.5)).astype(np.int64)
    return accuracy(truth, predicted[:, 0] if width == 1 else predicted)


def run_baseline(stats: Stats, directory: str, time_limit: float, fit: bool = True,
                 on_epoch: Optional[Callable[[str, int, int, float], None]] = None) -> dict[str, Any]:
    """The contract's `baseline` object (without `differences`) for the run in `stats`, whose
    sample the child wrote to `directory`. Unknown values are None; `skipped` says why. With
    `fit` False (trials without --baseline), only the script's side is measured. The sample is
    kept under `_sample` for the trials' metrics (not part of the JSON). `on_epoch(estimator,
    rows, epochs so far, seconds)` is told how the fit goes while it runs."""
    steps = stats.steps
    result: dict[str, Any] = {
        "task": None, "samples": 0, "held_back": 0, "metric": None, "skipped": None, "flattened_from": None,
        "script": {"metric": None, "loss": final_loss(stats.primary_loss()), "steps": steps},
        "sklearn": None,
    }
    try:
        sample = read_sample(stats, directory)
        fitted, held = sample.split()
        task = sample.task
        truth = labels(sample) if task == "classification" else sample.targets
        result.update(task=task, samples=len(sample.inputs), held_back=len(held), metric=METRIC_NAMES[task],
                      flattened_from=sample.flattened_from)
        result["script"]["metric"] = script_metric(sample, sample.outputs, held, bool(sample.meta.get("loss_reads_model_output")))
        result["_sample"] = sample
        if not fit:
            return result
        if task == "classification" and len(np.unique(truth[fitted], axis=0)) < 2:
            raise BaselineSkipped("the rows scikit-learn would fit on all have the same label")
        result["sklearn"] = fit_sklearn(sample, fitted, held, truth, time_limit, on_epoch)
    except BaselineSkipped as reason:
        result["skipped"] = str(reason)
    return result


def trial_metric(sample: Sample, trial: Stats, directory: str) -> Optional[float]:
    """The metric of a trial's final model, whose outputs on every row of the run as written's
    sample the trial's child wrote to `directory`, on the same held-back rows."""
    evaluation = trial.collector("training_sample").get("evaluation") or {}
    path = os.path.join(directory, "outputs.f32")
    if not evaluation.get("rows") or not os.path.exists(path):
        return None
    outputs = read_float32(path, int(evaluation["rows"]))
    if len(outputs) != int(sample.meta["rows"]):
        return None
    reads_output = trial.collector("training_sample").get("loss_reads_model_output")
    try:
        return script_metric(sample, outputs[sample.meta["kept_rows"]], sample.split()[1],
                             bool(sample.meta.get("loss_reads_model_output") if reads_output is None else reads_output))
    except BaselineSkipped:
        return None


def fit_sklearn(sample: Sample, fitted: np.ndarray, held: np.ndarray, truth: np.ndarray, time_limit: float,
                on_epoch: Optional[Callable[[str, int, int, float], None]] = None) -> dict[str, Any]:
    """Fit the default estimator in a worker process (so the fit can be stopped at the limit)."""
    directory = os.path.join(sample.directory, "sklearn")
    os.makedirs(directory, exist_ok=True)
    np.save(os.path.join(directory, "x_fit.npy"), sample.inputs[fitted])
    np.save(os.path.join(directory, "y_fit.npy"), truth[fitted])
    np.save(os.path.join(directory, "x_held.npy"), sample.inputs[held])
    np.save(os.path.join(directory, "y_held.npy"), truth[held])
    with open(os.path.join(directory, "task.json"), "w", encoding="utf-8") as handle:
        json.dump({"task": sample.task, "loss_kind": sample.meta["loss_kind"]}, handle)
    estimator = "MLPClassifier" if sample.task == "classification" else "MLPRegressor"
    output_path, errors_path = os.path.join(directory, "output.txt"), os.path.join(directory, "errors.txt")
    with open(output_path, "wb") as output, open(errors_path, "wb") as errors:
        process = subprocess.Popen([sys.executable, "-u", "-m", "mlplint.probe.baseline", directory], stdout=output, stderr=errors,
                                   stdin=subprocess.DEVNULL, env={**FIT_THREADS, **os.environ})
        started = time.monotonic()
        while True:
            try:
                returncode = process.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - started >= time_limit:
                    process.kill()
                    process.wait()
                    raise BaselineSkipped(f"scikit-learn's fit did not finish within {time_limit:.0f} s") from None
                if on_epoch is not None:
                    on_epoch(estimator, len(fitted), _epochs_so_far(output_path), time.monotonic() - started)
    if returncode != 0:
        with open(errors_path, encoding="utf-8", errors="replace") as handle:
            last = (handle.read().strip().splitlines() or ["no output"])[-1]
        raise BaselineSkipped(f"scikit-learn's fit failed: {last[:200]}")
    with open(os.path.join(directory, "result.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _epochs_so_far(path: str) -> int:
    """The epochs the worker's verbose estimator has reported ("Iteration N, loss = ...")."""
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"Iteration ")
    except OSError:
        return 0


# -- the worker process: `python -m mlplint.probe.baseline DIR` -----------------------------------

def training_loss(kind: str, truth: np.ndarray, estimator: Any, inputs: np.ndarray) -> float:
    """The script's kind of loss, computed for the fitted estimator on the rows it fitted."""
    if kind in CLASSIFICATION_LOSSES:
        probabilities = np.clip(estimator.predict_proba(inputs), 1e-15, 1.0)
        if truth.ndim > 1 or kind.startswith("binary"):
            truth = truth.reshape(len(truth), -1)
            positive = probabilities.reshape(len(truth), -1)
            if positive.shape[1] == 2 and truth.shape[1] == 1:
                positive = positive[:, 1:]
            positive = np.clip(positive, 1e-15, 1 - 1e-15)
            return float(-(truth * np.log(positive) + (1 - truth) * np.log(1 - positive)).mean())
        index = np.searchsorted(estimator.classes_, truth)
        return float(-np.log(probabilities[np.arange(len(truth)), index]).mean())
    error = estimator.predict(inputs).reshape(len(truth), -1) - truth.reshape(len(truth), -1)
    if kind == "l1_loss":
        return float(np.abs(error).mean())
    if kind in ("smooth_l1_loss", "huber_loss"):
        absolute = np.abs(error)
        return float(np.where(absolute < 1, 0.5 * error ** 2, absolute - 0.5).mean())
    return float((error ** 2).mean())


def _fit_worker(directory: str) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    with open(os.path.join(directory, "task.json"), encoding="utf-8") as handle:
        task = json.load(handle)
    x_fit, y_fit = np.load(os.path.join(directory, "x_fit.npy")), np.load(os.path.join(directory, "y_fit.npy"))
    x_held, y_held = np.load(os.path.join(directory, "x_held.npy")), np.load(os.path.join(directory, "y_held.npy"))
    classification = task["task"] == "classification"
    # verbose only prints each epoch's loss, which the parent counts to show progress
    estimator = MLPClassifier(random_state=SEED, verbose=True) if classification else MLPRegressor(random_state=SEED, verbose=True)
    if not classification and y_fit.shape[1] == 1:
        y_fit = y_fit[:, 0]
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(x_fit, y_fit)
    seconds = time.monotonic() - started
    predicted = estimator.predict(x_held)
    metric = accuracy(y_held, predicted) if classification else r2(y_held, predicted)
    result = {
        "estimator": type(estimator).__name__, "params": "defaults", "random_state": SEED,
        "metric": metric, "loss": training_loss(task["loss_kind"], y_fit, estimator, x_fit),
        "iterations": int(estimator.n_iter_),
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "seconds": round(seconds, 2),
        "loss_curve": [float(v) for v in estimator.loss_curve_],
    }
    with open(os.path.join(directory, "result.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    _fit_worker(sys.argv[1])
