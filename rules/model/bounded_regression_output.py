from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

SIGMOID_OUTPUTS = {"torch.nn.Sigmoid", "torch.sigmoid", "torch.nn.functional.sigmoid", "torch.special.expit", "method:sigmoid"}
RELU_OUTPUTS = {
    "torch.nn.ReLU", "torch.nn.ReLU6", "torch.relu", "torch.nn.functional.relu", "torch.nn.functional.relu6", "method:relu",
}
SOFTPLUS_OUTPUTS = {"torch.nn.Softplus", "torch.nn.functional.softplus"}
RANGES = {"sigmoid": "(0, 1)", "relu": "[0, inf)", "softplus": "(0, inf)"}
SIGNED_SOURCES = {"make_regression", "make_sparse_uncorrelated", "randn", "randn_like", "normal", "standard_normal"}
UNIT_SOURCES = {"rand", "rand_like", "random", "uniform"}
CENTRING = {"sklearn.preprocessing.StandardScaler", "sklearn.preprocessing.RobustScaler"}
TO_UNIT = {"sklearn.preprocessing.MinMaxScaler", "sklearn.preprocessing.QuantileTransformer"}
LOSS_LABELS = {
    "torch.nn.functional.mse_loss": "F.mse_loss()", "torch.nn.functional.l1_loss": "F.l1_loss()",
    "torch.nn.functional.huber_loss": "F.huber_loss()", "torch.nn.functional.smooth_l1_loss": "F.smooth_l1_loss()",
}


@register
class BoundedRegressionOutput(Rule):
    """
    ## What it does
    Finds a ReLU, Sigmoid or Softplus as the last operation of a model whose output goes into a
    regression loss (`MSELoss`, `L1Loss`, `HuberLoss`, `SmoothL1Loss` or their functional forms)
    against targets the activation cannot reach: a sigmoid output against targets beyond (0, 1)
    (house prices, standardised values), a ReLU or Softplus output against targets that take
    negative values (standardised targets, `make_regression`, `torch.randn`).

    It stays quiet when the targets' range is unknown, or known to fit: images scaled to [0, 1]
    reconstructed by an autoencoder with a sigmoid output, `MinMaxScaler`-scaled targets,
    `torch.rand` targets, non-negative targets under a ReLU. A sigmoid output with `BCELoss` is
    not a regression loss and stays quiet.

    ## Why is this bad?
    The model can only predict values inside the activation's range, so every target outside it
    leaves an error that no training removes; worse, the activation's gradient vanishes exactly
    there (a saturated sigmoid, a ReLU below zero), so the last layer stops learning and the loss
    stalls. A regression head should end with a plain Linear layer.

    ## Example
    ```python
    import torch
    import torch.nn as nn
    from sklearn.datasets import fetch_california_housing

    X, y = fetch_california_housing(return_X_y=True)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    loss = nn.MSELoss()(model(torch.tensor(X).float()), torch.tensor(y).float().view(-1, 1))
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn
    from sklearn.datasets import fetch_california_housing

    X, y = fetch_california_housing(return_X_y=True)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
    loss = nn.MSELoss()(model(torch.tensor(X).float()), torch.tensor(y).float().view(-1, 1))
    ```
    """

    code = "ML305"
    name = "bounded-regression-output"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ("ML925", "ML907")

    VALID = [
        # one lambda builds inputs beyond 1 and targets inside (0, 1): each call keeps its own values
        """
import numpy as np
import torch
import torch.nn as nn
def prepare(n=500):
    rng = np.random.default_rng(0)
    area = rng.uniform(50, 250, n)
    share = rng.uniform(0.1, 0.9, n)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return (f(area[:400]), f(share[:400])), (f(area[400:]), f(share[400:]))
(x_train, y_train), (x_test, y_test) = prepare()
model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(x_train.view(-1, 1) / 250), y_train.view(-1, 1))
""",
        # stated targets inside the sigmoid's range
        """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
area = rng.uniform(0, 1, 500)
share = 0.2 + 0.5 * area
model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(torch.tensor(area).float().view(-1, 1)), torch.tensor(share).float().view(-1, 1))
""",
        # a plain Linear output
        """
import torch
import torch.nn as nn
from sklearn.datasets import make_regression
X, y = make_regression(n_samples=200, n_features=5)
model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1))
loss = nn.MSELoss()(model(torch.tensor(X).float()), torch.tensor(y).float().unsqueeze(1))
""",
        # sigmoid with BCELoss on probabilities
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(5, 1), nn.Sigmoid())
loss = nn.BCELoss()(model(x), y)
""",
        # an autoencoder reconstructing images scaled to [0, 1]
        """
