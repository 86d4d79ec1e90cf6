from __future__ import annotations

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import nodes_within
from mlplint.lint.facts.shapes import Shape, describe
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


def _outer_broadcast(first: Shape, second: Shape) -> bool:
    """Each operand must be stretched along a dim where the other is longer: (N, 1) with (N,) or
    with (1, N) gives an (N, N) matrix. Unknown dims count as longer than 1 (a batch); one side
    stretched alone ((N, C) with (N, 1), anything with a scalar) is ordinary broadcasting."""
    if first is None or second is None or not first or not second:
        return False
    rank = max(len(first), len(second))
    left, right = (1,) * (rank - len(first)) + first, (1,) * (rank - len(second)) + second
    stretched = lambda a, b: any(x == 1 and y != 1 for x, y in zip(a, b))  # noqa: E731
    return stretched(left, right) and stretched(right, left)


def _adds_dims(loss) -> bool:
    """An operand of the difference adds a dim itself (`x[:, None]`, `y.unsqueeze(0)`): a
    broadcast the author wrote on purpose."""
    for side in (loss.first, loss.second):
        for node in nodes_within(side, (cst.Call, cst.SubscriptElement)):
            if isinstance(node, cst.SubscriptElement) and isinstance(node.slice, cst.Index) \
                    and isinstance(node.slice.value, cst.Name) and node.slice.value.value == "None":
                return True
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "unsqueeze":
                return True
    return False


def _advice(prediction: Shape, target: Shape) -> str:
    if prediction is not None and len(prediction) == 2 and prediction[1] == 1:
        return "reshape the target with `.view(-1, 1)` (or squeeze the prediction)"
    if prediction is not None and len(prediction) == 1:
        return "squeeze the target with `.view(-1)` as well"
    return "give the target the prediction's shape (`target.view_as(prediction)`)"


