from __future__ import annotations

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class SigmoidBeforeBceWithLogits(Rule):
    """
    ## What it does
    Finds probabilities (the output of a sigmoid) fed to `nn.BCEWithLogitsLoss` or
    `F.binary_cross_entropy_with_logits`: `nn.Sigmoid` as the last layer, `torch.sigmoid` as the
    last operation of `forward()`, or applied to the model output before the loss.

    ## Why is this bad?
    BCEWithLogitsLoss applies the sigmoid itself (in a numerically stable log-sum-exp form). A
    sigmoid before it squashes the inputs into (0, 1), so the loss sees logits between 0 and 1,
    its predictions never go below 0.5, and the gradients vanish as the model learns.

    ## Example
    ```python
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    loss = nn.BCEWithLogitsLoss()(model(x), y)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    loss = nn.BCEWithLogitsLoss()(model(x), y)
    probability = torch.sigmoid(model(x))  # only for predictions
    ```
    """

    code = "ML402"
    name = "sigmoid-before-bce-with-logits"
    severity = Severity.ERROR
    symptoms = ("ML914", "ML904")

    VALID = [
        "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1))\nloss = nn.BCEWithLogitsLoss()(m(x), y)\n",
        # sigmoid before BCELoss is the right pairing
        "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())\nloss = nn.BCELoss()(m(x), y)\n",
        # sigmoid for metrics only
        """
import torch
import torch.nn.functional as F
logits = model(x)
loss = F.binary_cross_entropy_with_logits(logits, y)
accuracy = ((torch.sigmoid(logits) > 0.5) == y).float().mean()
""",
        # a gate inside the network is not its output
        """
import torch
import torch.nn as nn
class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(4, 4)
        self.out = nn.Linear(4, 1)
    def forward(self, x):
        return self.out(x * torch.sigmoid(self.gate(x)))
net = Gated()
loss = nn.BCEWithLogitsLoss()(net(x), y)
""",
    ]
    INVALID = [
        Invalid(
            "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())\nloss = nn.BCEWithLogitsLoss()(m(x), y)\n",
            line=2,
            message="nn.Sigmoid",
        ),
        Invalid(
            """
import torch
from torch import nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 1)
    def forward(self, x):
        return torch.sigmoid(self.fc(x))
def train(model, loader, criterion):
    for x, y in loader:
        loss = criterion(model(x), y)
train(Net(), [], nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0)))
""",
            line=9,
        ),
        Invalid(
            "import torch.nn.functional as F\nloss = F.binary_cross_entropy_with_logits(out.sigmoid(), target)\n",
            line=2,
        ),
        Invalid(
            "import torch\nimport torch.nn.functional as F\nprob = torch.sigmoid(model(x))\nloss = F.binary_cross_entropy_with_logits(prob, y)\n",
            line=3,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call, _, prediction, _ in facts.loss_calls(names.BCE_WITH_LOGITS):
            for op in facts.networks.output_ops_of(prediction) if prediction is not None else ():
                if op.activation == "sigmoid":
                    ctx.report(
                        op.node,
                        f"{op.label} squashes the output into (0, 1), then BCEWithLogitsLoss (line {facts.line_of(call)}) "
                        "applies its own sigmoid: predictions never drop below 0.5 and gradients vanish; "
                        "feed raw logits to the loss and apply the sigmoid only for predictions",
                    )
