from __future__ import annotations

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.data import SCALING_FUNCTIONS
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class UnscaledInput(Rule):
    """
    ## What it does
    Finds numeric features that reach a model with no scaling on the way: data whose scale is
    known to be large (scikit-learn datasets such as `load_breast_cancer`, `load_wine` or
    `fetch_california_housing`, raw torchvision pixels from `dataset.data`, random data multiplied
    by a large constant) traced through splits, tensors, datasets and loaders to the model call.
    A scikit-learn scaler or `normalize`, torchvision `ToTensor`/`Normalize`, `(x - mean) / std`
    or `/ 255` by hand, a log transform, or a BatchNorm/LayerNorm first layer all count as scaling.
    Data whose scale cannot be known (a CSV file, a custom loader) stays quiet.

    The threshold is the largest feature magnitude that still counts as scaled:
    `[tool.mlplint.unscaled-input] max-magnitude = 50.0`. PyTorch's default initialisation
    assumes inputs of roughly unit variance (LeCun et al., "Efficient BackProp", 1998).

    ## Why is this bad?
    Features spanning 0..1000 next to features spanning 0..1 make the first layer's
    pre-activations huge and the loss surface badly conditioned: gradient descent zig-zags, needs
    a tiny learning rate, and the network ends up worse than scikit-learn's MLP, whose examples
    always scale first.

    ## Example
    ```python
    import torch
    from sklearn.datasets import load_breast_cancer

    model = torch.nn.Linear(30, 2)
    X, y = load_breast_cancer(return_X_y=True)
    logits = model(torch.tensor(X, dtype=torch.float32))
    ```

    Use instead:
    ```python
    import torch
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    model = torch.nn.Linear(30, 2)
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    logits = model(torch.tensor(X, dtype=torch.float32))
    ```
    """

    code = "ML101"
    name = "unscaled-input"
    severity = Severity.WARNING
    symptoms = ("ML910", "ML909", "ML902", "ML904")
    options = {"max-magnitude": 50.0}

    VALID = [
        # the comprehension's values standardised before they reach the model
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
        # synthetic features drawn at unit scale, or at a scale the script does not state
        """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
spread = float(input())
X = np.stack([rng.normal(0, 1, 500), rng.uniform(-1, 1, 500), rng.normal(0, spread, 500)], 1)
model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
out = model(torch.tensor(X, dtype=torch.float32))
""",
        """
import torch
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler
from sklearn.model_selection import train_test_split
X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y)
scaler = StandardScaler().fit(X_train)
X_train = scaler.transform(X_train)
out = model(torch.tensor(X_train, dtype=torch.float32))
""",
        """
import torch
from torchvision import datasets, transforms
train = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
for x, y in loader:
    out = model(x)
""",
        """
import torch
from torchvision import datasets
mnist = datasets.MNIST("data", download=True)
x = mnist.data.float() / 255.0
out = model(x.view(-1, 784))
""",
        # BatchNorm first layer scales the inputs
        """
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
X, y = fetch_california_housing(return_X_y=True)
model = nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 1))
pred = model(torch.tensor(X).float())
""",
        # unknown scale: a CSV
        "import torch, pandas as pd\ndf = pd.read_csv('houses.csv')\nout = model(torch.tensor(df.values).float())\n",
        "import torch\nout = model(torch.randn(32, 10))\n",
        # one named column of a frame: its scale is not known here
        """
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
df = fetch_california_housing(as_frame=True).frame
x = torch.tensor(df["MedInc"].values, dtype=torch.float32).view(-1, 1)
model = nn.Sequential(nn.Linear(1, 1))
pred = model(x)
""",
        # the same columns standardised, or divided in place: their range is no longer stated
        """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
cyl = rng.choice([4, 6, 8], 500)
hp = 1500 + cyl * 225 + rng.normal(0, 20, 500)
X = np.column_stack([cyl, hp])
X = (X - X.mean(axis=0)) / X.std(axis=0)
Z = np.column_stack([cyl, hp])
Z /= Z.max(axis=0)
model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
out = model(torch.from_numpy(X).float()) + model(torch.from_numpy(Z).float())
""",
        # token ids into an embedding
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.EmbeddingBag(5000, 64), nn.Linear(64, 5))
tokens = torch.randint(0, 5000, (64, 40))
out = model(tokens)
""",
        # per-column multipliers that keep the features near unit scale
        """
