from __future__ import annotations

from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

_DEFAULT_SGD_LR = 1e-3  # torch.optim.SGD's default since PyTorch 2.0


@register
class PlainSgdSmallLr(Rule):
    """
    ## What it does
    Finds `torch.optim.SGD` with no momentum (absent or 0) and a learning rate below
    `max-lr` (default 0.01, `[tool.mlplint.plain-sgd-small-lr] max-lr`), including SGD's own
    default lr of 1e-3 when none is given. Below `min-lr` (default 1e-4, the lower end of
    ML201's SGD range) the lr is extreme whatever the momentum, and ML201 reports it instead. The lr is followed through constants, argparse
    defaults and config dicts; unknown values and `**kwargs` stay quiet.

    This is a hypothesis (`info`): a probe run settles it by measuring the update-to-weight
    ratio together with the loss curve (ML931: steps below ~1e-3 of the weights' size, the
    healthy ratio per CS231n, and a loss that barely falls).

    ## Why is this bad?
    Plain SGD with a small step moves the weights by a tiny fraction of their size per step: the
    loss crawls and after the usual number of epochs the model looks far worse than scikit-learn
    (whose MLP uses Adam) or Keras. Momentum 0.9 (or Adam) reaches the same loss many times faster.

    ## Example
    ```python
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    ```

    Use instead:
    ```python
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ```
    """

    code = "ML205"
    name = "plain-sgd-small-lr"
    severity = Severity.INFO
    judges_design = True
    symptoms = ("ML931", "ML911", "ML904")
    options = {"min-lr": 1e-4, "max-lr": 0.01}

    VALID = [
        # the lr is set in the parameter group, not left at SGD's default
        """
import numpy as np
import torch

def simulate_lrs(steps, initial_lr=0.1):
    test = torch.ones(1, requires_grad=True)
    opt = torch.optim.SGD([{'params': test, 'lr': initial_lr}])
    sch = torch.optim.lr_scheduler.StepLR(opt, step_size=3)
    lrs = []
    for step_idx in range(steps):
        opt.step()  # suppress warning about .step call order
        lrs.append(opt.param_groups[0]['lr'])
        sch.step()
    return np.array(lrs)

print(simulate_lrs(10))
""",
        "import torch\nopt = torch.optim.SGD(m.parameters(), lr=0.001, momentum=0.9)\n",
        "import torch\nopt = torch.optim.SGD(m.parameters(), lr=0.1)\n",
        "import torch\nopt = torch.optim.SGD(m.parameters(), lr=args.lr)\n",
        "import torch\nkw = {'momentum': 0.9}\nopt = torch.optim.SGD(m.parameters(), lr=1e-3, **kw)\n",
        "import torch\nopt = torch.optim.Adam(m.parameters(), lr=1e-4)\n",
        # extreme: ML201's to report
        "import torch\nopt = torch.optim.SGD(m.parameters(), lr=1e-6)\n",
    ]
    INVALID = [
        Invalid("import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.001)\n", line=2, message="momentum"),
        Invalid("from torch import optim\nLR = 1e-4\nopt = optim.SGD(net.parameters(), LR, momentum=0.0)\n", line=3),
        Invalid("import torch\nopt = torch.optim.SGD(model.parameters())\n", line=2, message="default"),
        Invalid("import torch\ncfg = {'lr': 5e-3}\nopt = torch.optim.SGD(model.parameters(), lr=cfg['lr'], weight_decay=1e-4)\n", line=3),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        low, high = ctx.options["min-lr"], ctx.options["max-lr"]
        for call in facts.calls:
            if not facts.training.plain_sgd(call) or any(arg.star == "**" for arg in call.args) \
                    or facts.training.lr_set_by_scheduler(call):
                continue  # momentum set, or a value we cannot know
            lr_expr = facts.argument(call, 1, "lr")
            if lr_expr is None and facts.training.optimizer_setting(call, "lr", None):
                continue  # each parameter group sets its own lr: the default is not used
            lr = facts.literal(lr_expr) if lr_expr is not None else _DEFAULT_SGD_LR
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not low <= lr < high:
                continue
            given = f"lr={lr:g}" if lr_expr is not None else f"the default lr={lr:g}"
            ctx.report(
                lr_expr if lr_expr is not None else call,
                f"SGD without momentum and {given}: each step moves the weights very little, so training "
                "crawls; add momentum=0.9 (and try lr 0.01-0.1) or use Adam(lr=1e-3)",
            )
