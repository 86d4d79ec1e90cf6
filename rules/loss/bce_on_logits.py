from __future__ import annotations

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

LOGIT_LAYERS = names.LINEAR_LAYERS | names.CONV_LAYERS


@register
class BceOnLogits(Rule):
    """
    ## What it does
    Finds `nn.BCELoss` / `F.binary_cross_entropy` fed the raw output of a Linear or convolution
    layer (logits) instead of probabilities: the model's last operation is traced from the loss
    call through variables, `forward()` and `nn.Sequential`.

    ## Why is this bad?
    BCELoss expects probabilities in [0, 1] and takes their log. Logits outside that range make
    it fail with "all elements of input should be between 0 and 1", or, when they happen to stay
    inside, train towards the wrong target. BCEWithLogitsLoss takes logits and is also
    numerically stabler than a separate sigmoid and BCELoss.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    loss = nn.BCELoss()(model(x), y)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    loss = nn.BCEWithLogitsLoss()(model(x), y)
    ```
    """

    code = "ML403"
    name = "bce-on-logits"
    severity = Severity.ERROR
    symptoms = ("ML928", "ML901", "ML902")

    VALID = [
        "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())\nloss = nn.BCELoss()(m(x), y)\n",
        "import torch\nimport torch.nn as nn\nloss = nn.BCELoss()(torch.sigmoid(model(x)), y)\n",
        # an unknown model: stay silent
        "import torch.nn as nn\nloss = nn.BCELoss()(pretrained(x), y)\n",
        """
import torch.nn as nn
import torch.nn.functional as F
class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.dec = nn.Linear(20, 784)
    def decode(self, z):
        return F.sigmoid(self.dec(z))
    def forward(self, z):
        return self.decode(z)
vae = VAE()
loss = F.binary_cross_entropy(vae(z), x, reduction="sum")
""",
    ]
    INVALID = [
        Invalid("import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\nloss = nn.BCELoss()(m(x), y)\n", line=3),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 1)
    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))
net = Net()
out = net(x)
loss = F.binary_cross_entropy(out, y)
""",
            line=13,
            message="nn.Linear(16, 1)",
        ),
        Invalid("from torch import nn\nhead = nn.Linear(4, 1)\ncriterion = nn.BCELoss()\nloss = criterion(head(feats).squeeze(1), y)\n", line=4),
        Invalid("import torch.nn as nn\nm = nn.Sequential(nn.Conv2d(3, 1, 3))\nloss = nn.BCELoss()(m(img), mask)\n", line=3),
        # a clamp to [eps, 1 - eps] is not a sigmoid
        Invalid(
            "import torch\nimport torch.nn.functional as F\nhead = torch.nn.Linear(4, 1)\n"
            "p = torch.clamp(head(x), 1e-7, 1 - 1e-7)\nloss = F.binary_cross_entropy(p, y)\n",
            line=5,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call, api, prediction, _ in facts.loss_calls(names.BCE):
            ops = facts.networks.output_ops_of(_unclamped(facts, prediction)) if prediction is not None else []
            if not ops or not all(op.api in LOGIT_LAYERS for op in ops):
                continue
            layer = facts.module.code_for_node(ops[0].node)
            loss = "BCELoss" if api == "torch.nn.BCELoss" else "F.binary_cross_entropy"
            ctx.report(
                call,
                f"{loss} expects probabilities but gets the raw output of `{layer}` (logits); "
                "use BCEWithLogitsLoss (or F.binary_cross_entropy_with_logits), which applies the sigmoid stably",
            )


def _unclamped(facts, prediction: cst.BaseExpression) -> cst.BaseExpression:
    """What a clamp to [eps, 1 - eps] was applied to: a clamp keeps logits logits, it is no sigmoid."""
    for _ in range(8):
        origins = [o for o in facts.origins(prediction) if isinstance(o, cst.Call) and o.args]
        clamp = next((o for o in origins if facts.qualname(o.func) in ("torch.clamp", "torch.clip")), None)
        if clamp is not None:
            prediction = clamp.args[0].value
        elif origins and isinstance(origins[0].func, cst.Attribute) and facts.qualname(origins[0].func) is None \
                and origins[0].func.attr.value in ("clamp", "clip"):
            prediction = origins[0].func.value
        else:
            return prediction
    return prediction
