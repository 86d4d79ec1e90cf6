from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint.facts.core import nodes_within

from mlplint.lint.facts import names
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register

# Calls that turn a loss tensor into a plain number or cut it from the graph.
_DETACHING_METHODS = {"item", "detach", "tolist", "numpy", "data"}
_DETACHING_FUNCTIONS = {"builtins.float", "builtins.int", "builtins.round"}
_FUNCTIONAL_LOSSES = names.CLASSIFICATION_LOSSES | names.ELEMENTWISE_LOSSES | {
    "torch.nn.functional.kl_div", "torch.nn.functional.cosine_embedding_loss", "torch.nn.functional.margin_ranking_loss",
    "torch.nn.functional.triplet_margin_loss", "torch.nn.functional.poisson_nll_loss", "torch.nn.functional.gaussian_nll_loss",
}


@register
class LossAccumulatesGraph(Rule):
    """
    ## What it does
    Finds a loss tensor added into a running total (`total += loss`, `total = total + loss`) or
    appended to a list inside a loop, without `.item()` or `.detach()`, when the total is never
    backpropagated itself and the loop runs with autograd on.

    ## Why is this bad?
    Each loss tensor holds its whole autograd graph (all the activations of its forward pass).
    Summing them keeps every graph of the epoch alive: memory grows step after step until the
    process runs out of memory, and everything slows down. Logging needs a number, not a tensor.

    ## Example
    ```python
    import torch.nn as nn

    criterion = nn.CrossEntropyLoss()
    total_loss = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss
    ```

    Use instead:
    ```python
    import torch.nn as nn

    criterion = nn.CrossEntropyLoss()
    total_loss = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
    ```

    ## Fix safety
    The fix turns `total += loss` into `total += loss.item()` (and `.append(loss)` into
    `.append(loss.item())`). It is unsafe: the total becomes a Python float, so code that later
    treats it as a tensor (`.cpu()`, `torch.stack(history)`) must change with it.
    """

    code = "ML206"
    name = "loss-accumulates-graph"
    severity = Severity.WARNING
    judges_procedure = True
    symptoms = ("ML924",)

    VALID = [
        # a helper returns the per-sequence sum as the loss of one step (opacus)
        """
import torch


def mean_l1_over_sequences(criterion, sequences):
    loss_sum = 0
    for x_i in sequences:
        y_i = torch.zeros_like(x_i)
        loss_sum += criterion(x_i, y_i)
    loss_mean = loss_sum / len(sequences)
    return loss_mean
""",
        # per-chunk losses summed inside one step by a helper whose result is backpropagated
        """
import torch
from torch import nn

def chunked_loss(criterion, chunks):
    loss_sum = 0
    for x_i in chunks:
        y_i = torch.zeros_like(x_i)
        loss_sum += criterion(x_i, y_i)
    return loss_sum / len(chunks)

model = nn.Linear(4, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
criterion = nn.MSELoss()
for step in range(10):
    out = model(torch.randn(8, 4))
    loss = chunked_loss(criterion, out.split(2))
    opt.zero_grad()
    loss.backward()
    opt.step()
""",
        """
total = 0.0
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    total += loss.item() * x.size(0)
""",
        # summing losses to backpropagate once (multi-task, accumulation over chunks)
        """
total = 0
for head, target in zip(heads, targets):
    total = total + criterion(head(features), target)
total.backward()
""",
        # under no_grad no graph is kept
        """
import torch
losses = []
with torch.no_grad():
    for x, y in val_loader:
        losses.append(criterion(model(x), y))
""",
        """
history = []
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    history.append(loss.detach())
""",
        # collected to backpropagate once, through torch.stack
        """
import torch
import torch.nn.functional as F
losses = []
for xb, yb in chunks:
    losses.append(F.mse_loss(model(xb), yb))
total = torch.stack(losses).mean()
total.backward()
""",
    ]
    INVALID = [
        # the tutorial's BiLSTM-CRF: the loss comes from a model method, and is summed raw
        Invalid(
            """
import torch
total = 0
for epoch in range(300):
    for sentence, tags in training_data:
        model.zero_grad()
        neg_log_likelihood = model.neg_log_likelihood(sentence, tags)
        neg_log_likelihood.backward()
        optimizer.step()
        total += neg_log_likelihood
""",
            line=10,
        ),
        Invalid(
            """
import torch.nn as nn
criterion = nn.CrossEntropyLoss()
running = 0.0
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    running += loss
""",
            line=10,
            fixed="""
import torch.nn as nn
criterion = nn.CrossEntropyLoss()
running = 0.0
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    running += loss.item()
""",
        ),
        Invalid(
            """
import torch.nn.functional as F
losses = []
for x, y in loader:
    loss = F.mse_loss(model(x), y)
    loss.backward()
    losses.append(loss)
""",
            line=7,
        ),
        Invalid(
            """
import torch.nn as nn
def train(model, loader, criterion):
    epoch_loss = 0
    for x, y in loader:
        loss = criterion(model(x), y) / len(loader)
        loss.backward()
        epoch_loss = epoch_loss + loss
    return epoch_loss
train(net, loader, nn.L1Loss())
""",
            line=8,
        ),
        # the total's name is a prefix of the loss's: still a different tensor
        Invalid(
            """
import torch.nn as nn
criterion = nn.MSELoss()
l = 0
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    l += loss
""",
            line=8,
        ),
        # a loss function defined in the script
        Invalid(
            """
import torch.nn.functional as F
def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    return bce - 0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
def test(model, loader):
    test_loss = 0
    for data, _ in loader:
        recon, mu, logvar = model(data)
        test_loss += loss_function(recon, data, mu, logvar)
    return test_loss
""",
            line=10,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        for node in facts.effects.get(facts.module, []):
            accumulated = self._accumulated(node)
            if accumulated is None:
                continue
            total, value = accumulated
            if not facts.enclosing_loops(node) or not (self._is_loss_tensor(facts, value, 0) or self._backpropagated(facts, value, node)):
                continue
            if facts.training.feeds_backward(total) or facts.evaluation.in_no_grad(node) or self._returned(facts, total, node):
                continue
            name = facts.module.code_for_node(total)
            fix = None
            if isinstance(value, cst.Name):
                fix = FixSpec("unsafe", ((value, f"{value.value}.item()"),), "Accumulate the loss as a Python number")
            ctx.report(
                node,
                f"`{name}` accumulates loss tensors with their autograd graphs, keeping every step's activations "
                f"alive; accumulate `loss.item()` (or `loss.detach()`) instead",
                fix=fix,
            )

    @staticmethod
    def _backpropagated(facts, value: cst.BaseExpression, node: cst.CSTNode) -> bool:
        """`value` is a name the same loop calls backward() on: whatever computed it, it is the
        loss with its graph (`nll = model.neg_log_likelihood(x, y); nll.backward(); total += nll`)."""
        if not isinstance(value, cst.Name):
            return False
        training = facts.training
        loop, function = facts.enclosing_loops(node)[0], facts.enclosing_function(node)
        return any(isinstance(d, cst.Name) and d.value == value.value
                   for call in training.reachable(loop) if training.is_backward(call) and facts.enclosing_function(call) is function
                   for d in training.differentiated(call))

    @staticmethod
    def _returned(facts, total: cst.BaseExpression, node: cst.CSTNode) -> bool:
        """The total is what its function returns (`return loss_sum / len(x)`, through local
        assignments) and its loop runs neither a backward pass nor a model (it goes over the pieces
        of one output): a loss built for the caller within one step, not kept across steps (an
        epoch's total over the batches of a loader still is)."""
        function = facts.enclosing_function(node)
        if function is None or not isinstance(total, cst.Name):
            return False
        training = facts.training
        for n in (n for loop in facts.enclosing_loops(node)[:1] for n in training.reachable(loop)):
            if training.is_backward(n) or isinstance(n, cst.Call) and facts.evaluation.called_model(n) is not None:
                return False
        todo = list(facts.returns.get(function, []))
        seen: set[cst.CSTNode] = set()
        while todo:
            expr = todo.pop()
            if expr in seen:
                continue
            seen.add(expr)
            for name in nodes_within(expr, cst.Name):
                if name.value == total.value:
                    return True
                for definition in facts.reaching_nodes(name):
                    binding = facts.bindings.get(definition) if isinstance(definition, cst.Name) else None
                    if binding is not None and facts.enclosing_function(definition) is function:
                        todo.append(binding.value)
        return False

    @staticmethod
    def _accumulated(node: cst.CSTNode) -> Optional[tuple[cst.BaseExpression, cst.BaseExpression]]:
        """(total, value) for `total += value`, `total = total + value`, `total.append(value)`."""
        if type(node) is cst.AugAssign and type(node.operator) is cst.AddAssign:
            return node.target, node.value
        if type(node) is cst.Assign and len(node.targets) == 1 and type(node.value) is cst.BinaryOperation \
                and type(node.value.operator) is cst.Add:
            target = node.targets[0].target
            if type(target) is cst.Name and type(node.value.left) is cst.Name and node.value.left.value == target.value:
                return target, node.value.right
        if type(node) is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value == "append" \
                and len(node.args) == 1:
            return node.func.value, node.args[0].value
        return None

    def _is_loss_tensor(self, facts, expr: cst.BaseExpression, depth: int) -> bool:
        if depth > 8:
            return False
        if isinstance(expr, cst.BinaryOperation):
            return self._is_loss_tensor(facts, expr.left, depth + 1) or self._is_loss_tensor(facts, expr.right, depth + 1)
        if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
            return False
        if isinstance(expr, cst.Call):
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value in _DETACHING_METHODS:
                return False
            if facts.qualname(func) in _DETACHING_FUNCTIONS:
                return False
            api = facts.applied_api(expr)
            if api is not None:
                return names.is_loss_class(api) or api in _FUNCTIONAL_LOSSES
            return any(  # a local loss function: `loss_function(recon, x, mu, logvar)`
                self._is_loss_tensor(facts, value, depth + 1)
                for function in facts.called_functions(expr) for value in facts.returns.get(function, [])
            )
        if isinstance(expr, cst.Name):
            return any(o is not expr and self._is_loss_tensor(facts, o, depth + 1) for o in facts.origins(expr))
        return False

