"""Which rows scikit-learn's scalers were fitted on, and whether the model later trains or is
evaluated on those rows. Rows are identified by a hash of their float32 values, computed the
same way on numpy arrays (in the scalers) and on tensors (the model's inputs): a row a scaler was
fitted on and then transformed is followed to the model through its scaled values.

Active only when the script imports scikit-learn: `fit`, `transform` and `fit_transform` of the
scalers are wrapped when `sklearn.preprocessing` is imported (or at once, when it already was).
numpy is used only inside those wrappers, so the instrumentation itself needs torch alone."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Any, Callable, Optional

import torch

from . import Collector

SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "QuantileTransformer", "PowerTransformer")
# Rows hashed at most per set (fitted rows, training rows, evaluation rows).
MAX_ROWS = 200_000
# Rows hashed per model input at most (an evaluation pass over a large test set is sampled).
MAX_ROWS_PER_INPUT = 4096
_MODULE = "sklearn.preprocessing"


def column_weights(columns: int) -> list[int]:
    """Odd 63-bit multipliers per column, the same sequence in numpy and torch."""
    state, weights = 0x9E3779B97F4A7C15, []
    for _ in range(columns):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        weights.append((state >> 1) | 1)
    return weights


def numpy_row_hashes(values: Any) -> list[int]:
    import numpy as np

    array = np.asarray(values)
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        return []
    bits = np.ascontiguousarray(array[:MAX_ROWS], dtype=np.float32).view(np.int32).astype(np.int64)
    weights = np.array(column_weights(bits.shape[1]), dtype=np.uint64).astype(np.int64)
    with np.errstate(over="ignore"):
        return (bits * weights).sum(axis=1).tolist()


def tensor_row_hashes(x: torch.Tensor, limit: int = MAX_ROWS_PER_INPUT) -> torch.Tensor:
    """One hash per row of a 2-D tensor (its first `limit` rows), computed MAX_ROWS_PER_INPUT rows
    at a time so that hashing a whole dataset needs little memory."""
    rows = x.detach()[:limit]
    weights = torch.tensor([w - (1 << 64) if w >= 1 << 63 else w for w in column_weights(rows.shape[1])], dtype=torch.int64, device=rows.device)
    chunks = [
        (rows[start:start + MAX_ROWS_PER_INPUT].float().contiguous().view(torch.int32).to(torch.int64) * weights).sum(dim=1)
        for start in range(0, len(rows), MAX_ROWS_PER_INPUT)
    ]
    return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.int64, device=rows.device)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Calls `patch(module)` right after `sklearn.preprocessing` is executed."""

    def __init__(self, patch: Callable[[Any], None]) -> None:
        self.patch = patch

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            self.patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


