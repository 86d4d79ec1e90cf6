"""The value-range analysis: ranges carried through draws and arithmetic; unknown stays unknown."""

from __future__ import annotations

import libcst as cst
import pytest

from mlplint.lint.facts import ScriptFacts

PRELUDE = """
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
rng = np.random.default_rng(0)
n = 500
"""


def _range(body: str):
    """The range of the argument of the script's last `probe(...)` call."""
    facts = ScriptFacts(cst.parse_module(PRELUDE + body))
    probes = [c for c in facts.calls if isinstance(c.func, cst.Name) and c.func.value == "probe"]
    return facts.tensors.range_of(probes[-1].args[0].value)


@pytest.mark.parametrize("body, low, high", [
    ("probe(rng.choice([4, 6, 8], n))", 4, 8),
    ("cyl = rng.choice([4, 6, 8], n)\nprobe(cyl * 30 + rng.normal(0, 20, n))", 60, 300),
    ("disp = rng.uniform(100, 400, n)\nprobe(1500 + disp * 7.5)", 2250, 4500),
    ("probe(np.random.randint(0, 10, size=n).astype(np.float32))", 0, 9),
    ("probe(torch.randint(3, 7, (n,)))", 3, 6),
    ("probe(-torch.rand(n, 2) * 5)", -5, 0),
    ("x = rng.normal(50000, 15000, n)\nprobe(np.clip(x, 0, 60000))", 5000, 60000),
    ("probe(np.log(rng.uniform(1, 100, n)))", 0, 4.61),
])
def test_ranges_follow_draws_and_arithmetic(body, low, high):
    found = _range(body)
    assert found is not None
    assert found.low == pytest.approx(low, abs=0.01) and found.high == pytest.approx(high, abs=0.01)


def test_column_stack_keeps_one_range_per_column():
    found = _range("a = rng.choice([4, 6, 8], n)\nb = rng.uniform(0, 5000, n)\nprobe(np.column_stack([a, b]))")
    assert [(c.low, c.high) for c in found.columns] == [(4, 8), (0, 5000)]
    assert (found.low, found.high) == (0, 5000)


def test_dataframe_columns_by_name_and_drop():
    body = ('df = pd.DataFrame({"rooms": rng.integers(1, 8, n), "price": rng.uniform(1e5, 5e5, n)})\n'
            'probe(df["price"].values)\nprobe(df.drop(columns=["price"]).to_numpy())')
    assert (_range(body).low, _range(body).high) == (1, 7)
    assert _range(body.rsplit("\n", 1)[0]).high == 5e5


def test_loader_batches_get_the_dataset_tensors_range():
    body = ("y = torch.tensor(rng.uniform(1e5, 5e5, n)).view(-1, 1)\nX = torch.rand(n, 3)\n"
            "for xb, yb in DataLoader(TensorDataset(X, y), batch_size=32):\n    probe(yb)")
    assert _range(body).high == 5e5


@pytest.mark.parametrize("body", [
    'df = pd.read_csv("houses.csv")\nprobe(df["price"].values)',  # a CSV column: scale unknown
    "x = rng.normal(50000, 15000, n)\nprobe((x - x.mean()) / x.std())",  # standardised: divisor may be 0
    "x = rng.normal(50000, 15000, n)\nx /= 1000\nprobe(x)",  # changed in place
    "x = rng.uniform(1, 2, n)\nfor _ in range(10):\n    x = x * 2\nprobe(x)",  # loop-carried
    "probe(scaler.transform(rng.uniform(0, 1e4, n)))",  # an unknown call
])
def test_unknown_stays_unknown(body):
    assert _range(body) is None
