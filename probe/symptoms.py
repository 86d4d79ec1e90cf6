"""The catalog of runtime symptoms (ML9xx): code, name, severity and a one-line summary.

Detectors judge recorded statistics into these; static rules name the ones that confirm them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplint.lint.finding import Severity


@dataclass(frozen=True)
class Symptom:
    code: str
    name: str
    severity: Severity
    summary: str
    # Reported only as the evidence of a static finding it confirms: alone it is often by design
    # (random demo data has labels unrelated to its inputs; a hard task's loss falls slowly).
    confirms_only: bool = False


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

SYMPTOMS = {
    s.code: s
    for s in [
        Symptom("ML901", "non-finite", _E, "NaN or Inf in loss, activations or gradients"),
        Symptom("ML902", "diverging-loss", _E, "loss trends upward or blows past its start"),
        Symptom("ML903", "oscillating-loss", _W, "loss swings without a downward trend"),
        Symptom("ML904", "stalled-loss", _W, "loss barely moves over the run"),
        Symptom("ML905", "exploding-gradients", _E, "gradient norms huge or growing step over step"),
        Symptom("ML906", "vanishing-gradients", _W, "early layers get orders of magnitude smaller gradients"),
        Symptom("ML907", "dead-relu", _W, "a large share of ReLU units never activate"),
        Symptom("ML908", "saturated-activations", _W, "sigmoid/tanh outputs pinned at their bounds"),
        Symptom("ML909", "activation-scale-drift", _W, "activation scale shrinks or grows layer after layer"),
        Symptom("ML910", "unscaled-input-features", _W, "input features differ in scale by orders of magnitude"),
        Symptom("ML911", "update-ratio-out-of-range", _W, "parameter update / parameter size far from ~1e-3"),
        Symptom("ML912", "initial-loss-off", _W, "first loss far from the chance level for the task"),
        Symptom("ML913", "gradient-accumulation", _E, "gradients grow across steps because they are never cleared"),
        Symptom("ML914", "probabilities-into-logit-loss", _E, "inputs to a logit loss already look like probabilities"),
        Symptom("ML915", "loss-shape-broadcast-observed", _E, "loss inputs of different shapes were broadcast"),
        Symptom("ML916", "class-imbalance", _I, "observed targets are dominated by few classes"),
        Symptom("ML917", "train-mode-during-eval", _E, "Dropout/BatchNorm in training mode during a no-grad pass"),
        Symptom("ML918", "frozen-parameters", _W, "parameters that never receive gradients or updates"),
        Symptom("ML919", "eval-mode-during-training", _W, "optimizer steps taken while Dropout/BatchNorm layers are in eval mode"),
        Symptom("ML920", "grad-enabled-evaluation", _W, "forward passes whose output no backward uses, run with autograd on"),
        Symptom("ML921", "scheduler-before-optimizer", _W, "lr_scheduler.step() called before the first optimizer.step()"),
        Symptom("ML922", "unshuffled-batches", _W, "the same batch order in successive epochs, or long runs of single-class batches"),
        Symptom("ML923", "scaler-fit-on-held-out-rows", _E, "a scaler fitted on rows the model is later evaluated on, or on more rows than it trains on"),
        Symptom("ML924", "graph-kept-alive", _W, "memory or autograd graph grows step after step (a loss total that keeps its graphs)"),
        Symptom("ML925", "target-outside-output-range", _E, "regression targets the model's output activation cannot reach"),
        Symptom("ML926", "identical-units", _E, "units of a layer that stay identical to each other through training"),
        Symptom("ML927", "loss-task-mismatch-observed", _E, "class labels reached a regression loss, or continuous targets a classification loss"),
        Symptom("ML928", "logits-into-probability-loss", _E, "inputs to BCELoss/NLLLoss outside the probabilities or log-probabilities they expect"),
        Symptom("ML929", "init-gain-mismatch", _W, "an initial weight scale tuned for another activation shrinks or swells the signal layer by layer", True),
        Symptom("ML930", "hidden-softmax-squash", _W, "a softmax between layers shrinks the signal the next layer sees"),
        Symptom("ML931", "small-updates-slow-loss", _I, "the weights move by a small fraction of their size per step and the loss barely falls", True),
        Symptom("ML932", "labels-unrelated-to-inputs", _E, "the training targets do not follow from the inputs: nearest-neighbour agreement at chance", True),
        Symptom("ML933", "adam-epsilon-distorts-steps", _W, "an Adam eps that changes the size of a large share of the steps against the default 1e-8"),
        Symptom("ML934", "inputs-barely-vary", _W, "no input feature varies by more than 0.01 across the batch", True),
        Symptom("ML935", "targets-far-beyond-predictions", _W, "regression targets hundreds of times larger than the model's first predictions"),
        Symptom("ML936", "normalised-over-batch", _E, "a classification loss got probabilities that sum to 1 over the batch, not over the classes"),
        Symptom("ML937", "dropout-drops-most", _W, "a Dropout layer that drops 80% or more of its inputs during training", True),
        Symptom("ML938", "default-init-signal-decay", _I, "the signal fades through a deep ReLU stack on PyTorch's default init before training", True),
        Symptom("ML939", "steps-up-the-gradient", _E, "parameter updates that point along the gradient, not against it", True),
        Symptom("ML940", "weight-decay-dominates", _W, "coupled weight decay pulls the weights a tenth as hard as the data gradient or more, from the first step", True),
        Symptom("ML941", "optimizer-state-reset", _W, "a new optimizer built over the same parameters again and again, each taking only one or two steps"),
        Symptom("ML942", "ranks-diverge", _E, "parameters differ across ranks after a step"),
        Symptom("ML943", "ranks-see-same-data", _W, "every rank's batches are identical"),
        Symptom("ML944", "amp-steps-skipped", _W, "GradScaler skipped most steps for inf/NaN gradients"),
    ]
}
