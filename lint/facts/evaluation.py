"""Evaluation passes: forward calls of a model whose result is never backpropagated, and the
mode (`eval()`/`train()`) and autograd context (`no_grad`) they run in."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.core import ScriptFacts, nodes_within

# Functions whose name says they evaluate: evaluate, validate, val_epoch, test, predict, infer...
EVALUATION_NAME = re.compile(r"(^|_)(eval|evaluate|evaluation|valid|validate|validation|val|test|testing|predict|prediction|infer|inference|score|accuracy)(_|\d|$)", re.IGNORECASE)
NO_GRAD_CONTEXTS = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad"}
GRAD_SWITCHES = {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"}
# Last resort for callees that cannot be resolved (a parameter nobody passes): `model`, `net`,
# `self.encoder`, `model_ema`, `netG`... A name that ends in a model word, not one that only contains it
# (`dummy_model_factory`), and not a verb phrase (`get_classifier`, `load_model`, `reset_classifier`).
MODEL_NAME = re.compile(r"(^|_)(model|net|network|classifier|regressor|encoder|decoder|generator|discriminator|backbone|clf)(\d*|_?[a-z]|_ema|_eval|_student|_teacher|_g|_d)$", re.IGNORECASE)
ACTION_NAME = re.compile(r"^(get|load|reset|create|build|make|init|initialize|set|save|freeze|unfreeze|prepare|wrap|compile|copy|clone|update|register|setup|dummy|fake|mock|new|export|convert|fuse|unwrap|extract|merge|quantize|trace|script|shard|average|swap)_", re.IGNORECASE)
# Loading a model's weights: what makes a model built in the same function one worth evaluating.
SIDE_BRANCH = "in a branch of the training loop that never calls backward()"
LOAD_METHODS = {"load_state_dict", "load", "from_pretrained", "load_checkpoint"}
_MAX_DEPTH = 6


def _spelled(expr: cst.BaseExpression) -> str:
    return expr.value if isinstance(expr, cst.Name) else expr.attr.value if isinstance(expr, cst.Attribute) else ""


@dataclass(frozen=True)
class EvaluationPass:
    call: cst.Call  # the forward call
    model: cst.BaseExpression  # the model expression called
    reason: str  # "in evaluate()" / "after the training loop"
    detached: bool = False  # the result is only ever used through `.detach()`
    periodic: bool = False  # in a branch of the training loop (`if step % 100 == 0:`)


class EvaluationAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._trained_on_cache: dict[cst.Call, bool] = {}

    # ------------------------------------------------------------------ passes

    @functools.cached_property
    def passes(self) -> list[EvaluationPass]:
        """Forward calls that evaluate a model. A model built in the same function that is never
        trained or loaded (a shape check on `torch.randn`) is not being evaluated; a call in a
        lambda runs wherever the lambda is called, which the analysis does not follow."""
        found = []
        for call in self.facts.calls:
            model = self.called_model(call)
            if model is None or self._in_lambda(call) or self._fresh_untrained(call, model):
                continue
            reason = self._evaluation_reason(call)
            if reason is not None:
                found.append(EvaluationPass(call, model, reason, self._only_detached(call), reason == SIDE_BRANCH))
        return found

    def called_model(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """The model a call runs forward, when it calls a module (or its `forward`): not a
        constructor (`Net()`), not a method of a model (`model.get_classifier()`), not a function
        whose name mentions a model (`task.get_eval_model()`)."""
        facts = self.facts
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        if facts.qualname(func) is not None or facts.local_definitions(func, cst.FunctionDef) \
                or facts.local_definitions(func, cst.ClassDef):
            return None
        kind = facts.kind_of(func)
        if kind != "model":
            if kind is not None or not self._named_like_model(func) or self._names_a_class(func):
                return None
            if isinstance(func, cst.Attribute) and (facts.kind_of(func.value) == "model" or self._named_like_model(func.value)):
                return None  # a method of a model object
        function = facts.enclosing_function(call)
        owner = facts.enclosing_class(function) if function is not None else None
        if owner is not None and facts.is_module_class(owner):
            return None  # a submodule called inside a model's own methods
        return func

    def _names_a_class(self, func: cst.BaseExpression) -> bool:
        """A class passed in (`def check(Discriminator): D = Discriminator(10)`), or a name spelled
        as classes are (CapWords): calling it constructs a model, it runs none."""
        facts = self.facts
        if any(facts.local_definitions(o, cst.ClassDef) for o in facts.origins(func) if isinstance(o, cst.Name)):
            return True
        last = _spelled(func)
        return last[:1].isupper() and any(c.islower() for c in last)

    @staticmethod
    def _named_like_model(expr: cst.BaseExpression) -> bool:
        spelled = _spelled(expr)
        return bool(MODEL_NAME.search(spelled)) and not ACTION_NAME.search(spelled)

    def _only_detached(self, call: cst.Call) -> bool:
        """`model(x).detach()`, or `out = model(x)` whose every read is `out.detach()`."""
        facts = self.facts
        parent = facts.parent.get(call)
        if isinstance(parent, cst.Attribute) and parent.attr.value == "detach":
            return True
        statement = parent
        if not (isinstance(statement, cst.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0].target, cst.Name)):
            return False
        target = statement.targets[0].target
        reads = self._reads_by_target.get(target, [])
        return bool(reads) and all(
            isinstance(facts.parent.get(read), cst.Attribute) and facts.parent[read].attr.value == "detach" for read in reads)

    @functools.cached_property
    def _reads_by_target(self) -> dict[cst.Name, list[cst.Name]]:
        """The reads each assignment target reaches, indexed once per file."""
        facts = self.facts
        index: dict[cst.Name, list[cst.Name]] = {}
        for name in facts.order:
            if isinstance(name, cst.Name) and name not in facts.bindings:
                for node in facts.reaching_nodes(name):
                    if isinstance(node, cst.Name) and node in facts.bindings:
                        index.setdefault(node, []).append(name)
        return index

    def _in_lambda(self, call: cst.Call) -> bool:
        function = self.facts.enclosing_function(call)
        for ancestor in self.facts.ancestors(call):
            if ancestor is function:
                return False
            if isinstance(ancestor, cst.Lambda):
                return True
        return False

    def _fresh_untrained(self, call: cst.Call, model: cst.BaseExpression) -> bool:
        """A model constructed in the function that calls it, that nothing trains or loads
        weights into: a smoke test (`def test(): net = Net(); net(torch.randn(2, 3))`)."""
        facts = self.facts
        function = facts.enclosing_function(call)
        origins = facts.origins(model)
        built_here = {o for o in origins if isinstance(o, cst.Call) and facts.kind_of(o) == "model"
                      and facts.enclosing_function(o) is function}
        return bool(built_here) and len(built_here) == len(origins) and not built_here & self._trained_or_loaded

    @functools.cached_property
    def _trained_or_loaded(self) -> set[cst.CSTNode]:
        """Origins of the models that the file trains (a forward whose result a backward pass
        uses, or an optimizer over their parameters) or loads weights into; computed once."""
        facts = self.facts
        found: set[cst.CSTNode] = set()
        for call in facts.calls:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in LOAD_METHODS:
                found.update(facts.origins(func.value))
            elif facts.kind_of(call) == "optimizer":
                params = facts.argument(call, 0, "params")
                for name in nodes_within(params, (cst.Name, cst.Attribute)) if params is not None else ():
                    found.update(facts.origins(name))
            elif (model := self.called_model(call)) is not None and self._result_trained_on(call):
                found.update(facts.origins(model))
        return found

    def _evaluation_reason(self, call: cst.Call) -> Optional[str]:
        training = self.facts.training
        if self._result_trained_on(call):
            return None
        if any(training.is_backward(n) for n in self._local_context(call)):
            if self._side_branch(call):
                return SIDE_BRANCH
            return "after each epoch's training steps" if self._after_inner_training(call) else None
        function = self.facts.enclosing_function(call)
        names_in_chain = [f.name.value for f in self._function_chain(call)]
        if any(EVALUATION_NAME.search(name) and "train" not in name.lower() for name in names_in_chain):
            return f"in {names_in_chain[0]}()" if function is not None else "in an evaluation function"
        if self._after_inner_training(call):
            return "after each epoch's training steps"
        if function is None and self._after_training_loop(call):
            return "after the training loop"
        return None

    def _side_branch(self, call: cst.Call) -> bool:
        """A forward inside an `if` branch of a training loop (`if step % 50 == 0:`) that runs no
        backward pass or optimizer step, with a result no backward pass uses: a periodic check."""
        facts, training = self.facts, self.facts.training
        loops = facts.enclosing_loops(call)
        branch, child = None, call
        for ancestor in facts.ancestors(call):
            if ancestor is (loops[0] if loops else None) or isinstance(ancestor, cst.FunctionDef):
                break
            if isinstance(ancestor, cst.Else) or (isinstance(ancestor, cst.If) and child is ancestor.body):
                branch = ancestor.body if isinstance(ancestor, cst.Else) else child
                break
            child = ancestor
        if branch is None:
            return False
        for inner in nodes_within(branch, cst.Call):
            reached = [inner] + [n for f in facts.called_functions(inner) for n in training.reachable(f)]
            if any(training.is_backward(n) or training.is_optimizer_step(n) for n in reached):
                return False
        return True

    def _after_inner_training(self, call: cst.Call) -> bool:
        """A forward inside a loop over epochs, after the nested loop, or the call to a local
        function, that steps an optimizer: the validation at the end of each epoch. A loop that
        itself calls backward() or step() (a batch loop with an inner critic loop) is not one."""
        facts, training = self.facts, self.facts.training
        at = facts.order_of(call)
        for outer in facts.enclosing_loops(call):
            inside = [n for n in facts.effects.get(outer, []) if isinstance(n, cst.Call)]
            own_level = [n for n in inside if facts.enclosing_loops(n)[:1] == [outer]]
            if any(training.is_backward(n) or training.is_optimizer_step(n) for n in own_level):
                continue
            for node in inside:
                if facts.order_of(node) >= at:
                    continue
                around = facts.enclosing_loops(node)
                if outer not in around:
                    continue  # inside a function defined in the loop (an LBFGS closure, a helper)
                nested = around[:around.index(outer)]
                if nested and training.is_optimizer_step(node) and call not in facts.effects.get(nested[-1], []):
                    return True
                if not nested and any(training.is_optimizer_step(n) for f in facts.called_functions(node) for n in training.reachable(f)):
                    return True
        return False

    def _result_trained_on(self, call: cst.Call) -> bool:
        """Whether a backward pass uses what the statement around the call computes: its
        assignment targets, the list it is appended to, or a backward call in the statement."""
        if call not in self._trained_on_cache:
            self._trained_on_cache[call] = self._compute_result_trained_on(call)
        return self._trained_on_cache[call]

    def _compute_result_trained_on(self, call: cst.Call) -> bool:
        facts, training = self.facts, self.facts.training
        statement = next((a for a in facts.ancestors(call) if isinstance(a, (cst.BaseSmallStatement, cst.BaseCompoundStatement))), None)
        if isinstance(statement, cst.Assign):
            targets = [t.target for t in statement.targets]
        elif isinstance(statement, (cst.AnnAssign, cst.AugAssign)):
            targets = [statement.target]
        elif isinstance(statement, cst.Expr):
            calls = nodes_within(statement, cst.Call)
            if any(training.is_backward(c) for c in calls):
                return True
            targets = [c.func.value for c in calls if isinstance(c.func, cst.Attribute) and c.func.attr.value in ("append", "extend")]
        else:
            return False
        leaves = [leaf for target in targets
                  for leaf in ([target] if isinstance(target, (cst.Name, cst.Attribute)) else nodes_within(target, (cst.Name, cst.Attribute)))]
        return any(training.feeds_backward(leaf) for leaf in leaves)

    def _local_context(self, call: cst.Call) -> list[cst.CSTNode]:
        """What runs next to a forward call: its innermost loop, else its function."""
        facts = self.facts
        loops = facts.enclosing_loops(call)
        container = loops[0] if loops else (facts.enclosing_function(call) or facts.module)
        if container is facts.module:
            return [n for n in facts.effects.get(container, []) if facts.enclosing_function(n) is None
                    and not facts.enclosing_loops(n)]
        return facts.training.reachable(container)

    def _function_chain(self, node: cst.CSTNode) -> list[cst.FunctionDef]:
        return [a for a in self.facts.ancestors(node) if isinstance(a, cst.FunctionDef)]

    def _after_training_loop(self, call: cst.Call) -> bool:
        facts = self.facts
        at = facts.order_of(call)
        for loop in facts.loops:
            if facts.enclosing_function(loop) is None and call not in facts.effects.get(loop, []) and \
                    any(facts.training.is_optimizer_step(n) for n in facts.training.reachable(loop)):
                if facts.order_of(loop) < at:
                    return True
        return False

    # ------------------------------------------------------------------ context

    def in_no_grad(self, node: cst.CSTNode, depth: int = _MAX_DEPTH) -> bool:
        """Inside `with torch.no_grad()` / `inference_mode()` / `set_grad_enabled(False)`, a function
        decorated with one of them, or a function only ever called from such a context."""
        facts = self.facts
        for ancestor in facts.ancestors(node):
            if isinstance(ancestor, cst.With) and any(self._disables_grad(item.item) for item in ancestor.items):
                return True
            if isinstance(ancestor, cst.FunctionDef):
                if any(self._disables_grad(d.decorator) for d in ancestor.decorators):
                    return True
                sites = facts.training.caller_sites(ancestor)
                if sites and depth > 0:
                    return all(self.in_no_grad(site, depth - 1) for site in sites)
                break
        return self._grad_disabled_globally(node)

    def _disables_grad(self, expr: cst.BaseExpression) -> bool:
        target = expr.func if isinstance(expr, cst.Call) else expr
        qualified = self.facts.qualname(target)
        if qualified in NO_GRAD_CONTEXTS:
            return True
        if qualified in GRAD_SWITCHES and isinstance(expr, cst.Call) and expr.args:
            return self.facts.literal(expr.args[0].value) is False
        return False

    def _grad_disabled_globally(self, node: cst.CSTNode) -> bool:
        at = self.facts.order_of(node) if isinstance(node, cst.Call) else len(self.facts.calls)
        return any(self._disables_grad(call) and self.facts.enclosing_function(call) is None
                   and self.facts.order_of(call) < at for call in self.facts.calls
                   if self.facts.qualname(call.func) in GRAD_SWITCHES)

    # ------------------------------------------------------------------ modes

    @functools.cached_property
    def _mode_switches(self) -> list[tuple[cst.Call, str]]:
        """Every `x.eval()` / `x.train(False)` ("eval") and `x.train()` ("train") call, found once."""
        facts = self.facts
        found = []
        for call in facts.calls:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("eval", "train"):
                argument = facts.literal(call.args[0].value) if call.args else True
                found.append((call, "eval" if func.attr.value == "eval" or argument is False else "train"))
        return found

    def mode_calls(self, model: cst.BaseExpression, mode: str) -> list[cst.Call]:
        """`model.eval()` / `model.train(False)` (mode "eval") or `model.train()` (mode "train")
        on the same model, anywhere in the file."""
        return [call for call, switch in self._switches_of(model) if switch == mode]

    def _switches_of(self, model: cst.BaseExpression) -> list[tuple[cst.Call, str]]:
        return [(call, mode) for call, mode in self._mode_switches if self.facts.same_object(call.func.value, model)]

    def modes_before(self, node: cst.CSTNode, model: cst.BaseExpression) -> set[Optional[str]]:
        """The mode ("eval" or "train") each path leaves `model` in when it reaches `node`: the
        latest `eval()`/`train()` on it earlier in node's function, or the latest earlier call of a
        local function that switches it (`evaluate(model)` that calls `model.eval()` leaves it in
        eval mode), else what the callers of that function leave (None: a path that sets no mode)."""
        facts = self.facts
        switches = self._switches_of(model)
        exits: dict[cst.FunctionDef, tuple[int, str]] = {}  # each switching function's last switch
        for call, mode in switches:
            switching = facts.enclosing_function(call)
            if switching is not None:
                exits[switching] = max(exits.get(switching, (-1, "")), (facts.order_of(call), mode))
        return self._modes_at(node, switches, exits, _MAX_DEPTH)

    def _modes_at(self, node: cst.CSTNode, switches: list[tuple[cst.Call, str]],
                  exits: dict[cst.FunctionDef, tuple[int, str]], depth: int) -> set[Optional[str]]:
        facts = self.facts
        function = facts.enclosing_function(node)
        at = facts.order_of(node)
        earlier = [(facts.order_of(call), mode) for call, mode in switches
                   if facts.enclosing_function(call) is function and facts.order_of(call) < at]
        for switching, (_, mode) in exits.items():
            if switching is not function:
                earlier += [(facts.order_of(site), mode) for site in facts.training.caller_sites(switching)
                            if facts.enclosing_function(site) is function and facts.order_of(site) < at]
        if earlier:
            return {max(earlier)[1]}
        sites = facts.training.caller_sites(function) if function is not None and depth > 0 else []
        return set().union(*(self._modes_at(site, switches, exits, depth - 1) for site in sites)) if sites else {None}

    def has_dropout(self, model: cst.BaseExpression) -> bool:
        network = self.facts.networks.network_of(model)
        return network is not None and bool({op.api for op in network.ops} & names.DROPOUT_LAYERS)

    def has_mode_layers(self, model: cst.BaseExpression) -> Optional[bool]:
        """True when the model has Dropout or BatchNorm layers, False when it is known to have
        none, None when its architecture cannot be seen."""
        network = self.facts.networks.network_of(model)
        if network is None:
            return None
        layers = {op.api for op in network.ops}
        return bool(layers & (names.DROPOUT_LAYERS | names.BATCHNORM_LAYERS))