@register
class LossShapeBroadcast(Rule):
    """
    ## What it does
    Finds an elementwise regression loss (MSE, L1, Huber, SmoothL1) comparing a prediction of
    shape (N, 1), from a final `Linear(..., 1)`, with a target of shape (N,) (sklearn targets,
    `df["y"].values`, `torch.randn(N)`...), or the mirror case: a squeezed (N,) prediction with an
    (N, 1) target. Shapes are traced through tensors, splits, datasets and loaders, and any
    `view(-1, 1)`, `unsqueeze(1)`, `reshape`, `[:, None]` or `squeeze()` on the way.

    ## Why is this bad?
    Broadcasting turns (N, 1) against (N,) into an (N, N) matrix of differences: every prediction
    is compared with every target, so the model learns to predict the mean and the loss plateaus.
    PyTorch only emits a UserWarning ("Using a target size that is different to the input size").

    ## Example
    ```python
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    y = torch.randn(256)
    loss = nn.MSELoss()(model(torch.randn(256, 8)), y)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    y = torch.randn(256)
    loss = nn.MSELoss()(model(torch.randn(256, 8)), y.unsqueeze(1))
    ```
    """

    code = "ML406"
    name = "loss-shape-broadcast"
    severity = Severity.ERROR
    symptoms = ("ML915",)

    VALID = [
        # pairwise squared distances, broadcast on purpose
        """
import torch
a, b = torch.randn(64, 16), torch.randn(64, 16)
mmd = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1).mean()
kernel = ((a[:, 0][:, None] - b[:, 0][None, :]) ** 2).mean()
""",
        # targets appended to a list after it is made: the list's literal size says nothing
        """
import torch
import torch.nn.functional as F
targets = []
for reward in rewards:
    targets.append([reward])
loss = F.smooth_l1_loss(model.v(states), torch.tensor(targets))
""",
        # the twins of the invalid column-slice and hand-written cases, with matching shapes
        """
import torch
import torch.nn as nn
x = torch.randn(200, 3)
y = 4 + 2 * x[:, 0] - x[:, 2] + 0.1 * torch.randn(200)
model = nn.Linear(3, 1)
loss = nn.MSELoss()(model(x), y.unsqueeze(1))
""",
        """
import torch
X = torch.Tensor([[1, 0.5], [1, 2.0], [1, 4.5]])
t = torch.Tensor([0.5, 2.0, 4.5])
w = torch.randn(2, 1, requires_grad=True)
pred = X.mm(w)
loss = ((pred - t.view(-1, 1)) ** 2).mean()
loss.backward()
""",
        # the last column sliced (data[:, -1:]) keeps its (N, 1) shape
        """
import numpy as np
import torch
import torch.nn as nn

data = np.loadtxt("housing.csv", delimiter=",", skiprows=1)
X = torch.tensor(data[:, :-1], dtype=torch.float32)
y = torch.tensor(data[:, -1:], dtype=torch.float32)  # a slice keeps the column: (N, 1)
model = nn.Sequential(nn.Linear(X.shape[1], 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(X), y)
    loss.backward()
    optimizer.step()
""",
        # the lambda reshapes each tensor it builds to a column
        """
import numpy as np
import torch
import torch.nn as nn
def prepare(n=500):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, 3))
    y = rng.uniform(0, 1, n)
    col = lambda a: torch.tensor(a, dtype=torch.float32).view(-1, 1)
    return (torch.tensor(x[:400]).float(), col(y[:400])), None
(x_train, y_train), _ = prepare()
model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(x_train), y_train)
""",
        # the target is reshaped to the prediction's shape before the loss
        """
import torch
import torch.nn as nn
model = nn.Linear(3, 1)
criterion = nn.MSELoss()
x, y = torch.randn(32, 3), torch.randn(32)
out = model(x)
y = y.reshape(out.shape)
loss = criterion(out, y)
loss2 = criterion(out, torch.randn(32).view_as(out))
""",
        """
import pandas as pd
import torch
import torch.nn as nn
df = pd.read_csv("houses.csv")
y = torch.from_numpy(df["price"].values / 1e5).float().view(-1, 1)
model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
loss = torch.abs(model(x) - y).mean()
""",
        "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\ny = torch.randn(64, 1)\nloss = nn.MSELoss()(m(x), y)\n",
        "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\ny = torch.randn(64)\nloss = nn.MSELoss()(m(x).squeeze(1), y)\n",
        "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\ny = torch.randn(64)\nloss = nn.MSELoss()(m(x), y.view(-1, 1))\n",
        "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 3))\ny = torch.randn(64)\nloss = nn.MSELoss()(m(x), y)\n",
        """
import torch, torch.nn as nn
from sklearn.datasets import make_regression
X, y = make_regression(100, 4)
m = nn.Sequential(nn.Linear(4, 1))
loss = nn.L1Loss()(m(torch.tensor(X).float()), torch.tensor(y[:, None]).float())
""",
        "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\nloss = nn.MSELoss()(m(x), unknown_target)\n",
        "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\ny = torch.randn(64)\nloss = nn.MSELoss()(torch.squeeze(m(x), 1), y)\n",
        """
import torch
from torch import nn
class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    def forward(self, x):
        return self.net(x).view(-1)  # (N,), like the target
model = Regressor()
y = torch.randn(256)
loss = nn.functional.mse_loss(model(torch.randn(256, 5)), y)
""",
    ]
    INVALID = [
        # a column slice plus a 1-D draw is 1-D; a bare Linear(3, 1) gives (N, 1)
        Invalid(
            """
import torch
import torch.nn as nn
x = torch.randn(200, 3)
y = 4 + 2 * x[:, 0] - x[:, 2] + 0.1 * torch.randn(200)
model = nn.Linear(3, 1)
loss = nn.MSELoss()(model(x), y)
""",
            line=7,
            message="predictions of shape (200, 1) with targets of shape (200,)",
        ),
        # X.mm(w) is (3, 1), the target (3,): a hand-written loss broadcasts too
        Invalid(
            """
import torch
X = torch.Tensor([[1, 0.5], [1, 2.0], [1, 4.5]])
t = torch.Tensor([0.5, 2.0, 4.5])
w = torch.randn(2, 1, requires_grad=True)
pred = X.mm(w)
loss = ((pred - t) ** 2).mean()
loss.backward()
""",
            line=7,
            message="shape (3,) from one of shape (3, 1)",
        ),
        # the last column of np.loadtxt's table, indexed to 1-D, against an (N, 1) output
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn

data = np.loadtxt("housing.csv", delimiter=",", skiprows=1)
X = torch.tensor(data[:, :-1], dtype=torch.float32)
y = torch.tensor(data[:, -1], dtype=torch.float32)
model = nn.Sequential(nn.Linear(X.shape[1], 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(X), y)
    loss.backward()
    optimizer.step()
""",
            line=14,
        ),
        # 1-D targets from prepare(), as nested tuples built by a local lambda, against an (N, 1) sigmoid head
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn
def prepare(n=500):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, 3))
    y = rng.uniform(0, 1, n)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return (f(x[:400]), f(y[:400])), (f(x[400:]), f(y[400:]))
(x_train, y_train), _ = prepare()
model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.MSELoss()(model(x_train), y_train)
""",
            line=13,
            message="predictions of shape (400, 1)",
        ),
        # a 1-D target scaled from a CSV column against an (N, 1) output, in a hand-written loss
        Invalid(
            """
import pandas as pd
import torch
import torch.nn as nn
df = pd.read_csv("houses.csv")
y = torch.from_numpy(df["price"].values / 1e5).float()
model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
pred = model(x)
loss = ((pred - y) ** 2).mean()
""",
            line=9,
            message="hand-written squared error",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
from sklearn.datasets import make_regression
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

X, y = make_regression(n_samples=1000, n_features=8, noise=0.1)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
train_ds = TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.float32))
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.MSELoss()
for xb, yb in DataLoader(train_ds, batch_size=32, shuffle=True):
    loss = criterion(model(xb), yb)