import torch
import torch.nn as nn
X = torch.randn(2000, 3) * torch.tensor([1.0, 2.0, 0.5])
model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
out = model(X)
""",
        # a function reads the module's features after they were rebound to their scaled values
        """
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
data = load_breast_cancer()
X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25)
scaler = StandardScaler().fit(X_train)
X_train = torch.tensor(scaler.transform(X_train), dtype=torch.float32)
model = nn.Linear(30, 1)

def run():
    for i in range(0, 400, 32):
        out = model(X_train[i:i + 32])

run()
""",
        # the same, scaled in the script's main block, which runs before the function is called
        """
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler
X, y = load_breast_cancer(return_X_y=True)
model = nn.Linear(30, 1)

def train():
    out = model(torch.tensor(X, dtype=torch.float32))

if __name__ == "__main__":
    X = StandardScaler().fit_transform(X)
    train()
""",
    ]
    INVALID = [
        # 1..4999 built by a comprehension over range()
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
            message="4,999",
        ),
        # a function reads module-level features that stay raw
        Invalid(
            """
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
model = nn.Linear(30, 1)

def train():
    out = model(torch.tensor(X, dtype=torch.float32))

if __name__ == "__main__":
    train()
""",
            line=9,
        ),
        # synthetic raw features: an income around 50,000 next to an age around 40
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
X = np.stack([rng.normal(50000, 15000, 500), rng.normal(40, 10, 500)], 1)
model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
out = model(torch.tensor(X, dtype=torch.float32))
""",
            line=8,
            message="95,000",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
train_ds = TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train))
model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
for xb, yb in DataLoader(train_ds, batch_size=32, shuffle=True):
    out = model(xb)
""",
            line=12,
            message="load_breast_cancer",
        ),
        Invalid(
            """
import torch
from torchvision import datasets
train = datasets.FashionMNIST("data", download=True)
images = train.data.float()
net = torch.nn.Sequential(torch.nn.Linear(784, 10))
logits = net(images.view(-1, 784))
""",
            line=7,
            message="255",
        ),
        Invalid(
            """
import numpy as np
import torch
from torch import nn
X = np.random.rand(500, 3) * 1000
model = nn.Linear(3, 1)
pred = model(torch.from_numpy(X).float())
""",
            line=7,
        ),
        Invalid(
            """
import torch
from sklearn import datasets
data = datasets.load_wine()
features = torch.tensor(data.data, dtype=torch.float32)
def train(model, x):
    return model(x)
train(torch.nn.Linear(13, 3), features)
""",
            line=7,
        ),
        Invalid(
            """
