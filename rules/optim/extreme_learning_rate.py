from __future__ import annotations

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

# Usual learning rate per optimizer family: the PyTorch default, or common practice where the
# default is not what people use (Adam 1e-3: Kingma & Ba 2015; SGD with momentum 0.01-0.1).
USUAL_LR = {
    "adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3, "adagrad": 1e-2, "adadelta": 1.0,
    "lbfgs": 1.0, "rprop": 1e-2, "adafactor": 1e-2,
}


def _ratio(value: float, usual: float) -> str:
    factor = max(value, usual) / min(value, usual)
    return f"{factor:,.0f}x" if factor >= 10 else f"{factor:.1f}x"


@register
class ExtremeLearningRate(Rule):
    """
    ## What it does
    Checks the learning rate given to a `torch.optim` optimizer against the range that is sane
    for its family, following constants (`LR = 10.0`), argparse defaults (`args.lr`) and config
    dicts (`config["lr"]`) back to their value.

    Default ranges (lowest, highest), configurable under `[tool.mlplint.extreme-learning-rate]`:
    Adam-like (Adam, AdamW, NAdam, RAdam, Adamax) 1e-6..0.05 around the usual 1e-3
    (Kingma & Ba 2015); SGD, with or without momentum, 1e-4..1.0 (usual 0.01-0.1 with momentum 0.9:
    Krizhevsky et al. 2012 use 0.01, He et al. 2016 0.1; up to ~1 for large-batch schedules,
    Goyal et al. 2017; the floor is 100x below 0.01, where Smith's 2017 LR range test shows the
    loss not yet moving);
    RMSprop 1e-6..0.05; Adagrad 1e-5..1.0 (default 0.01); Adadelta 0.01..10 (default 1.0,
    Zeiler 2012); LBFGS 1e-3..10 (default 1.0); Rprop 1e-6..0.1; Adafactor 1e-5..0.1.

    A learning rate below the range is fine for a loss summed over its elements
    (`reduction="sum"`): the rule is quiet when the file has one, and reports at `info` level when
    the file computes no loss it differentiates (the training loop is elsewhere).

    ## Why is this bad?
    A learning rate orders of magnitude too large makes the loss diverge or oscillate (often to
    NaN); one orders of magnitude too small makes training crawl, so the model looks worse than
    the same model trained in scikit-learn or Keras with their default settings.

    ## Example
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=10.0)
    ```

    Use instead:
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ```
    """

    code = "ML201"
    name = "extreme-learning-rate"
    severity = Severity.WARNING
    judges_design = True
    symptoms = ("ML911", "ML902", "ML901", "ML903", "ML904", "ML907")
    options = {
        "adam": (1e-6, 0.05), "sgd": (1e-4, 1.0), "rmsprop": (1e-6, 0.05), "adagrad": (1e-5, 1.0),
        "adadelta": (1e-2, 10.0), "lbfgs": (1e-3, 10.0), "rprop": (1e-6, 0.1), "adafactor": (1e-5, 0.1),
    }

    VALID = [
        # OneCycleLR sets the lr itself (max_lr / div_factor): the optimizer's lr=1.0 is never used
        """
import torch
from torch import nn

model = nn.Linear(2, 4)
optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, steps_per_epoch=10, epochs=1)
for _ in range(10):
    loss = model(torch.randn(8, 2)).pow(2).mean()
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
""",
        # lr=0.0 is a placeholder that the scheduler sets
        """
import torch
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.1 * min(1.0, step / 100))
""",
        "import torch\nopt = torch.optim.Adadelta(model.parameters(), lr=1.0)\n",
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n",
        # fine-tuning with SGD and momentum at 1e-4: small, but in use
        "import torch\nopt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)\n",
        "from torch import optim\nopt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)\n",
        # a loss summed over every pixel: FCN's lr=1e-10 is the usual choice for it
        """
import torch
import torch.nn.functional as F
optimizer = torch.optim.SGD(model.parameters(), lr=1e-10, momentum=0.99)
for image, target in loader:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(image), target, reduction="sum")
    loss.backward()
    optimizer.step()
""",
        # unknown value: stay quiet
        "import torch, os\nopt = torch.optim.Adam(model.parameters(), lr=float(os.environ['LR']))\n",
        # not torch's Adam
        "class Adam:\n    def __init__(self, params, lr): pass\nopt = Adam(p, lr=100.0)\n",
        "import argparse, torch\np = argparse.ArgumentParser()\np.add_argument('--lr', type=float, default=0.001)\nargs = p.parse_args()\nopt = torch.optim.Adam(m.parameters(), lr=args.lr)\n",
        # a dataclass default overridden where the config is built
        """
from dataclasses import dataclass
import torch
@dataclass
class Config:
    hidden: int = 64
    lr: float = 10.0
cfg = Config(128, 1e-3)
opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
""",
    ]
    INVALID = [
        # momentum does not rescue an lr 1,000x below the usual
        Invalid(
            "import torch\nopt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)\n"
            "for x, y in loader:\n    opt.zero_grad()\n    loss_fn(model(x), y).backward()\n    opt.step()\n",
            line=2, message="1,000x smaller than the usual 0.01, so training will barely move"),
        # the training loop is elsewhere (a trainer given the optimizer): its loss may sum
        Invalid("import torch\nopt = torch.optim.SGD(model.parameters(), lr=1e-10, momentum=0.99)\ntrainer = Trainer(model, opt)\n",
                line=2, message="unless the loss it minimises sums over its elements", severity=Severity.INFO),
        # found in pytorch/examples: tensor-parallel examples with AdamW(lr=0.25)
        """
import torch
lr = 0.25
optimizer = torch.optim.AdamW(model.parameters(), lr=lr, foreach=True)
""",
        # found in pytorch/examples: an AdamW option that inherits the SGD default lr of 20
        """
import argparse
import torch
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=20, help="initial learning rate")
parser.add_argument("--optimizer", default="sgd")
args = parser.parse_args()
if args.optimizer == "adam":
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
""",
        Invalid("import torch\noptimizer = torch.optim.Adam(model.parameters(), lr=10.0)\n", line=2, message="10,000x"),
        Invalid("import torch.optim as optim\nLR = 10.0\nopt = optim.SGD(net.parameters(), LR, momentum=0.9)\n", line=3),
        Invalid(
            "import argparse, torch\nparser = argparse.ArgumentParser()\n"
            "parser.add_argument('--learning-rate', type=float, default=5.0)\nargs = parser.parse_args()\n"
            "opt = torch.optim.RMSprop(m.parameters(), lr=args.learning_rate)\n",
            line=5,
        ),
        Invalid("from torch.optim import Adam\nconfig = {'lr': 1e-9, 'epochs': 3}\nopt = Adam(m.parameters(), lr=config['lr'])\n"
                "for x in data:\n    opt.zero_grad()\n    m(x).pow(2).mean().backward()\n    opt.step()\n", message="smaller"),
        Invalid("import torch\nopt = torch.optim.SGD([{'params': a.parameters(), 'lr': 50.0}], lr=0.01)\n", line=2),
        Invalid(
            """
from dataclasses import dataclass
import torch
@dataclass
class Config:
    hidden: int = 64
    lr: float = 10.0
cfg = Config()
opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
""",
            line=9,
            message="from `cfg.lr`",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for call in facts.calls:
            qualified = facts.qualname(call.func)
            family = names.optimizer_family(qualified) if qualified else None
            if family is None or facts.training.lr_set_by_scheduler(call):
                continue
            low, high = ctx.options[family]
            optimizer = qualified.rsplit(".", 1)[-1]
            for expr in facts.training.optimizer_setting(call, "lr", 1):
                lr = facts.literal(expr)
                if isinstance(lr, bool) or not isinstance(lr, (int, float)) or low <= lr <= high or lr == 0:
                    continue  # lr=0.0 is a placeholder a scheduler or an lr finder sets
                usual = USUAL_LR[family]
                source = "" if isinstance(expr, (cst.Float, cst.Integer)) else f" (from `{facts.module.code_for_node(expr)}`)"
                severity = None
                if lr > high:
                    effect = f"is about {_ratio(lr, usual)} the usual {usual:g} and will likely diverge or oscillate"
                elif lr < 0:
                    effect = "climbs the loss instead of descending it"
                elif facts.training.sums_loss:
                    continue  # the step scales with every summed element: a tiny lr is the usual choice
                elif not facts.training.backward_calls:
                    severity = Severity.INFO  # the loss is computed elsewhere: its reduction is unknown
                    effect = (f"is {_ratio(lr, usual)} smaller than the usual {usual:g}: unless the loss it minimises "
                              "sums over its elements (computed elsewhere), training will barely move")
                else:
                    effect = f"is {_ratio(lr, usual)} smaller than the usual {usual:g}, so training will barely move"
                ctx.report(
                    expr,
                    f"{optimizer} lr={lr:g}{source} {effect}; try {usual / 10:g}..{min(high, usual * 10):g}",
                    severity=severity,
                )

