"""Runtime interventions for `mlplint probe --trials`: one change applied to the script's run
where the rule that found the problem has no autofix (standardise the model's inputs, clear
gradients after each step, use the usual learning rate...). Child-process side: torch and the
standard library only. The parent (`trials.py`) decides which intervention a finding gets; this
module only applies the one it is given, the same way on every run."""

from __future__ import annotations

import builtins
import functools
import inspect
import random
import sys
import types
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import optimizer as optimizer_hooks

# Activations a re-initialisation is matched to.
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.PReLU, nn.Mish)
SATURATING = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign)
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Smallest probability a log-probability conversion keeps (float32 log(1e-38) is finite).
TINY = 1e-38


def seed_everything(seed: int) -> None:
    """The same random state for every run of a trial set: Python's, torch's and numpy's."""
    random.seed(seed)
    torch.manual_seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is None:
        try:
            import numpy  # noqa: F811  (optional in the user's environment)
        except ImportError:
            return
    numpy.random.seed(seed)


def run_source(path: str, script: str) -> None:
    """Run the text in `path` (the script with one autofix applied) as `__main__`, as if it were
    `script`: `__file__`, tracebacks and relative paths all name the user's own file."""
    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), script, "exec")
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=script, __builtins__=builtins, __cached__=None, __spec__=None)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


class Intervention:
    """Base class: `install()` before the script runs (after the probe's own patches, so the probe
    records what the changed run does), `before_model()` on each call of the root model."""

    def install(self) -> None:
        pass

    def before_model(self, module: nn.Module, args: tuple) -> tuple:
        return args


class StandardiseInputs(Intervention):
    """Standardise the model's input per feature (per channel for images) with the mean and
    standard deviation of the first training batch, on every later call too (evaluation included)."""

    def __init__(self) -> None:
        self.mean: Optional[torch.Tensor] = None
        self.std: Optional[torch.Tensor] = None

    def before_model(self, module: nn.Module, args: tuple) -> tuple:
        if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point() or args[0].dim() < 2:
            return args
        x = args[0]
        if self.mean is None:
            if x.shape[0] < 2:
                return args
            per_feature = x.detach().transpose(0, 1).reshape(x.shape[1], -1)
            self.mean = per_feature.mean(dim=1)
            std = per_feature.std(dim=1)
            self.std = torch.where(std > 0, std, torch.ones_like(std))
        if x.shape[1] != self.mean.shape[0]:
            return args
        view = [1, -1] + [1] * (x.dim() - 2)
        mean = self.mean.to(x.device, x.dtype).reshape(view)
        std = self.std.to(x.device, x.dtype).reshape(view)
        return ((x - mean) / std, *args[1:])


