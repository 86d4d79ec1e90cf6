from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

WEIGHTED = names.LINEAR_LAYERS | names.CONV_LAYERS
# Ops a hidden activation's output may pass through before the next layer.
PASS_THROUGH = names.DROPOUT_LAYERS | {"torch.nn.Flatten", "torch.nn.Identity"}


def _weighted_layer(ctx: RuleContext, call: cst.BaseExpression) -> Optional[str]:
    """`nn.Linear` when call applies a Linear (or Conv) module, else None."""
    if not isinstance(call, cst.Call) or ctx.facts.qualname(call.func) is not None:
        return None
    found = [c for c in ctx.facts.classes_of(call.func) if isinstance(c, str) and c in WEIGHTED]
    return f"nn.{found[0].rsplit('.', 1)[-1]}" if found else None


def _over_units(layer: str, dim) -> bool:
    """Whether a softmax over `dim` of that layer's output runs across its units: the channel axis
    (1) of a Conv output, the last axis of a Linear one. A Conv output's softmax over its spatial
    axes (talking-heads attention, spatial attention maps) is not a hidden activation."""
    if layer.startswith("nn.Conv"):
        return dim == 1
    return dim in (1, -1, None)


@register
class SoftmaxHiddenActivation(Rule):
    """
    ## What it does
    Finds softmax used as the activation of a hidden layer: a Linear or Conv layer's output put
    through `nn.Softmax`, `F.softmax`, `torch.softmax` or `.softmax()` and fed to the next Linear or
    Conv layer, in an `nn.Sequential` or in `forward()`. Softmax over scores that are not a layer's
    output (attention over `q @ k.T`), or whose result weighs something else (attention pooling,
    a mixture-of-experts gate) is what softmax is for, and stays quiet; so do a softmax at the
    output and one over a Conv output's spatial axes (talking-heads or spatial attention maps).

    ## Why is this bad?
    Softmax couples all units of a layer: they must sum to 1, so with 256 hidden units each is
    about 1/256 and their gradients are tiny and shared; one unit winning pushes all others to 0.
    The next layer receives an almost constant, low-information input and the network trains
    very slowly or not at all. Hidden layers want an elementwise activation (ReLU, GELU, tanh).

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.Softmax(dim=1), nn.Linear(64, 3))
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    ```
    """

    code = "ML308"
    name = "softmax-hidden-activation"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ("ML930", "ML904", "ML906", "ML909")

    VALID = [
        # softmax at the output (inference probabilities)
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3), nn.Softmax(dim=1))\n",
        # attention: softmax over dot products, weighting the values
        """
import torch
import torch.nn as nn
import torch.nn.functional as F
class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.proj = nn.Linear(d, d)
    def forward(self, x):
        att = F.softmax(self.q(x) @ self.k(x).transpose(-2, -1), dim=-1)
        return self.proj(att @ self.v(x))
""",
        # attention pooling and a gate: the softmax weighs other tensors
        """
import torch
import torch.nn as nn
class Pool(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.score = nn.Linear(d, 1)
        self.head = nn.Linear(d, 2)
    def forward(self, h):
        weights = torch.softmax(self.score(h), dim=1)
        pooled = (weights * h).sum(dim=1)
        return self.head(pooled)
""",
        # a Conv output's spatial softmax between two 1x1 convs: talking-heads attention
        """
import torch.nn as nn
class TalkingHeads(nn.Module):
    def __init__(self, heads):
        super().__init__()
        self.mix1 = nn.Conv2d(heads, heads, 1)
        self.mix2 = nn.Conv2d(heads, heads, 1)
    def forward(self, attn):
        attn = self.mix1(attn)
        attn = attn.softmax(dim=-1)
        return self.mix2(attn)
""",
    ]
    INVALID = [
        Invalid("import torch.nn as nn\nnet = nn.Sequential(nn.Linear(20, 64), nn.Softmax(dim=1), nn.Dropout(0.2), nn.Linear(64, 3))\n", line=2),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 32)
        self.fc2 = nn.Linear(32, 2)
    def forward(self, x):
        x = F.softmax(self.fc1(x), dim=1)
        return self.fc2(x)
