from __future__ import annotations

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

WEIGHTED = names.LINEAR_LAYERS | names.CONV_LAYERS


@register
class ConstantWeightInit(Rule):
    """
    ## What it does
    Finds the weights of Linear and Conv layers set to zero or to one constant:
    `nn.init.zeros_`, `nn.init.ones_`, `nn.init.constant_(w, c)`, `w.data.fill_(c)` or
    `w.data.zero_()`, whether on one layer (`self.fc1.weight`), on every Linear/Conv layer in a
    loop over `self.modules()` or a function given to `model.apply()`, or on the weights from
    `named_parameters()`.

    Zero or constant biases stay quiet (that is the usual init), and so do the weights of
    normalisation layers (`nn.init.constant_(bn.weight, 1)`). A single layer whose output is
    the network's output, or a layer in a network with residual connections, stays quiet too:
    zero-initialising the last layer (or the last layer of a residual branch, as in Fixup,
    ReZero or ControlNet's zero convolutions) is a deliberate technique that other paths or
    the random hidden layers break.

    ## Why is this bad?
    When every weight of a hidden layer has the same value, all of its units compute the same
    output and receive the same gradient, so they stay identical for the whole of training: the
    layer behaves like a single unit (the symmetry is never broken). With zeros and ReLU the units
    output 0, get zero gradients and never learn at all. Random initialisation exists to break
    this symmetry.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    ```
    """

    code = "ML307"
    name = "constant-weight-init"
    severity = Severity.ERROR
    symptoms = ("ML926", "ML918")

    VALID = [
        # FCN: every conv zeroed, then the backbone's weights copied in from a pretrained VGG16
        """
import torch.nn as nn

class FCN32s(nn.Module):
    def __init__(self, n_class=21):
        super().__init__()
        self.conv1_1 = nn.Conv2d(3, 64, 3, padding=100)
        self.relu1_1 = nn.ReLU(inplace=True)
        self.conv1_2 = nn.Conv2d(64, 64, 3, padding=1)
        self.score_fr = nn.Conv2d(64, n_class, 1)
        self._initialize_weights()

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.zero_()

    def forward(self, x):
        return self.score_fr(self.conv1_2(self.relu1_1(self.conv1_1(x))))

    def copy_params_from_vgg16(self, vgg16):
        for l1, l2 in zip(vgg16.features, [self.conv1_1, self.relu1_1, self.conv1_2]):
            if isinstance(l1, nn.Conv2d):
                l2.weight.data.copy_(l1.weight.data)
""",
        # the else branch of a weight test holds the biases: zeros there are fine
        """
import torch
import torch.nn as nn


def init_params(model):
    for name, param in model.named_parameters():
        if "bias" in name:
            param.data.fill_(0.0)
        else:
            nn.init.kaiming_normal_(param)


def init_constant(model):
    for name, param in model.named_parameters():
        if "weight" in name:
            nn.init.kaiming_normal_(param)
        else:
            param.data.zero_()


model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
init_params(model)
init_constant(model)
""",
        # a test's dummy module with no forward(): known constants, nothing trained
        """
import torch

class DummyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(10, 10)
        self.fc2 = torch.nn.Linear(12, 12)
        self.fc1.weight.data.zero_()
        self.fc1.bias.data.zero_()
        self.fc2.weight.data.fill_(1.0)
        self.fc2.bias.data.fill_(1.0)

model = DummyModel()
for name, p in model.named_parameters():
    print(name, p.norm().item())
""",
        # zero init of the output layer, with a Softmax after it
        """
import torch
from torch import nn

class MyModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin0 = nn.Linear(20, 20)
        nn.init.eye_(self.lin0.weight)
        self.lin1 = nn.Linear(20, 2)
        nn.init.zeros_(self.lin1.weight)   # zero-init of the *output* layer
        nn.init.ones_(self.lin1.bias)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, X):
        X = self.lin0(X)
        X = self.lin1(X)
        return self.softmax(X)
""",
        # a zero-init classifier head chosen by name: the random layers before it break the symmetry
        """
import torch.nn as nn
def init_weights(module, name):
    if isinstance(module, nn.Linear):
        if name.startswith("head"):
            nn.init.zeros_(module.weight)
            nn.init.constant_(module.bias, 0.0)
        else:
            nn.init.xavier_uniform_(module.weight)
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 10))
for name, module in model.named_modules():
    init_weights(module, name)
""",
        # zero biases are the usual init
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
for m in model.modules():
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
""",
        # BatchNorm weight 1, bias 0 (torchvision's ResNet init)
        """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.bn = nn.BatchNorm2d(16)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
""",
        # zero-initialised output layer: the hidden layers are random, so symmetry breaks
        """
import torch
import torch.nn as nn
class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(8, 64)
        self.head = nn.Linear(64, 2)
        nn.init.zeros_(self.head.weight)
        self.head.bias.data.fill_(0.0)
    def forward(self, x):
        return self.head(torch.relu(self.hidden(x)))
""",
        # DCGAN-style init: BatchNorm weights around 1, bias 0
        """
import torch.nn as nn
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)
netG = nn.Sequential(nn.ConvTranspose2d(100, 64, 4), nn.BatchNorm2d(64), nn.ReLU(), nn.ConvTranspose2d(64, 3, 4), nn.Tanh())
netG.apply(weights_init)
""",
        # logistic regression: one layer, nothing to be symmetric
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(30, 1))
def init(m):
    if isinstance(m, nn.Linear):
        nn.init.zeros_(m.weight)
model.apply(init)
""",
        # zero-initialised last layer of a residual branch (Fixup / ReZero style)
        """
import torch
import torch.nn as nn
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        nn.init.zeros_(self.fc2.weight)
    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))
""",
    ]
    INVALID = [
        # the else branch of a bias test holds the weights, set to one constant by a helper
        Invalid(
            """
import torch
import torch.nn as nn


def init_constant(model):
    for name, param in model.named_parameters():
        if "bias" in name:
            nn.init.zeros_(param)
        else:
            param.data.fill_(0.005)


model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
init_constant(model)
""",
            line=11,
        ),
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
for m in model.modules():
    if isinstance(m, nn.Linear):
        nn.init.zeros_(m.weight)
""",
            line=6,
            message="nn.init.zeros_()",
        ),
        Invalid(
            """
import torch
from torch import nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 32)
        self.fc2 = nn.Linear(32, 3)
        torch.nn.init.constant_(self.fc1.weight, 0.5)
    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))