class Reinitialise(Intervention):
    """Re-initialise the weights of Linear and Conv layers before the first forward pass: Kaiming
    (He) for ReLU-like networks, Xavier (Glorot) with the matching gain for tanh/sigmoid ones, or
    each layer's own PyTorch default (`reset_parameters`); biases to zero except for the default."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme  # "match-activation" | "pytorch-default"
        self.done: set[int] = set()

    def before_model(self, module: nn.Module, args: tuple) -> tuple:
        if id(module) in self.done:
            return args
        self.done.add(id(module))
        kinds = [type(m) for m in module.modules()]
        saturating = any(issubclass(k, SATURATING) for k in kinds) and not any(issubclass(k, RELU_LIKE) for k in kinds)
        gain_for = "tanh" if any(issubclass(k, nn.Tanh) for k in kinds) else "sigmoid"
        with torch.no_grad():
            for layer in module.modules():
                if not isinstance(layer, WEIGHT_LAYERS):
                    continue
                if self.scheme == "pytorch-default":
                    layer.reset_parameters()
                    continue
                if saturating:
                    nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(gain_for))
                else:
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        return args


class OptimizerSettings(Intervention):
    """Override hyper-parameters of every optimizer the script builds (only those it has), at
    construction, so learning-rate schedulers start from the new values."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def install(self) -> None:
        original = torch.optim.Optimizer.__init__
        settings = self.settings

        @functools.wraps(original)
        def __init__(optimizer: torch.optim.Optimizer, params: Any, defaults: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            original(optimizer, params, {**defaults, **{k: v for k, v in settings.items() if k in defaults}}, *args, **kwargs)
            for group in optimizer.param_groups:
                group.update({k: v for k, v in settings.items() if k in group})

        torch.optim.Optimizer.__init__ = __init__


class ClearGradients(Intervention):
    """Clear every optimizer's gradients right after each of its steps, so each backward pass
    starts from zero (what a missing `optimizer.zero_grad()` would have done)."""

    def install(self) -> None:
        optimizer_hooks.register_optimizer_step_post_hook(lambda optimizer, args, kwargs: optimizer.zero_grad())


class ShuffleLoaders(Intervention):
    """Build every map-style DataLoader that has no sampler with shuffle=True."""

    def install(self) -> None:
        loader = torch.utils.data.DataLoader
        original = loader.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(*args: Any, **kwargs: Any) -> None:
            bound = signature.bind(*args, **kwargs)
            given = bound.arguments
            dataset = given.get("dataset")
            if given.get("sampler") is None and given.get("batch_sampler") is None and \
                    not isinstance(dataset, torch.utils.data.IterableDataset):
                given["shuffle"] = True
            original(*bound.args, **bound.kwargs)

        loader.__init__ = __init__


class LossInputs(Intervention):
    """Give a loss function the input it expects: log-probabilities for cross_entropy / nll_loss
    fed probabilities (dropping the softmax's effect), log_softmax for nll_loss fed raw logits,
    logits for binary_cross_entropy_with_logits fed probabilities."""

    def __init__(self, loss: str) -> None:
        self.loss = loss

    def install(self) -> None:
        original = getattr(F, self.loss)
        convert = _CONVERSIONS[self.loss]

        @functools.wraps(original)
        def loss(input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            return original(convert(input) if isinstance(input, torch.Tensor) and input.is_floating_point() else input, *args, **kwargs)

        setattr(F, self.loss, loss)


def _looks_like_probabilities(x: torch.Tensor) -> bool:
    with torch.no_grad():
        return x.dim() >= 2 and bool((x >= 0).all()) and bool(((x.sum(dim=1) - 1).abs() < 1e-3).all())


def _to_log_probabilities(x: torch.Tensor) -> torch.Tensor:
    if _looks_like_probabilities(x):
        return torch.log(x.clamp_min(TINY))
    return x


def _to_nll_input(x: torch.Tensor) -> torch.Tensor:
    if _looks_like_probabilities(x):
        return torch.log(x.clamp_min(TINY))
    with torch.no_grad():
        already = x.dim() >= 2 and bool((torch.logsumexp(x, dim=1).abs() < 1e-3).all())
    return x if already or x.dim() < 2 else F.log_softmax(x, dim=1)


def _to_logits(x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        bounded = bool(((x >= 0) & (x <= 1)).all())
    return torch.logit(x, eps=1e-7) if bounded else x


_CONVERSIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _to_log_probabilities,
    "nll_loss": _to_nll_input,
    "binary_cross_entropy_with_logits": _to_logits,
}


class Together(Intervention):
    """Several interventions at once (the combined trial): each installed, each one's change of
    the model's input applied in turn."""

    def __init__(self, parts: list[Intervention]) -> None:
        self.parts = parts

    def install(self) -> None:
        for part in self.parts:
            part.install()

    def before_model(self, module: nn.Module, args: tuple) -> tuple:
        for part in self.parts:
            args = part.before_model(module, args)
        return args


def from_config(spec: Optional[Any]) -> Optional[Intervention]:
    """The intervention a trial's config names (a spec, or a list of specs for the combined
    trial), None for none (the run as written, or an autofix)."""
    if not spec:
        return None
    if isinstance(spec, list):
        return Together([from_config(part) for part in spec])
    kind = spec["kind"]
    if kind == "standardise-inputs":
        return StandardiseInputs()
    if kind == "reinitialise":
        return Reinitialise(spec["scheme"])
    if kind == "optimizer-settings":
        return OptimizerSettings(spec["settings"])
    if kind == "clear-gradients":
        return ClearGradients()
    if kind == "shuffle-loaders":
        return ShuffleLoaders()
    if kind == "loss-inputs":
        return LossInputs(spec["loss"])
    raise ValueError(f"unknown intervention {kind!r}")
