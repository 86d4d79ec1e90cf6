from __future__ import annotations

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register

# Adam variants whose `weight_decay` is an L2 term added to the gradient unless
# `decoupled_weight_decay=True` (torch >= 2.x for NAdam/RAdam, 2.6 for Adam).
COUPLED_DECAY_OPTIMIZERS = {"torch.optim.Adam", "torch.optim.NAdam", "torch.optim.RAdam"}
_WEIGHT_DECAY_POSITION = 4  # Adam(params, lr, betas, eps, weight_decay); the same for NAdam and RAdam


@register
class AdamWeightDecay(Rule):
    """
    ## What it does
    Finds `torch.optim.Adam` (and NAdam/RAdam) constructed with a positive `weight_decay`, in
    its arguments or in a parameter group, without `decoupled_weight_decay=True`.

    ## Why is this bad?
    Adam's `weight_decay` adds `wd * w` to the gradient, which Adam then divides by the running
    gradient scale: weights with large gradients are barely regularised, so the decay does much
    less than intended (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019).
    AdamW applies the decay to the weights directly, which is what is usually meant and what
    Keras' and most papers' "Adam with weight decay" do.

    ## Example
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    ```

    Use instead:
    ```python
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    ```

    ## Fix safety
    The fix renames `Adam` to `AdamW` when the optimizer is spelled through a module
    (`torch.optim.Adam`, `optim.Adam`), or when imported by name and `AdamW` is reachable through
    the script's imports. It is unsafe: decoupled decay of the same value
    regularises differently (AdamW's decay is usually 10-100x larger), so retune it.
    """

    code = "ML203"
    name = "adam-weight-decay"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ()

    VALID = [
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4, decoupled_weight_decay=True)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=5e-4)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n",
            line=2,
            fixed="import torch\nopt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)\n",
        ),
        Invalid("from torch.optim import Adam\nWD = 5e-4\nopt = Adam(net.parameters(), 1e-3, (0.9, 0.999), 1e-8, WD)\n", line=3),
        Invalid(
            "from torch import optim\nopt = optim.Adam([{'params': a, 'weight_decay': 0.01}, {'params': b}], lr=1e-3)\n",
            line=2,
        ),
        # an import fallback that rebinds the name to None keeps it the import
        Invalid(
            "try:\n    from torch import optim\nexcept ImportError:\n    optim = None\n"
            "opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n",
            line=5,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call in facts.calls:
            qualified = facts.qualname(call.func)
            if qualified not in COUPLED_DECAY_OPTIMIZERS:
                continue
            if facts.literal(facts.argument(call, None, "decoupled_weight_decay")) is True:
                continue
            for expr in facts.training.optimizer_setting(call, "weight_decay", _WEIGHT_DECAY_POSITION):
                decay = facts.literal(expr)
                if isinstance(decay, bool) or not isinstance(decay, (int, float)) or decay <= 0:
                    continue
                optimizer = qualified.rsplit(".", 1)[-1]
                ctx.report(
                    expr,
                    f"Adam(weight_decay={decay:g}) adds an L2 term that Adam's per-parameter scaling "
                    "weakens (coupled weight decay); use torch.optim.AdamW(weight_decay=...) for decoupled "
                    "decay, typically 0.01-0.1"
                    if optimizer == "Adam" else
                    f"{optimizer}(weight_decay={decay:g}) adds an L2 term that the adaptive scaling weakens "
                    "(coupled weight decay); pass decoupled_weight_decay=True for AdamW-style decay",
                    fix=self._fix(facts, call, qualified),
                )

    @staticmethod
    def _fix(facts, call: cst.Call, qualified: str):
        if qualified != "torch.optim.Adam":
            return None
        if isinstance(call.func, cst.Attribute):
            return FixSpec("unsafe", ((call.func.attr, "AdamW"),), "Use AdamW (decoupled weight decay)")
        adamw = fixes.spelling(facts, "torch.optim.AdamW")  # `Adam(...)` imported by name
        return FixSpec("unsafe", ((call.func, adamw),), "Use AdamW (decoupled weight decay)") if adamw else None