class ScalerFitCollector(Collector):
    name = "scaler_fits"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.fits: list[dict[str, Any]] = []
        self._fitted_raw: dict[int, set[int]] = {}  # id(scaler) -> hashes of the rows of its latest fit
        self._fitted_scaled: set[int] = set()  # hashes of the scaled values of rows a scaler was fitted on
        self._rows: dict[str, set[int]] = {"train": set(), "eval": set()}
        self._datasets: dict[int, Any] = {}  # id(dataset) -> hashes of its rows (a TensorDataset's inputs)
        self._pending: list[tuple[str, torch.Tensor]] = []
        self._depth = 0
        self._finder: Optional[_PatchOnImport] = None
        self._patches: list[tuple[Any, str, Any]] = []

    # -- installing ----------------------------------------------------------------------------
    def install(self) -> None:
        module = sys.modules.get(_MODULE)
        if module is not None:
            self._patch_scalers(module)
        else:
            self._finder = _PatchOnImport(self._patch_scalers)
            sys.meta_path.insert(0, self._finder)

    def remove(self) -> None:
        if self._finder is not None and self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        self._finder = None
        for owner, attribute, original in reversed(self._patches):
            if original is None:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)
        self._patches = []

    def _patch_scalers(self, module: Any) -> None:
        for name in SCALERS:
            cls = getattr(module, name, None)
            for method, wrap in (("fit", self._wrap_fit), ("transform", self._wrap_transform), ("fit_transform", self._wrap_fit_transform)):
                original = getattr(cls, method, None)
                if original is None:
                    continue
                # an inherited method is restored by deleting the override (None)
                self._patches.append((cls, method, cls.__dict__.get(method)))
                setattr(cls, method, wrap(original))

    # -- the wrappers --------------------------------------------------------------------------
    def _outermost(self, call: Callable[[], Any], record: Callable[[Any], None]) -> Any:
        outer = self._depth == 0
        self._depth += 1
        try:
            result = call()
        finally:
            self._depth -= 1
        if outer:
            try:
                record(result)
            except Exception:  # measuring must never break the script
                pass
        return result

    def _wrap_fit(self, original: Callable) -> Callable:
        def fit(scaler: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
            return self._outermost(lambda: original(scaler, X, *args, **kwargs), lambda _: self._on_fit(scaler, X))
        return fit

    def _wrap_transform(self, original: Callable) -> Callable:
        def transform(scaler: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
            return self._outermost(lambda: original(scaler, X, *args, **kwargs), lambda result: self._on_transform(scaler, X, result))
        return transform

    def _wrap_fit_transform(self, original: Callable) -> Callable:
        def fit_transform(scaler: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
            def record(result: Any) -> None:
                self._on_fit(scaler, X)
                self._on_transform(scaler, X, result)
            return self._outermost(lambda: original(scaler, X, *args, **kwargs), record)
        return fit_transform

    def _on_fit(self, scaler: Any, X: Any) -> None:
        hashes = numpy_row_hashes(X)
        self._fitted_raw[id(scaler)] = set(hashes)
        self.fits.append({"class": type(scaler).__name__, "rows": len(hashes)})

    def _on_transform(self, scaler: Any, X: Any, result: Any) -> None:
        fitted = self._fitted_raw.get(id(scaler))
        if not fitted:
            return
        raw, scaled = numpy_row_hashes(X), numpy_row_hashes(result)
        for raw_hash, scaled_hash in zip(raw, scaled):
            if raw_hash in fitted and len(self._fitted_scaled) < MAX_ROWS:
                self._fitted_scaled.add(scaled_hash)

    # -- the model's inputs --------------------------------------------------------------------
    def on_model_input(self, training: bool, args: tuple) -> None:
        x = args[0] if args else None
        if not self.fits or not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
            return
        kind = "train" if training else "eval"
        if len(self._rows[kind]) < MAX_ROWS:
            self._pending.append((kind, tensor_row_hashes(x)))

    def on_loader_pass(self, loader: Any) -> None:
        """Hash the input rows of a DataLoader's dataset once (a TensorDataset of 2-D features),
        so that the whole training set is known, not only the rows a short run reached."""
        dataset = getattr(loader, "dataset", None)
        tensors = getattr(dataset, "tensors", None)
        if not self.fits or id(dataset) in self._datasets or not tensors:
            return
        x = tensors[0]
        if isinstance(x, torch.Tensor) and x.dim() == 2 and x.is_floating_point():
            self._datasets[id(dataset)] = tensor_row_hashes(x, MAX_ROWS)

    def flush(self) -> dict[str, Any]:
        for kind, hashes in self._pending:
            self._rows[kind].update(hashes.tolist())
        self._pending = []
        train, evaluated = self._rows["train"], self._rows["eval"]
        held_out = evaluated - train
        self._datasets = {key: set(rows.tolist()) if isinstance(rows, torch.Tensor) else rows for key, rows in self._datasets.items()}
        training_sets = [rows for rows in self._datasets.values() if rows & train]  # datasets the model trained from
        training_data = set().union(*training_sets)
        return {
            "every": self.every,
            "fits": self.fits,
            "fitted_rows_followed": len(self._fitted_scaled),
            "train_rows": len(train),
            "train_rows_fitted": len(train & self._fitted_scaled),
            "eval_rows": len(evaluated),
            "held_out_rows": len(held_out),
            "held_out_rows_fitted": len(held_out & self._fitted_scaled),
            "training_data_rows": len(training_data),
            "training_data_rows_fitted": len(training_data & self._fitted_scaled),
            "fitted_rows_outside_training_data": len(self._fitted_scaled - training_data) if training_data else 0,
        }
