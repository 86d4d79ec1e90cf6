"""Helpers for the probe tests: running the real CLI, and recorded-statistics builders."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys
from pathlib import Path
from typing import Any, Optional

from mlplint.probe.stats import Stats

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "probe"


def run_cli(*args: str, cwd: Optional[Path] = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real `mlplint` command in a subprocess, with text output."""
    return subprocess.run(
        [sys.executable, "-m", "mlplint", *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def run_all(commands: dict[str, list[str]], parallel: int = 3) -> dict:
    """`run_cli` for each command, `parallel` at a time (the runs are independent subprocesses)."""
    with ThreadPoolExecutor(parallel) as pool:
        futures = {key: pool.submit(run_cli, *command) for key, command in commands.items()}
        return {key: future.result() for key, future in futures.items()}


def probe_json(*args: str, **kwargs: Any) -> tuple[dict, subprocess.CompletedProcess]:
    result = run_cli("probe", "--format", "json", *args, **kwargs)
    assert result.stdout, result.stderr
    return json.loads(result.stdout), result


def codes(document: dict) -> set[str]:
    return {symptom["code"] for symptom in document["symptoms"]}


# -- recorded statistics, as the child writes them ---------------------------------------------

def mlp_model(layers: int = 3, width: int = 8) -> dict:
    """A Sequential of `layers` Linear layers with ReLUs between them, as the tracker records it."""
    params, layer_types = {}, {"<root>": "Sequential"}
    for i in range(layers):
        index = 2 * i
        layer_types[str(index)] = "Linear"
        params[f"{index}.weight"] = {"shape": [width, width], "requires_grad": True, "registered": True, "in_optimizer": True}
        params[f"{index}.bias"] = {"shape": [width], "requires_grad": True, "registered": True, "in_optimizer": True}
        if i < layers - 1:
            layer_types[str(index + 1)] = "ReLU"
    return {"class": "Sequential", "device": "cpu", "layers": layer_types, "params": params}


def recorded(steps: int = 50, model: Optional[dict] = None, **collectors: Any) -> Stats:
    """A run's statistics with the given collector records (others empty)."""
    model = model or mlp_model()
    data = {
        "schema": 1, "status": "step-budget", "error": None, "steps": steps, "budget": steps, "device": "cpu",
        "seen": {"models": 1, "optimizers": 1, "forward": steps, "backward": steps},
        "models": {"Sequential": model},
        "optimizers": [{"class": "SGD", "lr": [0.1], "params": list(model["params"]), "steps": steps}],
        "collectors": {
            "loss": {"every": 1, "series": {"0": [[i, v] for i, v in enumerate(collectors.pop("loss", []))]}},
            # a list is a collector's records; a dict is the whole collector (those with other fields)
            **{name: value if isinstance(value, dict) else {"every": 5, "records": value} for name, value in collectors.items()},
        },
    }
    return Stats(json.loads(json.dumps(data)))


def activation(step: int, layer: str, kind: str, **values: float) -> dict:
    record = {"step": step, "model": "Sequential", "layer": layer, "type": kind, "mean": 0.5, "std": 1.0,
              "unit_std": 1.0, "frac_zero": None, "frac_saturated": None, "frac_dead_units": None, "nonfinite": 0.0}
    if kind in ("ReLU", "ReLU6"):
        record.update(frac_zero=0.0, frac_dead_units=0.0)
    record.update(values)
    return record


def gradient(step: int, norms: dict[str, float], retained: Optional[float] = 0.0, missing: Optional[list] = None) -> dict:
    return {"step": step, "optimizer": 0, "norms": norms, "missing": missing or [], "retained": retained}


def loss_call(step: int, kind: str, input_shape: list, target_shape: list, **values: Any) -> dict:
    record = {"step": step, "kind": kind, "input_shape": input_shape, "target_shape": target_shape,
              "target_dtype": "int64", "reduction": "mean", "training": True, "input_min": -2.0, "input_max": 2.0,
              "row_sum_deviation": None, "class_counts": None, "binary_counts": None}
    record.update(values)
    return record
