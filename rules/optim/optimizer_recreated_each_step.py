from __future__ import annotations

from typing import Optional

import libcst as cst

from mlplint.lint import fixes
from mlplint.lint.facts.core import nodes_within
from mlplint.lint.finding import Severity
from mlplint.lint.registry import FixSpec, Invalid, Rule, RuleContext, register


@register
class OptimizerRecreatedEachStep(Rule):
    """
    ## What it does
    Finds an optimizer constructed inside a loop around its steps (directly, or in a per-batch or
    per-epoch function the loop calls), so its state is thrown away every step or every epoch
    while the model trains on. A model re-created in the same iteration (a sweep, one model per
    fold or trial) stays quiet, and so do a plain SGD without momentum (it keeps no state) and an
    optimizer rebuilt under a condition (a switch at some epoch).

    ## Why is this bad?
    An optimizer's state is what makes it more than plain SGD: momentum buffers, Adam's first
    and second moments and its step count for bias correction. Rebuilt every step, Adam's first
    step is always `lr * sign(grad)`, momentum never builds up, and learning-rate schedulers
    attached to the old optimizer stop acting. Training is slow, noisy, or stalls.

    ## Example
    ```python
    import torch

    for x, y in loader:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    Use instead:
    ```python
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    The fix moves the construction above the loop when it is a one-line statement directly in the
    loop's body that reads nothing the loop assigns. It is unsafe: the optimizer now keeps its
    state across steps, which changes the updates (that is the point of the fix).
    """

    code = "ML212"
    name = "optimizer-recreated-each-step"
    severity = Severity.ERROR
    judges_procedure = True
    symptoms = ("ML941",)

    VALID = [
        # plain SGD keeps no state: rebuilding it each step changes nothing
        """
import torch
for x, y in loader:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
""",
        # a deliberate switch to a smaller lr at one epoch
        """
import torch
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(100):
    if epoch == 50:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
""",
        # one model and optimizer per fold, stepping over the fold's batches
        """
import torch
for fold in range(5):
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
""",
        # a hyper-parameter sweep: a fresh model and optimizer per trial, trained in a function
        """
import torch
def fit(lr):
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
for lr in (0.1, 0.01, 0.001):
    fit(lr)
""",
        # one model per activation function, trained by a function that builds its optimizer
        """
import torch
def train_model(net, epochs=3):
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9)
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(net(x), y).backward()
            optimizer.step()
for name in ("sigmoid", "relu"):
    net = BaseNetwork(act_fn=name).to(device)
    train_model(net)
""",
        # one worker process per rank, each with its own optimizer over the shared model (A3C)
        """
import torch
import torch.multiprocessing as mp
def train(global_model, rank):
    optimizer = torch.optim.Adam(global_model.parameters(), lr=2e-4)
    for episode in range(300):
        optimizer.zero_grad()
        loss(global_model).backward()
        optimizer.step()
global_model = ActorCritic()
for rank in range(3):
    p = mp.Process(target=train, args=(global_model, rank))
    p.start()
""",
        # one model per item of a list, each trained by a helper that builds its optimizer (udacity)
        """
import torch
def get_loss(model, loader):
    optimizer = torch.optim.Adam(model.parameters(), 0.001)
    for epoch in range(2):
        for data, target in loader:
            optimizer.zero_grad()
            criterion(model(data), target).backward()
            optimizer.step()
def compare(model_list, loader):
    for i, (model, label) in enumerate(model_list):
        get_loss(model, loader)
""",
        # a new model in each iteration: nothing carries over anyway
        """
import torch
for trial in range(10):
    model = Net()
    optimizer = torch.optim.Adam(model.parameters())
    criterion(model(x), y).backward()
    optimizer.step()
""",
        """
import torch
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
""",
    ]
    INVALID = [
        # rebuilt at each epoch by the epoch function: the moments are lost between epochs
        Invalid(
            """
import torch
def train_epoch(model, batches, lr=5e-5, opt=None):
    if opt is None:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    for x, y in batches:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
model = Net()
for epoch in range(10):
    train_epoch(model, batches)
""",
            line=5,
            message="thrown away at every iteration",
        ),
        Invalid(
            """
import torch
for epoch in range(10):
    for x, y in loader:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
""",
            line=5,
            message="built inside the loop",
            fixed="""
import torch
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
""",
        ),
        # inside the per-batch function the loop calls
        Invalid(
            """
import torch
def train_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()
model = Net()
for epoch in range(5):
    for x, y in loader:
        train_step(model, x, y)
""",
            line=4,
        ),
    ]

    def check(self, ctx: RuleContext) -> None:
        facts, training = ctx.facts, ctx.facts.training
        reported = set()
        for step in training.optimizer_steps:
            step_loops = list(training.loops_around(step))
            for construction in training.constructions(training.stepped_optimizer(step)):
                loop = _loop_calling(facts, construction)
                if construction in reported or loop is None or loop not in step_loops:
                    continue
                if training.plain_sgd(construction) or _conditional(facts, construction, loop) \
                        or self._model_made_in(facts, construction, loop):
                    continue
                reported.add(construction)
                if loop is step_loops[0]:
                    lost = "each step starts from fresh state (no momentum, Adam's moments and step count reset)"
                else:
                    lost = ("its state (momentum, Adam's moments and step count) is thrown away at every iteration "
                            "of that loop; to change the lr over time, attach a scheduler instead")
                ctx.report(
                    construction,
                    f"this optimizer is built inside the loop (line {facts.line_of(loop)}) that steps it, so {lost}; "
                    "build it once, before the loop",
                    fix=_hoist_fix(facts, construction, loop),
                )

    @staticmethod
    def _model_made_in(facts, construction: cst.Call, loop: cst.CSTNode) -> bool:
        """The parameters come from a model bound in the same loop iteration (one model per trial)."""
        params = facts.argument(construction, 0, "params")
        if isinstance(params, cst.Call) and isinstance(params.func, cst.Attribute):
            models = [params.func.value]  # `self.policy.parameters()`: where self.policy is made
        else:
            models = nodes_within(params, cst.Name) if params is not None else []
        for model in models:
            origins = facts.origins(model)
            made = [*(n for n in (facts.reaching_nodes(model) if isinstance(model, cst.Name) else []) if n in facts.bindings),
                    *(o for o in origins if isinstance(o, cst.Call))]
            if any(next(facts.training.loops_around(node), None) is loop for node in made):
                return True
            if any(_iterated_by(facts, node, loop) for name in origins if isinstance(name, cst.Name)
                   for node in facts.reaching_nodes(name)):
                return True  # `for model, label in model_list:` one model per iteration
        return False