""",
            line=10,
            message="self.fc2",
        ),
        Invalid(
            """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 32)
        self.act = nn.Softmax(dim=-1)
        self.fc2 = nn.Linear(32, 2)
    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))
""",
            line=7,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        reported = set()
        for node, message in list(self._in_sequentials(ctx)) + list(self._in_forwards(ctx)):
            if id(node) not in reported:
                reported.add(id(node))
                ctx.report(node, message)

    def _in_sequentials(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        """Softmax between two layers written as arguments of the same nn.Sequential (a nested
        block or a starred list breaks the sequence: what it does inside is not known here)."""
        facts = ctx.facts
        for call in facts.calls_to(names.SEQUENTIAL):
            layers = [(facts.qualname(arg.value.func), arg.value) if isinstance(arg.value, cst.Call) and not arg.star
                      else (None, arg.value) for arg in call.args]
            layers = [(api, node) for api, node in layers if api not in PASS_THROUGH]
            for (before, _), (api, node), (after, _) in zip(layers, layers[1:], layers[2:]):
                if api in ("torch.nn.Softmax", "torch.nn.Softmax2d") and before in WEIGHTED and after in WEIGHTED \
                        and _over_units(f"nn.{before.rsplit('.', 1)[-1]}", facts.literal(facts.argument(node, 0, "dim"))):
                    yield node, self._message(f"nn.{api.rsplit('.', 1)[-1]}", f"nn.{before.rsplit('.', 1)[-1]}",
                                              f"nn.{after.rsplit('.', 1)[-1]}")

    def _in_forwards(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        for cls in facts.classes:
            forward = facts.method(cls, "forward") if facts.is_module_class(cls) else None
            for layer_call in facts.effects.get(forward, []) if forward is not None else []:
                if not isinstance(layer_call, cst.Call) or not layer_call.args or _weighted_layer(ctx, layer_call) is None:
                    continue
                for origin in facts.origins(layer_call.args[0].value):
                    if not isinstance(origin, cst.Call) or facts.order_of(origin) > facts.order_of(layer_call):
                        continue  # not computed before this call (a read of the parameter before it is rebound)
                    softmax = self._softmax_input(ctx, origin)
                    if softmax is None:
                        continue
                    node, label, inner, dim = softmax
                    before = next((_weighted_layer(ctx, o) for o in facts.origins(inner) if _weighted_layer(ctx, o)), None)
                    if before is not None and _over_units(before, dim):
                        yield node, self._message(label, before, facts.module.code_for_node(layer_call.func))

    @staticmethod
    def _softmax_input(ctx: RuleContext, origin: cst.Call) -> Optional[tuple[cst.CSTNode, str, cst.BaseExpression, object]]:
        """(where to report, how it is spelled, its input, its dim) when origin applies a softmax."""
        facts = ctx.facts
        qualified = facts.qualname(origin.func)
        if qualified in names.SOFTMAX_FUNCTIONS and origin.args:
            dim = facts.literal(facts.argument(origin, 1, "dim"))
            return origin, "F.softmax()" if "functional" in qualified else "torch.softmax()", origin.args[0].value, dim
        if qualified is not None:
            return None
        if isinstance(origin.func, cst.Attribute) and origin.func.attr.value == "softmax" \
                and not any(o is not origin.func for o in facts.origins(origin.func)):
            return origin, ".softmax()", origin.func.value, facts.literal(facts.argument(origin, 0, "dim"))
        for constructor in facts.origins(origin.func) if origin.args else ():
            if facts.class_of(constructor) in ("torch.nn.Softmax", "torch.nn.Softmax2d"):
                dim = facts.literal(facts.argument(constructor, 0, "dim")) if isinstance(constructor, cst.Call) else None
                return constructor, f"nn.{facts.class_of(constructor).rsplit('.', 1)[-1]}", origin.args[0].value, dim
        return None

    @staticmethod
    def _message(softmax: str, before: str, after: str) -> str:
        return (f"{softmax} is used as a hidden activation between {before} and {after}: it forces the hidden units to "
                "sum to 1, so each is tiny and they compete, and the next layer learns from an almost constant input; "
                "use an elementwise activation (nn.ReLU, nn.GELU, nn.Tanh) there")
