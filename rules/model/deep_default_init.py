from __future__ import annotations

import libcst as cst

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


def network_anchor(network) -> cst.CSTNode:
    """Where a finding about a whole network points: the class name, or the nn.Sequential call."""
    return network.node.name if isinstance(network.node, cst.ClassDef) else network.node


def loads_weights(facts) -> bool:
    """True when the script loads a state dict: the network may never train from its init."""
    return any(isinstance(call.func, cst.Attribute) and call.func.attr.value in ("load_state_dict", "from_pretrained")
               for call in facts.calls)


@register
class DeepDefaultInit(Rule):
    """
    ## What it does
    Finds deep stacks of Linear/Conv layers with ReLU-family activations between them that keep
    PyTorch's default initialisation: no `nn.init.*` call reaches their weights, no normalisation
    layer (BatchNorm, LayerNorm, GroupNorm...) and no residual or concatenating connection in
    `forward()`. Layers built in loops count as many times as the loop runs when its length is
    a constant (`for _ in range(10)`, `[nn.Linear(h, h) for _ in range(depth)]` with a known
    `depth`); a loop of unknown length counts once, so the rule stays quiet when unsure.

    This is a hypothesis (`info`): a probe run (`mlplint check --probe`) settles it by measuring
    how the signal fades through the stack at initialisation (ML938), and the gradient and
    activation scale per layer.

    Option (`[tool.mlplint.deep-default-init]`): `min-depth` (default 8), the number of
    Linear/Conv layers from which a ReLU stack counts as deep. Under the default init
    (`kaiming_uniform_(a=sqrt(5))`, weight variance 1/(3 fan_in)) each ReLU layer shrinks the
    signal's standard deviation about 2.4x, where He init (variance 2/fan_in) keeps it constant
    (He et al. 2015, who show a 30-layer ReLU net that does not train without it); common 3-5
    layer MLPs and CNNs train fine with adaptive optimizers despite the shrinkage.

    ## Why is this bad?
    Each layer multiplies the activations' scale by roughly the same factor, so the effect
    compounds with depth: after 10 layers the input's signal is about 10,000x smaller than the
    biases, early layers get vanishing gradients, and training stalls or crawls.

    ## Example
    ```python
    import torch.nn as nn

    layers = []
    for _ in range(10):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(256, 10))
    ```

    Use instead:
    ```python
    import torch.nn as nn

    layers = []
    for _ in range(10):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(256, 10))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    ```
    """

    code = "ML302"
    name = "deep-default-init"
    severity = Severity.INFO
    judges_design = True
    symptoms = ("ML938", "ML909", "ML906", "ML907")
    options = {"min-depth": 8}

    VALID = [
        # a common 3-layer MLP
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
""",
        # deep, but with BatchNorm after each layer
        """
import torch.nn as nn
class Deep(nn.Module):
    def __init__(self, width=128):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()) for _ in range(12)])
        self.head = nn.Linear(width, 10)
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)
""",
        # deep, with residual connections
        """
import torch
import torch.nn as nn
class ResMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(64, 64) for _ in range(16)])
    def forward(self, x):
        for layer in self.layers:
            x = x + torch.relu(layer(x))
        return x
""",
        # deep, with an explicit He init through apply()
        """
import torch.nn as nn
def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
layers = []
for _ in range(10):
    layers.append(nn.Linear(64, 64))
    layers.append(nn.ReLU())
net = nn.Sequential(*layers)
net.apply(init_weights)
""",
        # the depth depends on a command-line argument: cannot tell
        """
import argparse
import torch.nn as nn
parser = argparse.ArgumentParser()
parser.add_argument("--depth", type=int)
args = parser.parse_args()
layers = []
for _ in range(args.depth):
    layers += [nn.Linear(64, 64), nn.ReLU()]
model = nn.Sequential(*layers)
""",
        # pretrained weights are loaded: the init never matters
        """
import torch
import torch.nn as nn
model = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(64, 64), nn.ReLU())])
model.load_state_dict(torch.load("weights.pt"))
""",
    ]
    INVALID = [
        Invalid(
            """
import torch.nn as nn
layers = []
for _ in range(10):
    layers += [nn.Linear(256, 256), nn.ReLU()]
model = nn.Sequential(*layers, nn.Linear(256, 10))
""",
            line=6,
            message="11 Linear layers",
        ),
        Invalid(
            """
import torch
from torch import nn
DEPTH = 12
class MLP(nn.Module):
    def __init__(self, width=128, depth=DEPTH):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.out = nn.Linear(width, 1)
    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)
model = MLP()
""",
            line=5,
            message="`MLP`",
        ),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class VGGish(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(256 * 4 * 4, 512)
        self.fc2 = nn.Linear(512, 10)
    def forward(self, x):
        x = self.features(x).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))
""",
            line=4,
            message="8 Linear/Conv layers",
        ),
        Invalid(
            """
import torch.nn as nn
if __name__ == "__main__":
    blocks = [nn.Sequential(nn.Linear(32, 32), nn.LeakyReLU(0.1)) for _ in range(9)]
    model = nn.Sequential(nn.Linear(8, 32), nn.LeakyReLU(0.1), *blocks, nn.Linear(32, 1))
""",
            line=5,
            message="11 Linear layers with nn.LeakyReLU",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        analysis = facts.networks
        if loads_weights(facts) or facts.initialization.unplaced:
            return
        for network, layers, depth in analysis.plain_deep_stacks(("rectifier", "relu"), ctx.options["min-depth"]):
            parts = {id(part.node) for part in analysis.all_parts(network)}
            if any(init.target != "bias" and any(id(node) in parts for node in init.networks)
                   for init in facts.initialization.inits):
                continue
            activation = analysis.hidden_activations(network)[0].label
            ctx.report(
                network_anchor(network),
                f"`{analysis.label(network)}` stacks {depth} {analysis.layer_kinds(layers)} layers with {activation} between them, no "
                "normalisation, no residual connections and PyTorch's default init, which shrinks the signal "
                "about 2.4x per layer; if early layers barely learn, initialise the weights with "
                "nn.init.kaiming_normal_(w, nonlinearity=\"relu\") (He et al. 2015) or add BatchNorm/LayerNorm",
            )
