from __future__ import annotations

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

LOGIT_LAYERS = names.LINEAR_LAYERS | names.CONV_LAYERS


@register
class NllWithoutLogSoftmax(Rule):
    """
    ## What it does
    Finds `nn.NLLLoss` / `F.nll_loss` fed logits (the raw output of a Linear or convolution layer)
    or probabilities (the output of a softmax or sigmoid) instead of log-probabilities.

    ## Why is this bad?
    NLLLoss only picks `-input[target]`: it assumes the input is already `log_softmax`. On logits
    the loss is unbounded below, so the model learns to blow up the target logit and training
    diverges; on probabilities it minimises `-p` instead of `-log p`, with weak gradients.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = nn.NLLLoss()(model(x), y)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.LogSoftmax(dim=1))
    loss = nn.NLLLoss()(model(x), y)
    ```
    """

    code = "ML404"
    name = "nll-without-log-softmax"
    severity = Severity.ERROR
    symptoms = ("ML928", "ML914", "ML912", "ML902")

    VALID = [
        "import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1))\nloss = nn.NLLLoss()(m(x), y)\n",
        "import torch\nimport torch.nn.functional as F\nloss = F.nll_loss(torch.log(F.softmax(logits, dim=1) + 1e-8), y)\n",
        """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(9216, 10)
    def forward(self, x):
        x = self.fc(x)
        output = F.log_softmax(x, dim=1)
        return output
model = Net()
loss = F.nll_loss(model(data), target)
""",
        "import torch.nn.functional as F\nloss = F.nll_loss(unknown_model(x), y)\n",
        # a LogSoftmax module kept in an attribute named `softmax`
        """
import torch.nn as nn
class RNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.i2o = nn.Linear(128, 18)
        self.softmax = nn.LogSoftmax(dim=1)
    def forward(self, x):
        return self.softmax(self.i2o(x))
rnn = RNN()
loss = nn.NLLLoss()(rnn(x), y)
""",
    ]
    INVALID = [
        Invalid("import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\nloss = nn.NLLLoss()(m(x), y)\n", line=3, message="logits"),
        Invalid("import torch.nn as nn\nm = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))\nloss = nn.NLLLoss()(m(x), y)\n", line=3, message="probabilities"),
        Invalid("import torch\nimport torch.nn.functional as F\nloss = F.nll_loss(torch.softmax(z, dim=1), y)\n", line=3),
        Invalid(
            """
from torch import nn
class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 50), nn.Tanh(), nn.Linear(50, 4))
    def forward(self, x):
        return self.body(x)
criterion = nn.NLLLoss(weight=class_weights)
model = Classifier()
for x, y in loader:
    loss = criterion(model(x), y)
""",
            line=12,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call, api, prediction, _ in facts.loss_calls(names.NLL):
            ops = facts.networks.output_ops_of(prediction) if prediction is not None else []
            if not ops:
                continue
            loss = "NLLLoss" if api == "torch.nn.NLLLoss" else "F.nll_loss"
            if all(op.activation in ("softmax", "sigmoid") for op in ops):
                ctx.report(
                    call,
                    f"{loss} expects log-probabilities but gets probabilities from {ops[0].label}; "
                    "use log_softmax instead of softmax (or feed logits to CrossEntropyLoss)",
                )
            elif all(op.api in LOGIT_LAYERS for op in ops):
                layer = facts.module.code_for_node(ops[0].node)
                ctx.report(
                    call,
                    f"{loss} expects log-probabilities but gets the raw output of `{layer}` (logits), so the loss "
                    "is unbounded below; add log_softmax(dim=1) at the end of the model, or use CrossEntropyLoss on the logits",
                )
