from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts import Op, names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register

INF = math.inf
# The output range of each activation that can end a model: (lowest, highest value).
RELU = (0.0, INF)
RANGES: dict[str, tuple[float, float]] = {
    **{api: RELU for api in (
        "torch.nn.ReLU", "torch.relu", "torch.relu_", "torch.nn.functional.relu", "torch.nn.functional.relu_",
        "method:relu", "method:relu_", "torch.nn.Softplus", "torch.nn.functional.softplus",
    )},
    "torch.nn.ReLU6": (0.0, 6.0), "torch.nn.functional.relu6": (0.0, 6.0),
    # smooth rectifiers: a shallow dip below 0, then back to 0 with a vanishing gradient
    "torch.nn.GELU": (-0.17, INF), "torch.nn.functional.gelu": (-0.17, INF),
    "torch.nn.SiLU": (-0.28, INF), "torch.nn.functional.silu": (-0.28, INF),
    "torch.nn.Mish": (-0.31, INF), "torch.nn.functional.mish": (-0.31, INF),
    "torch.nn.Hardswish": (-0.375, INF), "torch.nn.functional.hardswish": (-0.375, INF),
    **{api: (-1.0, 1.0) for api in (
        "torch.nn.Tanh", "torch.tanh", "torch.nn.functional.tanh", "method:tanh", "method:tanh_",
        "torch.nn.Hardtanh", "torch.nn.functional.hardtanh", "torch.nn.Softsign", "torch.nn.functional.softsign",
    )},
    **{api: (0.0, 1.0) for api in (
        "torch.nn.Sigmoid", "torch.sigmoid", "torch.nn.functional.sigmoid", "torch.special.expit",
        "method:sigmoid", "method:sigmoid_", "torch.nn.Hardsigmoid", "torch.nn.functional.hardsigmoid",
    )},
    "torch.nn.LogSigmoid": (-INF, 0.0), "torch.nn.functional.logsigmoid": (-INF, 0.0),
}
CLAMPS = {
    "torch.nn.ReLU", "torch.nn.ReLU6", "torch.relu", "torch.relu_", "torch.nn.functional.relu",
    "torch.nn.functional.relu_", "torch.nn.functional.relu6", "method:relu", "method:relu_",
}
HARDTANH = {"torch.nn.Hardtanh": 0, "torch.nn.functional.hardtanh": 1}  # position of min_val
# A floor above this keeps a binary logit from going meaningfully negative (sigmoid(-0.5) = 0.38).
FLOOR_LIMIT = -0.5
# Both bounds within this width: classes can never be separated well (the softmax of logits 4 apart
# tops out at 0.98 for 2 classes, 0.86 for 10).
NARROW_WIDTH = 4.0
LOSS_LABELS = {
    "torch.nn.functional.cross_entropy": "F.cross_entropy()", "torch.nn.functional.nll_loss": "F.nll_loss()",
    "torch.nn.functional.binary_cross_entropy_with_logits": "F.binary_cross_entropy_with_logits()",
    "torch.nn.functional.binary_cross_entropy": "F.binary_cross_entropy()",
}


@dataclass(frozen=True)
class _Path:
    """How an op's output reaches a loss: straight, or through the squashing the loss pairs with."""

    head: Op
    squash: Optional[Op]
    binary: bool  # a sigmoid turns the head into one probability per output (not a softmax over classes)


