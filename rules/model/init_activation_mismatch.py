from __future__ import annotations

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

WEIGHTED = names.LINEAR_LAYERS | names.CONV_LAYERS
SYMMETRIC_GAINS = {"linear", "sigmoid", "tanh", "identity", "conv1d", "conv2d", "conv3d"}
RECTIFIER_GAINS = {"relu", "leaky_relu"}


@register
class InitActivationMismatch(Rule):
    """
    ## What it does
    Finds weight initialisations tuned for a different activation than the one the network uses
    between its layers: Xavier/Glorot init (`nn.init.xavier_uniform_`, `xavier_normal_`, with the
    default gain) on the Linear/Conv weights of a network whose hidden activations are ReLU, or
    Kaiming/He init for ReLU (`nn.init.kaiming_*` with the default `nonlinearity="leaky_relu"` or
    `"relu"`) on a network whose hidden activations are tanh or sigmoid.

    The init is found in `__init__` (`nn.init.xavier_uniform_(self.fc.weight)`), in loops over
    `self.modules()` guarded by `isinstance(m, nn.Linear)`, in functions given to
    `model.apply(fn)`, and in loops over `named_parameters()`. The activations come from the
    network's layers and its `forward()`; the output activation does not count. Networks with
    normalisation layers (which rescale activations whatever the init) and recurrent layers stay
    quiet, and so do inits whose gain is tuned (`gain=nn.init.calculate_gain("relu")`,
    `kaiming_normal_(w, nonlinearity="tanh")`).

    ## Why is this bad?
    Xavier init keeps the variance of a layer's output equal to its input's for a symmetric,
    roughly linear activation (Glorot & Bengio 2010). A ReLU zeroes half of its input, so under
    Xavier the signal variance halves at every layer and deep ReLU stacks start with vanishing
    activations and gradients; He et al. (2015) double the variance to compensate. The other
    way round, Kaiming init makes tanh/sigmoid pre-activations twice as large as intended, which
    pushes the units into saturation where their gradient is nearly zero.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    ```
    """

    code = "ML301"
    name = "init-activation-mismatch"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ("ML929", "ML909", "ML906", "ML907")

    VALID = [
        # Xavier only on the output head (the one Linear); the ReLU convolutions get Kaiming
        """
import torch
import torch.nn as nn
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(16, 32, 3)
        self.fc = nn.Linear(32, 2)
    def forward(self, x):
        h = torch.relu(self.conv(x)).max(dim=-1).values
        return self.fc(h)
def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_normal_(m.weight)
    elif isinstance(m, nn.Conv1d):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
model = CNN()
model.apply(init_weights)
""",
        # Kaiming for ReLU
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 32)
        self.fc2 = nn.Linear(32, 1)
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
        nn.init.kaiming_normal_(self.fc2.weight, nonlinearity="relu")
    def forward(self, x):
        return self.fc2(nn.functional.relu(self.fc1(x)))
""",
        # Xavier with a ReLU gain is fine under ReLU
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
def init(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))
model.apply(init)
""",
        # Kaiming tuned for tanh is fine under tanh
        """
import torch
from torch import nn
class TanhNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 16)
        self.b = nn.Linear(16, 2)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="tanh")
    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))
""",
        # Xavier with tanh is what Glorot & Bengio designed it for
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
for layer in model:
    if isinstance(layer, nn.Linear):
        nn.init.xavier_normal_(layer.weight)
""",
        # a sigmoid only at the output does not make the hidden layers saturating
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
for m in model.modules():
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight)
""",
        # normalisation layers rescale activations: the init's gain hardly matters (nn.Transformer does this)
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 1))
for p in model.parameters():
    if p.dim() > 1:
        nn.init.xavier_uniform_(p)
