"""Which models and optimizers the script uses, discovered from the hooks as the script runs.

A root model is a module with parameters called outside any other module's forward (loss modules
excluded). Its layers are named by their qualified names; modules with parameters that run inside
its forward but are not registered on it (kept in a plain list or dict) are adopted under a
`<unregistered ...>` name so their parameters are still followed. Child-process side: torch only.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

# Layers whose behaviour depends on train/eval mode.
MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)


class ModelInfo:
    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.layers: dict[int, tuple[str, str, bool]] = {}  # id(module) -> (qualified name, type, is leaf)
        self.params: dict[str, dict[str, Any]] = {}
        self.mode_layers: list[tuple[str, nn.Module]] = []
        self.device = "cpu"
        self._unregistered = 0
        for qualname, sub in module.named_modules():
            self._add_layer(qualname or "<root>", sub)
        for param_name, param in module.named_parameters():
            self.params[param_name] = _param_record(param, registered=True)
            self.device = str(param.device)

    def _add_layer(self, qualname: str, module: nn.Module) -> None:
        is_leaf = next(iter(module.children()), None) is None
        self.layers[id(module)] = (qualname, type(module).__name__, is_leaf)
        if isinstance(module, MODE_DEPENDENT):
            self.mode_layers.append((qualname, module))

    def adopt_unregistered(self, module: nn.Module) -> str:
        self._unregistered += 1
        prefix = f"<unregistered {type(module).__name__} #{self._unregistered}>"
        for qualname, sub in module.named_modules():
            self._add_layer(f"{prefix}.{qualname}" if qualname else prefix, sub)
        for param_name, param in module.named_parameters():
            self.params[f"{prefix}.{param_name}"] = _param_record(param, registered=False)
        return prefix

    def to_json(self, optimized: set[int]) -> dict[str, Any]:
        return {
            "class": type(self.module).__name__,
            "device": self.device,
            "layers": {qualname: kind for qualname, kind, _ in self.layers.values()},
            "params": {
                name: {
                    "shape": record["shape"],
                    "requires_grad": record["requires_grad"],
                    "registered": record["registered"],
                    "in_optimizer": id(record["tensor"]) in optimized,
                }
                for name, record in self.params.items()
            },
        }


def _param_record(param: torch.Tensor, registered: bool) -> dict[str, Any]:
    return {"tensor": param, "shape": list(param.shape), "requires_grad": param.requires_grad, "registered": registered}



class OptimizerInfo:
    """One optimizer of the script, or a line of them: a new optimizer of the same class over the
    same parameters as one that has stepped, built after that one's last step (`optimizer =
    Adam(model.parameters())` per epoch or per batch), takes its place, its index and its step
    count. Optimizers that coexist over the same parameters (built before either steps, or one
    inside the other's step, as SAM and Lookahead build theirs) and a switch to another class
    (Adam, then SGD to fine-tune) keep their own records."""

    def __init__(self, index: int, optimizer: torch.optim.Optimizer, names: dict[int, str]) -> None:
        self.index = index
        self.optimizer = optimizer
        self.steps = 0
        self.named_params = [
            (names.get(id(p), f"<optimizer {index} param {i}>"), p)
            for i, p in enumerate(optimizer_params(optimizer))
        ]
        self.params = [p for _, p in self.named_params]
        self.param_ids = frozenset(id(p) for p in self.params)
        self.first_lr = self.learning_rates()
        self.models: Optional[list[ModelInfo]] = None  # the models it updates, once looked up
        self.last_step: Optional[int] = None  # Tracker.completed right after its last step

    def learning_rates(self) -> list[Optional[float]]:
        """Each parameter group's current lr (None where it is not a plain number)."""
        return [group.get("lr") if isinstance(group.get("lr"), (int, float)) else None for group in self.optimizer.param_groups]

    def to_json(self) -> dict[str, Any]:
        return {
            "class": type(self.optimizer).__name__,
            "first_lr": self.first_lr,
            "lr": self.learning_rates(),
            "settings": _plain_settings(self.optimizer.param_groups[0]) if self.optimizer.param_groups else {},
            "params": [name for name, _ in self.named_params],
            "steps": self.steps,
        }


def optimizer_params(optimizer: Any) -> list[torch.Tensor]:
    """The parameters an optimizer updates, in the order of its parameter groups."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def _plain_settings(group: dict[str, Any]) -> dict[str, Any]:
    """A parameter group's hyper-parameters that are plain numbers or flags (eps, weight_decay,
    momentum, betas...), for reports."""
    settings = {}
    for key, value in group.items():
        if isinstance(value, (bool, int, float)) or (isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value)):
            settings[key] = list(value) if isinstance(value, tuple) else value
    return settings


class Tracker:
    def __init__(self) -> None:
        self.models: dict[int, ModelInfo] = {}  # id(root module) -> info
        self.layer_owner: dict[int, ModelInfo] = {}  # id(any module of a model) -> its model
        self.optimizers: dict[int, OptimizerInfo] = {}  # id(optimizer) -> info
        self.step = 0  # optimizer steps completed (the most of any optimizer)
        self.completed = 0  # optimizer steps completed, all optimizers together
        self._built_at: dict[int, int] = {}  # id(optimizer) -> `completed` when it was built, until first seen stepping
        self._by_params: dict[frozenset[int], OptimizerInfo] = {}  # the ids of its parameters -> the newest info over them
        # Caches kept up to date as optimizers are added, so that a step costs the same however
        # many optimizers the script has built; None when stale (a model was discovered or grew).
        self._owned: Optional[set[int]] = None  # ids of the known models' parameters
        self._unowned: Optional[bool] = None  # has_unowned_params()
        self._stepped: Optional[set[int]] = None  # ids of the models some optimizer updates

    def root_model(self, module: nn.Module) -> Optional[ModelInfo]:
        """The model for a module called outside any forward, discovering it on first sight."""
        if id(module) in self.models:
            return self.models[id(module)]
        if id(module) in self.layer_owner or isinstance(module, nn.modules.loss._Loss):
            return None
        if next(iter(module.parameters()), None) is None:
            return None
        kind = type(module).__name__
        same_kind = sum(1 for other in self.models.values() if type(other.module).__name__ == kind)
        info = ModelInfo(kind if same_kind == 0 else f"{kind}#{same_kind + 1}", module)
        self.models[id(module)] = info
        self._owned = self._unowned = self._stepped = None
        for optimizer in self.optimizers.values():
            optimizer.models = None
        for module_id in info.layers:
            self.layer_owner[module_id] = info
        return info

    def layer(self, model: ModelInfo, module: nn.Module) -> Optional[tuple[str, str, bool]]:
        """The (name, type, is leaf) of a module running inside `model`'s forward."""
        found = model.layers.get(id(module))
        if found is None and id(module) not in self.layer_owner and next(iter(module.parameters()), None) is not None:
            model.adopt_unregistered(module)
            self._owned = self._unowned = None
            for module_id in model.layers:
                self.layer_owner.setdefault(module_id, model)
            found = model.layers.get(id(module))
        return found

    def optimizer(self, optimizer: torch.optim.Optimizer, other_names: Optional[dict[int, str]] = None) -> OptimizerInfo:
        """The optimizer's record, made on first sight; its parameters are named after the models
        that hold them, else by `other_names` (id(tensor) -> name). A new optimizer that replaces
        one over the same parameters takes that one's record (see OptimizerInfo)."""
        info = self.optimizers.get(id(optimizer))
        if info is not None:
            return info
        built_at = self._built_at.pop(id(optimizer), None)
        previous = self._by_params.get(frozenset(id(p) for p in optimizer_params(optimizer)))
        if (previous is not None and built_at is not None and previous.last_step is not None and built_at >= previous.last_step
                and type(previous.optimizer) is type(optimizer)):
            del self.optimizers[id(previous.optimizer)]
            previous.optimizer = optimizer  # the probe no longer keeps the previous one (and its state) alive
            self.optimizers[id(optimizer)] = previous
            return previous
        names = dict(other_names or {})
        for model in self.models.values():
            prefix = f"{model.name}." if len(self.models) > 1 else ""
            names.update({id(record["tensor"]): prefix + name for name, record in model.params.items()})
        info = OptimizerInfo(len(self.optimizers), optimizer, names)
        self.optimizers[id(optimizer)] = info
        self._by_params[info.param_ids] = info
        if self._unowned is False:
            owned = self._owned_ids()
            self._unowned = any(id(p) not in owned for p in info.params)
        if self._stepped is not None:
            self._stepped.update(id(model) for model in self.stepped_models(info))
        return info

    def built(self, optimizer: Any) -> None:
        """An optimizer was constructed (before any of its steps)."""
        self._built_at[id(optimizer)] = self.completed

    def count_step(self, info: OptimizerInfo) -> None:
        """An optimizer step has completed."""
        info.steps += 1
        self.completed += 1
        info.last_step = self.completed
        self.step = max(self.step, info.steps)

    def stepped_models(self, info: OptimizerInfo) -> list[ModelInfo]:
        """The models with parameters that an optimizer updates."""
        if info.models is None:
            ids = {id(p) for p in info.params}
            info.models = [model for model in self.models.values() if any(id(r["tensor"]) in ids for r in model.params.values())]
        return info.models

    def unoptimized_models(self) -> list[ModelInfo]:
        """Models that no optimizer seen so far updates (a target network, a frozen teacher)."""
        if self._stepped is None:
            self._stepped = {id(model) for info in self.optimizers.values() for model in self.stepped_models(info)}
        return [model for model in self.models.values() if id(model) not in self._stepped]

    def has_unowned_params(self) -> bool:
        """Whether an optimizer updates a parameter of no known model (a model not seen yet)."""
        if self._unowned is None:
            owned = self._owned_ids()
            self._unowned = any(id(p) not in owned for info in self.optimizers.values() for p in info.params)
        return self._unowned

    def _owned_ids(self) -> set[int]:
        if self._owned is None:
            self._owned = {id(record["tensor"]) for model in self.models.values() for record in model.params.values()}
        return self._owned

    def to_json(self) -> dict[str, Any]:
        optimized = {id(p) for info in self.optimizers.values() for p in info.params}
        return {
            "models": {info.name: info.to_json(optimized) for info in self.models.values()},
            "optimizers": [info.to_json() for info in sorted(self.optimizers.values(), key=lambda info: info.index)],
        }