@register
class BoundedClassificationHead(Rule):
    """
    ## What it does
    Finds a bounded activation as the last operation of a classifier: a ReLU-like activation
    (`ReLU`, `ReLU6`, `Softplus`, and the smooth rectifiers `GELU`, `SiLU`, `Mish`, `Hardswish`,
    whose outputs never go below about -0.4), a tanh-like one (`Tanh`, `Softsign`, `Hardtanh`
    with its default [-1, 1]) or `LogSigmoid`, whose output goes into a loss that expects logits
    (`CrossEntropyLoss`, `BCEWithLogitsLoss` or their functional forms), into `NLLLoss` after
    `log_softmax`, or into `BCELoss` after `sigmoid`/`softmax`. The model is followed through
    `nn.Sequential`, `forward()` (`return F.relu(self.fc3(x))`, `x = self.relu(self.out(x))`,
    `return F.log_softmax(F.relu(self.fc2(x)), dim=1)`) and the calls the output reaches. A
    sigmoid (or hard sigmoid) counts only when the loss squashes it again (`log_softmax` before
    `NLLLoss`, `sigmoid` before `BCELoss`): straight into `CrossEntropyLoss` it is ML401, into
    `BCEWithLogitsLoss` ML402.

    Precisely: for a binary loss (a sigmoid of each output) it fires when the activation's floor
    is above -0.5 (sigmoid(-0.5) = 0.38), its ceiling below 0.5, or its whole range at most 4
    wide; for a softmax over classes, when the range is at most 4 wide or the floor is above -0.5
    (a `Hardtanh` with literal bounds is judged by them). `LeakyReLU`, `PReLU` and `RReLU`
    (unbounded below) stay quiet, and so do `ELU`, `CELU` and `SELU`, by choice: their floor of
    -1 or lower lets a binary logit reach probabilities of 0.27 and below, and their gradient
    below 0 is never exactly zero, so a class pushed down can still recover; whether one of them
    at the end hurts is a hypothesis, not a certainty. A bounded activation followed by anything
    but a reshape (pooling, a Linear layer, dropout) is not the last operation and stays quiet.

    ## Why is this bad?
    The loss reads the last layer's outputs as logits, which must be free to take any sign. With
    a ReLU at the end, every logit is at least 0: for `BCEWithLogitsLoss` the predicted probability
    is at least sigmoid(0) = 0.5 for every sample, so the negative class is never predicted and
    its loss never falls below log 2 = 0.69; for cross-entropy, a class whose logit is pushed
    below 0 is clamped there with zero gradient, so once a class's unit dies it stops learning and
    is never predicted again (the same holds, more slowly, for Softplus and the smooth
    rectifiers). A tanh keeps the logits within [-1, 1], so classes can never be separated by
    more than 2: the loss stays high and its gradients small. A classification head should end
    with a Linear layer; the loss applies its own softmax or sigmoid.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3), nn.ReLU())
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), y)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), y)
    ```

    ## Fix safety
    The fix removes the activation: the layer from the `nn.Sequential(...)` arguments that spell
    it, its application in `forward()` (`self.relu(self.out(x))` becomes `self.out(x)`, leaving a
    `self.relu` the hidden layers share in place), the functional call around its input, or the
    method call. A layer kept elsewhere (appended to a list, bound to a name) gets no fix. The fix
    is unsafe: the model's outputs change meaning from non-negative (or bounded) scores to logits
    of any sign, so a checkpoint trained with the activation predicts differently, and code that
    reads the outputs directly (a threshold at 0, a reported score, an index into the
    `nn.Sequential`) must be checked.
    """

    code = "ML309"
    name = "bounded-classification-head"
    severity = Severity.ERROR
    judges_design = True
    # None: a class the head stops predicting shows in the accuracy, not in a short run's
    # statistics (probe/confirm.py UNTESTABLE says why); the autofix's trial (--trials) tests it.
    symptoms = ()

    VALID = [
        # the usual head: ReLU between layers, a Linear layer last
        """
import torch
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)
    def forward(self, x):
        x = F.relu(self.fc1(x))
        return self.fc2(x)
model = Net()
criterion = nn.CrossEntropyLoss()
for images, labels in train_loader:
    loss = criterion(model(images.view(-1, 784)), labels)
""",
        # log_softmax of a Linear output into NLLLoss (pytorch/examples mnist)
        """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
model = Net()
loss = F.nll_loss(model(data), target)
""",
        # a shared ReLU module used for the hidden layers only
        """
import torch.nn as nn
class BinaryClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(30, 16)
        self.out = nn.Linear(16, 1)
    def forward(self, x):
        x = self.relu(self.fc1(x))
        return self.out(x)
model = BinaryClassifier()
loss = nn.BCEWithLogitsLoss()(model(x).squeeze(1), y)
""",
        # LeakyReLU is not bounded below: logits of both signs
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.LeakyReLU(0.2))
loss = nn.BCEWithLogitsLoss()(model(x), y)
""",
        # ELU's floor of -1 lets the logits go negative
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ELU(), nn.Linear(32, 4), nn.ELU())
loss = nn.CrossEntropyLoss()(model(x), y)
""",
        # a sigmoid head with BCELoss is the right pairing
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
loss = nn.BCELoss()(model(x), y)
""",
        # a ReLU output into a regression loss is ML305's question, not this rule's
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1), nn.ReLU())
loss = nn.MSELoss()(model(x), y)
""",
        # ReLU'd features go into a Linear classifier: the logits come from the Linear layer
        """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Linear(100, 64)
        self.classifier = nn.Linear(64, 5)
    def forward(self, x):
        return self.classifier(F.relu(self.features(x)))
net = Net()
loss = F.cross_entropy(net(x), y)
""",
        # the model handed back by train() each epoch: its output is the classifier's last Linear
        # layer, not every layer of the network (a class' forward read through the loop's rebinding)
        """
import torch.nn as nn
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        x = self.classifier(x)
        return x
def train(net, loader, optimizer, criterion):
    net.train()
    for inputs, labels in loader:
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
    return net, loss.item()
def experiment(loader, epochs):
    net = CNN()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    for epoch in range(epochs):
        net, train_loss = train(net, loader, optimizer, criterion)
""",
        # Hardtanh with wide bounds leaves the logits room
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 3), nn.Hardtanh(-20.0, 20.0))
loss = nn.CrossEntropyLoss()(model(x), y)
""",
        # sigmoid straight into CrossEntropyLoss is ML401's finding, not this rule's
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 3), nn.Sigmoid())
loss = nn.CrossEntropyLoss()(model(x), y)
""",
        # the ReLU output is an embedding for a distance; only the Linear logits reach the loss
        """
import torch.nn as nn
import torch.nn.functional as F
encoder = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
classifier = nn.Linear(32, 10)
embedding = encoder(x)
loss = F.cross_entropy(classifier(embedding), y) + 0.1 * embedding.pow(2).mean()
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
import torch.nn as nn
model = nn.Sequential(
    nn.Linear(4, 32),
    nn.ReLU(),
    nn.Linear(32, 3),
    nn.ReLU(),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(X_train), y_train)
    loss.backward()
    optimizer.step()
""",
            line=8,
            message="clamps the logits at 0",
            fixed="""
import torch
import torch.nn as nn
model = nn.Sequential(
    nn.Linear(4, 32),
    nn.ReLU(),
    nn.Linear(32, 3),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(100):
    optimizer.zero_grad()
    loss = criterion(model(X_train), y_train)
    loss.backward()
    optimizer.step()
""",
        ),
        # the forum classic: relu on the last layer, then log_softmax for NLLLoss
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)
    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.log_softmax(x, dim=1)
