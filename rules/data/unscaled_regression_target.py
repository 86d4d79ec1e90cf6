from __future__ import annotations

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class UnscaledRegressionTarget(Rule):
    """
    ## What it does
    Finds regression targets of large magnitude (house prices in the hundreds of thousands,
    salaries, counts in the thousands) fed raw to `MSELoss`, `L1Loss`, `HuberLoss` or
    `SmoothL1Loss` (or their functional forms). The targets' range comes from what the script
    states: random draws and the arithmetic on them, literal arrays, column stacks and DataFrames
    built from them, followed through tensors, datasets and loaders to the loss. Targets whose
    scale cannot be known (a CSV column, a custom loader) stay quiet, and so do predictions that
    the script scales back up itself (`model(x) * 1e5`).

    The threshold is the largest target magnitude that still counts as scaled:
    `[tool.mlplint.unscaled-regression-target] max-magnitude = 1000.0`.

    ## Why is this bad?
    A freshly initialised network predicts values near 0, so targets around 300,000 start with a
    squared error near 1e11: the gradients are huge, any usual learning rate diverges and a tiny
    one makes the hidden layers learn nothing while the last bias crawls towards the mean.
    Standardising the targets (or dividing them by a fixed scale such as 1e5, or taking their
    log) and undoing it on the predictions fixes it.

    ## Example
    ```python
    import numpy as np
    import torch
    import torch.nn as nn

    rng = np.random.default_rng(0)
    area = rng.uniform(50, 250, 1000)
    price = 1500 * area + rng.normal(0, 20000, 1000)
    model = nn.Linear(1, 1)
    x = torch.tensor(area / 250, dtype=torch.float32).view(-1, 1)
    y = torch.tensor(price, dtype=torch.float32).view(-1, 1)
    loss = nn.MSELoss()(model(x), y)
    ```

    Use instead:
    ```python
    import numpy as np
    import torch
    import torch.nn as nn

    rng = np.random.default_rng(0)
    area = rng.uniform(50, 250, 1000)
    price = 1500 * area + rng.normal(0, 20000, 1000)
    model = nn.Linear(1, 1)
    x = torch.tensor(area / 250, dtype=torch.float32).view(-1, 1)
    y = torch.tensor(price / 1e5, dtype=torch.float32).view(-1, 1)
    loss = nn.MSELoss()(model(x), y)
    ```
    """

    code = "ML105"
    name = "unscaled-regression-target"
    severity = Severity.WARNING
    symptoms = ("ML935", "ML902", "ML905", "ML901", "ML912")
    options = {"max-magnitude": 1000.0}

    VALID = [
        """
import torch
import torch.nn as nn
raw = torch.tensor([float(v) for v in range(1, 5000)]).unsqueeze(1)
inputs = (raw - raw.mean()) / raw.std()
targets = inputs ** 2
model = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()
""",
        # targets scaled to units of 100,000
        """
import numpy as np
import torch
import torch.nn.functional as F
rng = np.random.default_rng(0)
price = 200000 + rng.normal(0, 50000, 800)
y = torch.tensor(price / 1e5, dtype=torch.float32)
loss = F.mse_loss(model(x).squeeze(1), y)
""",
        # a log transform
        """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
price = 200000 + rng.uniform(0, 50000, 800)
y = torch.tensor(np.log(price), dtype=torch.float32)
loss = nn.L1Loss()(model(x).squeeze(1), y)
""",
        # the model's output is scaled up to the targets' range
        """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
price = 200000 + rng.normal(0, 50000, 800)
y = torch.tensor(price, dtype=torch.float32)
loss = nn.MSELoss()(model(x).squeeze(1) * 1e5, y)
""",
        # targets of unknown scale (a CSV column)
        """
import pandas as pd
import torch
import torch.nn as nn
df = pd.read_csv("houses.csv")
y = torch.tensor(df["price"].values, dtype=torch.float32)
loss = nn.MSELoss()(model(x).squeeze(1), y)
""",
        # standardised targets
        """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
price = 200000 + rng.normal(0, 50000, 800)
price = (price - price.mean()) / price.std()
loss = nn.MSELoss()(model(x).squeeze(1), torch.tensor(price).float())
""",
        # moderate targets (ages, temperatures)
        """
import torch
import torch.nn as nn
y = torch.randint(18, 90, (256,)).float()
loss = nn.MSELoss()(model(x).squeeze(1), y)
""",
    ]
    INVALID = [
        # the square of 1..4999: up to 2.5e7
        Invalid(
            """
import torch
import torch.nn as nn
inputs = torch.tensor([float(v) for v in range(1, 5000)]).unsqueeze(1)
targets = inputs ** 2
model = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    optimizer.step()
""",
            line=11,
            message="24,990,001",
        ),
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
rng = np.random.default_rng(0)
sqft = rng.uniform(500, 3500, 2000)
price = 50000 + 120 * sqft + rng.normal(0, 10000, 2000)
X = torch.tensor(sqft / 3500, dtype=torch.float32).view(-1, 1)
y = torch.tensor(price, dtype=torch.float32).view(-1, 1)
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
criterion = nn.MSELoss()
for xb, yb in loader:
    loss = criterion(model(xb), yb)
""",
            line=14,
            message="80,000 to 500,000",
        ),
        Invalid(
            """
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
rng = np.random.default_rng(0)
rooms = rng.integers(1, 8, 500)
df = pd.DataFrame({"rooms": rooms, "price": 90000 + 40000 * rooms + rng.normal(0, 5000, 500)})
target = torch.tensor(df["price"].values, dtype=torch.float32)
loss = F.smooth_l1_loss(model(x).squeeze(-1), target)
""",
            line=10,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        limit = ctx.options["max-magnitude"]
        for call, api, prediction, target in facts.loss_calls(names.REGRESSION_LOSSES):
            if prediction is None or target is None or self._rescaled(facts, prediction):
                continue
            value = facts.tensors.range_of(target)
            if value is None or value.magnitude <= limit:
                continue
            loss = api.rsplit(".", 1)[-1]
            ctx.report(
                target,
                f"{loss} regresses onto targets of about {value.low:,.0f} to {value.high:,.0f}, raw: the first "
                f"errors are near {value.magnitude ** 2:.0e} and their gradients dwarf everything else; standardise "
                "the targets (or divide them by a fixed scale, or take their log) and undo it on the predictions",
            )

    @staticmethod
    def _rescaled(facts, prediction: cst.BaseExpression) -> bool:
        """The prediction is multiplied or shifted by something large on the way to the loss
        (`model(x) * 1e5`, `out * std + mean`): the script undoes a target scaling itself."""
        todo, seen = [prediction], set()
        while todo:
            expr = todo.pop()
            if expr in seen or len(seen) > 32:
                continue
            seen.add(expr)
            if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Multiply, cst.Add)):
                return True
            if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
                todo.append(expr.func.value)
            todo.extend(o for o in facts.origins(expr) if o is not expr)
        return False
