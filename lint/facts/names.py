"""Canonical qualified names of the PyTorch (and friends) APIs the rules reason about.

`canonical()` folds the many spellings of one object (`torch.nn.modules.loss.CrossEntropyLoss`,
`torch.optim.adam.Adam`) onto its public name, so tables below list each object once.
"""

from __future__ import annotations

import re
from typing import Optional

_PRIVATE_PATHS = [
    (re.compile(r"^torch\.nn\.modules\.[a-z_]+\."), "torch.nn."),
    (re.compile(r"^torch\.optim\.(?!lr_scheduler\.|swa_utils\.)[a-z_]+\."), "torch.optim."),
    (re.compile(r"^torch\.utils\.data\.(dataloader|dataset|sampler|distributed)\."), "torch.utils.data."),
    (re.compile(r"^torch\.nn\.modules\."), "torch.nn."),
    (re.compile(r"^lightning\.pytorch\."), "pytorch_lightning."),
    (re.compile(r"^torch\.cuda\.amp\."), "torch.amp."),
    (re.compile(r"^torch\.nn\.parallel\.distributed\."), "torch.nn.parallel."),
]


def canonical(name: str) -> str:
    for pattern, replacement in _PRIVATE_PATHS:
        name = pattern.sub(replacement, name)
    return name


# Lightning's Trainer: running a model through it (`trainer.test(model)`) sets the model's mode,
# and which mode it leaves depends on the version.
LIGHTNING_TRAINERS = {"pytorch_lightning.Trainer", "pytorch_lightning.trainer.Trainer", "lightning.Trainer"}
LIGHTNING_RUNS = {"fit", "validate", "test", "predict"}
MODULE_BASES = {
    "torch.nn.Module",
    "pytorch_lightning.LightningModule",
    "lightning.LightningModule",
}

# What code that never imports them means by these names (see ScriptFacts.qualname).
CONVENTIONAL_ALIASES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional", "optim": "torch.optim"}

SEQUENTIAL = "torch.nn.Sequential"
MODULE_CONTAINERS = {"torch.nn.ModuleList", "torch.nn.ModuleDict", "torch.nn.ParameterList", "torch.nn.ParameterDict"}
# Wrappers whose result behaves as the wrapped model (first argument).
MODEL_WRAPPERS = {
    "torch.nn.DataParallel",
    "torch.nn.parallel.DataParallel",
    "torch.nn.parallel.DistributedDataParallel",
    "torch.compile",
    "torch.jit.script",
}
# Methods returning their receiver (or an equivalent object) for models and tensors alike.
PASS_THROUGH_METHODS = {
    "to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
    "requires_grad_", "share_memory", "contiguous", "type",
    "fit", "set_params",  # scikit-learn estimators return themselves
}

SOFTMAX_FUNCTIONS = {"torch.nn.functional.softmax", "torch.softmax", "torch.special.softmax"}
LOG_SOFTMAX_FUNCTIONS = {"torch.nn.functional.log_softmax", "torch.log_softmax", "torch.special.log_softmax"}
SIGMOID_FUNCTIONS = {"torch.sigmoid", "torch.nn.functional.sigmoid", "torch.special.expit"}
TANH_FUNCTIONS = {"torch.tanh", "torch.nn.functional.tanh"}
RELU_FUNCTIONS = {
    "torch.relu", "torch.nn.functional.relu", "torch.relu_", "torch.nn.functional.relu_",
    "torch.nn.functional.relu6", "torch.nn.functional.leaky_relu", "torch.nn.functional.elu",
    "torch.nn.functional.gelu", "torch.nn.functional.silu", "torch.nn.functional.selu",
    "torch.nn.functional.mish", "torch.nn.functional.softplus", "torch.nn.functional.celu",
    "torch.nn.functional.hardswish",
}