model = Net()
for data, target in train_loader:
    loss = F.nll_loss(model(data), target)
""",
            line=11,
            message="F.log_softmax() and F.nll_loss() (line 15)",
            fixed="""
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)
    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
model = Net()
for data, target in train_loader:
    loss = F.nll_loss(model(data), target)
""",
        ),
        # a shared ReLU module applied to the output too: only that application goes
        Invalid(
            """
import torch
import torch.nn as nn
class BinaryClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(30, 16)
        self.out = nn.Linear(16, 1)
    def forward(self, x):
        x = self.relu(self.fc1(x))
        x = self.relu(self.out(x))
        return x
model = BinaryClassifier()
criterion = nn.BCEWithLogitsLoss()
loss = criterion(model(inputs).squeeze(1), labels.float())
""",
            line=12,
            message="the negative class (target 0) is never predicted",
            fixed="""
import torch
import torch.nn as nn
class BinaryClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(30, 16)
        self.out = nn.Linear(16, 1)
    def forward(self, x):
        x = self.relu(self.fc1(x))
        x = self.out(x)
        return x
model = BinaryClassifier()
criterion = nn.BCEWithLogitsLoss()
loss = criterion(model(inputs).squeeze(1), labels.float())
""",
        ),
        # a sigmoid applied before BCELoss to a model that ends in ReLU
        Invalid(
            """
