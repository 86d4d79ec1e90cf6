"""`--baseline` and `--trials` together: the settings the run as written gets (a seed, where to
write its sample), then, once it has run, the baseline, the differences table and the trials (each
trial under the same `--timeout` as the run as written, so every one of them runs). Parent side, torch-free; numpy and scikit-learn are imported only
when a baseline or a trial's metric is computed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from typing import Any, Callable, Optional, Sequence

from mlplint.lint.finding import Finding
from mlplint.probe.live import LiveProgress
from mlplint.probe.stats import Stats
from mlplint.probe.trials import SEED, AsWritten, plan_trials, run_trials, with_trials


class MissingDependency(Exception):
    """numpy or scikit-learn is not installed where mlplint runs; str(error) says which."""


class Comparison:
    """One comparison: a scratch folder for the samples, the deadline, and the results."""

    def __init__(self, baseline: bool, trials: bool, timeout: float, live: Optional[LiveProgress] = None) -> None:
        if baseline or trials:
            _require(baseline)
        self.want_baseline = baseline
        self.want_trials = trials
        self.timeout = timeout
        self.live = live
        self.workdir = tempfile.mkdtemp(prefix="mlplint-compare-")
        self.main_sample = os.path.join(self.workdir, "as-written")
        os.makedirs(self.main_sample)
        self.run_seconds = 0.0
        self.baseline: Optional[dict[str, Any]] = None
        self.trials: Optional[list[dict[str, Any]]] = None
        self.untried: list[dict[str, Any]] = []

    def __enter__(self) -> "Comparison":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Remove the samples (the scratch folder)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def child_settings(self) -> dict[str, Any]:
        """The settings of the run as written: the trials' seed and where its sample goes."""
        return {"seed": SEED, "sample": {"directory": self.main_sample, "evaluate_on": None}}

    def measure(self, stats: Stats, findings: list[Finding], rerun: Callable[..., Stats], symptoms: Sequence[str] = ()) -> list[Finding]:
        """Compute the baseline and run the trials; returns the findings with the trials' verdicts.
        `rerun(timeout=..., trial=...)` runs the script again with the same arguments and budget;
        `symptoms`: the codes the run showed (a trial answers some even where no rule fired)."""
        from mlplint.probe import baseline as measuring
        from mlplint.probe.differences import differences

        on_epoch = self.live.fitting if self.live is not None else None
        try:
            result = measuring.run_baseline(stats, self.main_sample, measuring.SKLEARN_SECONDS, fit=self.want_baseline, on_epoch=on_epoch)
        finally:
            if self.live is not None:
                self.live.close()
        if self.want_baseline:
            self.baseline = result
            self.baseline["differences"] = differences(stats, result, findings)
        if not self.want_trials:
            return findings
        plans, untried = plan_trials(findings, stats, symptoms)
        self.untried = [{"code": f.code, "line": f.line, "reason": reason} for f, reason in untried]
        sample = result.get("_sample")
        evaluate_on = None
        if sample is not None:
            evaluate_on = {"path": os.path.join(self.main_sample, "inputs.f32"), "shape": [int(stats.collector("training_sample")["rows"]), *sample.meta["row_shape"]]}

        def score(trial_stats: Stats, directory: str) -> Optional[float]:
            return measuring.trial_metric(sample, trial_stats, directory) if sample is not None else None

        as_written = AsWritten(result["script"]["loss"], result["script"]["metric"], result.get("metric"),
                               self.run_seconds, stats.primary_loss(), score, evaluate_on)
        if self.live is not None and plans:
            self.live.announce(len(plans), self.run_seconds)
        self.trials = run_trials(plans, as_written, self.workdir, self.timeout, rerun, measuring.final_loss,
                                    stats.data.get("script"), self.live)
        result.pop("_sample", None)
        return with_trials(findings, plans, self.trials)

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.baseline is not None:
            document["baseline"] = {k: v for k, v in self.baseline.items() if not k.startswith("_")}
        if self.trials is not None:
            document["seed"] = SEED
            document["trials"] = self.trials
            document["untried"] = self.untried
        return document


def _require(baseline: bool) -> None:
    """Fail early, before the script runs, when what the comparison needs is not installed here
    (looked up, not imported: importing scikit-learn takes a second)."""
    if importlib.util.find_spec("numpy") is None:
        raise MissingDependency("--baseline and --trials need numpy where mlplint runs (pip install 'mlplint[probe]')")
    if baseline and importlib.util.find_spec("sklearn") is None:
        raise MissingDependency("--baseline needs scikit-learn where mlplint runs (pip install 'mlplint[probe]')")
