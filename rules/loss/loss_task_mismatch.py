from __future__ import annotations

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


def _loss_label(api: str) -> str:
    short = api.rsplit(".", 1)[-1]
    return short if api.startswith("torch.nn.") and not api.startswith("torch.nn.functional.") else f"F.{short}"


@register
class LossTaskMismatch(Rule):
    """
    ## What it does
    Finds a regression loss (MSE, L1, Huber, SmoothL1) whose targets are integer class labels
    (from `make_classification`, `load_iris`, a torchvision dataset's labels, `argmax`,
    `torch.randint`...), and a classification loss (CrossEntropy, NLL) whose targets are
    continuous values (from `make_regression`, `fetch_california_housing`, `load_diabetes`), and
    a regression loss comparing softmax outputs with one-hot targets (`F.one_hot(labels)`). The
    targets are traced through splits, tensors, datasets and loaders; unknown targets stay quiet.

    ## Why is this bad?
    Regressing class ids treats "class 2" as twice "class 1" and predicts in-between values that
    are no class at all: accuracy lags far behind a classifier on the same data. A classification
    loss on continuous targets either fails or, after a cast to integers, throws away the values.

    ## Example
    ```python
    import torch
    import torch.nn as nn
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=500, n_classes=3, n_informative=4)
    targets = torch.tensor(y).float()
    loss = nn.MSELoss()(model(torch.tensor(X).float()).squeeze(), targets)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=500, n_classes=3, n_informative=4)
    targets = torch.tensor(y).long()
    loss = nn.CrossEntropyLoss()(model(torch.tensor(X).float()), targets)
    ```
    """

    code = "ML405"
    name = "loss-task-mismatch"
    severity = Severity.ERROR
    symptoms = ("ML927",)

    VALID = [
        # distillation: MSE between softened student and teacher probabilities (no one-hot targets)
        """
import torch
import torch.nn as nn
import torch.nn.functional as F

student = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
teacher = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 3))
optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
for x, _ in loader:
    with torch.no_grad():
        soft_targets = F.softmax(teacher(x) / 2.0, dim=1)
    optimizer.zero_grad()
    loss = F.mse_loss(F.softmax(student(x) / 2.0, dim=1), soft_targets)
    loss.backward()
    optimizer.step()
""",
        # one-hot targets with MSE are a (weak but) deliberate choice
        """
import torch
import torch.nn.functional as F
labels = torch.randint(0, 10, (64,))
loss = F.mse_loss(model(x), F.one_hot(labels, 10).float())
""",
        """
import torch.nn as nn
from sklearn.datasets import make_regression
X, y = make_regression(n_samples=100, n_features=5)
loss = nn.MSELoss()(model(X), y)
""",
        """
import torch, torch.nn as nn
from sklearn.datasets import load_iris
X, y = load_iris(return_X_y=True)
loss = nn.CrossEntropyLoss()(model(torch.tensor(X).float()), torch.tensor(y))
""",
        # targets of unknown origin
        "import torch.nn as nn\nimport pandas as pd\ndf = pd.read_csv('d.csv')\nloss = nn.MSELoss()(model(x), df['y'].values)\n",
    ]
    INVALID = [
        # MSELoss on softmax outputs against one-hot targets
        Invalid(
            """
import torch
import torch.nn as nn
import torch.nn.functional as F

X = torch.randn(600, 4)
labels = torch.randint(0, 3, (600,))
targets = F.one_hot(labels, num_classes=3).float()
model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3), nn.Softmax(dim=1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    optimizer.zero_grad()
    loss = criterion(model(X), targets)
    loss.backward()
    optimizer.step()
""",
            line=14,
        ),
        Invalid(
            """
import torch
import torch.nn as nn
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
X, y = load_iris(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y)
ds = TensorDataset(torch.tensor(X_tr).float(), torch.tensor(y_tr).float())
criterion = nn.MSELoss()
for xb, yb in DataLoader(ds, batch_size=16, shuffle=True):
    loss = criterion(model(xb).squeeze(1), yb)
""",
            line=12,
            message="class labels",
        ),
        Invalid(
            """
import torch
import torch.nn.functional as F
from sklearn.datasets import fetch_california_housing
data = fetch_california_housing()
target = torch.tensor(data.target).long()
loss = F.cross_entropy(model(x), target)
""",
            line=7,
            message="continuous",
        ),
        Invalid("import torch\nimport torch.nn as nn\ny = torch.randint(0, 5, (32,)).float()\nloss = nn.L1Loss()(model(x).squeeze(), y)\n", line=4),
        Invalid(
            "import torch.nn as nn\nfrom sklearn.datasets import make_regression\nX, y = make_regression(200, 4)\n"
            "loss = nn.NLLLoss()(model(X), y)\n",
            line=4,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call, api, prediction, target in facts.loss_calls(names.REGRESSION_LOSSES | names.CLASSIFICATION_LOSSES):
            lineages = facts.data.lineages(target) if target is not None else ()
            if lineages and api in names.REGRESSION_LOSSES and all(l.one_hot for l in lineages) and prediction is not None:
                softmax = next((op for op in facts.networks.output_ops_of(prediction) if op.activation == "softmax"), None)
                if softmax is not None:
                    ctx.report(call, f"{_loss_label(api)} compares softmax probabilities ({softmax.label}, line "
                                     f"{facts.line_of(softmax.node)}) with one-hot targets: a classification trained as "
                                     "a regression, whose gradient through the softmax vanishes when a class is confidently "
                                     "wrong; use CrossEntropyLoss on the logits with the class indices as targets")
                continue
            if not lineages or any(l.source.kind == "unknown" or l.one_hot for l in lineages):
                continue
            if api in names.REGRESSION_LOSSES and all(l.source.kind == "labels" for l in lineages):
                problem = "regresses on integer class labels from {}: it treats class ids as ordered numbers; " \
                    "use CrossEntropyLoss on logits with long targets for classification"
            elif api in names.CLASSIFICATION_LOSSES and all(l.source.kind == "continuous" for l in lineages):
                problem = "is a classification loss but its targets are continuous values from {}; " \
                    "use a regression loss such as MSELoss (or bin the targets into classes on purpose)"
            else:
                continue
            source = lineages[0].source
            where = f"{source.description} (line {facts.line_of(source.node)})"
            ctx.report(call, f"{_loss_label(api)} {problem.format(where)}")