import torch
import torch.nn as nn
net = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 1), nn.ReLU())
criterion = nn.BCELoss()
for xb, yb in loader:
    probs = torch.sigmoid(net(xb))
    loss = criterion(probs, yb)
""",
            line=4,
            message="torch.sigmoid() and BCELoss",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
class Classifier(nn.Module):
    def __init__(self, n_in, n_classes):
        super().__init__()
        self.hidden = nn.Linear(n_in, 64)
        self.out = nn.Linear(64, n_classes)
    def forward(self, x):
        return torch.tanh(self.out(torch.tanh(self.hidden(x))))
clf = Classifier(20, 5)
loss = nn.CrossEntropyLoss()(clf(x), y)
""",
            line=10,
            message="[-1, 1]",
        ),
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 1), nn.Softplus())
loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
loss = loss_fn(model(x), y)
""",
            line=3,
            message="nn.Softplus",
        ),
        # a ReLU then LogSoftmax at the end of the Sequential, with NLLLoss
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.ReLU(), nn.LogSoftmax(dim=1))
criterion = nn.NLLLoss()
loss = criterion(model(images), labels)
""",
            line=3,
            message="nn.LogSoftmax",
        ),
        # the tensor method on the output, right before the loss
        Invalid(
            """
import torch.nn.functional as F
def train_step(model, x, y):
    logits = model(x).relu()
    return F.cross_entropy(logits, y)
""",
            line=4,
            message=".relu()",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        reported: set[int] = set()
        wanted = names.CROSS_ENTROPY | names.BCE_WITH_LOGITS | names.NLL | names.BCE
        for call, api, prediction, _ in facts.loss_calls(wanted):
            if prediction is None:
                continue
            for path in _paths(facts, api, prediction):
                bounds = _range(facts, path.head)
                problem = _problem(path, bounds) if bounds is not None else None
                node = path.head.applied or path.head.node
                if problem is None or id(node) in reported:
                    continue
                reported.add(id(node))
                loss = LOSS_LABELS.get(api, api.rsplit(".", 1)[-1])
                before = f"{path.squash.label} and {loss}" if path.squash is not None else loss
                ctx.report(
                    node,
                    f"{path.head.label} {problem.format(before=f'{before} (line {facts.line_of(call)})')}; "
                    "drop it: the loss needs raw logits of any sign, as a Linear layer gives them",
                    fix=_removal_fix(facts, path.head),
                )


def _paths(facts, api: str, prediction: cst.BaseExpression) -> list[_Path]:
    """The ops whose outputs a loss reads as logits: the prediction's own ops for a logit loss
    (sigmoids and softmaxes left to ML401/ML402), the input of the log_softmax before NLLLoss or
    CrossEntropyLoss, the input of the sigmoid or softmax before BCELoss."""
    networks = facts.networks
    paths = []
    for op in networks.output_ops_of(prediction):
        squash = op.activation
        if squash == "log_softmax" and api in names.CROSS_ENTROPY | names.NLL:
            paths += [_Path(head, op, False) for head in networks.input_ops(op)]
        elif squash in ("sigmoid", "softmax") and api in names.BCE:
            paths += [_Path(head, op, squash == "sigmoid") for head in networks.input_ops(op)]
        elif api in names.CROSS_ENTROPY | names.BCE_WITH_LOGITS and squash not in ("sigmoid", "softmax"):
            paths.append(_Path(op, None, api in names.BCE_WITH_LOGITS))
    return paths


def _range(facts, op: Op) -> Optional[tuple[float, float]]:
    bounds = RANGES.get(op.api)
    if op.api in HARDTANH and isinstance(op.node, cst.Call):
        position = HARDTANH[op.api]
        given = [facts.argument(op.node, position + i, key) for i, key in enumerate(("min_val", "max_val"))]
        values = [facts.literal(v) if v is not None else default for v, default in zip(given, (-1.0, 1.0))]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        bounds = (float(values[0]), float(values[1]))
    return bounds


def _problem(path: _Path, bounds: tuple[float, float]) -> Optional[str]:
    """What the bounds do to the loss, as a message template with a `{before}` slot; None when
    they leave the logits room."""
    low, high = bounds
    narrow = high - low <= NARROW_WIDTH
    shown = f"[{_number(low)}, {_number(high)}]"
    if path.binary:
        if low > FLOOR_LIMIT:
            lowest = _sigmoid(low)
            outcome = "the negative class (target 0) is never predicted" if low >= 0 else \
                f"the negative class (target 0) never gets more than {1 - lowest:.0%}"
            return (f"keeps the logit at or above {_number(low)} before {{before}}: the predicted probability is at "
                    f"least {lowest:.2f} for every sample, so {outcome} and its loss never falls below "
                    f"{-math.log(1 - lowest):.2f}")
        if high < -FLOOR_LIMIT:
            highest = _sigmoid(high)
            return (f"keeps the logit at or below {_number(high)} before {{before}}: the predicted probability is at "
                    f"most {highest:.2f} for every sample, so the positive class (target 1) is never predicted")
        if narrow:
            lowest, highest = _sigmoid(low), _sigmoid(high)
            return (f"squeezes the logit into {shown} before {{before}}: the predicted probability stays within "
                    f"[{lowest:.2f}, {highest:.2f}], so no prediction gets confident and the loss never falls below "
                    f"{-math.log(max(highest, 1 - lowest)):.2f}")
        return None
    if narrow:
        return (f"squeezes the logits into {shown} before {{before}}: classes can never be separated by more than "
                f"{_number(high - low)}, so no prediction gets confident, the loss stays high and its gradients small")
    if low > FLOOR_LIMIT:
        if path.head.api in CLAMPS or path.head.api in HARDTANH:
            return (f"clamps the logits at {_number(low)} before {{before}}: a class whose logit is pushed below "
                    f"{_number(low)} gets no gradient there and can stop being predicted for good")
        return (f"keeps the logits at or above {_number(low)} before {{before}}, and its gradient fades for inputs far "
                "below 0: a class whose logit is pushed there gets almost no gradient and can stop being predicted for good")
    return None


def _sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value)) if value > -INF else 0.0


