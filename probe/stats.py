"""The recorded statistics of one probe run as the parent process reads them (torch-free).

The child writes a plain JSON document (see `instrument.Session.stats`); this wraps it with the
accessors the detectors share, so each detector reads the data the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator, Optional


class StatsError(Exception):
    """A statistics file that cannot be read; str(error) is a one-line reason."""


class Stats:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def load(cls, path: str) -> "Stats":
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise StatsError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise StatsError(f"{path}: cannot read: {error}") from None
        except json.JSONDecodeError as error:
            raise StatsError(f"{path}: not a probe statistics file (invalid JSON: {error})") from None
        if not isinstance(data, dict) or "collectors" not in data or "status" not in data:
            raise StatsError(f"{path}: not a probe statistics file (no 'status' or 'collectors')")
        return cls(data)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=1)

    @property
    def steps(self) -> int:
        return int(self.data.get("steps", 0))

    def collector(self, name: str) -> dict[str, Any]:
        return self.data.get("collectors", {}).get(name, {})

    def records(self, name: str) -> list[dict[str, Any]]:
        return self.collector(name).get("records", [])

    @property
    def models(self) -> dict[str, Any]:
        return self.data.get("models", {})

    def layer_label(self, model: str, layer: str) -> str:
        """A layer's name in reports: qualified by its model when the script trains several."""
        return f"{model}.{layer}" if len(self.models) > 1 else layer

    def optimizer_label(self, index: str) -> Optional[str]:
        """What an optimizer trains, for reports; None when there is only one optimizer."""
        optimizers = self.data.get("optimizers", [])
        if len(optimizers) <= 1:
            return None
        params = optimizers[int(index)].get("params", []) if int(index) < len(optimizers) else []
        owners = sorted({name.split(".")[0] for name in params if len(self.models) > 1})
        return f"optimizer {index}" + (f" ({', '.join(owners)})" if owners else "")

    def layer_checks(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Activation records grouped by (model, layer), each group in step order."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in self.records("activations"):
            groups.setdefault((record["model"], record["layer"]), []).append(record)
        return groups

    def rank_collectors(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        """(rank, that rank's record of a collector) for every rank of a torchrun job; empty for a
        single process."""
        return [(record["rank"], record.get("collectors", {}).get(name, {})) for record in self.data.get("ranks") or []]

    def param_info(self, name: str) -> dict[str, Any]:
        """A parameter's recorded shape and flags, by the name gradient and update records use."""
        if len(self.models) > 1:
            model, _, name = name.partition(".")
            return self.models.get(model, {}).get("params", {}).get(name, {})
        for model in self.models.values():
            return model.get("params", {}).get(name, {})
        return {}

    def layer_type(self, name: str) -> Optional[str]:
        """The class of the layer a layer or parameter name belongs to (`Dropout` for '2',
        `Linear` for '0.weight'), as gradient, update and mode records name them."""
        if len(self.models) > 1:
            model, _, name = name.partition(".")
            layers = self.models.get(model, {}).get("layers", {})
        else:
            layers = next(iter(self.models.values()), {}).get("layers", {})
        return layers.get(name) or layers.get(name.rsplit(".", 1)[0])

    def gradient_totals(self) -> dict[int, list[tuple[int, float]]]:
        """Per optimizer, (step, global gradient norm) at each gradient check that saw gradients."""
        totals: dict[int, list[tuple[int, float]]] = {}
        for record in self.records("gradients"):
            norms = list(record.get("norms", {}).values())
            if norms:
                totals.setdefault(record["optimizer"], []).append((record["step"], math.sqrt(sum(n * n for n in norms))))
        return totals

    def update_ratio_checks(self) -> dict[int, list[tuple[int, float]]]:
        """Per optimizer, (step, median update/weight ratio over weight matrices) at each update check."""
        checks: dict[int, list[tuple[int, float]]] = {}
        for record in self.records("updates"):
            ratios = [r for name, r in record.get("ratios", {}).items()
                      if finite(r) and len(self.param_info(name).get("shape", [])) >= 2]
            if ratios:
                checks.setdefault(record["optimizer"], []).append((record["step"], median(ratios)))
        return checks

    def typical_update_ratio(self) -> Optional[float]:
        """The median over the whole run of the update/weight ratio checks, None if none ran."""
        medians = [m for checks in self.update_ratio_checks().values() for _, m in checks]
        return median(medians) if medians else None

    def loss_series(self) -> Iterator[tuple[Optional[str], list[tuple[int, float]]]]:
        """(label, [(step, loss), ...]) per optimizer; steps without a backward() are left out."""
        for _, label, series in self.indexed_loss_series():
            yield label, series

    def indexed_loss_series(self) -> Iterator[tuple[str, Optional[str], list[tuple[int, float]]]]:
        """(optimizer index, label, [(step, loss), ...]) per optimizer."""
        for index, series in self.collector("loss").get("series", {}).items():
            yield index, self.optimizer_label(index), [(int(step), float(value)) for step, value in series if value is not None]

    def competing_losses(self) -> int:
        """How many different losses the optimizers minimise (several optimizers stepping on the
        same loss count once): more than one is adversarial or alternating training (a GAN),
        where each loss going flat or swinging is expected."""
        return len({tuple(value for _, value in series) for _, series in self.loss_series() if series})

    def warming_up(self, index: str) -> Optional[tuple[float, float]]:
        """(first, last) lr of an optimizer whose learning rate rose more than twofold during the
        run (a warm-up schedule), else None."""
        optimizers = self.data.get("optimizers", [])
        record = optimizers[int(index)] if int(index) < len(optimizers) else {}
        for first, last in zip(record.get("first_lr") or [], record.get("lr") or []):
            if first is not None and last is not None and last > 2 * first:
                return first, last
        return None

    def primary_loss(self) -> list[float]:
        """The first optimizer's loss per step (the contract's `loss` list)."""
        for _, series in self.loss_series():
            return [value for _, value in series]
        return []


def finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
