from __future__ import annotations

from typing import Callable, Iterator, Optional

import libcst as cst

from mlplint.lint.facts.data import SCALERS
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register
from mlplint.rules.data.unscaled_input import UnscaledInput

COMPOSE = {"torchvision.transforms.Compose", "torchvision.transforms.v2.Compose"}
TO_UNIT = ("ToTensor", "ConvertImageDtype", "ToDtype")
PIXEL_DIVISOR = 100  # dividing by at least this much (255, 256, 65535) is pixel scaling


@register
class DoubleNormalization(Rule):
    """
    ## What it does
    Finds features normalised twice on their way to the model:
    - pixels divided by 255 after torchvision's `ToTensor()` (or `ToDtype(..., scale=True)`)
      already scaled them to [0, 1], by hand in the training loop or as a `Lambda` after `ToTensor`
      in the same `Compose`; or divided by 255 when their stated range is already within [-1, 1];
    - a scikit-learn scaler's `transform` applied to data a scaler already produced (the same
      scaler run twice, or a second scaler on scaled data);
    - `Normalize` twice in one `Compose`.

    Standardising after `ToTensor` (`(x - mean) / std`, one `Normalize`) is the usual pipeline and
    stays quiet.

    ## Why is this bad?
    `ToTensor` already maps pixels to [0, 1]; dividing by 255 again leaves inputs in [0, 0.004],
    so the first layer sees almost nothing and training crawls. Running a fitted scaler on its own
    output shifts and shrinks the data a second time with statistics of the raw data, so the
    features no longer have the scale the model (and the test data) assume.

    ## Example
    ```python
    import torch
    from torchvision import datasets, transforms

    train = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    for images, labels in loader:
        images = images / 255.0
        out = model(images)
    ```

    Use instead:
    ```python
    import torch
    from torchvision import datasets, transforms

    train = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    for images, labels in loader:
        out = model(images)
    ```
    """

    code = "ML104"
    name = "double-normalization"
    severity = Severity.WARNING
    symptoms = ("ML934", "ML904", "ML909", "ML906")

    VALID = [
        # standardising after ToTensor
        """
import torch
from torchvision import datasets, transforms
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train = datasets.MNIST("data", train=True, download=True, transform=tf)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
for x, y in torch.utils.data.DataLoader(train, batch_size=64, shuffle=True):
    out = model((x - 0.5) / 0.5)
""",
        # raw pixels divided once
        """
import torch
from torchvision import datasets
raw = datasets.MNIST("data", download=True).data
model = torch.nn.Linear(784, 10)
out = model(raw.float().view(-1, 784) / 255.0)
""",
        # one scaler fitted on the training split, applied to each split once
        """
import torch
from sklearn.preprocessing import StandardScaler
from sklearn.datasets import load_wine
X, y = load_wine(return_X_y=True)
scaler = StandardScaler().fit(X[:100])
train_x = scaler.transform(X[:100])
test_x = scaler.transform(X[100:])
model = torch.nn.Linear(13, 3)
out = model(torch.tensor(train_x).float()) + model(torch.tensor(test_x).float())
""",
        # train and test pipelines, one Normalize each
        """
from torchvision import transforms
train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
from torchvision import datasets, transforms
train = datasets.CIFAR10("data", train=True, download=True, transform=transforms.ToTensor())
loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10))
for images, labels in loader:
    out = net(images / 255)
""",
            line=8,
            message="ToTensor",
        ),
        Invalid(
            """
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler
X, y = load_breast_cancer(return_X_y=True)
scaler = StandardScaler()
X_scaled = scaler.fit_transform(X)
X_train = scaler.transform(X_scaled)
model = torch.nn.Linear(30, 2)
out = model(torch.tensor(X_train, dtype=torch.float32))
""",
            line=8,
            message="line 7",
        ),
        Invalid(
            """
from torchvision import transforms
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,)), transforms.Normalize((0.5,), (0.5,))])
""",
            line=3,
            message="Normalize",
        ),
        Invalid(
            """
from torchvision import transforms
tf = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x / 255.0)])
""",
            line=3,
        ),
        Invalid(
            """
import torch
images = torch.rand(512, 1, 28, 28)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
out = model(images / 255.0)
""",
            line=5,
            message="already within",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        reported = set()
        for node, message in list(self._in_compose(ctx)) + list(self._on_the_way(ctx)):
            if id(node) not in reported:
                reported.add(id(node))
                ctx.report(node, message)

    # ------------------------------------------------------------------ torchvision pipelines

    def _in_compose(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        for call in facts.calls_to(*COMPOSE):
            steps = facts.argument(call, 0, "transforms")
            if not isinstance(steps, (cst.List, cst.Tuple)):
                continue
            to_unit: Optional[str] = None
            normalized: Optional[cst.Call] = None
            for element in steps.elements:
                step = element.value
                short = (facts.qualname(step.func) or "").rsplit(".", 1)[-1] if isinstance(step, cst.Call) else ""
                if short == "Normalize":
                    if normalized is not None:
                        yield step, (f"a second transforms.Normalize in this Compose standardises images the first "
                                     f"(line {facts.line_of(normalized)}) already standardised, shrinking and shifting them "
                                     "again; keep one Normalize with the dataset's mean and std")
                    normalized = step
                elif short in TO_UNIT:
                    to_unit = short
                elif short == "Lambda" and to_unit is not None and self._divides_pixels(ctx, step):
                    yield step, (f"this Lambda divides by 255 after {to_unit}() already scaled the pixels to [0, 1]: "
                                 "inputs end up in [0, 0.004]; drop the division")

    def _divides_pixels(self, ctx: RuleContext, step: cst.Call) -> bool:
        function = step.args[0].value if step.args else None
        body = function.body if isinstance(function, cst.Lambda) else None
        return isinstance(body, cst.BinaryOperation) and self._pixel_divisor(ctx, body) is not None

    # ------------------------------------------------------------------ data reaching a model

    def _on_the_way(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        for call in facts.calls:
            if not call.args or facts.qualname(call.func) is not None or facts.kind_of(call.func) != "model" \
                    or UnscaledInput._inside_module_class(facts, call):
                continue  # layers applied inside forward() are not where the data is prepared
            for lineage in facts.data.lineages(call.args[0].value):
                source = lineage.source
                earlier: Optional[Callable[[], str]] = None  # the first normalisation met, in words (built when reported: a line number costs a code generation)
                scaler: Optional[cst.CSTNode] = None
                if source.kind == "images" and source.magnitude == 1.0:
                    earlier = lambda dataset=source.node: (f"the dataset's transform ({', '.join(self._unit_steps(ctx, dataset)) or 'ToTensor'}, "
                                                           f"line {facts.line_of(dataset)})")
                for op, node in lineage.ops:
                    if op != "scale":
                        continue
                    divisor = self._pixel_divisor(ctx, node)
                    if divisor is not None:
                        if earlier is not None:
                            yield node, (f"dividing by {divisor:g} here scales data that {earlier()} already scaled: the "
                                         f"inputs end up about {divisor:g}x too small; drop this division")
                        else:
                            stated = facts.tensors.range_of(node.left)
                            if stated is not None and stated.magnitude <= 1.0:
                                yield node, (f"these values are already within [{stated.low:g}, {stated.high:g}]; dividing "
                                             f"them by {divisor:g} leaves inputs near 0; drop this division")
                        earlier = earlier or (lambda node=node: f"the division on line {facts.line_of(node)}")
                    elif self._is_scaler_transform(ctx, node):
                        if scaler is not None:
                            yield node, (f"this scaler transforms data that a scaler already transformed (line "
                                         f"{facts.line_of(scaler)}): the statistics are applied a second time and the "
                                         "features lose the scale the model and the test data assume; transform the "
                                         "raw data once")
                        scaler = scaler or node
                        earlier = earlier or (lambda node=node: f"the scaler on line {facts.line_of(node)}")
                    else:
                        earlier = earlier or (lambda node=node: f"the scaling on line {facts.line_of(node)}")

    def _pixel_divisor(self, ctx: RuleContext, node: cst.CSTNode) -> Optional[float]:
        if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Divide, cst.FloorDivide))):
            return None
        value = ctx.facts.literal(node.right)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= PIXEL_DIVISOR:
            return float(value)
        return None

    @staticmethod
    def _is_scaler_transform(ctx: RuleContext, node: cst.CSTNode) -> bool:
        facts = ctx.facts
        return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
            and node.func.attr.value in ("transform", "fit_transform") \
            and any(isinstance(c, str) and c in SCALERS for c in facts.classes_of(node.func.value))

    @staticmethod
    def _unit_steps(ctx: RuleContext, dataset: cst.CSTNode) -> list[str]:
        """The names of the [0, 1]-scaling steps in a dataset's transform, for the message."""
        facts = ctx.facts
        transform = facts.argument(dataset, None, "transform") if isinstance(dataset, cst.Call) else None
        found = []
        for origin in facts.origins(transform) if transform is not None else ():
            calls = [origin] if isinstance(origin, cst.Call) else []
            if calls and facts.qualname(origin.func) in COMPOSE:
                steps = facts.argument(origin, 0, "transforms")
                calls = [e.value for e in steps.elements if isinstance(e.value, cst.Call)] if isinstance(steps, (cst.List, cst.Tuple)) else []
            found += [short for c in calls for short in [(facts.qualname(c.func) or "").rsplit(".", 1)[-1]] if short in TO_UNIT]
        return found
