from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

# torch.optim optimizers whose weight_decay is decoupled from the gradient (AdamW-style).
DECOUPLED = {"torch.optim.AdamW"}
# Adam variants that decouple it on request (`decoupled_weight_decay=True`).
OPTIONALLY_DECOUPLED = {"torch.optim.Adam", "torch.optim.NAdam", "torch.optim.RAdam"}
# weight_decay's position: SGD(params, lr, momentum, dampening, weight_decay), Adam(params, lr, betas, eps, weight_decay)...
_WEIGHT_DECAY_POSITION = {"adam": 4, "sgd": 4, "rmsprop": 4, "adagrad": 3, "adadelta": 4}
# Layers that carry the signal a hidden Dropout would act on.
WEIGHTED = names.LINEAR_LAYERS | names.CONV_LAYERS | names.RECURRENT_LAYERS | {"torch.nn.Embedding"}


@register
class ExtremeRegularization(Rule):
    """
    ## What it does
    Finds regularisation strong enough to stop a model fitting at all:
    - a `Dropout` with `p >= 0.8` after a Linear, Conv, recurrent or embedding layer (an earlier
      argument of the same `nn.Sequential`, or the layer whose output `forward()` passes to it); heavy dropout on the input itself, as in a denoising autoencoder, stays quiet;
    - coupled L2 (`weight_decay` of SGD, Adam without `decoupled_weight_decay`, RMSprop, Adagrad...)
      of 0.1 or more;
    - decoupled decay (`AdamW`, or `decoupled_weight_decay=True`) of 1 or more.

    Thresholds: `[tool.mlplint.extreme-regularization] max-dropout = 0.8`, `max-l2 = 0.1`,
    `max-decoupled-decay = 1.0` (each is the smallest value reported).

    ## Why is this bad?
    `nn.Dropout(p)` zeroes a share `p` of the units: `p=0.9` keeps one unit in ten, which is what
    TensorFlow 1's `keep_prob=0.9` meant, the opposite of PyTorch's argument. Coupled L2 of 0.1
    pulls every weight towards zero as hard as the data pulls it anywhere, and decoupled decay of 1
    shrinks the weights by `lr` of themselves every step: either way the model underfits and the
    loss stalls high. Usual values are dropout 0.1-0.5, L2 1e-5..5e-4, AdamW decay 0.01-0.1.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.9), nn.Linear(256, 10))
    ```

    Use instead:
    ```python
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 10))
    ```
    """

    code = "ML210"
    name = "extreme-regularization"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ("ML937", "ML940", "ML904", "ML912")
    options = {"max-dropout": 0.8, "max-l2": 0.1, "max-decoupled-decay": 1.0}

    VALID = [
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))\n",
        # a denoising autoencoder corrupts its input heavily on purpose
        """
import torch.nn as nn
class DenoisingAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.corrupt = nn.Dropout(p=0.9)
        self.encoder = nn.Linear(784, 64)
        self.decoder = nn.Linear(64, 784)
    def forward(self, x):
        return self.decoder(self.encoder(self.corrupt(x)).relu())
""",
        # GPT-style AdamW decay, SGD's usual L2, coupled Adam L2 of 1e-4
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.5, decoupled_weight_decay=True)\n",
        # unknown values
        "import torch.nn as nn\ndef block(p):\n    return nn.Sequential(nn.Linear(8, 8), nn.Dropout(p))\n",
        # a Dropout built but not placed in a known network
        "import torch.nn as nn\ndrop = nn.Dropout(0.9)\n",
    ]
    INVALID = [
        Invalid(
            "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.9), nn.Linear(256, 10))\n",
            line=2,
            message="keeps 10%",
        ),
        Invalid(
            """
import torch.nn as nn
import torch.nn.functional as F
class Net(nn.Module):
    def __init__(self, keep_prob=0.8):
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.drop = nn.Dropout(keep_prob)
        self.fc2 = nn.Linear(64, 2)
    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))
""",
            line=8,
        ),
        Invalid("import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.1)\n", line=2, message="coupled L2"),
        Invalid("import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.5)\n", line=2),
        Invalid("from torch import optim\nopt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0)\n", line=2, message="AdamW"),
    ]

    @classmethod
    def symptoms_for(cls, message: str) -> tuple[str, ...]:
        if message.startswith("nn."):  # a Dropout rate
            return ("ML937", "ML904", "ML912")
        if "coupled L2" in message:
            return ("ML940", "ML904", "ML912")
        return ()  # decoupled decay: its effect shows over a long run

    def check(self, ctx: RuleContext) -> None:
        self._check_dropout(ctx)
        self._check_decay(ctx)

    def _check_dropout(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        limit = ctx.options["max-dropout"]
        applications: Optional[dict[cst.CSTNode, list[cst.Call]]] = None
        for constructor in facts.calls:
            if facts.qualname(constructor.func) not in names.DROPOUT_LAYERS:
                continue
            p = _number(facts.literal(facts.argument(constructor, 0, "p")))
            if p is None or p < limit:
                continue
            applications = _applications(facts) if applications is None else applications
            where = self._hidden_position(ctx, constructor, applications)
            if where is None:
                continue
            ctx.report(
                constructor,
                f"nn.{facts.qualname(constructor.func).rsplit('.', 1)[-1]}(p={p:g}) after {where} zeroes {p:.0%} of the "
                f"units and keeps {1 - p:.0%}: PyTorch's p is the share dropped (TensorFlow's keep_prob was the share "
                "kept); the model can barely fit, use p=0.1-0.5",
            )

    def _hidden_position(self, ctx: RuleContext, constructor: cst.Call,
                         applications: dict[cst.CSTNode, list[cst.Call]]) -> Optional[str]:
        """The layer a Dropout follows when it acts on hidden units: an earlier layer argument of
        the same nn.Sequential, or, for a module attribute, the layer whose output (through an
        activation) forward() passes to it. None for input dropout or an unknown place."""
        facts = ctx.facts
        parent = facts.parent.get(facts.parent.get(constructor))  # Call -> Arg -> Call
        if isinstance(parent, cst.Call) and facts.qualname(parent.func) == names.SEQUENTIAL:
            earlier = [a.value for a in parent.args[:[a.value for a in parent.args].index(constructor)]]
            layer = next((_layer_name(ctx, e) for e in reversed(earlier) if _layer_name(ctx, e)), None)
            return f"{layer} in nn.Sequential" if layer else None
        for call in applications.get(constructor, []):
            for value in facts.origins(call.args[0].value):
                layer = _layer_name(ctx, value) or (
                    _layer_name(ctx, value.args[0].value) if isinstance(value, cst.Call) and value.args
                    and facts.qualname(value.func) in names.ACTIVATION_FUNCTIONS else None)
                if layer:
                    return f"{layer} (line {facts.line_of(value)})"
        return None

    def _check_decay(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call in facts.calls:
            qualified = facts.qualname(call.func)
            family = names.optimizer_family(qualified or "")
            if family not in _WEIGHT_DECAY_POSITION:
                continue
            decoupled = qualified in DECOUPLED or (
                qualified in OPTIONALLY_DECOUPLED and facts.literal(facts.argument(call, None, "decoupled_weight_decay")) is True)
            limit = ctx.options["max-decoupled-decay" if decoupled else "max-l2"]
            optimizer = qualified.rsplit(".", 1)[-1]
            for expr in facts.training.optimizer_setting(call, "weight_decay", _WEIGHT_DECAY_POSITION[family]):
                decay = _number(facts.literal(expr))
                if decay is None or decay < limit:
                    continue
                if decoupled:
                    message = (f"{optimizer}(weight_decay={decay:g}) shrinks every weight by lr x {decay:g} of itself each "
                               "step, which overwhelms what the data teaches; AdamW decay is usually 0.01-0.1")
                else:
                    message = (f"{optimizer}(weight_decay={decay:g}) adds a coupled L2 term of {decay:g} x w to every "
                               "gradient, as strong as the data's pull: the weights stay near zero and the model "
                               "underfits; usual values are 1e-5 to 5e-4")
                ctx.report(expr, message)


def _applications(facts) -> dict[cst.CSTNode, list[cst.Call]]:
    """The calls of local objects on an argument (`self.drop(x)`), in call order, under each
    origin of their callee: built once per file, so finding where a layer is applied does not
    scan every call."""
    found: dict[cst.CSTNode, list[cst.Call]] = {}
    for call in facts.calls:
        if facts.qualname(call.func) is None and call.args:
            for origin in facts.origins(call.func):
                found.setdefault(origin, []).append(call)
    return found


def _layer_name(ctx: RuleContext, expr: cst.BaseExpression) -> Optional[str]:
    """`nn.Linear` when expr constructs or applies a weighted layer (Linear, Conv, RNN, Embedding)."""
    facts = ctx.facts
    if not isinstance(expr, cst.Call):
        return None
    classes = [facts.qualname(expr.func)] if facts.qualname(expr.func) else facts.classes_of(expr.func)
    found = [c for c in classes if isinstance(c, str) and c in WEIGHTED]
    return f"nn.{found[0].rsplit('.', 1)[-1]}" if found else None


def _number(value) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