import pandas as pd
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
housing = fetch_california_housing()
df = pd.DataFrame(housing.data, columns=housing.feature_names)
df["target"] = housing.target
X = torch.tensor(df[housing.feature_names].values, dtype=torch.float32)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
pred = model(X)
""",
            line=11,
            message="StandardScaler",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
from sklearn.datasets import fetch_california_housing
df = fetch_california_housing(as_frame=True).frame
X = torch.tensor(df.drop(columns=["MedHouseVal"]).values, dtype=torch.float32)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
pred = model(X)
""",
            line=8,
        ),
        # mixed-scale synthetic columns: counts, displacements, horsepower-like sums
        Invalid(
            """
import numpy as np
import torch
import torch.nn as nn
rng = np.random.default_rng(0)
n = 500
cyl = rng.choice([4, 6, 8], n)
disp = cyl * 30 + rng.normal(0, 20, n)
hp = 1500 + disp * 7.5
X = np.column_stack([cyl, disp, hp]).astype(np.float32)
model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
out = model(torch.from_numpy(X))
""",
            line=12,
            message="columns from about 8 to 3,750",
        ),
        # per-column scales set by a literal multiplier
        Invalid(
            """
import torch
import torch.nn as nn
X = torch.randn(2000, 3) * torch.tensor([1000.0, 0.01, 50.0])
model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
out = model(X)
""",
            line=6,
            message="3,000",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        limit = ctx.options["max-magnitude"]
        reported = set()
        for call in facts.calls:
            if not call.args or facts.kind_of(call.func) != "model" or facts.qualname(call.func) is not None:
                continue
            if self._inside_module_class(facts, call) or self._model_scales_input(facts, call.func):
                continue
            found_before = len(ctx.reports)
            for lineage in facts.data.lineages(call.args[0].value):
                source = lineage.source
                magnitude = lineage.magnitude
                if source.kind not in ("features", "images") or lineage.scaled or magnitude is None or magnitude <= limit:
                    continue
                if source.node in reported:
                    continue
                reported.add(source.node)
                if source.kind == "images" or magnitude == 255:
                    advice = "divide the pixels by 255 (torchvision's ToTensor does) or normalise them with the dataset's mean and std"
                else:
                    advice = "standardise them first (sklearn StandardScaler fitted on the training split, or `(x - mean) / std`)"
                ctx.report(
                    call.args[0],
                    f"{source.description} (line {facts.line_of(source.node)}) reach the model unscaled, with values "
                    f"up to about {magnitude:,.0f}; {advice}",
                )
            if len(ctx.reports) == found_before and not self._takes_token_ids(facts, call.func):
                self._check_range(ctx, call.args[0], limit)

    @staticmethod
    def _check_range(ctx: RuleContext, argument: cst.Arg, limit: float) -> None:
        """Features whose value range the script states (draws and arithmetic on them)."""
        value = ctx.facts.tensors.range_of(argument.value)
        if value is None or value.magnitude <= limit:
            return
        spread = ""
        if len(value.columns) > 1:
            scales = sorted(c.magnitude for c in value.columns)
            spread = f" (columns from about {scales[0]:,.4g} to {scales[-1]:,.0f})"
        ctx.report(
            argument,
            f"these features reach the model unscaled, with values up to about {value.magnitude:,.0f}{spread}; "
            "standardise them first (sklearn StandardScaler fitted on the training split, or `(x - mean) / std`)",
        )

    @staticmethod
    def _inside_module_class(facts, call: cst.Call) -> bool:
        function = facts.enclosing_function(call)
        owner = facts.enclosing_class(function) if function is not None else None
        return owner is not None and facts.is_module_class(owner)

    @staticmethod
    def _takes_token_ids(facts, model: cst.BaseExpression) -> bool:
        """An embedding first layer: the inputs are indices, whatever their range."""
        network = facts.networks.network_of(model)
        return network is not None and bool(network.ops) and network.ops[0].api in ("torch.nn.Embedding", "torch.nn.EmbeddingBag")

    @staticmethod
    def _model_scales_input(facts, model: cst.BaseExpression) -> bool:
        """A normalisation first layer, or scaling inside forward()."""
        network = facts.networks.network_of(model)
        if network is None:
            return False
        if network.ops and network.ops[0].api in names.NORM_LAYERS:
            return True
        if isinstance(network.node, cst.ClassDef):
            forward = facts.method(network.node, "forward")
            for node in facts.effects.get(forward, []) if forward else []:
                if isinstance(node, cst.Call) and facts.qualname(node.func) in SCALING_FUNCTIONS:
                    return True
                if isinstance(node, cst.Assign) and isinstance(node.value, cst.BinaryOperation) \
                        and isinstance(node.value.operator, cst.Divide):
                    return True
        return False
