"""A capped sample of the rows the script trained on: each step's first training input of the
model paired with the targets of the first loss call after it, kept on the model's device until
the run ends. At the end the collector writes the rows, their targets and the model's outputs on
a set of rows (the sample itself, or the rows of an earlier run for a trial) to raw float32 files
the parent process reads for the baseline. It records; the parent decides what the rows mean."""

from __future__ import annotations

import array
import os
from typing import Any, Callable, Optional

import torch

from . import Collector
from .neighbour_labels import MAX_ROWS as NEIGHBOUR_MAX_ROWS, neighbour_labels

MAX_ROWS = 20_000
# Input values kept at most (64 MB as float32): wide inputs (images) keep fewer rows.
MAX_VALUES = 16_000_000
# Without a baseline the sample only feeds the neighbour statistic (collectors/neighbour_labels.py).
NEIGHBOUR_ROWS = 2 * NEIGHBOUR_MAX_ROWS  # epochs repeat rows: twice as many, so enough are distinct
NEIGHBOUR_VALUES = 4_000_000
# Rows per forward pass when the final model is evaluated on the sample.
EVALUATION_CHUNK = 1024


def write_float32(path: str, tensor: torch.Tensor) -> None:
    """Little-endian float32 values of `tensor` (row-major), without requiring numpy."""
    flat = tensor.detach().reshape(-1).float().cpu()
    try:
        flat.numpy().astype("<f4").tofile(path)
    except (ImportError, RuntimeError):  # torch built or run without numpy
        with open(path, "wb") as handle:
            array.array("f", flat.tolist()).tofile(handle)


def read_float32(path: str, shape: list[int]) -> torch.Tensor:
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    return torch.frombuffer(data, dtype=torch.float32).reshape(shape)