import torch
import torch.nn as nn
from torchvision import datasets, transforms
from torch.utils.data import DataLoader
data = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
loader = DataLoader(data, batch_size=64, shuffle=True)
autoencoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 784), nn.Sigmoid())
criterion = nn.MSELoss()
for images, _ in loader:
    loss = criterion(autoencoder(images), images.view(-1, 784))
""",
        # MinMax-scaled targets fit a sigmoid
        """
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
from sklearn.preprocessing import MinMaxScaler
X, y = fetch_california_housing(return_X_y=True)
y = MinMaxScaler().fit_transform(y.reshape(-1, 1))
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(torch.tensor(X).float()), torch.tensor(y).float())
""",
        # non-negative targets (prices) under a ReLU output: intended
        """
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
X, y = fetch_california_housing(return_X_y=True)
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1), nn.ReLU())
loss = nn.L1Loss()(model(torch.tensor(X).float()), torch.tensor(y).float().view(-1, 1))
""",
        # targets of unknown range: cannot tell
        """
import torch
import torch.nn as nn
import pandas as pd
df = pd.read_csv("data.csv")
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(torch.tensor(df[["a", "b", "c", "d"]].values).float()), torch.tensor(df["y"].values).float())
""",
    ]
    INVALID = [
        # targets and inputs returned from prepare() as nested tuples, built by a local lambda
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn
def prepare(n=500):
    rng = np.random.default_rng(0)
    area = rng.uniform(0, 1, n)
    price = 1.5 + 3 * area + rng.normal(0, 0.2, n)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return (f(area[:400]), f(price[:400])), (f(area[400:]), f(price[400:]))
(x_train, y_train), (x_test, y_test) = prepare()
model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(x_train.view(-1, 1)), y_train.view(-1, 1))
""",
            line=12,
            message="go beyond 1",
        ),
        # targets whose range the script states: prices in units of 100,000, up to about 5
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
area = rng.uniform(0, 1, 500)
price = 1.5 + 3 * area + rng.normal(0, 0.2, 500)
model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(torch.tensor(area).float().view(-1, 1)), torch.tensor(price).float().view(-1, 1))
""",
            line=8,
            message="go beyond 1",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
X, y = fetch_california_housing(return_X_y=True)
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(torch.tensor(X).float()), torch.tensor(y).float().view(-1, 1))
""",
            line=6,
            message="beyond 1",
        ),
        Invalid(
            """
import torch
from torch import nn
import torch.nn.functional as F
from sklearn.datasets import make_regression
from sklearn.preprocessing import StandardScaler
class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(10, 32)
        self.out = nn.Linear(32, 1)
    def forward(self, x):
        return F.relu(self.out(F.relu(self.hidden(x))))
X, y = make_regression(n_samples=500, n_features=10)
y = StandardScaler().fit_transform(y.reshape(-1, 1))
model = Regressor()
prediction = model(torch.tensor(X, dtype=torch.float32))
loss = F.mse_loss(prediction, torch.tensor(y, dtype=torch.float32))
""",
            line=13,
            message="negative",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
if __name__ == "__main__":
    x = torch.randn(256, 3)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(256, 1)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1), nn.Softplus())
    criterion = nn.SmoothL1Loss()
    for step in range(100):
        loss = criterion(net(x), 2.0 * torch.randn(256, 1))
