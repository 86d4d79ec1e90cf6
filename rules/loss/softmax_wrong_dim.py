from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.models import Op, shape_call_input
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

WEIGHTED = names.LINEAR_LAYERS | names.CONV_LAYERS
EXP_FUNCTIONS = {"torch.exp"}
LOSS_FUNCTIONS = names.CLASSIFICATION_LOSSES | names.ELEMENTWISE_LOSSES | {"torch.nn.KLDivLoss", "torch.nn.functional.kl_div"}


@register
class SoftmaxWrongDim(Rule):
    """
    ## What it does
    Finds a softmax that normalises across the batch instead of across the classes:
    - `nn.Softmax(dim=0)`, `nn.LogSoftmax(dim=0)`, `F.softmax(x, dim=0)`, `F.log_softmax(x, 0)` or
      `x.softmax(0)` producing the predictions a loss is computed on in a training loop (the loss
      sees `(N, C)` outputs);
    - a hand-written softmax `torch.exp(z) / torch.exp(z).sum()` with no `dim` (or `dim=0`) on the
      output of a Linear or Conv layer or a model.

    A softmax over dim 0 of a 1-D vector of scores (attention weights over a sequence, a policy
    over actions for one state), or predictions reshaped before the loss, stay quiet.

    ## Why is this bad?
    For outputs of shape `(N, C)`, dim 0 is the batch: each class's column is normalised over the
    samples of the batch, so a sample's "probabilities" do not sum to 1 and depend on the other
    samples in the batch. A sum with no `dim` normalises over every element of the batch at
    once. The loss is then computed on meaningless values; training goes nowhere or learns the
    batch composition, and results change with the batch size.

    ## Example
    ```python
    import torch.nn as nn
    import torch.nn.functional as F

    for x, y in loader:
        loss = F.nll_loss(F.log_softmax(model(x), dim=0), y)
    ```

    Use instead:
    ```python
    import torch.nn as nn
    import torch.nn.functional as F

    for x, y in loader:
        loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)
    ```
    """

    code = "ML407"
    name = "softmax-wrong-dim"
    severity = Severity.ERROR
    symptoms = ("ML936", "ML904", "ML912")

    VALID = [
        "import torch.nn.functional as F\nfor x, y in loader:\n    loss = F.nll_loss(F.log_softmax(model(x), dim=1), y)\n",
        # attention weights over a 1-D vector of scores
        "import torch\nimport torch.nn.functional as F\nscores = encoder_outputs @ hidden\nweights = F.softmax(scores, dim=0)\ncontext = weights @ encoder_outputs\n",
        # one sample at a time: the 1-D output is reshaped to (1, C) for the loss
        """
import torch.nn as nn
import torch.nn.functional as F
model = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=0))
for x, y in zip(X, Y):
    loss = F.nll_loss(model(x).unsqueeze(0), y.view(1))
""",
        # hand-written softmax over the class axis
        "import torch\nmodel = torch.nn.Linear(10, 3)\nfor x, y in loader:\n    z = model(x)\n    p = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)\n",
        # a policy over the actions of one state (REINFORCE), no loss on it
        "import torch\nimport torch.nn.functional as F\nprobs = F.softmax(policy(state), dim=0)\naction = torch.multinomial(probs, 1)\n",
    ]
    INVALID = [
        Invalid(
            """
import torch.nn as nn
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3), nn.LogSoftmax(dim=0))
criterion = nn.NLLLoss()
for xb, yb in loader:
    loss = criterion(model(xb), yb)
""",
            line=3,
            message="dim=0",
        ),
        Invalid(
            """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 4)
    def forward(self, x):
        return self.fc(x).softmax(0)
model = Net()
for xb, yb in loader:
    loss = nn.functional.cross_entropy(torch.log(model(xb)), yb) + nn.functional.mse_loss(model(xb), yb)
""",
            line=9,
        ),
        Invalid(
            """
import torch
model = torch.nn.Linear(10, 3)
for xb, yb in loader:
    logits = model(xb)
    e = torch.exp(logits)
    probs = e / e.sum()
""",
            line=7,
            message="no dim",
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        reported = set()
        for node, message in list(self._library_softmax(ctx)) + list(self._hand_written(ctx)):
            if id(node) not in reported:
                reported.add(id(node))
                ctx.report(node, message)

    def _library_softmax(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        facts = ctx.facts
        for call, api, prediction, _ in facts.loss_calls(LOSS_FUNCTIONS):
            if prediction is None or next(facts.training.loops_around(call), None) is None:
                continue  # not in a training loop: a single (C,) vector is as likely
            if any(shape_call_input(facts, origin) is not None for origin in facts.origins(prediction)):
                continue  # reshaped for the loss: the softmax may well be over a 1-D vector
            for op in facts.networks.output_ops_of(prediction):
                if op.activation in ("softmax", "log_softmax") and _dim(facts, op) == 0:
                    loss = api.rsplit(".", 1)[-1]
                    yield op.node, (
                        f"{op.label} with dim=0 normalises over the batch, not over the classes: {loss} (line "
                        f"{facts.line_of(call)}) gets (N, C) outputs whose rows do not sum to 1 and depend on the rest of "
                        "the batch; use dim=1 (or dim=-1)")

    def _hand_written(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str]]:
        """`e / e.sum()` (or `torch.sum(e)`) where `e` is `torch.exp` of a layer's or model's output."""
        facts = ctx.facts
        for call in facts.calls:
            total = self._summed(ctx, call)
            if total is None:
                continue
            division = facts.parent.get(call)
            if not (isinstance(division, cst.BinaryOperation) and isinstance(division.operator, cst.Divide) and division.right is call):
                continue
            exps = [o for o in facts.origins(total) if self._exp_input(ctx, o) is not None]
            numerators = {facts.module.code_for_node(self._exp_input(ctx, o)) for o in facts.origins(division.left)
                          if self._exp_input(ctx, o) is not None}
            for exp in exps:
                logits = self._exp_input(ctx, exp)
                if facts.module.code_for_node(logits) not in numerators:
                    continue
                if not self._layer_output(ctx, logits):
                    continue
                how = "with no dim" if len(call.args) == (1 if facts.qualname(call.func) else 0) else "over dim 0"
                yield division, (
                    f"this hand-written softmax sums the exponentials {how}, so it normalises over the whole batch "
                    "instead of each sample's classes; use torch.softmax(z, dim=1) (or exp(z) / exp(z).sum(dim=1, "
                    "keepdim=True))")
                break

    @staticmethod
    def _layer_output(ctx: RuleContext, expr: cst.BaseExpression) -> bool:
        """A Linear/Conv layer's or a model's output, which has a batch axis first."""
        facts = ctx.facts
        return any(isinstance(o, cst.Call) and facts.qualname(o.func) is None and (
            facts.kind_of(o.func) == "model" or any(c in WEIGHTED for c in facts.classes_of(o.func) if isinstance(c, str)))
            for o in facts.origins(expr))

    @staticmethod
    def _summed(ctx: RuleContext, call: cst.Call) -> Optional[cst.BaseExpression]:
        """The tensor a `.sum()` / `torch.sum(t)` with no dim or dim 0 adds up, else None."""
        facts = ctx.facts
        qualified = facts.qualname(call.func)
        if qualified == "torch.sum" and call.args:
            tensor, dim = call.args[0].value, facts.argument(call, 1, "dim")
        elif qualified is None and isinstance(call.func, cst.Attribute) and call.func.attr.value == "sum":
            tensor, dim = call.func.value, facts.argument(call, 0, "dim")
        else:
            return None
        if dim is None or facts.literal(dim) == 0:
            return tensor
        return None

    @staticmethod
    def _exp_input(ctx: RuleContext, expr: cst.BaseExpression) -> Optional[cst.BaseExpression]:
        facts = ctx.facts
        if isinstance(expr, cst.Call) and facts.qualname(expr.func) in EXP_FUNCTIONS and expr.args:
            return expr.args[0].value
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "exp" \
                and not expr.args and facts.qualname(expr.func) is None:
            return expr.func.value
        return None


def _dim(facts, op: Op) -> Optional[int]:
    if op.call is None:
        return None
    position = 1 if op.api in names.SOFTMAX_FUNCTIONS | names.LOG_SOFTMAX_FUNCTIONS else 0
    return facts.integer_literal(facts.argument(op.call, position, "dim"))
