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
from mlplint.lint.facts.index import first_param, terminal_name
from mlplint.lint.facts.pass_size import PassSize, PassSizes

# Functions whose name says they evaluate or sample: evaluate, validate, test, predict, sample_images...
# Only a tie-breaker: it decides a forward whose result a function returns to callers the file
# does not show.
EVALUATION_NAME = re.compile(r"(^|_)(eval|evaluate|evaluation|valid|validate|validation|val|test|testing|predict|prediction|infer|inference|score|accuracy|sample|samples|generate)(_|\d|$)", re.IGNORECASE)
NO_GRAD_CONTEXTS = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad"}
GRAD_SWITCHES = {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"}
# Last resort for callees that cannot be resolved (a parameter nobody passes): `model`, `net`,
# `self.encoder`, `model_ema`, `netG`... A name that ends in a model word, not one that only contains it
# (`dummy_model_factory`), and not a verb phrase (`get_classifier`, `load_model`, `reset_classifier`).
MODEL_NAME = re.compile(r"(^|_)(model|net|network|classifier|regressor|encoder|decoder|generator|discriminator|backbone|clf)(\d*|_?[a-z]|_ema|_eval|_student|_teacher|_g|_d)$", re.IGNORECASE)
ACTION_NAME = re.compile(r"^(get|load|reset|create|build|make|init|initialize|set|save|freeze|unfreeze|prepare|wrap|compile|copy|clone|update|register|setup|dummy|fake|mock|new|export|convert|fuse|unwrap|extract|merge|quantize|trace|script|shard|average|swap)_", re.IGNORECASE)
SIDE_BRANCH = "in a branch of the training loop that never calls backward()"
AFTER_EPOCH = "after each epoch's training steps"
# Loading a model's weights (`model.load_state_dict(...)`) or a whole model (`torch.load(path)`).
LOAD_METHODS = {"load_state_dict", "load", "from_pretrained", "load_checkpoint", "load_from_checkpoint"}
# What calling a model's own method runs when the method is one of these: not a forward pass.
NOT_FORWARD_METHODS = {"__init__", "forward", "__call__"}
_MAX_DEPTH = 6




@dataclass(frozen=True)
class EvaluationPass:
    call: cst.Call  # the forward call
    model: cst.BaseExpression  # the model expression called
    reason: str  # "in evaluate()" / "after the training loop"
    detached: bool = False  # the result is only ever used through `.detach()` or `.data`

    @property
    def input(self) -> Optional[cst.BaseExpression]:
        """What the pass runs on: the first positional argument (`x` in `model(x)`, `net.predict(x)`)."""
        return next((arg.value for arg in self.call.args if arg.keyword is None and not arg.star), None)


class EvaluationAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._trained_on_cache: dict[cst.CSTNode, bool] = {}
        self._returned_cache: dict[cst.CSTNode, bool] = {}
        self._sizes = PassSizes(facts)

    def size(self, found: EvaluationPass) -> PassSize:
        """How much data the pass runs on (see `pass_size`)."""
        return self._sizes.of(found)

    # ------------------------------------------------------------------ passes

    @functools.cached_property
    def passes(self) -> list[EvaluationPass]:
        """Forward passes that evaluate a model, found by what the code does: a forward call on a
        model (or a model's own method that runs it, `net.predict(x)`) whose output never reaches
        a backward pass, in code that steps no optimizer, or in a part of the training loop that
        trains nothing (a periodic check, the validation after each epoch). A model built afresh
        in the function that calls it (`net = ResNet18()`) and never trained or loaded is only
        smoke-tested; a call in a lambda runs wherever the lambda is called, which the analysis
        does not follow."""
        found = []
        for call in self.facts.calls:
            model = self.called_model(call)
            if model is None or self._in_lambda(call) or self._fresh_untrained(call, model):
                continue
            reason = self._evaluation_reason(call, model)
            if reason is not None:
                found.append(EvaluationPass(call, model, reason, self._only_detached(call)))
        return found

    def called_model(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """The model a call runs forward, when it calls a module (or its `forward`, or one of its
        own methods that runs it, such as `predict`): not a constructor (`Net()`), not a method
        of a model that runs no forward (`model.get_classifier()`), not a function whose name
        mentions a model (`task.get_eval_model()`). Worked out once per call."""
        if call not in self._called_models:
            self._called_models[call] = self._called_model(call)
        return self._called_models[call]

    @functools.cached_property
    def _called_models(self) -> dict[cst.Call, Optional[cst.BaseExpression]]:
        return {}

    def _called_model(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        facts = self.facts
        function = facts.enclosing_function(call)
        owner = facts.enclosing_class(function) if function is not None else None
        if owner is not None and self._model_class(owner):
            return None  # a submodule called inside a model's own methods
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        elif isinstance(func, cst.Attribute) and func.attr.value in self._forward_method_names \
                and any(m in self._forward_methods for m in facts.called_functions(call)):
            return func.value  # `net.predict(x)`: the model's own method runs it
        if facts.qualname(func) is not None or facts.local_definitions(func, cst.FunctionDef) \
                or facts.local_definitions(func, cst.ClassDef):
            return None
        kind = facts.kind_of(func)
        if kind != "model":
            if kind is not None or not self._named_like_model(func) or self._names_a_class(func):
                return None
            if isinstance(func, cst.Attribute) and (facts.kind_of(func.value) == "model" or self._named_like_model(func.value)):
                return None  # a method of a model object
        return func

    @functools.cached_property
    def _forward_methods(self) -> dict[cst.FunctionDef, list[cst.Call]]:
        """Methods of local model classes, other than forward, that run the model (`self(x)`,
        `self.forward(x)`, `self.fc(x)`), with those calls: `predict`, `sample`, `generate`."""
        facts = self.facts
        found: dict[cst.FunctionDef, list[cst.Call]] = {}
        for owner in facts.classes:
            if not self._model_class(owner):
                continue
            for name, method in facts.methods(owner).items():
                runs = [c for c in nodes_within(method.body, cst.Call) if self._runs_own_layer(c, method)] \
                    if name not in NOT_FORWARD_METHODS else []
                if runs:
                    found[method] = runs
        return found

    def _model_class(self, owner: cst.ClassDef) -> bool:
        return owner in self._model_classes

    @functools.cached_property
    def _model_classes(self) -> set[cst.ClassDef]:
        """nn.Module subclasses, and classes that define `forward` (through a base the file cannot
        resolve, `class Module(d2l.nn_Module)`, or none at all: a loss network's wrapper)."""
        facts = self.facts
        return {owner for owner in facts.classes if facts.is_module_class(owner) or facts.method(owner, "forward") is not None}

    @functools.cached_property
    def _forward_method_names(self) -> set[str]:
        return {method.name.value for method in self._forward_methods}

    def _runs_own_layer(self, call: cst.Call, method: cst.FunctionDef) -> bool:
        func = call.func.value if isinstance(call.func, cst.Attribute) and call.func.attr.value == "forward" else call.func
        this = first_param(method)
        if isinstance(func, cst.Name):
            return func.value == this
        return isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == this \
            and self.facts.kind_of(func) == "model"

    def _names_a_class(self, func: cst.BaseExpression) -> bool:
        """A class passed in (`def check(Discriminator): D = Discriminator(10)`), or a name spelled
        as classes are (CapWords): calling it constructs a model, it runs none."""
        facts = self.facts
        if any(facts.local_definitions(o, cst.ClassDef) for o in facts.origins(func) if isinstance(o, cst.Name)):
            return True
        last = terminal_name(func)
        return last[:1].isupper() and any(c.islower() for c in last)

    @staticmethod
    def _named_like_model(expr: cst.BaseExpression) -> bool:
        spelled = terminal_name(expr)
        return bool(MODEL_NAME.search(spelled)) and not ACTION_NAME.search(spelled)

    def _only_detached(self, call: cst.Call) -> bool:
        """`model(x).detach()`, or `out = model(x)` whose every read is `out.detach()` (or `out.data`)."""
        detached = lambda node: isinstance(self.facts.parent.get(node), cst.Attribute) and self.facts.parent[node].attr.value in ("detach", "data")  # noqa: E731
        reads = self._result_reads(call)
        return detached(call) or bool(reads) and all(detached(read) for read in reads)

    def during_training(self, found: EvaluationPass) -> bool:
        """Whether a loop that trains runs the pass: a periodic check, a sample each epoch, a
        helper such as `sample_images()` called from the training loop."""
        training = self.facts.training
        return any(training.trains_in(loop) for loop in training.loops_around(found.call))

    def _result_reads(self, call: cst.Call) -> list[cst.Name]:
        """The reads of the name `out = model(x)` binds (none for other statements)."""
        statement = self.facts.parent.get(call)
        if not (isinstance(statement, cst.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0].target, cst.Name)):
            return []
        return self._reads_by_target.get(statement.targets[0].target, [])

    @functools.cached_property
    def _reads_by_target(self) -> dict[cst.Name, list[cst.Name]]:
        """The reads each assignment target reaches, indexed once per file."""
        facts = self.facts
        index: dict[cst.Name, list[cst.Name]] = {}
        for name in facts.order:
            if type(name) is cst.Name and name not in facts.bindings:
                for node in facts.reaching_nodes(name):
                    if node in facts.bindings:
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
        """A model built in the function that calls it, directly or by a factory (`net = Net()`,
        `net = ResNet18()`), that nothing trains or loads weights into: a smoke test
        (`def test(): net = ResNet18(); net(torch.randn(1, 3, 32, 32))`), or a layer built on
        the spot and called at once (`nn.Upsample(scale_factor=2)(x)`)."""
        facts = self.facts
        if isinstance(model, cst.Call):
            return facts.kind_of(model) == "model" and not self._loads(model)  # `nn.Upsample(scale_factor=2)(x)`
        if not isinstance(model, cst.Name):
            return False
        function = facts.enclosing_function(call)
        bindings = [facts.bindings.get(node) for node in facts.reaching_nodes(model)]
        if not bindings or not all(b is not None and not b.path and not b.loop and isinstance(b.value, cst.Call)
                                   and facts.enclosing_function(b.value) is function for b in bindings):
            return False
        origins = facts.origins(model)
        return all(isinstance(o, cst.Call) and facts.kind_of(o) == "model" and not self._loads(o)
                   and o not in self._trained and o not in self._loaded for o in origins)

    @staticmethod
    def _loads(call: cst.Call) -> bool:
        """`torch.load(path)`, `Model.from_pretrained(name)`: a call that returns a loaded model."""
        return terminal_name(call.func) in LOAD_METHODS

    @functools.cached_property
    def _loaded(self) -> set[cst.CSTNode]:
        """Origins of the models the file loads weights into (`model.load_state_dict(...)`)."""
        facts = self.facts
        return {o for call in facts.calls if isinstance(call.func, cst.Attribute) and call.func.attr.value in LOAD_METHODS
                for o in facts.origins(call.func.value)}

    @functools.cached_property
    def _trained(self) -> set[cst.CSTNode]:
        """Origins of the models the file trains: a forward whose result a backward pass uses, or
        an optimizer over their parameters; computed once."""
        facts = self.facts
        found: set[cst.CSTNode] = set()
        for call in facts.calls:
            if facts.kind_of(call) == "optimizer":
                params = facts.argument(call, 0, "params")
                for name in nodes_within(params, (cst.Name, cst.Attribute)) if params is not None else ():
                    found.update(facts.origins(name))
            elif (model := self.called_model(call)) is not None and self._result_trained_on(call):
                found.update(facts.origins(model))
        return found

    def _is_loaded(self, model: cst.BaseExpression) -> bool:
        return any(o in self._loaded or isinstance(o, cst.Call) and self._loads(o) for o in self.facts.origins(model))

    def _evaluation_reason(self, call: cst.Call, model: cst.BaseExpression) -> Optional[str]:
        """Why a forward call is an evaluation pass, or None when it is not one: its output
        reaches a backward pass, or it runs in code that trains. A forward whose result its
        function returns to its callers is one only when the function is named like one
        (evaluate, predict, sample...): the callers may train on it or run it under no_grad."""
        if self._result_trained_on(call):
            return None
        if self._context_trains(call):
            if self._side_branch(call):
                return SIDE_BRANCH
            return AFTER_EPOCH if self._after_inner_training(call) else None
        if self._after_inner_training(call):
            return AFTER_EPOCH
        function = self.facts.enclosing_function(call)
        if function is not None and not self.facts.training.trains_in(function):
            if self._returned(call) and not EVALUATION_NAME.search(function.name.value):
                return None  # handed back to callers: they may train on it, or run it under no_grad
            return f"in {function.name.value}()"
        after = self._after_training(call)
        if after is not None:
            return after
        return "on a loaded model" if function is None and self._is_loaded(model) else None

    def _returned(self, call: cst.Call) -> bool:
        """What the statement around the call computes reaches a return statement of its
        function: `return model(x)`, `feats = model(x); v += feats; return v`, a dict of losses."""
        return self._flows_to(self._statement(call), self._returned_cache, returned=True)

    def _statement(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return next((a for a in self.facts.ancestors(node) if isinstance(a, (cst.BaseSmallStatement, cst.BaseCompoundStatement))), None)

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
            if training.trains(reached):
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
            if training.trains(own_level):
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
        """Whether a backward pass uses what the statement around the call computes, following
        the result forward through the function: `probs = policy(state)`, `m = Categorical(probs)`,
        `policy.saved_log_probs.append(m.log_prob(a))` with that list differentiated elsewhere."""
        return self._flows_to(self._statement(call), self._trained_on_cache, returned=False)

    def _flows_to(self, statement: Optional[cst.CSTNode], cache: dict[cst.CSTNode, bool], returned: bool) -> bool:
        """What a statement computes reaches a backward pass (`returned` False: its assignment
        targets, the list it appends to, what its function returns, a backward call in it), or a
        return statement (`returned` True); for a name it binds, through a later statement that
        reads the name. Memoised in `cache`; a statement met again while it is being answered
        adds nothing."""
        if statement is None:
            return False
        found = cache.get(statement)
        if found is None:
            cache[statement] = False
            found = cache[statement] = self._compute_flows_to(statement, cache, returned)
        return found

    def _compute_flows_to(self, statement: cst.CSTNode, cache: dict[cst.CSTNode, bool], returned: bool) -> bool:
        facts, training = self.facts, self.facts.training
        if isinstance(statement, cst.Assign):
            targets = [t.target for t in statement.targets]
        elif isinstance(statement, (cst.AnnAssign, cst.AugAssign)):
            targets = [statement.target]
        elif isinstance(statement, cst.Return):
            return statement.value is not None and (returned or training.returned_to_backward(statement.value))
        elif isinstance(statement, cst.Expr):
            calls = nodes_within(statement, cst.Call)
            if not returned and any(training.computes_gradients(c) for c in calls):
                return True
            targets = [c.func.value for c in calls if isinstance(c.func, cst.Attribute) and c.func.attr.value in ("append", "extend")]
        else:
            return False
        leaves = [leaf for target in targets
                  for leaf in ([target] if isinstance(target, (cst.Name, cst.Attribute)) else nodes_within(target, (cst.Name, cst.Attribute)))]
        if returned:  # `terms["mse"] = ...` or `outs.append(...)` fills a container the function may return
            leaves += [d for leaf in leaves if isinstance(leaf, cst.Name) and leaf not in facts.bindings
                       for d in facts.reaching_nodes(leaf) if isinstance(d, cst.Name) and d in facts.bindings]
        if not returned and any(training.feeds_backward(leaf) or isinstance(leaf, cst.Attribute) and training.spelled_in_backward(leaf)
                                or any(training.feeds_backward(d) for d in self._defined_outside(leaf)) for leaf in leaves):
            return True
        return any(self._flows_to(self._statement(read), cache, returned)
                   for leaf in leaves if isinstance(leaf, cst.Name) for read in self._reads_by_target.get(leaf, []))

    def _defined_outside(self, leaf: cst.BaseExpression) -> list[cst.Name]:
        """The assignments a read of a global (a list filled here, read by the training code) reaches."""
        facts = self.facts
        if not isinstance(leaf, cst.Name) or leaf in facts.bindings:
            return []
        return [d for d in facts.reaching_nodes(leaf) if isinstance(d, cst.Name) and d in facts.bindings
                and facts.enclosing_function(d) is not facts.enclosing_function(leaf)]

    def _context_trains(self, call: cst.Call) -> bool:
        """Whether what runs next to a forward call trains: its innermost loop, else its function,
        else the module's own statements (outside loops and functions)."""
        facts = self.facts
        loops = facts.enclosing_loops(call)
        container = loops[0] if loops else facts.enclosing_function(call)
        return facts.training.trains_in(container) if container is not None else self._module_level_trains

    @functools.cached_property
    def _module_level_trains(self) -> bool:
        facts = self.facts
        return facts.training.trains([n for n in facts.effects.get(facts.module, []) if facts.enclosing_function(n) is None
                                      and not facts.enclosing_loops(n)])

    def _after_training(self, call: cst.Call) -> Optional[str]:
        """"after the training loop" when a loop, or "after `train()`" when a call of a local
        function, earlier in the same function (or at module level) steps an optimizer."""
        at = self.facts.order_of(call)
        return next((reason for end, reason in self._training_ends.get(self.facts.enclosing_function(call), []) if end < at), None)

    @functools.cached_property
    def _training_ends(self) -> dict[Optional[cst.FunctionDef], list[tuple[int, str]]]:
        """For each function (None: module level), when each of its training loops, and each of
        its calls to a local function that trains, ends; indexed once per file."""
        facts, training = self.facts, self.facts.training
        ends: dict[Optional[cst.FunctionDef], list[tuple[int, str]]] = {}
        for loop in facts.loops:
            if any(training.is_optimizer_step(n) for n in training.reachable(loop)):
                ends.setdefault(facts.enclosing_function(loop), []).append((facts.order_of(loop), "after the training loop"))
        for call in facts.calls:
            if not facts.enclosing_loops(call) and any(
                    training.is_optimizer_step(n) for f in facts.called_functions(call) for n in training.reachable(f)):
                ends.setdefault(facts.enclosing_function(call), []).append((facts.order_of(call), f"after `{facts.spelling(call.func)}()` trains it"))
        return ends

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

    def grad_disabled(self, found: EvaluationPass) -> bool:
        """Whether a pass runs with autograd off: by its context (`in_no_grad`), or, for a
        model's own method (`net.predict(x)`), by the method's decorator or a `with` block inside
        it around each forward it runs."""
        if self.in_no_grad(found.call):
            return True
        methods = [m for m in self.facts.called_functions(found.call) if m in self._forward_methods]
        return bool(methods) and all(self._inside_no_grad(inner, method) for method in methods for inner in self._forward_methods[method])

    def _inside_no_grad(self, node: cst.CSTNode, function: cst.FunctionDef) -> bool:
        for ancestor in self.facts.ancestors(node):
            if isinstance(ancestor, cst.With) and any(self._disables_grad(item.item) for item in ancestor.items):
                return True
            if ancestor is function:
                return any(self._disables_grad(d.decorator) for d in function.decorators)
        return False

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
        return self._first_global_grad_off < at

    @functools.cached_property
    def _first_global_grad_off(self) -> float:
        """When the first module-level `torch.set_grad_enabled(False)` runs (infinity: never)."""
        facts = self.facts
        return min((facts.order_of(call) for call in facts.calls_to(*GRAD_SWITCHES)
                    if facts.enclosing_function(call) is None and self._disables_grad(call)), default=float("inf"))

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
        """The mode switches on the same object as `model` (`same_object`), in call order, looked
        up in an index of the switches by what their receivers may hold."""
        by_origin, by_spelling = self._switch_index
        origins, spellings = self.facts.origin_sets(model)
        found = {position for origin in origins for position in by_origin.get(origin, ())}
        found.update(position for spelled in spellings for position in by_spelling.get(spelled, ()))
        return [self._mode_switches[position] for position in sorted(found)]

    @functools.cached_property
    def _switch_index(self) -> tuple[dict[cst.CSTNode, list[int]], dict[str, list[int]]]:
        """The positions in `_mode_switches` of the switches on each origin, and on each spelling
        of an origin that cannot be resolved, of their receivers."""
        by_origin: dict[cst.CSTNode, list[int]] = {}
        by_spelling: dict[str, list[int]] = {}
        for position, (call, _) in enumerate(self._mode_switches):
            origins, spellings = self.facts.origin_sets(call.func.value)
            for origin in origins:
                by_origin.setdefault(origin, []).append(position)
            for spelled in spellings:
                by_spelling.setdefault(spelled, []).append(position)
        return by_origin, by_spelling

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

    def mode_set_by_library(self, model: cst.BaseExpression) -> bool:
        """A model a Lightning Trainer runs (`trainer.test(model, ...)`): the trainer switches its
        mode itself, and leaves it in eval or train mode depending on the version."""
        return any(o in self._run_by_trainer for o in self.facts.origins(model))

    @functools.cached_property
    def _run_by_trainer(self) -> set[cst.CSTNode]:
        facts = self.facts
        found: set[cst.CSTNode] = set()
        for call in facts.calls:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in names.LIGHTNING_RUNS and any(
                    isinstance(o, cst.Call) and facts.qualname(o.func) in names.LIGHTNING_TRAINERS for o in facts.origins(func.value)):
                model = facts.argument(call, 0, "model")
                found.update(facts.origins(model) if model is not None else ())
        return found

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