# Activation kinds by module class (and method name on a tensor, e.g. `x.relu()`).
ACTIVATION_MODULES = {
    "torch.nn.ReLU": "relu", "torch.nn.ReLU6": "relu", "torch.nn.LeakyReLU": "relu",
    "torch.nn.PReLU": "relu", "torch.nn.RReLU": "relu", "torch.nn.ELU": "relu",
    "torch.nn.SELU": "relu", "torch.nn.CELU": "relu", "torch.nn.GELU": "relu",
    "torch.nn.SiLU": "relu", "torch.nn.Mish": "relu", "torch.nn.Softplus": "softplus",
    "torch.nn.Hardswish": "relu",
    "torch.nn.Sigmoid": "sigmoid", "torch.nn.Hardsigmoid": "sigmoid", "torch.nn.LogSigmoid": "logsigmoid",
    "torch.nn.Tanh": "tanh", "torch.nn.Hardtanh": "tanh", "torch.nn.Softsign": "tanh",
    "torch.nn.Softmax": "softmax", "torch.nn.Softmax2d": "softmax", "torch.nn.LogSoftmax": "log_softmax",
}
ACTIVATION_FUNCTIONS = {
    **{name: "softmax" for name in SOFTMAX_FUNCTIONS},
    **{name: "log_softmax" for name in LOG_SOFTMAX_FUNCTIONS},
    **{name: "sigmoid" for name in SIGMOID_FUNCTIONS},
    **{name: "tanh" for name in TANH_FUNCTIONS},
    **{name: "relu" for name in RELU_FUNCTIONS},
    "torch.nn.functional.softplus": "softplus",
    "torch.nn.functional.logsigmoid": "logsigmoid",
    "torch.nn.functional.hardtanh": "tanh",
    "torch.nn.functional.softsign": "tanh",
}
ACTIVATION_METHODS = {
    "softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid", "tanh": "tanh",
    "relu": "relu", "relu_": "relu", "sigmoid_": "sigmoid", "tanh_": "tanh",
}

LINEAR_LAYERS = {"torch.nn.Linear", "torch.nn.LazyLinear", "torch.nn.Bilinear"}
CONV_LAYERS = {
    "torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d",
    "torch.nn.ConvTranspose1d", "torch.nn.ConvTranspose2d", "torch.nn.ConvTranspose3d",
    "torch.nn.LazyConv1d", "torch.nn.LazyConv2d", "torch.nn.LazyConv3d",
}
DROPOUT_LAYERS = {"torch.nn.Dropout", "torch.nn.Dropout1d", "torch.nn.Dropout2d", "torch.nn.Dropout3d", "torch.nn.AlphaDropout"}
BATCHNORM_LAYERS = {
    "torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d", "torch.nn.SyncBatchNorm",
    "torch.nn.LazyBatchNorm1d", "torch.nn.LazyBatchNorm2d", "torch.nn.LazyBatchNorm3d",
}
NORM_LAYERS = BATCHNORM_LAYERS | {
    "torch.nn.LayerNorm", "torch.nn.GroupNorm", "torch.nn.InstanceNorm1d", "torch.nn.InstanceNorm2d",
    "torch.nn.InstanceNorm3d", "torch.nn.RMSNorm",
}
RECURRENT_LAYERS = {"torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU", "torch.nn.Transformer", "torch.nn.TransformerEncoder"}

CROSS_ENTROPY = {"torch.nn.CrossEntropyLoss", "torch.nn.functional.cross_entropy"}
NLL = {"torch.nn.NLLLoss", "torch.nn.functional.nll_loss"}
BCE_WITH_LOGITS = {"torch.nn.BCEWithLogitsLoss", "torch.nn.functional.binary_cross_entropy_with_logits"}
BCE = {"torch.nn.BCELoss", "torch.nn.functional.binary_cross_entropy"}
REGRESSION_LOSSES = {
    "torch.nn.MSELoss", "torch.nn.functional.mse_loss", "torch.nn.L1Loss", "torch.nn.functional.l1_loss",
    "torch.nn.HuberLoss", "torch.nn.functional.huber_loss", "torch.nn.SmoothL1Loss",
    "torch.nn.functional.smooth_l1_loss",
}
ELEMENTWISE_LOSSES = REGRESSION_LOSSES | BCE | BCE_WITH_LOGITS
CLASSIFICATION_LOSSES = CROSS_ENTROPY | NLL

