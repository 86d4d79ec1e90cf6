from __future__ import annotations

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register
from mlplint.rules.model.deep_default_init import loads_weights, network_anchor

# Inits tuned for tanh (Glorot & Bengio 2010; Saxe et al. 2014 for orthogonal).
TANH_TUNED = {"linear", "tanh", "sigmoid", None}


@register
class SaturatingDeepStack(Rule):
    """
    ## What it does
    Finds deep stacks of Linear/Conv layers whose hidden activations are all sigmoid or tanh
    (`nn.Sigmoid`, `nn.Tanh`, `torch.sigmoid`, `F.tanh`, `x.tanh()`...), with no normalisation layer
    and no residual connection. The output activation does not count, nor do the gates inside
    LSTM/GRU layers (networks with recurrent layers stay quiet). A tanh stack whose weights get a
    Xavier or orthogonal init, the init designed for it, stays quiet; a sigmoid stack does not,
    since no init keeps its non-centred outputs from saturating the next layer. Layers built in
    loops of constant length count once per iteration.

    This is a hypothesis (`info`): a probe run (`mlplint check --probe`) settles it by measuring
    saturation and gradient scale per layer.

    Option (`[tool.mlplint.saturating-deep-stack]`): `min-depth` (default 5), the number of
    Linear/Conv layers from which the stack counts as deep: Glorot & Bengio (2010) show the top
    hidden layers of a sigmoid network with 4-5 hidden layers saturating at the start of training
    and gradients vanishing towards the input.

    ## Why is this bad?
    The derivative of a sigmoid is at most 0.25 and that of tanh at most 1, and both fall to zero
    once a unit saturates. Backpropagated through many such layers, gradients shrink
    geometrically, so the early layers hardly learn and the loss plateaus. ReLU-family
    activations (with Kaiming init), normalisation or residual connections avoid it.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(
        nn.Linear(64, 128), nn.Sigmoid(), nn.Linear(128, 128), nn.Sigmoid(),
        nn.Linear(128, 128), nn.Sigmoid(), nn.Linear(128, 128), nn.Sigmoid(),
        nn.Linear(128, 10),
    )
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )
    ```
    """

    code = "ML303"
    name = "saturating-deep-stack"
    severity = Severity.INFO
    judges_design = True
    symptoms = ("ML908", "ML906")
    options = {"min-depth": 5}

    VALID = [
        # a shallow tanh network
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
""",
        # only the output is a sigmoid
        """
import torch.nn as nn
model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(32, 32), nn.ReLU())], nn.Linear(32, 1), nn.Sigmoid())
""",
        # an LSTM's gates are sigmoid and tanh inside: not a stack of saturating layers
        """
import torch
import torch.nn as nn
class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(16, 64, num_layers=4)
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 64)
        self.fc4 = nn.Linear(64, 64)
        self.fc5 = nn.Linear(64, 1)
    def forward(self, x):
        out, _ = self.rnn(x)
        h = torch.tanh(self.fc1(out[-1]))
        h = torch.tanh(self.fc2(h))
        h = torch.tanh(self.fc3(h))
        h = torch.tanh(self.fc4(h))
        return self.fc5(h)
""",
        # deep tanh stack with LayerNorm
        """
import torch.nn as nn
blocks = [nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Tanh()) for _ in range(8)]
model = nn.Sequential(*blocks, nn.Linear(64, 1))
""",
        # deep tanh stack with Xavier init, the init designed for tanh
        """
import torch.nn as nn
model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(32, 32), nn.Tanh())], nn.Linear(32, 1))
for m in model.modules():
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
""",
        # sigmoid used as a gate (mixed with ReLU): not a saturating stack
        """
import torch
import torch.nn as nn
class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(6)])
        self.gate = nn.Linear(32, 32)
    def forward(self, x):
        for fc in self.fcs:
            x = torch.relu(fc(x))
        return x * torch.sigmoid(self.gate(x))
""",
    ]
    INVALID = [
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(
    nn.Linear(64, 128), nn.Sigmoid(), nn.Linear(128, 128), nn.Sigmoid(),
    nn.Linear(128, 128), nn.Sigmoid(), nn.Linear(128, 128), nn.Sigmoid(),
    nn.Linear(128, 10),
)
""",
            line=3,
            message="5 Linear layers with nn.Sigmoid",
        ),
        Invalid(
            """
import torch
from torch import nn
class DeepTanh(nn.Module):
    def __init__(self, n_hidden=6):
        super().__init__()
        self.inp = nn.Linear(10, 50)
        self.hidden = nn.ModuleList([nn.Linear(50, 50) for _ in range(n_hidden)])
        self.out = nn.Linear(50, 1)
    def forward(self, x):
        x = torch.tanh(self.inp(x))
        for layer in self.hidden:
            x = torch.tanh(layer(x))
        return self.out(x)
""",
            line=4,
            message="`DeepTanh`",
        ),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(784, 512)
        self.l2 = nn.Linear(512, 256)
        self.l3 = nn.Linear(256, 128)
        self.l4 = nn.Linear(128, 64)
        self.l5 = nn.Linear(64, 10)
        for layer in (self.l1, self.l2, self.l3, self.l4, self.l5):
            nn.init.xavier_uniform_(layer.weight)
    def forward(self, x):
        x = F.sigmoid(self.l1(x))
        x = F.sigmoid(self.l2(x))
        x = F.sigmoid(self.l3(x))
        x = F.sigmoid(self.l4(x))
        return self.l5(x)
""",
            line=4,
            message="sigmoid",
        ),
        Invalid(
            """
import torch.nn as nn
if __name__ == "__main__":
    layers = [nn.Linear(3, 20), nn.Tanh()]
    for i in range(5):
        layers.append(nn.Linear(20, 20))
        layers.append(nn.Tanh())
    layers.append(nn.Linear(20, 1))
    net = nn.Sequential(*layers)
""",
            line=9,
            message="7 Linear layers",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        analysis = facts.networks
        if loads_weights(facts):
            return
        for network, layers, depth in analysis.plain_deep_stacks(("saturating",), ctx.options["min-depth"]):
            hidden = analysis.hidden_activations(network)
            sigmoid = any(op.activation == "sigmoid" for op in hidden)
            if not sigmoid and self._tanh_tuned_init(facts, network):
                continue
            first = hidden[0]
            why = ("sigmoid's derivative is at most 0.25 and its outputs are not centred, so gradients shrink at least 4x "
                   "per layer" if sigmoid else "saturated tanh units pass almost no gradient, and the default init lets "
                   "them saturate")
            ctx.report(
                network_anchor(network),
                f"`{analysis.label(network)}` stacks {depth} {analysis.layer_kinds(layers)} layers with {first.label} "
                f"(line {facts.line_of(first.node)}) between them and no normalisation or residual connections: {why} "
                "(Glorot & Bengio 2010); if early layers barely learn, use ReLU-family activations with Kaiming init, "
                "or add LayerNorm/BatchNorm",
            )

    @staticmethod
    def _tanh_tuned_init(facts, network) -> bool:
        parts = {id(part.node) for part in facts.networks.all_parts(network)}
        return any(init.scheme in ("xavier", "orthogonal") and init.nonlinearity in TANH_TUNED
                   and any(id(node) in parts for node in init.networks)
                   for init in facts.initialization.inits)