""",
        # Xavier only on the biases' neighbours: the init of a BatchNorm weight is not a mismatch
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
def init(m):
    if isinstance(m, nn.Embedding):
        nn.init.xavier_uniform_(m.weight)
model.apply(init)
""",
    ]
    INVALID = [
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 1)
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.xavier_uniform_(self.fc2.weight)
    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
""",
            line=10,
            message="xavier_uniform_",
        ),
        Invalid(
            """
from torch import nn
model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
def init_weights(m):
    if type(m) == nn.Linear:
        nn.init.kaiming_uniform_(m.weight)
        m.bias.data.fill_(0.01)
model.apply(init_weights)
""",
            line=6,
            message="tanh",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.fc = nn.Linear(32 * 24 * 24, 10)
        self.apply(self._init_weights)
    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))
""",
            line=13,
            message="ReLU",
        ),
        Invalid(
            """
import torch.nn as nn
if __name__ == "__main__":
    net = nn.Sequential(nn.Linear(4, 16), nn.Sigmoid(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 3))
    for name, param in net.named_parameters():
        if "weight" in name:
            nn.init.kaiming_normal_(param, nonlinearity="relu")
""",
            line=7,
            message="sigmoid",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        analysis = facts.networks
        for init in facts.initialization.inits:
            if init.scheme not in ("xavier", "kaiming") or init.target == "bias":
                continue
            if init.layers is not None and not init.reaches(WEIGHTED):
                continue
            if init.layers is None and init.target != "weight":
                continue
            if init.scheme == "kaiming" and facts.literal(facts.argument(init.call, 1, "a")) not in (None, 0, 0.0):
                continue
            for network in self._networks(facts, init):
                if analysis.has_normalisation(network) or analysis.has_recurrent_layers(network) or analysis.is_opaque(network):
                    continue
                if self._only_output_layer(network, init):
                    continue  # the head that feeds the loss has no activation after it to be tuned for
                kind = analysis.hidden_activation_kind(network)
                hidden = analysis.hidden_activations(network)
                if not hidden:
                    continue
                first = hidden[0]
                where = f"{first.label}, line {facts.line_of(first.node)}"
                if init.scheme == "xavier" and init.nonlinearity in SYMMETRIC_GAINS and kind == "rectifier":
                    ctx.report(
                        init.call,
                        f"{init.label} initialises the weights of `{analysis.label(network)}`, whose hidden layers use ReLU "
                        f"({where}): Xavier assumes a symmetric activation, so the signal variance halves at every "
                        "ReLU layer; use nn.init.kaiming_normal_(w, nonlinearity=\"relu\") (He et al. 2015) or "
                        "pass gain=nn.init.calculate_gain(\"relu\")",
                    )
                    break
                if init.scheme == "kaiming" and init.nonlinearity in RECTIFIER_GAINS and kind == "saturating":
                    activation = first.activation or "tanh"
                    ctx.report(
                        init.call,
                        f"{init.label} (nonlinearity=\"{init.nonlinearity}\") initialises the weights of "
                        f"`{analysis.label(network)}`, whose hidden layers use {activation} ({where}): the ReLU gain doubles "
                        f"the pre-activation variance and pushes {activation} units into saturation; use "
                        f"nn.init.xavier_uniform_(w) or kaiming_*(w, nonlinearity=\"{activation}\")",
                    )
                    break

    @staticmethod
    def _only_output_layer(network, init) -> bool:
        """The init reaches only the network's last weighted layer (`isinstance(m, nn.Linear)` in
        a CNN whose one Linear is its output head), or just that layer by name."""
        weighted = [op for op in network.ops if op.api in WEIGHTED]
        if not weighted:
            return False
        if init.layer_node is not None:
            return init.layer_node is weighted[-1].node
        return init.layers is not None and [op for op in weighted if op.api in init.layers] == [weighted[-1]]

    @staticmethod
    def _networks(facts, init):
        by_node = {id(n.node): n for n in facts.networks.all_networks}
        return [by_node[id(node)] for node in init.networks if id(node) in by_node]