""",
            line=9,
            message="0.5",
        ),
        Invalid(
            """
import torch.nn as nn
def init_weights(m):
    if type(m) == nn.Linear:
        m.weight.data.fill_(0.01)
        m.bias.data.fill_(0)
net = nn.Sequential(nn.Linear(2, 16), nn.Sigmoid(), nn.Linear(16, 1))
net.apply(init_weights)
""",
            line=5,
            message=".fill_()",
        ),
        Invalid(
            """
import torch.nn as nn
if __name__ == "__main__":
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    for name, param in model.named_parameters():
        if "weight" in name:
            nn.init.zeros_(param)
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        analysis = facts.networks
        by_node = {id(n.node): n for n in analysis.all_networks}
        for init in facts.initialization.inits:
            if init.scheme != "constant" or init.target == "bias" or self._selective(facts, init.call):
                continue
            networks = [by_node[id(node)] for node in init.networks if id(node) in by_node]
            value = "0" if init.value == 0 else (f"{init.value:g}" if isinstance(init.value, (int, float)) else "one constant")
            if init.layer_node is not None:
                if init.layers != frozenset({facts.class_of(init.layer_node)}) or not init.reaches(WEIGHTED):
                    continue
                if not networks or any(self._deliberate(analysis, network, init.layer_node) or self._never_run(facts, network)
                                       or _overwritten(facts, network) for network in networks):
                    continue
                ctx.report(
                    init.call,
                    f"{init.label} sets every weight of `{facts.module.code_for_node(init.tensor)}`, a hidden "
                    f"{_short(facts.class_of(init.layer_node))} (line {facts.line_of(init.layer_node)}), to {value}: its units compute the same output and get the "
                    "same gradient, so they stay identical (the symmetry never breaks); use a random init (the default, "
                    "or nn.init.kaiming_normal_/xavier_uniform_) and keep constants for biases",
                )
                continue
            if networks and all(len(analysis.weighted_layers(network)[0]) <= 1 or _overwritten(facts, network) for network in networks):
                continue  # a single layer (logistic/linear regression): zero init is fine, nothing to be symmetric
            if init.layers is not None:
                if not init.layers or not init.layers <= WEIGHTED:
                    continue
                reached = _short_set(init.layers)
            elif init.target == "weight" or init.target == "any" and networks:
                if not any(len(analysis.weighted_layers(network)[0]) >= 1 for network in networks):
                    continue
                reached = "Linear/Conv"
            else:
                continue
            where = f" of `{analysis.label(networks[0])}`" if networks else ""
            ctx.report(
                init.call,
                f"{init.label} sets every weight of the {reached} layers{where} to {value}: the units of each layer "
                "compute the same output and get the same gradient, so they stay identical (the symmetry never breaks); "
                "use a random init (the default, or nn.init.kaiming_normal_/xavier_uniform_) and keep constants for biases",
            )

    @staticmethod
    def _selective(facts, call: cst.Call) -> bool:
        """Inside a branch, within the loop or function that visits the layers, chosen by something
        other than the layer's type (`if name.startswith("head"):`, `if i == last:`): only some
        layers get the constant, and the
        random layers around them break the symmetry (zero-init heads and residual branches)."""
        child = call
        for ancestor in facts.ancestors(call):
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.For, cst.While)):
                return False  # conditions outside the loop or function that visits the layers select nothing
            if isinstance(ancestor, (cst.If, cst.IfExp)) and child is not ancestor.test and not _type_test(facts, ancestor.test):
                return True
            child = ancestor
        return False

    @staticmethod
    def _deliberate(analysis, network, layer_node) -> bool:
        """Zero/constant init of a network's output layer (a softmax after it or not), or of a
        layer in a residual network."""
        if any(op.node is layer_node for op in network.output_ops):
            return True
        layers, _ = analysis.weighted_layers(network)
        index = next((i for i, op in enumerate(layers) if op.node is layer_node), None)
        if index is not None and all(_upsamples_channels(analysis.facts, op) for op in layers[index + 1:]):
            return True  # the last layer, or the scoring layer before per-class upsampling (FCN)
        return analysis.has_skip_connections(network)

    @staticmethod
    def _never_run(facts, network) -> bool:
        """A module class with no forward() of its own or inherited from a class of the file (a
        test's dummy holding known constants): it computes nothing, so no unit is hidden."""
        node = network.node
        if not isinstance(node, cst.ClassDef):
            return False
        if any(isinstance(s, cst.FunctionDef) and s.name.value == "forward" for s in node.body.body):
            return False
        return all(facts.qualname(base.value) == "torch.nn.Module" for base in node.bases)


