"""The shared analysis of one script (see `core.ScriptFacts`)."""

from __future__ import annotations

import functools

from mlplint.lint.facts.amp import ScalerAnalysis
from mlplint.lint.facts.core import Binding, ScriptFacts as _CoreFacts
from mlplint.lint.facts.data import DataAnalysis, Lineage, Source
from mlplint.lint.facts.distributed import DistributedAnalysis
from mlplint.lint.facts.evaluation import EvaluationAnalysis, EvaluationPass
from mlplint.lint.facts.handwritten import HandWrittenLoss, HandWrittenLosses
from mlplint.lint.facts.initialization import Init, InitAnalysis
from mlplint.lint.facts.intervals import ValueRange
from mlplint.lint.facts.loaders import LoaderAnalysis
from mlplint.lint.facts.models import NetworkAnalysis, Network, Op
from mlplint.lint.facts.tensors import TensorAnalysis, TensorValue
from mlplint.lint.facts.training import TrainingAnalysis
from mlplint.lint.facts.updates import ParameterUpdate, ParameterUpdates


class ScriptFacts(_CoreFacts):
    @functools.cached_property
    def networks(self) -> NetworkAnalysis:
        return NetworkAnalysis(self)

    @functools.cached_property
    def initialization(self) -> InitAnalysis:
        return InitAnalysis(self)

    @functools.cached_property
    def data(self) -> DataAnalysis:
        return DataAnalysis(self)

    @functools.cached_property
    def hand_written_losses(self) -> list[HandWrittenLoss]:
        return HandWrittenLosses(self).all

    @functools.cached_property
    def tensors(self) -> TensorAnalysis:
        return TensorAnalysis(self)

    @functools.cached_property
    def parameter_updates(self) -> list[ParameterUpdate]:
        return ParameterUpdates(self).all

    @functools.cached_property
    def training(self) -> TrainingAnalysis:
        return TrainingAnalysis(self)

    @functools.cached_property
    def evaluation(self) -> EvaluationAnalysis:
        return EvaluationAnalysis(self)

    @functools.cached_property
    def loaders(self) -> LoaderAnalysis:
        return LoaderAnalysis(self)

    @functools.cached_property
    def distributed(self) -> DistributedAnalysis:
        return DistributedAnalysis(self)

    @functools.cached_property
    def scalers(self) -> ScalerAnalysis:
        return ScalerAnalysis(self)


__all__ = ["Binding", "DataAnalysis", "DistributedAnalysis", "EvaluationAnalysis", "EvaluationPass", "HandWrittenLoss", "Init", "InitAnalysis", "Lineage", "LoaderAnalysis", "Source", "Network", "NetworkAnalysis", "Op", "ParameterUpdate", "ScalerAnalysis", "ScriptFacts", "TensorAnalysis", "TensorValue", "TrainingAnalysis", "ValueRange"]