def _loop_calling(facts, node: cst.CSTNode, depth: int = 6):
    """The innermost loop that runs node: its own, or one around a direct call of its function
    (not a function handed over to run later, as `mp.Process(target=train)` is)."""
    for _ in range(depth):
        loops = facts.enclosing_loops(node)
        if loops:
            return loops[0]
        function = facts.enclosing_function(node)
        sites = facts.call_sites(function) if function is not None else []
        if not sites:
            return None
        node = sites[0]
    return None


def _iterated_by(facts, target: cst.CSTNode, loop: cst.CSTNode) -> bool:
    """A name bound as the target of `loop` itself (`for model in models:`)."""
    binding = facts.bindings.get(target) if isinstance(target, cst.Name) else None
    return binding is not None and binding.loop and isinstance(loop, cst.For) and binding.value is loop.iter


def _conditional(facts, construction: cst.Call, loop: cst.CSTNode) -> bool:
    """Built under an `if` inside the loop (a switch at some epoch), not at every iteration. The
    default idiom `if opt is None: opt = Adam(...)` runs whenever no optimizer is passed."""
    for ancestor in facts.ancestors(construction):
        if ancestor is loop or isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return False
        if isinstance(ancestor, cst.If) and _is_none_test(ancestor.test):
            continue
        if isinstance(ancestor, (cst.If, cst.IfExp, cst.Try)):
            return True
    return False


def _is_none_test(test: cst.BaseExpression) -> bool:
    return isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
        and isinstance(test.comparisons[0].operator, cst.Is) \
        and isinstance(test.comparisons[0].comparator, cst.Name) and test.comparisons[0].comparator.value == "None"


def _hoist_fix(facts, construction: cst.Call, loop: cst.CSTNode) -> Optional[FixSpec]:
    """Move `opt = Optim(...)` from the loop's body to the line above the outermost loop of its
    function that assigns nothing it reads (above the epoch loop, not only the batch loop)."""
    statement = fixes.statement_of(facts, construction)
    if not isinstance(statement, cst.SimpleStatementLine) or fixes.block_statements(facts, statement) is None:
        return None
    if facts.parent.get(facts.parent.get(statement)) is not loop:
        return None
    code = facts.module.code_for_node(statement.body[0]) if len(statement.body) == 1 else None
    if code is None or "\n" in code or _reads_loop_names(facts, statement, loop):
        return None
    target = loop
    for outer in facts.enclosing_loops(statement)[1:]:
        if _reads_loop_names(facts, statement, outer):
            break
        target = outer
    start = facts.positions[statement].start.line
    end = facts.positions[statement].end.line
    return FixSpec("unsafe", (), "Build the optimizer once, before the loop", edits=(
        fixes.insert_line_before(facts, target, code),
        fixes.delete((start, 1), (end + 1, 1)),
    ))


def _reads_loop_names(facts, statement: cst.CSTNode, loop: cst.CSTNode) -> bool:
    """Whether the statement reads a name the loop binds (its target, or an assignment in it)."""
    value = statement.body[0].value if isinstance(statement.body[0], cst.Assign) else statement
    for name in nodes_within(value, cst.Name):
        for node in facts.reaching_nodes(name):
            if loop in facts.enclosing_loops(node) or node in set(nodes_within(getattr(loop, "target", loop), cst.Name)):
                return True
    return False