""",
            line=14,
            message="(N, 1)",
        ),
        Invalid(
            """
import torch
from torch import nn
class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 16)
        self.out = nn.Linear(16, 1)
    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))
net = Regressor()
target = torch.rand(128)
loss = nn.functional.mse_loss(net(torch.rand(128, 3)), target)
""",
            line=13,
        ),
        Invalid(
            "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\ny = torch.randn(64, 1)\nloss = nn.MSELoss()(m(x).squeeze(), y)\n",
            line=4,
            message="predictions of shape (N,)",
        ),
        Invalid(
            "import torch, torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\ny = torch.randn(64, 1).flatten()\nloss = nn.SmoothL1Loss()(m(x), y)\n",
            line=4,
        ),
        Invalid(
            """
import torch
from torch import nn
class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 1)
    def forward(self, x):
        return torch.flatten(self.fc(x))
model = Regressor()
y = torch.randn(256).view(-1, 1)
loss = nn.functional.l1_loss(model(torch.randn(256, 5)), y)
""",
            line=12,
            message="predictions of shape (256,)",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call, api, prediction, target in facts.loss_calls(names.REGRESSION_LOSSES):
            if prediction is None or target is None:
                continue
            predicted, expected = facts.tensors.shape_of(prediction), facts.tensors.shape_of(target)
            if not _outer_broadcast(predicted, expected):
                continue
            ctx.report(call, f"{api.rsplit('.', 1)[-1]} compares predictions of shape {describe(predicted)} with "
                             f"targets of shape {describe(expected)}: broadcasting builds an (N, N) matrix and the model "
                             f"learns the mean; {_advice(predicted, expected)}")
        for loss in facts.hand_written_losses:
            first, second = facts.tensors.shape_of(loss.first), facts.tensors.shape_of(loss.second)
            if any(shape is not None and len(shape) > 2 for shape in (first, second)) or _adds_dims(loss):
                continue  # pairwise differences written on purpose (`(a[:, None] - b[None]) ** 2`)
            if _outer_broadcast(first, second):
                ctx.report(loss.node, f"this hand-written {loss.kind} error subtracts a tensor of shape {describe(second)} "
                                      f"from one of shape {describe(first)}: broadcasting builds an (N, N) matrix and the model learns "
                                      "the mean; give both the same shape (`.view(-1, 1)` on the target, or squeeze the "
                                      "prediction)")
