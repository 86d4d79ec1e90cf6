"""The differences that usually explain a gap between a PyTorch script and scikit-learn's default
MLP (or the same model in Keras): for each setting, the script's value, scikit-learn's default and
Keras's default, with where each came from.

The script's value comes from the run (the recorded optimizer, batches, input statistics, loss
and layers) or from the static analysis of its source; where neither tells, it is "unknown",
never guessed. The defaults are those of scikit-learn's `MLPClassifier` / `MLPRegressor` and of
Keras 3, each with the place in their code that sets it. Parent side, torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import libcst as cst

from mlplint.lint.facts import ScriptFacts
from mlplint.lint.finding import Finding
from mlplint.lint.source import SourceError, read_source
from mlplint.probe.detectors import fmt
from mlplint.probe.stats import Stats

UNKNOWN = "unknown"
SKLEARN = "sklearn/neural_network/_multilayer_perceptron.py"
KERAS = "keras/src"
TORCH = "torch"

ACTIVATIONS = {"ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softplus", "SELU", "Mish", "ReLU6", "PReLU"}
OUTPUT_ACTIVATIONS = {"Softmax", "LogSoftmax", "Sigmoid", "Tanh", "ReLU"}
ADAM_FAMILY = {"Adam", "AdamW", "NAdam", "RAdam", "Adamax"}
LOSS_NAMES = {
    "cross_entropy": "cross-entropy", "nll_loss": "NLL", "binary_cross_entropy": "binary cross-entropy",
    "binary_cross_entropy_with_logits": "binary cross-entropy with logits", "mse_loss": "MSE", "l1_loss": "L1",
    "smooth_l1_loss": "smooth L1", "huber_loss": "Huber",
}


@dataclass(frozen=True)
class Row:
    setting: str
    script: str
    script_from: str  # "run", "static analysis (line N)", "unknown"
    sklearn: str
    keras: str
    defaults_from: str  # where scikit-learn's and Keras's defaults are set in their code
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"setting": self.setting, "script": self.script, "script_from": self.script_from,
                "sklearn": self.sklearn, "keras": self.keras, "defaults_from": self.defaults_from, "note": self.note}


def differences(stats: Stats, baseline: dict[str, Any], findings: list[Finding]) -> list[dict[str, Any]]:
    """The rows of the differences table for a run and its baseline (the contract's objects)."""
    facts = _facts(stats.data.get("script"))
    model = next(iter(stats.models.values()), {})
    optimizer = (stats.data.get("optimizers") or [{}])[0]
    fitted_rows = (baseline.get("samples") or 0) - (baseline.get("held_back") or 0)
    task = baseline.get("task")
    rows = [
        _input_scaling(stats),
        _architecture(model),
        _weight_init(model, facts),
        _optimizer(optimizer),
        _adam_epsilon(optimizer),
        _l2(optimizer, fitted_rows),
        _batch_size(stats, fitted_rows),
        _training_length(stats, baseline),
        _shuffling(facts, findings),
        _early_stopping(),
        _loss_and_output(stats, model, task),
    ]
    return [row.to_json() for row in rows]


def _facts(script: Optional[str]) -> Optional[ScriptFacts]:
    if not script:
        return None
    try:
        return ScriptFacts(cst.parse_module(read_source(script)))
    except (SourceError, cst.ParserSyntaxError, RecursionError):
        return None


def _input_scaling(stats: Stats) -> Row:
    records = [r for r in stats.records("input_features") if r.get("std")]
    if records:
        stds = [s for s in records[0]["std"]]
        means = [abs(m) for m in records[0]["mean"]]
        positive = [s for s in stds if s > 0]
        ratio = max(positive) / min(positive) if positive else float("inf")
        scaled = ratio < 10 and max(means) < 3 and 0.1 < max(stds) < 10
        described = (f"{'looks standardised' if scaled else 'none seen'}: column std {fmt(min(stds))}..{fmt(max(stds))} "
                     f"(ratio {fmt(ratio)}), |mean| up to {fmt(max(means))}")
        script, source = described, f"run (first batch, step {records[0]['step']})"
    else:
        script, source = UNKNOWN, UNKNOWN
    return Row("input scaling", script, source, "none (the docs recommend StandardScaler)", "none",
               f"scikit-learn: MLPClassifier.fit uses X as given; Keras: model.fit uses x as given ({KERAS}/trainers/trainer.py)",
               "unscaled columns slow every gradient-based fit; scikit-learn suffers too, but runs 200 epochs")


def _layer_sizes(model: dict[str, Any]) -> list[int]:
    sizes: list[int] = []
    for name, param in model.get("params", {}).items():
        shape = param.get("shape", [])
        if name.endswith("weight") and len(shape) == 2:
            if not sizes:
                sizes.append(shape[1])
            sizes.append(shape[0])
    return sizes


def _activations(model: dict[str, Any]) -> list[str]:
    layers = list(model.get("layers", {}).values())
    return sorted({kind for kind in layers[:-1] if kind in ACTIVATIONS})


def _architecture(model: dict[str, Any]) -> Row:
    sizes = _layer_sizes(model)
    kinds = set(model.get("layers", {}).values())
    if sizes and kinds <= {"Sequential", "Linear", "Dropout", "BatchNorm1d", "LayerNorm", model.get("class")} | ACTIVATIONS | OUTPUT_ACTIVATIONS:
        activations = _activations(model)
        if activations:
            described = "/".join(activations)
        elif model.get("class") == "Sequential":
            described = "no activation"
        else:
            described = "no activation module (functional ones in forward() are not seen)"
        script = f"{'-'.join(map(str, sizes))} units, {described}"
        source = "run (the model's layers)"
    elif model:
        script, source = f"{model.get('class')} with {', '.join(sorted(k for k in kinds if k != model.get('class')))}", "run (the model's layers)"
    else:
        script, source = UNKNOWN, UNKNOWN
    return Row("hidden layers", script, source, "one hidden layer of 100 ReLU units", "the layers you define (Dense activation=None: linear)",
               f"scikit-learn: hidden_layer_sizes=(100,), activation='relu' ({SKLEARN}, MLPClassifier.__init__); "
               f"Keras: Dense(activation=None) ({KERAS}/layers/core/dense.py)")


def _weight_init(model: dict[str, Any], facts: Optional[ScriptFacts]) -> Row:
    activations = _activations(model)
    against = f" with {'/'.join(activations)}" if activations else ""
    if facts is None or not model:
        script, source = UNKNOWN, UNKNOWN
    else:
        inits = [init for init in facts.initialization.inits if init.target != "bias"]
        model_class = model.get("class")
        defined_here = model_class == "Sequential" or any(
            isinstance(node, cst.ClassDef) and node.name.value == model_class for node in facts.module.body)
        if inits:
            first = inits[0]
            script = f"{first.label}{against}"
            source = f"static analysis (line {facts.line_of(first.call)})"
        elif defined_here:
            script = f"PyTorch default: kaiming_uniform_(a=sqrt(5)), U(+-1/sqrt(fan_in)){against}"
            source = "static analysis (no init call in the script)"
        else:
            script, source = UNKNOWN, "unknown (the model is defined in another module)"
    return Row("weight init", script, source,
               "Glorot uniform, U(+-sqrt(6/(fan_in+fan_out))), biases too (sqrt(2/...) for logistic)",
               "glorot_uniform kernels, zero biases",
               f"scikit-learn: MLP._init_coef ({SKLEARN}); Keras: Dense(kernel_initializer='glorot_uniform', "
               f"bias_initializer='zeros') ({KERAS}/layers/core/dense.py); PyTorch: Linear.reset_parameters "
               f"({TORCH}/nn/modules/linear.py)",
               "PyTorch's default is about 1/sqrt(3) of Kaiming's scale for ReLU and shrinks the signal in deep stacks")


def _optimizer(optimizer: dict[str, Any]) -> Row:
    if optimizer.get("class"):
        lr = (optimizer.get("first_lr") or [None])[0]
        settings = optimizer.get("settings", {})
        momentum = f", momentum={fmt(settings['momentum'])}" if "momentum" in settings and optimizer["class"] == "SGD" else ""
        script, source = f"{optimizer['class']} lr={fmt(lr) if lr is not None else '?'}{momentum}", "run"
    else:
        script, source = UNKNOWN, UNKNOWN
    return Row("optimizer and lr", script, source, "adam, learning_rate_init=0.001", "rmsprop (compile's default), learning_rate=0.001",
               f"scikit-learn: solver='adam', learning_rate_init=0.001 ({SKLEARN}); Keras: Model.compile(optimizer='rmsprop') "
               f"({KERAS}/trainers/trainer.py), RMSprop(learning_rate=0.001) ({KERAS}/optimizers/rmsprop.py)")


def _adam_epsilon(optimizer: dict[str, Any]) -> Row:
    kind = optimizer.get("class")
    settings = optimizer.get("settings", {})
    if kind in ADAM_FAMILY and "eps" in settings:
        script, source = fmt(settings["eps"]), "run"
    elif kind:
        script, source = f"n/a ({kind})", "run"
    else:
        script, source = UNKNOWN, UNKNOWN
    return Row("Adam epsilon", script, source, "1e-08", "1e-07",
               f"scikit-learn: epsilon=1e-8 ({SKLEARN}); Keras: Adam(epsilon=1e-7) ({KERAS}/optimizers/adam.py); "
               f"PyTorch: Adam(eps=1e-8) ({TORCH}/optim/adam.py)")


def _l2(optimizer: dict[str, Any], fitted_rows: int) -> Row:
    kind = optimizer.get("class")
    settings = optimizer.get("settings", {})
    if kind and "weight_decay" in settings:
        decay = settings["weight_decay"]
        style = "decoupled" if kind == "AdamW" else "coupled"
        script, source = ("none" if not decay else f"{style} weight_decay={fmt(decay)}"), "run"
    elif kind:
        script, source = f"none ({kind} has no weight_decay)", "run"
    else:
        script, source = UNKNOWN, UNKNOWN
    batch = min(200, fitted_rows) if fitted_rows else 200
    return Row("L2 regularisation", script, source,
               f"alpha=1e-4 added to the loss as alpha/2*||W||^2 / batch size: like coupled weight decay {fmt(1e-4 / batch)}",
               "none (kernel_regularizer=None)",
               f"scikit-learn: alpha=0.0001, MLP._backprop adds alpha * W / n_samples ({SKLEARN}); "
               f"Keras: Dense(kernel_regularizer=None) ({KERAS}/layers/core/dense.py)")


def _batch_size(stats: Stats, fitted_rows: int) -> Row:
    records = stats.records("input_features")
    if records and records[0].get("shape"):
        script, source = str(records[0]["shape"][0]), "run (first batch)"
    else:
        script, source = UNKNOWN, UNKNOWN
    sklearn = f"min(200, n_samples) = {min(200, fitted_rows)}" if fitted_rows else "min(200, n_samples)"
    return Row("batch size", script, source, sklearn, "32",
               f"scikit-learn: batch_size='auto' ({SKLEARN}, MLP._fit_stochastic); Keras: Model.fit(batch_size=None) means 32 "
               f"({KERAS}/trainers/trainer.py)")


def _training_length(stats: Stats, baseline: dict[str, Any]) -> Row:
    sklearn = baseline.get("sklearn") or {}
    iterations = f"; this fit ran {sklearn['iterations']}" if sklearn.get("iterations") is not None else ""
    budget = stats.data.get("budget")
    status = stats.data.get("status")
    script = f"{stats.steps} optimizer steps ({'the probe stopped it at its step budget' if status == 'step-budget' else f'the run ended: {status}'})"
    if budget is not None and stats.steps:
        batch = (stats.records("input_features") or [{}])[0].get("shape", [None])[0]
        distinct = baseline.get("samples")
        if batch and distinct:
            script += f", about {fmt(stats.steps * batch / distinct)} passes over the {distinct} distinct rows seen"
    return Row("epochs / steps", script, "run", f"up to max_iter=200 epochs{iterations}", "epochs=1",
               f"scikit-learn: max_iter=200 ({SKLEARN}); Keras: Model.fit(epochs=1) ({KERAS}/trainers/trainer.py)",
               "the probe's step budget also limits the script; `--steps` gives it more")


def _shuffling(facts: Optional[ScriptFacts], findings: list[Finding]) -> Row:
    unshuffled = [f for f in findings if f.code == "ML102"]
    script, source = UNKNOWN, UNKNOWN
    if unshuffled:
        script, source = "no (a training DataLoader without shuffle)", f"static analysis (line {unshuffled[0].line})"
    elif facts is not None:
        loaders = list(facts.calls_to("torch.utils.data.DataLoader"))
        shuffled = [c for c in loaders if facts.literal(facts.argument(c, 2, "shuffle")) is True]
        permutations = list(facts.calls_to("torch.randperm", "numpy.random.permutation", "numpy.random.shuffle", "random.shuffle"))
        if shuffled:
            script, source = "yes (DataLoader shuffle=True)", f"static analysis (line {facts.line_of(shuffled[0])})"
        elif permutations:
            script, source = "yes (a random permutation)", f"static analysis (line {facts.line_of(permutations[0])})"
    return Row("shuffling", script, source, "shuffle=True (every epoch)", "shuffle=True (every epoch)",
               f"scikit-learn: shuffle=True ({SKLEARN}); Keras: Model.fit(shuffle=True) ({KERAS}/trainers/trainer.py)")


def _early_stopping() -> Row:
    return Row("early stopping", UNKNOWN, "unknown (the static analysis does not follow stopping logic)",
               "early_stopping=False, but training stops when the loss improves by less than tol=1e-4 for 10 epochs",
               "none (needs an EarlyStopping callback)",
               f"scikit-learn: early_stopping=False, tol=1e-4, n_iter_no_change=10 ({SKLEARN}); Keras: Model.fit(callbacks=None) "
               f"({KERAS}/trainers/trainer.py)")


def _loss_and_output(stats: Stats, model: dict[str, Any], task: Optional[str]) -> Row:
    kind = stats.collector("training_sample").get("loss_kind")
    calls = [r for r in stats.records("loss_inputs") if r.get("training")]
    kind = kind or (calls[0]["kind"] if calls else None)
    layers = list(model.get("layers", {}).values())
    last = layers[-1] if layers else None
    if kind is None:
        script, source = UNKNOWN, UNKNOWN
    else:
        output = f"{last} output" if last in OUTPUT_ACTIVATIONS else "no output activation in the model's layers"
        probabilities = [r for r in calls if r.get("row_sum_deviation") is not None and r["row_sum_deviation"] < 1e-3]
        if probabilities and last not in OUTPUT_ACTIVATIONS:
            output = "softmax output (the loss input's rows sum to 1)"
        script, source = f"{LOSS_NAMES.get(kind, kind)}, {output}", "run"
    sklearn = {"classification": "log-loss, softmax output (logistic for one binary label)",
               "regression": "squared error (halved), identity output"}.get(task, "log-loss (classifier) / squared error (regressor)")
    return Row("loss and output activation", script, source, sklearn, "none: loss is a required compile argument; Dense output linear",
               f"scikit-learn: MLPClassifier out_activation_ 'softmax'/'logistic', MLPRegressor 'identity' ({SKLEARN}, MLP._initialize); "
               f"Keras: Model.compile(loss=None) ({KERAS}/trainers/trainer.py)")
