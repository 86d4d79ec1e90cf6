from __future__ import annotations

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

_EPS_POSITION = 3  # Adam(params, lr, betas, eps, ...); the same for AdamW, Adamax, NAdam and RAdam


@register
class ExtremeAdamEpsilon(Rule):
    """
    ## What it does
    Finds an Adam-family optimizer (`Adam`, `AdamW`, `Adamax`, `NAdam`, `RAdam`) constructed with an
    `eps` far below the default 1e-8 (1e-12 and smaller) or near 1, in its arguments or in a
    parameter group. Values between, such as 1e-6 for mixed precision or 1e-3 in reinforcement
    learning, are deliberate and stay quiet.

    Thresholds: `[tool.mlplint.extreme-adam-epsilon] min-eps = 1e-10`, `max-eps = 0.5`.

    ## Why is this bad?
    Adam divides each step by `sqrt(v) + eps`. With a tiny `eps`, a parameter whose gradients are
    almost zero gets a step of about `lr` times its noise divided by itself, so rarely-updated
    weights (embeddings, late layers at a plateau) jump, and in float16 the denominator underflows
    to 0 and the update becomes Inf/NaN. With `eps` near 1 the denominator is dominated by `eps`:
    Adam turns into plain SGD with a tiny learning rate and training stalls.

    ## Example
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-12)
    ```

    Use instead:
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    ```
    """

    code = "ML208"
    name = "extreme-adam-epsilon"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ("ML933", "ML901", "ML905", "ML902", "ML904", "ML911")
    options = {"min-eps": 1e-10, "max-eps": 0.5}

    VALID = [
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n",
        # mixed precision: a larger eps keeps the denominator representable in float16
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4, eps=1e-6)\n",
        # reinforcement learning (Rainbow, PPO) uses 1e-5 .. 1.5e-4; some GANs 1e-3
        "import torch\nopt = torch.optim.Adam(net.parameters(), lr=6.25e-5, eps=1.5e-4)\n",
        "import torch\nopt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-3)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), 1e-3, (0.9, 0.999), 1e-10)\n",
        # eps of another optimizer means something else (Adadelta's eps is 1e-6, Adagrad's 1e-10)
        "import torch\nopt = torch.optim.Adagrad(model.parameters(), lr=0.01, eps=1e-12)\n",
        "import torch\nopt = torch.optim.Adadelta(model.parameters(), lr=1.0, eps=1.0)\n",
        # `optim` is a local object here, not torch.optim
        "from mylib import make_optim\noptim = make_optim()\nopt = optim.Adam(model.parameters(), eps=1e-12)\n",
        # a star import may bind `optim` to anything
        "from mylib import *\nopt = optim.Adam(model.parameters(), eps=1e-12)\n",
        # not known here
        "import torch\ndef make(eps):\n    return torch.optim.Adam(model.parameters(), eps=eps)\n",
    ]
    INVALID = [
        Invalid("import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-12)\n", line=2, message="1e-12"),
        Invalid("from torch.optim import AdamW\nEPS = 1.0\nopt = AdamW(model.parameters(), 1e-3, (0.9, 0.999), EPS)\n", line=3, message="SGD"),
        # a snippet that never imports torch.optim: the conventional alias
        Invalid("opt = optim.Adam(model.parameters(), lr=1e-3, eps=1e-12)\n", line=1),
        Invalid(
            "from torch import optim\nopt = optim.NAdam([{'params': a, 'eps': 1e-16}, {'params': b}], lr=2e-3)\n",
            line=2,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        low, high = ctx.options["min-eps"], ctx.options["max-eps"]
        for call in facts.calls:
            qualified = facts.qualname(call.func)
            if names.optimizer_family(qualified or "") != "adam" or qualified == "torch.optim.SparseAdam":
                continue
            optimizer = qualified.rsplit(".", 1)[-1]
            for expr in facts.training.optimizer_setting(call, "eps", _EPS_POSITION):
                eps = facts.literal(expr)
                if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
                    continue
                if eps < low:
                    ctx.report(
                        expr,
                        f"{optimizer}(eps={eps:g}) is far below the default 1e-8: parameters with near-zero gradients "
                        "get steps of about lr divided by their own noise, and in float16 the denominator underflows "
                        "to 0 (Inf/NaN updates); keep eps=1e-8 (1e-6 under mixed precision)",
                    )
                elif eps >= high:
                    ctx.report(
                        expr,
                        f"{optimizer}(eps={eps:g}) swamps the adaptive denominator sqrt(v) + eps, so {optimizer} "
                        "behaves like plain SGD with a tiny learning rate and training stalls; use the default 1e-8 "
                        "(up to 1e-4 in reinforcement learning)",
                    )
