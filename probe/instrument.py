"""The probe's in-process session: installs the hooks, runs the user's script as `__main__`,
stops it after the step budget, always removes the hooks, and writes what the collectors recorded.

Runs inside the child process under the user's interpreter: torch and the standard library only.
It records and never judges; the parent process judges the written statistics.
"""

from __future__ import annotations

import faulthandler
import functools
import json
import os
import runpy
import sys
import time
import traceback
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.optim import lr_scheduler
from torch.optim import optimizer as optimizer_hooks
from torch.utils.data import DataLoader

from .collectors import Collector
from .epochs import ShortEpochs
from .manual_updates import HandWrittenUpdates, ManualSteps, global_names
from .collectors.adam_epsilon import AdamEpsilonCollector
from .collectors.activations import ActivationCollector
from .collectors.batches import BatchCollector
from .collectors.eval_mode import EvalModeCollector
from .collectors.grad_forwards import GradForwardCollector
from .collectors.grad_scaler import GradScalerCollector
from .collectors.gradients import GradientCollector
from .collectors.graph_growth import GraphGrowthCollector
from .collectors.init_signal import InitSignalCollector
from .collectors.input_features import InputFeatureCollector
from .collectors.loss import LossCollector
from .collectors.loss_graph import LossGraphCollector
from .collectors.loss_inputs import LOSS_FUNCTIONS, LossInputCollector
from .collectors.training_sample import TrainingSampleCollector
from .collectors.loss_targets import LossTargetCollector
from .collectors.optimizer_constructions import OptimizerConstructionCollector
from .collectors.output_activation import OutputActivationCollector
from .collectors.rank_params import RankParamCollector
from .collectors.scaler_fits import ScalerFitCollector
from .collectors.scheduler_calls import SchedulerCallCollector
from .collectors.step_mode import StepModeCollector
from .collectors.unit_similarity import UnitSimilarityCollector
from .collectors.updates import UpdateRatioCollector
from .collectors.weight_decay import WeightDecayCollector
from .collectors.zero_grad import ZeroGradCollector
from .patches import Patches
from .distributed import CpuMapping, current_rank, dump_stacks_on_signal, needs_world_of_one, rank_file, set_world_of_one
from .interventions import Intervention, from_config, run_source, seed_everything
from .tracking import ModelInfo, Tracker

STATS_SCHEMA = 1
# Statistics are written to the stats file at steps 1, 2, 4, 8, 16 and every FLUSH_SECONDS, so a run
# that is killed or hangs keeps what was measured; the interval grows to FLUSH_COST_FACTOR times the
# last write's duration, so writing the growing stats takes at most ~1/FLUSH_COST_FACTOR of the run.
FLUSH_SECONDS = 2.0
FLUSH_COST_FACTOR = 100
EARLY_FLUSH_STEPS = {1, 2, 4, 8, 16}


class StepBudgetReached(BaseException):
    """Raised from the optimizer-step post-hook to stop the script after the step budget.

    A BaseException so that the script's `except Exception` handlers do not swallow it; a bare
    `except:` that does is met at the next optimizer step, which ends the process."""