def _number(value: float) -> str:
    return f"{value:g}"


def _removal_fix(facts, op: Op) -> Optional[FixSpec]:
    """Remove the activation so the loss receives the Linear layer's output."""
    node = op.node
    edits = None
    if op.applied is not None:
        if len(op.applied.args) == 1 and op.applied.args[0].keyword is None and not op.applied.args[0].star:
            edits = fixes.replace_call_with_argument(facts, op.applied, op.applied.args[0].value)
    elif not isinstance(node, cst.Call):
        return None
    elif op.api.startswith("method:"):
        edits = fixes.drop_method_call(facts, node)
    elif op.api.rsplit(".", 1)[-1][:1].islower():
        argument = facts.argument(node, 0, "input")
        edits = fixes.replace_call_with_argument(facts, node, argument) if argument is not None else None
    else:
        item, holder = facts.parent.get(node), facts.parent.get(facts.parent.get(node))
        if isinstance(item, cst.Arg) and not item.star and isinstance(holder, cst.Call) \
                and facts.qualname(holder.func) == names.SEQUENTIAL:
            items = list(holder.args)
            edits = fixes.delete_item(facts, items, items.index(item))
    if not edits:
        return None
    return FixSpec("unsafe", (), f"Remove {op.label} so that the loss receives logits", edits=tuple(edits))
