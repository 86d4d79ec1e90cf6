from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts import Op, names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register


@register
class SoftmaxBeforeCrossEntropy(Rule):
    """
    ## What it does
    Finds probabilities (the output of a softmax, or of a sigmoid) fed to `nn.CrossEntropyLoss`
    or `F.cross_entropy`: a softmax or sigmoid as the last layer of an `nn.Sequential`, as the last
    operation of `forward()`, or applied to the model output before the loss.

    ## Why is this bad?
    `CrossEntropyLoss` applies `log_softmax` to its input itself. Fed probabilities, it computes
    a softmax of a softmax: outputs are squeezed into a narrow range, the loss cannot go much
    below its starting value and the gradients shrink, so the model learns slowly or stalls.
    Sigmoid outputs fare no better: squashed into (0, 1), the logits can never separate the
    classes by more than 1, so the loss stays far above 0 (about 1.46 for 10 classes at best).

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3), nn.Softmax(dim=1))
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), y)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), y)
    probabilities = model(x).softmax(dim=1)  # only for predictions
    ```

    ## Fix safety
    The fix removes the softmax (or sigmoid): the layer from its `nn.Sequential` or layer list
    (an `nn.Identity()` in its place elsewhere), the function call around its input, or the
    method call. It is unsafe: the model's outputs become logits everywhere, so code that reads
    them as probabilities (thresholds, reported confidences, a metric) must apply softmax itself.
    """

    code = "ML401"
    name = "softmax-before-cross-entropy"
    severity = Severity.ERROR
    symptoms = ("ML914", "ML904")

    VALID = [
        # a sigmoid head for multi-label targets, with a binary loss
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(16, 5), nn.Sigmoid())
loss = nn.BCELoss()(model(x), y)
""",
        # logits into the loss, softmax only for predictions
        """
import torch.nn as nn
import torch.nn.functional as F
model = nn.Sequential(nn.Linear(4, 3))
loss = nn.CrossEntropyLoss()(model(x), y)
probs = F.softmax(model(x), dim=1)
""",
        # log_softmax is idempotent under CrossEntropyLoss's own log_softmax
        """
import torch
import torch.nn as nn
class Net(nn.Module):
    def forward(self, x):
        return torch.log_softmax(self.fc(x), dim=1)
criterion = nn.CrossEntropyLoss()
net = Net()
loss = criterion(net(x), y)
""",
        # softmax into a loss that expects probabilities
        """
import torch.nn as nn
import torch.nn.functional as F
p = F.softmax(logits, dim=1)
loss = nn.MSELoss()(p, onehot)
""",
        # a local variable named like a torch function is not one
        """
import torch.nn as nn
def softmax(x):
    return x
loss = nn.CrossEntropyLoss()(softmax(x), y)
""",
    ]
    INVALID = [
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3), nn.Softmax(dim=1))
criterion = nn.CrossEntropyLoss()
loss = criterion(model(x), y)
""",
            line=3,
            message="nn.Softmax",
        ),
        Invalid(
            """
import torch
from torch import nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 4)
    def forward(self, x):
        x = self.fc(x)
        return F.softmax(x, dim=1)
net = Net()
criterion = nn.CrossEntropyLoss()
for x, y in loader:
    outputs = net(x)
    loss = criterion(outputs, y)
""",
            line=11,
        ),
        Invalid(
            """
import torch
import torch.nn.functional as F
loss = F.cross_entropy(torch.softmax(logits, dim=-1), target)
""",
            line=4,
        ),
        Invalid(
            """
from torch.nn import CrossEntropyLoss as CE
import torch.nn as tnn
def train(model, criterion, x, y):
    return criterion(model(x).softmax(1), y)
train(tnn.Linear(3, 2), CE(), x, y)
""",
            line=5,
        ),
        Invalid(
            """
import torch.nn as nn
def build():
    return nn.Sequential(nn.Linear(8, 2), nn.Softmax(dim=-1))
model = build().to("cuda")
loss = nn.CrossEntropyLoss()(model(x), y)
""",
            line=4,
        ),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class LogisticRegression(nn.Module):
    def __init__(self, in_dim, n_class):
        super().__init__()
        self.logistic = nn.Linear(in_dim, n_class)
    def forward(self, x):
        return F.sigmoid(self.logistic(x))
model = LogisticRegression(28 * 28, 10)
criterion = nn.CrossEntropyLoss()
loss = criterion(model(img), label)
""",
            line=9,
            message="squashes the logits into (0, 1)",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call, _, prediction, _ in facts.loss_calls(names.CROSS_ENTROPY):
            for op in facts.networks.output_ops_of(prediction) if prediction is not None else ():
                if op.activation == "softmax":
                    problem = "turns the logits into probabilities, then CrossEntropyLoss (line {}) applies " \
                        "log-softmax again: a double softmax that flattens the gradients"
                elif op.activation == "sigmoid":
                    problem = "squashes the logits into (0, 1), then CrossEntropyLoss (line {}) applies " \
                        "log-softmax to them: classes can never be separated by more than 1, so the loss " \
                        "stays high and the gradients small"
                else:
                    continue
                ctx.report(
                    op.node,
                    f"{op.label} {problem.format(facts.line_of(call))}; feed raw logits to the loss and "
                    "apply softmax only for predictions",
                    fix=_logits_fix(facts, op),
                )


def _logits_fix(facts, op: Op) -> Optional[FixSpec]:
    """Remove the activation op so the loss receives the logits."""
    node = op.node
    if not isinstance(node, cst.Call):
        return None
    if op.api.startswith("method:"):
        edits = fixes.drop_method_call(facts, node)
    elif op.api in names.ACTIVATION_FUNCTIONS:
        argument = facts.argument(node, 0, "input")
        edits = fixes.replace_call_with_argument(facts, node, argument) if argument is not None else None
    else:
        edits = _layer_removal(facts, node)
    if not edits:
        return None
    return FixSpec("unsafe", (), f"Remove {op.label} so that the loss receives logits", edits=tuple(edits))


def _layer_removal(facts, layer: cst.Call):
    """Delete the layer from the `nn.Sequential(...)` arguments or the list display holding it;
    elsewhere (an attribute, an OrderedDict entry) replace it with `nn.Identity()`."""
    item, holder = facts.parent.get(layer), facts.parent.get(facts.parent.get(layer))
    items = None
    if isinstance(item, cst.Arg) and not item.star and isinstance(holder, cst.Call) and facts.qualname(holder.func) == names.SEQUENTIAL:
        items = list(holder.args)
    elif isinstance(item, cst.Element) and isinstance(holder, cst.List):
        items = list(holder.elements)
    if items is not None:
        edits = fixes.delete_item(facts, items, next(i for i, candidate in enumerate(items) if candidate is item))
        if edits is not None:
            return edits
    identity = fixes.spelling(facts, "torch.nn.Identity")
    return [fixes.replace(facts, layer, f"{identity}()")] if identity is not None and not layer.lpar else None