def _overwritten(facts, network) -> bool:
    """A module class with a method that copies weights into its layers or loads a state dict
    (FCN's `copy_params_from_vgg16`: `l2.weight.data.copy_(l1.weight.data)`): the constants are
    placeholders for the pretrained weights."""
    if not isinstance(network.node, cst.ClassDef):
        return False
    return any(isinstance(call.func, cst.Attribute) and (
        call.func.attr.value == "load_state_dict"
        or call.func.attr.value == "copy_" and "weight" in facts.spelling(call.func.value))
        for call in nodes_within(network.node, cst.Call))


def _upsamples_channels(facts, op) -> bool:
    """A transposed convolution with as many output channels as inputs: upsampling each channel."""
    if not op.api.startswith("torch.nn.ConvTranspose") or op.call is None:
        return False
    channels = [facts.literal(facts.argument(op.call, i, k)) for i, k in ((0, "in_channels"), (1, "out_channels"))]
    sources = [facts.module.code_for_node(facts.argument(op.call, i, k)) for i, k in ((0, "in_channels"), (1, "out_channels"))
               if facts.argument(op.call, i, k) is not None]
    return (channels[0] is not None and channels[0] == channels[1]) or (len(sources) == 2 and sources[0] == sources[1])


def _type_test(facts, test: cst.BaseExpression) -> bool:
    """`isinstance(m, nn.Linear)`, `"weight" in name`, `m.bias is not None` (possibly combined
    with `and`/`or`/`not`): a test that selects layers or parameters by kind, which the analysis reads."""
    if isinstance(test, cst.BooleanOperation):
        return _type_test(facts, test.left) and _type_test(facts, test.right)
    if isinstance(test, cst.UnaryOperation):
        return _type_test(facts, test.expression)
    if isinstance(test, cst.Call):
        if isinstance(test.func, cst.Attribute) and test.func.attr.value == "endswith":
            return _names_parameter_kind(facts, test.args[0].value) if test.args else False
        return facts.qualname(test.func) in ("builtins.isinstance", "builtins.hasattr")
    if isinstance(test, cst.Comparison):
        if all(isinstance(c.operator, (cst.In, cst.NotIn)) for c in test.comparisons):
            return _names_parameter_kind(facts, test.left)  # `"weight" in name`: every weight
        if all(isinstance(c.operator, (cst.Equal, cst.Is)) for c in test.comparisons) and \
                isinstance(test.left, cst.Call) and facts.qualname(test.left.func) == "builtins.type":
            return True  # `type(m) == nn.Linear`
        return all(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in test.comparisons)
    return False


def _names_parameter_kind(facts, expr: cst.BaseExpression) -> bool:
    value = facts.literal(expr)
    return isinstance(value, str) and value.strip(".") in ("weight", "bias")


def _short(api: str) -> str:
    return f"nn.{api.rsplit('.', 1)[-1]}" if api.startswith("torch.nn.") else api


def _short_set(apis: frozenset[str]) -> str:
    shown = sorted({api.rsplit(".", 1)[-1].replace("Lazy", "") for api in apis})
    return "/".join(shown)
