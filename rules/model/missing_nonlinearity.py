from __future__ import annotations

from mlplint.lint.facts.linear_chains import LinearChains
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register


@register
class MissingNonlinearity(Rule):
    """
    ## What it does
    Finds two Linear layers applied one right after the other with no activation between them:
    adjacent in an `nn.Sequential` (Dropout, Flatten and Identity between them do not count as
    activations), or in `forward()`, where the output of one Linear layer is the input of the
    next (through Dropout and reshapes only). It follows the data, not the source order, so the
    q/k/v projections of an attention block, several output heads reading the same features,
    residual additions and `torch.cat` stay quiet. A Linear appended in a loop that adds nothing
    else (`for ...: layers.append(nn.Linear(...))`) counts as a chain when the loop runs at
    least twice. A bottleneck (`nn.Linear(d, r)` then `nn.Linear(r, k)` with r smaller than both
    d and k: a deliberate low-rank factorisation; when the sizes are not literals, a first Linear
    with `bias=False` or an inner size named like a rank, `r`/`rank`/`latent_dim`, as LoRA adapters
    write it) and the last Linear of one `nn.Sequential` block
    feeding the first Linear of another in `forward()` (an encoder's latent code handed to a
    decoder) stay quiet.

    ## Why is this bad?
    The composition of two linear maps is one linear map: `W2 (W1 x + b1) + b2 = W x + b`. The
    second layer adds parameters and compute but no expressive power, so a network meant to be a
    multi-layer perceptron is only a linear model and underfits any non-linear relation.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.Dropout(0.2), nn.Linear(64, 1))
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1))
    ```
    """

    code = "ML306"
    name = "missing-nonlinearity"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ()

    VALID = [
        # the "old code below" a return never runs (RoMa's attention layer)
        """
import torch.nn as nn
import torch.nn.functional as F
class Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        x = self.proj(F.scaled_dot_product_attention(q, k, v))
        return x
        # old code below
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj((q @ k.transpose(-2, -1)).softmax(-1) @ v)
""",
        # the layer list is rebound for a second model: the first list's appends are not the second's
        """
import torch
from torch import nn

all_layers = []
for h in [8, 4]:
    all_layers.append(nn.Linear(16 if not all_layers else 8, h))
    all_layers.append(nn.ReLU())
all_layers.append(nn.Linear(4, 1))
model1 = nn.Sequential(*all_layers)

input_size = 784
all_layers = [nn.Flatten()]          # fresh list for a second model
for hidden_unit in [32, 16]:
    layer = nn.Linear(input_size, hidden_unit)
    all_layers.append(layer)
    all_layers.append(nn.ReLU())
    input_size = hidden_unit
all_layers.append(nn.Linear(16, 10))
model2 = nn.Sequential(*all_layers)
print(model1, model2)
""",
        # an activation between the layers
        """
import torch.nn as nn
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1))
""",
        # attention: q/k/v projections are adjacent in the source but not stacked
        """
import torch
import torch.nn as nn
class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
    def forward(self, x):
        q = self.q(x)
        k = self.k(x)
        v = self.v(x)
        attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        return self.out(attn @ v)
""",
        # two output heads reading the same hidden features
        """
import torch.nn as nn
import torch.nn.functional as F
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(16, 64)
        self.head_a = nn.Linear(64, 1)
        self.head_b = nn.Linear(64, 3)
    def forward(self, x):
        h = F.relu(self.trunk(x))
        return self.head_a(h), self.head_b(h)
""",
        # a local block between the layers may hold an activation
        """
import torch.nn as nn
class Swish(nn.Module):
    def forward(self, x):
        return x * x.sigmoid()
model = nn.Sequential(nn.Linear(8, 32), Swish(), nn.Linear(32, 1))
""",
        # a residual connection: the next layer reads more than the Linear's output
        """
import torch
import torch.nn as nn
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
    def forward(self, x):
        h = self.fc1(x) + x
        return self.fc2(torch.cat([h, x], dim=-1)[:, :32])
""",
        # explicit low-rank factorisation, with or without biases
        """
import torch.nn as nn
low_rank = nn.Sequential(nn.Linear(512, 16, bias=False), nn.Linear(16, 512))
bottleneck = nn.Sequential(nn.Linear(256, 8), nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 256))
""",
        # an autoencoder: the encoder's linear latent code is handed to the decoder
        """
import torch.nn as nn
class AutoEncoder(nn.Module):
    def __init__(self, latent=16):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())
    def forward(self, x):
        z = self.encoder(x)
        return self.decoder(z).view(-1, 1, 28, 28)
""",
        # an activation applied conditionally: cannot tell, stay quiet
        """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self, act=True):
        super().__init__()
        self.act = act
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 1)
    def forward(self, x):
        x = self.fc1(x)
        if self.act:
            x = F.relu(x)
        return self.fc2(x)
""",
        """
import torch.nn as nn
def block(in_feat, out_feat, normalize=True):
    layers = [nn.Linear(in_feat, out_feat)]
    if normalize:
        layers.append(nn.BatchNorm1d(out_feat, 0.8))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers
generator = nn.Sequential(*block(100, 128, normalize=False), *block(128, 256), nn.Linear(256, 784), nn.Tanh())
""",
        # a LoRA adapter: sizes not literal, first projection without bias
        """
import torch.nn as nn
class LoRALinear(nn.Module):
    def __init__(self, base, r=8):
        super().__init__()
        self.base = base
        self.lora = nn.Sequential(nn.Linear(base.in_features, r, bias=False), nn.Linear(r, base.out_features, bias=False))
    def forward(self, x):
        return self.base(x) + self.lora(x)
""",
        # a low-rank factorisation through a size named rank
        """
import torch.nn as nn
class LowRank(nn.Module):
    def __init__(self, d_in, d_out, rank):
        super().__init__()
        self.down = nn.Linear(d_in, rank)
        self.up = nn.Linear(rank, d_out)
    def forward(self, x):
        return self.up(self.down(x))
""",
    ]
    INVALID = [
        # narrowing twice is no bottleneck: 784 -> 128 -> 10 is one linear map
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.Linear(128, 10))
""",
            line=3,
            message="nn.Linear(128, 10)",
        ),
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(20, 64), nn.Dropout(0.2), nn.Linear(64, 1))
""",
            line=3,
            message="nn.Dropout",
        ),
        Invalid(
            """
import torch
from torch import nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)
        self.dropout = nn.Dropout(0.5)
    def forward(self, x):
        x = x.view(-1, 784)
        x = self.fc1(x)
        x = self.dropout(x)
        return self.fc2(x)
""",
            line=14,
            message="`nn.Linear(784, 128)`",
        ),
        Invalid(
            """
import torch.nn as nn
if __name__ == "__main__":
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64))
    model = nn.Sequential(encoder, nn.Linear(64, 10))
""",
            line=5,
        ),
        Invalid(
            """
import torch.nn as nn
dims = [32, 64, 64, 1]
layers = []
for a, b in zip(dims[:-1], dims[1:]):
    layers.append(nn.Linear(a, b))
model = nn.Sequential(*layers)
""",
            line=6,
            message="loop",
        ),
        Invalid(
            """
import torch.nn as nn
def block(in_feat, out_feat):
    layers = [nn.Linear(in_feat, out_feat)]
    layers.append(nn.Dropout(0.2))
    return layers
model = nn.Sequential(*block(100, 128), *block(128, 256), nn.ReLU(), nn.Linear(256, 10))
""",
            line=4,
        ),
        # sizes in variables, with nothing that says low-rank
        Invalid(
            """
import torch.nn as nn
def make_mlp(in_dim, hidden, out_dim):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Linear(hidden, out_dim))
""",
            line=4,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        seen = set()
        for chain in LinearChains(facts.networks).find():
            key = (id(chain.first.node), id(chain.second.node))
            if key in seen:
                continue
            seen.add(key)
            between = f" ({', '.join(chain.between)} between them does not count)" if chain.between else ""
            if chain.first is chain.second:
                ctx.report(
                    chain.node,
                    f"`{facts.module.code_for_node(chain.first.node)}` is appended in a loop that adds no activation, so "
                    "the nn.Sequential stacks Linear layers directly on each other: they compose into a single linear "
                    "map; append an activation such as nn.ReLU() after each hidden Linear",
                )
                continue
            ctx.report(
                chain.node,
                f"`{facts.module.code_for_node(chain.first.node)}` (line {facts.line_of(chain.first.node)}) feeds "
                f"`{facts.module.code_for_node(chain.second.node)}` with no activation between them{between}: two "
                "Linear layers in a row compose into one linear map, so the extra layer adds parameters but no "
                "expressive power; put an activation such as nn.ReLU() between them",
            )