class TrainingSampleCollector(Collector):
    name = "training_sample"

    def __init__(self, every: Optional[int] = None, directory: Optional[str] = None,
                 evaluate_on: Optional[dict[str, Any]] = None) -> None:
        super().__init__(every)
        self.directory = directory  # None: no baseline wants the sample, only the neighbour statistic
        self.evaluate_on = evaluate_on  # {"path", "shape"}: rows of another run the final model is evaluated on
        self.model: Optional[str] = None
        self.skipped: Optional[str] = None
        self.loss_kind: Optional[str] = None
        self.loss_reads_model_output: Optional[bool] = None
        self.row_shape: Optional[list[int]] = None
        self.input_dtype: Optional[str] = None
        self.target_dtype: Optional[str] = None
        self.target_shape: Optional[list[int]] = None
        self.rows = 0
        self.max_rows, self.max_values = (MAX_ROWS, MAX_VALUES) if directory is not None else (NEIGHBOUR_ROWS, NEIGHBOUR_VALUES)
        self.row_limit = self.max_rows
        self.evaluation: dict[str, Any] = {}
        self._inputs: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._pending: Optional[tuple[int, torch.Tensor]] = None  # (batch size, rows kept) of this step's input, waiting for its loss call
        self._last_output: Optional[torch.Tensor] = None
        self._neighbours_of = -1  # the sample's row count when the neighbour statistic was computed
        self._neighbours_found: Optional[dict[str, Any]] = None

    @property
    def active(self) -> bool:
        return self.skipped is None and self.rows < self.row_limit

    def skip(self, reason: str) -> None:
        if self.skipped is None:
            self.skipped = reason
        self._inputs, self._targets, self._pending = [], [], None

    def on_model_input(self, model: str, args: tuple) -> None:
        if not self.active:
            return
        if self.model is not None and model != self.model:
            return self.skip("the script trains several models")
        self.model = model
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if len(tensors) != 1 or len(args) != 1:
            return self.skip("the model takes several inputs" if len(tensors) > 1 else "the model's input is not a single tensor")
        x = tensors[0]
        if not x.is_floating_point():
            return self.skip(f"the model's input is {str(x.dtype).replace('torch.', '')} (token ids or indices), not features")
        if x.dim() == 0 or x.shape[0] == 0:
            return self.skip("the model's input has no batch dimension")
        row_shape = list(x.shape[1:])
        if self.row_shape is None:
            self.row_shape, self.input_dtype = row_shape, str(x.dtype).replace("torch.", "")
            width = max(1, x[0].numel())
            self.row_limit = max(1, min(self.max_rows, self.max_values // width))
        elif row_shape != self.row_shape:
            return self.skip(f"the model's input rows change shape ({self.row_shape} then {row_shape})")
        self._pending = (x.shape[0], x.detach()[: self.row_limit - self.rows].clone())

    def on_model_output(self, output: Any) -> None:
        if self.active:  # no output is held once the sample is complete
            self._last_output = output if isinstance(output, torch.Tensor) else None

    def on_loss_call(self, kind: str, input: Any, target: Any) -> None:
        if self._pending is None or not self.active:
            return
        (batch, x), self._pending = self._pending, None
        if self.loss_kind is not None and kind != self.loss_kind:
            return  # a second loss of the step (an auxiliary term); the first one decides the task
        if not isinstance(target, torch.Tensor) or target.dim() == 0 or target.shape[0] != batch or \
                not isinstance(input, torch.Tensor) or input.dim() == 0 or input.shape[0] != target.shape[0]:
            return self.skip("the loss's targets do not line up with the model's input rows")
        if self.loss_kind is None:
            self.loss_kind = kind
            self.loss_reads_model_output = input is self._last_output
            self.target_dtype = str(target.dtype).replace("torch.", "")
            self.target_shape = list(target.shape[1:])
        elif list(target.shape[1:]) != self.target_shape:
            return self.skip("the targets change shape between steps")
        self._inputs.append(x)
        self._targets.append(target.detach()[: x.shape[0]].clone())
        self.rows += x.shape[0]

    def _neighbours(self, refresh: bool) -> Optional[dict[str, Any]]:
        """The neighbour statistic of the sample, computed again only when `refresh` and the sample
        grew (flushes repeat through the run; the sample stops growing at its row limit)."""
        if not self._inputs or self.skipped is not None or not self.loss_reads_model_output:
            return None
        if refresh and self._neighbours_of != self.rows:
            try:
                self._neighbours_found = neighbour_labels(self.loss_kind, torch.cat(self._inputs), torch.cat(self._targets))
            except Exception as error:  # out of memory on the device, odd dtypes: the statistic is left out, the run kept
                self._neighbours_found = {"error": f"{type(error).__name__}: {error}"[:200]}
            self._neighbours_of = self.rows
        return self._neighbours_found

    def finish(self, module: Optional[torch.nn.Module], transform: Optional[Callable[[tuple], tuple]] = None) -> None:
        """Write the sample and the final model's outputs (eval mode, no autograd) on the rows to
        evaluate. Called once, after the script stopped and the hooks were removed."""
        if self.directory is None:
            return
        try:
            if self._inputs and self.skipped is None and self.evaluate_on is None:
                write_float32(os.path.join(self.directory, "inputs.f32"), torch.cat(self._inputs))
                write_float32(os.path.join(self.directory, "targets.f32"), torch.cat(self._targets))
            if module is None or (self.evaluate_on is None and (not self._inputs or self.skipped)):
                return
            if self.evaluate_on is not None:
                rows = read_float32(self.evaluate_on["path"], self.evaluate_on["shape"])
            else:
                rows = torch.cat(self._inputs)
            outputs = self._evaluate(module, rows, transform)
            write_float32(os.path.join(self.directory, "outputs.f32"), outputs)
        except Exception as error:  # the model cannot run on the rows: say so, keep the run's result
            self.evaluation = {"error": f"{type(error).__name__}: {error}"[:300]}
            return
        self.evaluation = {"rows": outputs.shape[0], "width": outputs.shape[1]}

    def _evaluate(self, module: torch.nn.Module, rows: torch.Tensor, transform: Optional[Callable[[tuple], tuple]]) -> torch.Tensor:
        parameter = next(module.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = getattr(torch, self.input_dtype or "float32", torch.float32)
        module.eval()
        chunks = []
        with torch.no_grad():
            for chunk in rows.split(EVALUATION_CHUNK):
                args = (chunk.to(device=device, dtype=dtype),)
                output = module(*(transform(args) if transform else args))
                if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
                    output = output[0]
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"the model returned {type(output).__name__}, not a tensor")
                chunks.append(output.detach().float().reshape(output.shape[0], -1).cpu())
        return torch.cat(chunks)

    def flush(self, neighbours: bool = True) -> dict[str, Any]:
        """`neighbours`: False at the early stats writes of a run, which keep the statistic last
        found (a small sample that grows from write to write: computing it at each was most of the
        probe's start-up time)."""
        return {
            "neighbours": self._neighbours(neighbours),
            "wanted": self.directory is not None,
            "model": self.model,
            "skipped": self.skipped,
            "rows": self.rows,
            "row_shape": self.row_shape,
            "input_dtype": self.input_dtype,
            "loss_kind": self.loss_kind,
            "loss_reads_model_output": self.loss_reads_model_output,
            "target_dtype": self.target_dtype,
            "target_shape": self.target_shape,
            "evaluation": self.evaluation,
        }