class Session:
    def __init__(self, steps: int, stats_path: Optional[str] = None, every: Optional[dict[str, int]] = None,
                 sample: Optional[dict[str, Any]] = None, intervention: Optional[Intervention] = None,
                 progress_path: Optional[str] = None, distributed: bool = False) -> None:
        every = every or {}
        sample = sample or {}
        self.budget = steps
        self.manual = ManualSteps()
        self.stats_path = stats_path
        self.progress_path = progress_path
        self._progress: Optional[int] = None  # file descriptor of the progress file, while installed
        self.tracker = Tracker()
        self.loss = LossCollector(every.get("loss"))
        self.activations = ActivationCollector(every.get("activations"))
        self.gradients = GradientCollector(every.get("gradients"))
        self.updates = UpdateRatioCollector(every.get("updates"))
        self.inputs = InputFeatureCollector(every.get("input_features"))
        self.loss_inputs = LossInputCollector(every.get("loss_inputs"))
        self.zero_grad = ZeroGradCollector(every.get("zero_grad"))
        self.eval_mode = EvalModeCollector(every.get("eval_mode"))
        self.sample = TrainingSampleCollector(None, sample.get("directory"), sample.get("evaluate_on"))
        self.intervention = intervention  # the one change a trial applies (--trials)
        self.step_mode = StepModeCollector(every.get("step_mode"))
        self.grad_forwards = GradForwardCollector(every.get("grad_forwards"))
        self.schedulers = SchedulerCallCollector(every.get("scheduler_calls"))
        self.batches = BatchCollector(every.get("batches"))
        self.scaler_fits = ScalerFitCollector(every.get("scaler_fits"))
        self.epochs = ShortEpochs(steps, self.scaler_fits.on_loader_pass)
        self.graph_growth = GraphGrowthCollector(every.get("graph_growth"))
        self.output_activation = OutputActivationCollector(every.get("output_activation"))
        self.loss_targets = LossTargetCollector(every.get("loss_targets"))
        self.loss_graph = LossGraphCollector(every.get("loss_graph"))
        self.unit_similarity = UnitSimilarityCollector(every.get("unit_similarity"))
        self.init_signal = InitSignalCollector()
        self.adam_epsilon = AdamEpsilonCollector(every.get("adam_epsilon"))
        self.weight_decay = WeightDecayCollector(every.get("weight_decay"))
        self.optimizer_constructions = OptimizerConstructionCollector(every.get("optimizer_constructions"))
        self.rank_params = RankParamCollector(every.get("rank_params"), enabled=distributed)
        self.grad_scaler = GradScalerCollector(every.get("grad_scaler"))
        self.distributed = distributed
        self.mapped: list[str] = []  # what was changed to run the script here (distributed.py)
        self.collectors: list[Collector] = [
            self.loss, self.activations, self.gradients, self.updates,
            self.inputs, self.loss_inputs, self.zero_grad, self.eval_mode, self.sample,
            self.step_mode, self.grad_forwards, self.schedulers, self.batches, self.scaler_fits,
            self.graph_growth, self.output_activation, self.loss_targets, self.loss_graph, self.unit_similarity,
            self.init_signal, self.adam_epsilon, self.weight_decay, self.optimizer_constructions,
            self.rank_params, self.grad_scaler,
        ]
        # Collectors with nothing to do between the steps their schedules sample: their hooks are
        # skipped at steps where none of them is due (one check per distinct schedule and step
        # instead of one per hook).
        sampled_only = [self.activations, self.inputs, self.output_activation, self.loss_inputs, self.loss_targets,
                        self.loss_graph, self.updates, self.adam_epsilon, self.unit_similarity]
        self._schedules = [Collector(every) for every in sorted({collector.every for collector in sampled_only})]
        self._sampling = True  # whether one of them is due at the current step (step 0 is every schedule's)
        self.counts = {"forward": 0, "backward": 0}
        self._root_calls = 0  # nesting depth of root-model forwards (a root model may call another)
        self._measuring: Optional[ModelInfo] = None  # the root model whose layers this forward measures
        self._measured: dict[str, int] = {}  # model -> the latest step whose first training forward it has run
        self._first_forward = False  # whether the root forward running is the model's first of the step
        self._handles: list[Any] = []  # removed by remove(): optimizer hooks and per-model hooks
        self._discovery: Optional[Any] = None  # the global forward pre-hook, while models are looked for
        self._layer_hook: Optional[Any] = None  # the global forward hook, while layers are measured
        self._patches = Patches()
        self._last_flush = time.monotonic()
        self._flush_interval = FLUSH_SECONDS
        self._early_flushed: set[int] = set()  # the EARLY_FLUSH_STEPS written (each once, whatever optimizer reached it)
        self._encoded: dict[str, tuple[Any, str]] = {}  # collector -> (its flush() at the last write, that as JSON)
        self._pid = os.getpid()

    # -- installing and removing ---------------------------------------------------------------
    def install(self) -> None:
        self._handles = [
            optimizer_hooks.register_optimizer_step_pre_hook(self._before_step),
            optimizer_hooks.register_optimizer_step_post_hook(self._after_step),
        ]
        for model in self.tracker.models.values():  # known from an earlier install
            self._hook_root(model.module)
        self._discover(True)
        self._patches.wrap(torch.autograd, "backward", self._wrap_backward)  # Tensor.backward calls it too
        self._patches.wrap(torch.autograd, "grad", self._wrap_grad)
        self._patches.wrap(torch.optim.Optimizer, "zero_grad", self._wrap_optimizer_zero_grad)
        self._patches.wrap(nn.Module, "zero_grad", self._wrap_module_zero_grad)
        for kind in LOSS_FUNCTIONS:
            self._patches.wrap(F, kind, functools.partial(self._wrap_loss, kind))
        self._patches.wrap(lr_scheduler.LRScheduler, "__init__", self.schedulers.wrap_init)
        for scheduler_class in _scheduler_classes():
            self._patches.wrap(scheduler_class, "step", functools.partial(self.schedulers.wrap_step, optimizer_steps=self._optimizer_steps,
                                                                   step=lambda: self.tracker.step))
        self._patches.wrap(os, "_exit", self._wrap_os_exit)
        self._patches.wrap(DataLoader, "__iter__", self.epochs.wrap_iter)
        self._patches.wrap(torch.optim.Optimizer, "__init__", self.manual.wrap_optimizer_init)
        self._patches.wrap(torch.optim.Optimizer, "__init__", self._wrap_optimizer_init)
        self.scaler_fits.install()
        self._patches.wrap(torch.amp.GradScaler, "step", lambda original: self.grad_scaler.wrap_step(original, lambda: self.tracker.step))
        if self.progress_path is not None and self._progress is None:
            self._progress = os.open(self.progress_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if self.intervention is not None:
            self.intervention.install()

    def remove(self) -> None:
        self.grad_forwards.judge_pending()
        self.grad_forwards.remove_hooks()
        self.scaler_fits.remove()
        self.graph_growth.remove()
        if self._progress is not None:
            os.close(self._progress)
            self._progress = None
        self._discover(False)
        self._measure_layers(None)
        self.init_signal.stop()
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._root_calls = 0
        self._patches.remove()

    # -- running -------------------------------------------------------------------------------
    def run_script(self, script: str, args: list[str], source: Optional[str] = None) -> dict[str, Any]:
        """Run the script as __main__ with sys.argv = [script, *args]; return the final stats.
        `source`: a file with the script's text changed by a trial's autofix, run in its place."""
        saved_argv, saved_path = sys.argv, list(sys.path)
        sys.argv = [script, *args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        status, error = "completed", None
        self.install()
        try:
            if source is None:
                runpy.run_path(script, run_name="__main__")
            else:
                run_source(source, script)
        except StepBudgetReached:
            status = "step-budget"
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                status, error = "crashed", _error_record(exit_, script, f"script exited with status {exit_.code!r}")
        except BaseException as exc:  # the script's own failure is a result, not ours
            status, error = "crashed", _error_record(exc, script)
        finally:
            self.remove()
            sys.argv, sys.path[:] = saved_argv, saved_path
        self._finish_sample()
        if status == "completed" and self.tracker.step == 0:
            status = "no-training"
        stats = self.stats(status, error)
        self.write(stats)
        return stats

    def stats(self, status: str, error: Optional[dict[str, Any]], early: bool = False) -> dict[str, Any]:
        """`early`: one of the writes at EARLY_FLUSH_STEPS (the neighbour statistic is not computed again)."""
        devices = [info.device for info in self.tracker.models.values()]
        return {
            "schema": STATS_SCHEMA,
            "status": status,
            "error": error,
            "steps": self.tracker.step,
            "budget": self.budget,
            "epochs": self.epochs.to_json(),
            **self.manual.to_json(),
            "mapped": self.mapped,
            **({"rank": current_rank()} if self.distributed else {}),
            "device": devices[0] if devices else ("cuda" if torch.cuda.is_available() else "cpu"),
            "seen": {
                "models": len(self.tracker.models),
                "optimizers": len(self.tracker.optimizers),
                **self.counts,
            },
            **self.tracker.to_json(),
            "collectors": {collector.name: self.sample.flush(neighbours=not early) if collector is self.sample
                           else collector.flush() for collector in self.collectors},
        }

    def _finish_sample(self) -> None:
        models = [info.module for info in self.tracker.models.values() if info.name == self.sample.model]
        if not models and len(self.tracker.models) == 1:
            models = [info.module for info in self.tracker.models.values()]
        transform = (lambda args: self.intervention.before_model(models[0], args)) if self.intervention and models else None
        self.sample.finish(models[0] if models else None, transform)

    def write(self, stats: dict[str, Any]) -> None:
        if self.stats_path is None or os.getpid() != self._pid:  # never from DataLoader workers
            return
        temporary = f"{self.stats_path}.partial"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(self._encode(stats))
        os.replace(temporary, self.stats_path)

    def _encode(self, stats: dict[str, Any]) -> str:
        """The stats as JSON (json.dumps: the C encoder; dump to a stream is not). A collector's part
        is encoded again only when its flush() returned another object than at the last write: one
        whose record is complete returns the same object (input features: thousands of floats)."""
        parts = []
        for name, collected in stats["collectors"].items():
            last = self._encoded.get(name)
            if last is None or last[0] is not collected:
                last = self._encoded[name] = (collected, json.dumps(collected))
            parts.append(f"{json.dumps(name)}: {last[1]}")
        head = json.dumps({key: value for key, value in stats.items() if key != "collectors"})
        return f'{head[:-1]}, "collectors": {{{", ".join(parts)}}}}}'

    # -- hooks ---------------------------------------------------------------------------------
    # A global module hook sends every module call through torch's slow path, so global hooks are on
    # only when needed: a pre-hook that discovers root models until the first optimizer step, and
    # after it while an optimizer updates parameters of no known model; a forward hook on each
    # layer's output during a measured forward. Known root models carry their own pre-/post-hooks.
    def _discover(self, on: bool) -> None:
        if on and self._discovery is None:
            self._discovery = module_hooks.register_module_forward_pre_hook(self._find_root)
        elif not on and self._discovery is not None:
            self._discovery.remove()
            self._discovery = None

    def _measure_layers(self, model: Optional[ModelInfo]) -> None:
        self._measuring = model
        if model is not None and self._layer_hook is None:
            self._layer_hook = module_hooks.register_module_forward_hook(self._after_layer)
        elif model is None and self._layer_hook is not None:
            self._layer_hook.remove()
            self._layer_hook = None

    def _find_root(self, module: nn.Module, args: tuple) -> None:
        if self._root_calls or id(module) in self.tracker.models:
            return
        model = self.tracker.root_model(module)
        if model is not None:  # its own hooks fire from its next call; this call is handled here
            self._hook_root(module)
            return self._before_root(module, args)
        return None

    def _hook_root(self, module: nn.Module) -> None:
        self._handles += [module.register_forward_pre_hook(self._before_root),
                          module.register_forward_hook(self._after_root, always_call=True)]

    def _before_root(self, module: nn.Module, args: tuple) -> Optional[tuple]:
        self._root_calls += 1
        if self._root_calls > 1:
            return None
        if self.intervention is None:
            self._record_root_input(module, args)
            return None
        args = self.intervention.before_model(module, args)
        self._record_root_input(module, args)
        return args

    def _record_root_input(self, module: nn.Module, args: tuple) -> None:
        model = self.tracker.models[id(module)]
        self.counts["forward"] += 1
        step = self.tracker.step
        self._first_forward = False
        if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
            self.eval_mode.on_no_grad_forward(step, model.name, model.module.training, model.mode_layers)
            self.scaler_fits.on_model_input(False, args)
            return
        self.grad_forwards.settle()  # before another forward: a pass watched since the last backward gets a hook
        if self._measured.get(model.name) == step:
            self.grad_forwards.start_measuring([record["tensor"] for record in model.params.values()])
            return
        self._measured[model.name] = step
        self._first_forward = True
        self.batches.on_model_input(step, args)
        self.scaler_fits.on_model_input(True, args)
        if self._sampling and self.inputs.due(step):
            self.inputs.on_model_input(step, model.name, args)
        self.sample.on_model_input(model.name, args)
        if self._sampling and self.activations.due(step):
            self._measure_layers(model)
        if step == 0:
            self.init_signal.start(model.name, model.module)

    def _after_root(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._root_calls = max(0, self._root_calls - 1)
        if self._root_calls == 0:
            self._measure_layers(None)
            self.init_signal.stop()
            saved_bytes = self.grad_forwards.stop_measuring()
            model = self.tracker.models.get(id(module))
            if model is not None and torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
                self.grad_forwards.on_forward(self.tracker.step, model.name, output, saved_bytes)
                if self._first_forward and self._sampling:
                    self.output_activation.on_output(self.tracker.step, model.name, output)
            self.sample.on_model_output(output)

    def _after_layer(self, module: nn.Module, args: tuple, output: Any) -> None:
        # layers are looked up (and unregistered ones adopted) on measured steps only
        layer = self.tracker.layer(self._measuring, module) if self._measuring is not None else None
        if layer is not None and layer[2]:
            dropping = module.training and not getattr(module, "inplace", False)
            self.activations.on_layer_output(self.tracker.step, self._measuring.name, layer[0], layer[1], output, dropping, args)
            self.init_signal.on_layer(layer[0], layer[1], module, args, output)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if not isinstance(optimizer, HandWrittenUpdates):
            self.manual.optimizers_seen += 1
        if self.tracker.step >= self.budget:  # the script caught StepBudgetReached and went on
            self.remove()
            self._finish_sample()
            self.write(self.stats("step-budget", None))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        info = self.tracker.optimizer(optimizer)
        step = self.tracker.step
        stepped = self.tracker.stepped_models(info)
        self.step_mode.before_step(step, info.index, stepped)
        if self.grad_forwards.pending:
            self.grad_forwards.judge_pending([model.name for model in stepped + self.tracker.unoptimized_models()])
        self.graph_growth.before_step(step)
        cleared = self.zero_grad.calls_since_step(id(optimizer)) > 0
        self.gradients.before_step(info.index, step, info.named_params, cleared)
        if self._sampling:
            self.updates.before_step(info.index, step, info.named_params)
        self.weight_decay.before_step(optimizer, info.index, step)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        info = self.tracker.optimizer(optimizer)
        step = self.tracker.step
        if self._sampling:
            self.updates.after_step(info.index)
            self.adam_epsilon.after_step(optimizer, info.index, step)
            self.unit_similarity.after_step(step, info.index, info.named_params)
        self.loss.on_step(info.index, step)
        self.zero_grad.on_step(id(optimizer), info.index, step)
        self.optimizer_constructions.after_step(optimizer)
        self.tracker.count_step(info)
        self._sampling = any(collector.due(self.tracker.step) for collector in self._schedules)
        self.gradients.after_step(info.index, self.tracker.step, info.params)
        self.rank_params.after_step(self.tracker.step, info.index, info.named_params)
        self._report_progress(info.index)
        if self.tracker.step >= self.budget:
            raise StepBudgetReached()
        step = self.tracker.step
        self._discover(self.tracker.has_unowned_params())
        early = step in EARLY_FLUSH_STEPS and step not in self._early_flushed
        if self.stats_path is not None and (early or time.monotonic() - self._last_flush >= self._flush_interval):
            self._early_flushed.add(step)
            started = time.monotonic()
            self.write(self.stats("running", None, early=early))
            self._last_flush = time.monotonic()
            self._flush_interval = max(FLUSH_SECONDS, FLUSH_COST_FACTOR * (self._last_flush - started))

    # -- wrappers (each takes the original and returns its replacement) --------------------------
    def _wrap_backward(self, original: Callable) -> Callable:
        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            self.counts["backward"] += 1
            loss = tensors if isinstance(tensors, torch.Tensor) else next(iter(tensors), None)
            roots = None  # the nodes the backward pass starts from, unless it differentiates some inputs only
            if isinstance(loss, torch.Tensor):
                self.loss.on_backward(loss)
                if self._sampling:
                    self.loss_graph.on_backward(self.tracker.step, loss)
                self.graph_growth.on_backward(loss)
                if self.grad_forwards.watched and loss.grad_fn is not None and kwargs.get("inputs") is None and len(args) < 5:
                    roots = [loss.grad_fn]
            if not self.manual.active:
                self.gradients.on_backward()
                self.grad_forwards.settle(roots)
                return original(tensors, *args, **kwargs)
            updates = self.manual.before_backward(loss)
            if self.manual.open:  # the script has applied its update since the last backward
                self.manual.open = False
                self._after_step(updates, (), {})
            self.gradients.on_backward()  # after the previous hand-written step is closed
            self.grad_forwards.settle(roots)
            result = original(tensors, *args, **kwargs)
            if updates is not None:
                if not self.tracker.optimizers:
                    self.tracker.optimizer(updates, global_names())
                self._before_step(updates, (), {})
                self.manual.open = True
            return result

        return backward

    def _wrap_grad(self, original: Callable) -> Callable:
        def grad(*args: Any, **kwargs: Any) -> Any:
            self.grad_forwards.settle()
            return original(*args, **kwargs)

        return grad

    def _wrap_optimizer_init(self, original: Callable) -> Callable:
        def __init__(optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> None:
            original(optimizer, *args, **kwargs)
            self.tracker.built(optimizer)
            self.optimizer_constructions.on_construction(optimizer, self.tracker.step)

        return __init__

    def _wrap_optimizer_zero_grad(self, original: Callable) -> Callable:
        def zero_grad(optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
            self.zero_grad.on_optimizer_zero_grad(id(optimizer))
            return original(optimizer, *args, **kwargs)

        return zero_grad

    def _wrap_module_zero_grad(self, original: Callable) -> Callable:
        def zero_grad(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            self.zero_grad.on_module_zero_grad()
            return original(module, *args, **kwargs)

        return zero_grad

    def _wrap_loss(self, kind: str, original: Callable) -> Callable:
        def loss(*args: Any, **kwargs: Any) -> Any:
            input = args[0] if args else kwargs.get("input")
            target = args[1] if len(args) > 1 else kwargs.get("target")
            reduction = kwargs.get("reduction", "mean")
            recorded = self._sampling and self.loss_inputs.on_loss_call(self.tracker.step, kind, input, target, reduction)
            if self._sampling:
                self.loss_targets.on_loss_call(self.tracker.step, kind, input, target)
            if torch.is_grad_enabled():
                self.batches.on_loss_call(self.tracker.step, kind, input, target)
            if self.sample.active:
                self.sample.on_loss_call(kind, input, target)
            try:
                result = original(*args, **kwargs)
            except Exception:  # a loss that rejects its input (BCE outside [0, 1]) ends the run: keep that input
                if not recorded:
                    self.loss_inputs.on_loss_call(self.tracker.step, kind, input, target, reduction, failing=True)
                raise
            if recorded:
                self.loss_inputs.on_loss_value(result)
            self.grad_forwards.on_loss(input, result)
            return result

        return loss


    def _wrap_os_exit(self, original: Callable) -> Callable:
        def _exit(code: int) -> None:  # the script leaves at once: write what was measured first
            self.remove()
            error = None if code == 0 else {"type": "SystemExit", "message": f"script exited with status {code!r} (os._exit)",
                                            "file": None, "line": None, "traceback": ""}
            self.write(self.stats("completed" if code == 0 and self.tracker.step else "no-training" if code == 0 else "crashed", error))
            sys.stdout.flush()
            sys.stderr.flush()
            original(code)

        return _exit

    def _optimizer_steps(self, optimizer: Any) -> tuple[Optional[int], int]:
        info = self.tracker.optimizers.get(id(optimizer))
        return (info.index, info.steps) if info is not None else (None, 0)

    def _report_progress(self, optimizer_index: int) -> None:
        """One line per optimizer step in the progress file: steps taken, optimizer, its loss when
        it is already on the host (a CUDA loss is not copied, which would wait for the device).
        A run that dies without writing its stats (a segfault) still tells how far it got."""
        if self._progress is None or os.getpid() != self._pid:
            return
        value = self.loss.last_value
        shown = f"{value.item():.6g}" if value is not None and value.device.type == "cpu" else ""
        try:
            os.write(self._progress, f"{self.tracker.step} {optimizer_index} {shown}\n".encode())
        except OSError:
            pass


def _scheduler_classes() -> list[type]:
    """The learning-rate scheduler classes that define their own step()."""
    found, pending = [], [lr_scheduler.LRScheduler]
    while pending:
        cls = pending.pop()
        if "step" in cls.__dict__:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _error_record(exc: BaseException, script: str, message: Optional[str] = None) -> dict[str, Any]:
    """The exception and where it happened: the innermost frame in the script, else the innermost."""
    frames = traceback.extract_tb(exc.__traceback__)
    script_path = os.path.abspath(script)
    in_script = [f for f in frames if os.path.abspath(f.filename) == script_path]
    where = (in_script or frames or [None])[-1]
    return {
        "type": type(exc).__name__,
        "message": message or str(exc),
        "file": where.filename if where else None,
        "line": where.lineno if where else None,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-20:]),
        "time": time.time(),  # which rank of a distributed run failed first
    }


def main(argv: list[str]) -> int:
    """`child.py CONFIG_JSON`: the config names the script, its arguments, the budget and the stats file
    (under torchrun, one per rank: the paths hold a `{rank}` placeholder). The exit status is 1 when
    a rank of a distributed run crashed, so that torchrun ends the other ranks."""
    faulthandler.enable()  # a segfault still says where it happened (in the captured output)
    with open(argv[0], encoding="utf-8") as handle:
        config = json.load(handle)
    distributed = config.get("ranks", 1) > 1
    rank = current_rank() if distributed else 0
    progress_path = rank_file(config.get("progress_path"), rank)
    if distributed:
        dump_stacks_on_signal(rank_file(config["trace_path"], rank))
        with open(progress_path, "a", encoding="ascii") as handle:
            handle.write(f"# pid {os.getpid()}\n")  # the parent signals this process for its stack on a timeout
    if config.get("seed") is not None:
        seed_everything(config["seed"])
    session = Session(config["steps"], rank_file(config["stats_path"], rank), config.get("every"), config.get("sample"),
                      from_config(config.get("intervention")), progress_path, distributed)
    if not distributed and needs_world_of_one(config["script"]):
        set_world_of_one(session.mapped)
    if not torch.cuda.is_available():
        CpuMapping(session.mapped).install()  # for the whole process: the script's code runs until it exits
    stats = session.run_script(config["script"], config["args"], config.get("source"))
    return 1 if distributed and stats["status"] == "crashed" else 0