""",
            line=7,
            message="nn.Softplus",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_diabetes
data = load_diabetes()
dataset = TensorDataset(torch.tensor(data.data).float(), torch.tensor(data.target).float())
loader = DataLoader(dataset, batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
criterion = nn.HuberLoss()
for xb, yb in loader:
    loss = criterion(torch.sigmoid(model(xb)).squeeze(1), yb)
""",
            line=12,
            message="torch.sigmoid()",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        reported = set()
        for call, api, prediction, target in facts.loss_calls(names.REGRESSION_LOSSES):
            if prediction is None or target is None:
                continue
            ops = facts.networks.output_ops_of(prediction)
            if not ops:
                continue
            target_range = self._target_range(facts, target)
            if target_range is None:
                continue
            kind_found, description = target_range
            for op in ops:
                bound = _bound(op.api)
                if bound is None or id(op.node) in reported:
                    continue
                if bound == "sigmoid" and kind_found in ("signed", "beyond-one"):
                    why = "take negative values" if kind_found == "signed" else "go beyond 1"
                elif bound in ("relu", "softplus") and kind_found == "signed":
                    why = "take negative values"
                else:
                    continue
                reported.add(id(op.node))
                loss = LOSS_LABELS.get(api, api.rsplit(".", 1)[-1])
                ctx.report(
                    op.node,
                    f"{op.label} limits the model's output to {RANGES[bound]}, but {loss} (line {facts.line_of(call)}) "
                    f"regresses it onto {description}, which {why}: those targets can never be reached and the "
                    "activation's gradient vanishes there; end the model with the Linear layer (no output activation)",
                )

    @staticmethod
    def _target_range(facts, target: cst.BaseExpression) -> Optional[tuple[str, str]]:
        """('signed' | 'beyond-one' | 'unit', description) when every lineage of the targets agrees."""
        found = set()
        descriptions = []
        for lineage in facts.data.lineages(target):
            classified = _classify(facts, lineage)
            if classified is None:
                return _stated_range(facts, target)
            found.add(classified[0])
            descriptions.append(classified[1])
        if len(found) != 1:
            return None
        return found.pop(), descriptions[0]


def _stated_range(facts, target: cst.BaseExpression) -> Optional[tuple[str, str]]:
    """The targets' kind from the value range the script states (draws and arithmetic)."""
    value = facts.tensors.range_of(target)
    if value is None:
        return None
    kind = "signed" if value.low < 0 else "beyond-one" if value.high > 1 else "unit"
    return kind, f"targets of about {value.low:,.3g} to {value.high:,.3g}"


def _bound(api: str) -> Optional[str]:
    if api in SIGMOID_OUTPUTS:
        return "sigmoid"
    if api in RELU_OUTPUTS:
        return "relu"
    if api in SOFTPLUS_OUTPUTS:
        return "softplus"
    return None


def _classify(facts, lineage) -> Optional[tuple[str, str]]:
    source = lineage.source
    short = source.description.split("(")[0].split()[0] if source.description else ""
    if source.kind == "continuous":
        kind = "signed" if short in SIGNED_SOURCES else "beyond-one"
    elif source.kind == "features" and short in SIGNED_SOURCES:
        kind = "signed"
    elif source.kind == "features" and short in UNIT_SOURCES:
        kind = "unit"
    elif source.kind == "images":
        kind = "unit" if (source.magnitude or 0) <= 1 else "beyond-one"
    else:
        return None
    description = f"{source.description} targets" if source.kind != "continuous" else source.description
    if source.kind != "continuous" and short in SIGNED_SOURCES | UNIT_SOURCES:
        description = f"`{short}` targets"
    for op, node in lineage.ops:
        if op == "scale":
            scaled = _scaling(facts, node)
            if scaled is None:
                return None
            kind = scaled if scaled != "keep" else kind
            description = f"standardised {description}" if scaled == "signed" else description
        elif op.startswith("times:") and kind == "unit":
            return None
    return kind, description


def _scaling(facts, node: cst.CSTNode) -> Optional[str]:
    """What a scaling step makes of the targets: 'signed' (centred), 'unit' ([0, 1]) or None."""
    if isinstance(node, cst.Call):
        qualified = facts.qualname(node.func)
        if qualified in ("sklearn.preprocessing.scale", "scipy.stats.zscore"):
            return "signed"
        if qualified == "sklearn.preprocessing.minmax_scale":
            return "unit"
        if isinstance(node.func, cst.Attribute):
            classes = {c for c in facts.classes_of(node.func.value) if isinstance(c, str)}
            if classes and classes <= CENTRING:
                return "signed"
            if classes and classes <= TO_UNIT:
                return "unit"
        return None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
        left = node.left
        if isinstance(left, cst.BinaryOperation) and isinstance(left.operator, cst.Subtract):
            return "signed"  # (y - mean) / std
    return None