OPTIMIZER_FAMILIES = {
    "torch.optim.Adam": "adam", "torch.optim.AdamW": "adam", "torch.optim.Adamax": "adam",
    "torch.optim.NAdam": "adam", "torch.optim.RAdam": "adam", "torch.optim.SparseAdam": "adam",
    "torch.optim.SGD": "sgd", "torch.optim.ASGD": "sgd",
    "torch.optim.RMSprop": "rmsprop", "torch.optim.Rprop": "rprop",
    "torch.optim.Adagrad": "adagrad", "torch.optim.Adadelta": "adadelta",
    "torch.optim.LBFGS": "lbfgs", "torch.optim.Adafactor": "adafactor",
}
OTHER_OPTIMIZER_PREFIXES = ("torch_optimizer.", "apex.optimizers.", "bitsandbytes.optim.", "timm.optim.")
SCHEDULER_PREFIXES = ("torch.optim.lr_scheduler.", "transformers.get_", "transformers.optimization.get_")
GRAD_SCALERS = {"torch.amp.GradScaler", "torch.GradScaler"}
DATALOADER = "torch.utils.data.DataLoader"
DISTRIBUTED_SAMPLER = "torch.utils.data.DistributedSampler"
DISTRIBUTED_DATA_PARALLEL = "torch.nn.parallel.DistributedDataParallel"
# Samplers that order the whole dataset on every rank (none of them splits it across ranks).
WHOLE_DATASET_SAMPLERS = {"torch.utils.data.RandomSampler", "torch.utils.data.SequentialSampler", "torch.utils.data.WeightedRandomSampler"}
ITERABLE_DATASETS = {"torch.utils.data.IterableDataset", "torch.utils.data.IterDataPipe", "torchdata.datapipes.iter.IterDataPipe"}
GRADIENT_CLIPPING = {
    "torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_value_", "torch.nn.utils.clip_grad_norm",
    "torch.nn.utils.clip_grad.clip_grad_norm_", "torch.nn.utils.clip_grad.clip_grad_value_",
}


def is_optimizer_class(name: str) -> bool:
    if name in OPTIMIZER_FAMILIES or name.startswith(OTHER_OPTIMIZER_PREFIXES):
        return True
    return name.startswith("torch.optim.") and name.count(".") == 2 and name.rsplit(".", 1)[1][:1].isupper()


def is_scheduler_class(name: str) -> bool:
    return name.startswith(SCHEDULER_PREFIXES)


def is_loss_class(name: str) -> bool:
    return name.startswith("torch.nn.") and name.count(".") == 2 and name.endswith("Loss")


def is_layer_class(name: str) -> bool:
    """A torch.nn module class (Linear, Conv2d, ReLU, Sequential...), losses excluded."""
    head, _, tail = name.rpartition(".")
    return head == "torch.nn" and tail[:1].isupper() and not tail.endswith("Loss") and tail not in {
        "Module", "Parameter", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
    }


def optimizer_family(name: str) -> Optional[str]:
    return OPTIMIZER_FAMILIES.get(name)

# Packages whose presence makes a file PyTorch code, and frameworks whose `nn` is not torch's.
TORCH_PACKAGES = {"torch", "torchvision", "torchaudio", "torchtext", "timm", "pytorch_lightning", "lightning", "accelerate"}
OTHER_FRAMEWORKS = {"mxnet", "tensorflow", "keras", "jax", "flax", "paddle", "mindspore", "oneflow", "chainer", "theano", "cntk", "tf_keras"}
