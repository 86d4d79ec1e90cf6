"""Training loops: optimizer steps, backward passes, gradient clearing, and what a loop reaches
through the local functions it calls."""

from __future__ import annotations

import functools
import re
from typing import Iterator, Optional, Union

import libcst as cst

from mlplint.lint.facts.core import ScriptFacts, nodes_within
from mlplint.lint.facts.index import terminal_name

Loop = Union[cst.For, cst.While]
# Receivers we cannot resolve are judged by name only as a last resort (functions imported
# elsewhere and never called in the file): `optimizer`, `opt_g`, `self.optim`...
_OPTIMIZER_NAME = re.compile(r"(^|_)(opt|optim|optimizer|optimiser)(_|\d|$)", re.IGNORECASE)
MAX_CALL_DEPTH = 6
# Libraries whose functions do nothing to the objects they receive beyond what their names say.
_SEEN_APIS = ("torch.", "builtins.", "tqdm.")



# Calls that return a new model object (not the one they are given): a reload or a deep copy.
NEW_MODEL_CALLS = {"torch.load", "torch.jit.load", "copy.deepcopy"}
# Schedulers that overwrite the optimizer's lr when they are built.
LR_SETTING_SCHEDULERS = ("torch.optim.lr_scheduler.OneCycleLR", "torch.optim.lr_scheduler.CyclicLR")


class TrainingAnalysis:
    def __init__(self, facts: ScriptFacts):
        self.facts = facts
        self._reachable_cache: dict[cst.CSTNode, list[cst.CSTNode]] = {}
        self._trains_in_cache: dict[cst.CSTNode, bool] = {}
        self._reached_sets: dict[cst.CSTNode, frozenset[cst.CSTNode]] = {}
        self._stale_cache: dict[cst.Call, Optional[tuple[cst.Call, cst.Name]]] = {}

    def reachable(self, container: cst.CSTNode) -> list[cst.CSTNode]:
        """Calls and assignments inside a loop or function, and inside the local functions it
        calls (or passes as arguments, like an LBFGS closure), transitively."""
        cached = self._reachable_cache.get(container)
        if cached is None:
            cached = self._reachable_cache[container] = self._collect(container)
        return cached

    def reaches(self, container: cst.CSTNode, node: cst.CSTNode) -> bool:
        """Whether `node` is among what a loop or function reaches (`reachable`), from a set
        built once per container."""
        found = self._reached_sets.get(container)
        if found is None:
            found = self._reached_sets[container] = frozenset(self.reachable(container))
        return node in found

    def steps_reached(self, container: cst.CSTNode) -> list[cst.Call]:
        """The optimizer steps a loop or function reaches, in evaluation order."""
        return [step for step in self.optimizer_steps if self.reaches(container, step)]

    @functools.cached_property
    def sums_loss(self) -> bool:
        """Whether a loss in the file sums over its elements (`reduction="sum"`, the old
        `size_average=False`): its gradient, and so each step, grows with the batch and the
        outputs (FCN trains at lr=1e-10 on a loss summed over every pixel)."""
        facts = self.facts
        return any(
            arg.keyword is not None and (arg.keyword.value == "reduction" and facts.literal(arg.value) == "sum"
                                         or arg.keyword.value == "size_average" and facts.literal(arg.value) is False)
            for call in facts.calls for arg in call.args
        )

    def trains_in(self, container: cst.CSTNode) -> bool:
        """Whether what a loop or function reaches trains (see `trains`), once per container."""
        found = self._trains_in_cache.get(container)
        if found is None:
            found = self._trains_in_cache[container] = self.trains(self.reachable(container))
        return found

    def _collect(self, container: cst.CSTNode) -> list[cst.CSTNode]:
        nodes: list[cst.CSTNode] = []
        seen: set[cst.CSTNode] = set()
        todo = [(container, MAX_CALL_DEPTH)]
        while todo:
            current, depth = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            own = self.facts.effects.get(current, [])
            nodes.extend(own)
            if depth == 0:
                continue
            for node in own:
                if isinstance(node, cst.Call):
                    targets = self.facts.called_functions(node)
                    for arg in node.args:
                        targets += self.facts.local_definitions(arg.value, cst.FunctionDef)
                    todo.extend((function, depth - 1) for function in targets)
        return nodes

    def optimizer_setting(self, call: cst.Call, key: str, position: Optional[int]) -> list[cst.BaseExpression]:
        """Expressions setting one hyper-parameter of an optimizer constructor: the argument
        (keyword, or positional at `position`) and the entries of parameter-group dicts."""
        found = []
        value = self.facts.argument(call, position, key)
        if value is not None:
            found.append(value)
        params = self.facts.argument(call, 0, "params")
        if isinstance(params, (cst.List, cst.Tuple)):
            for element in params.elements:
                if isinstance(element.value, cst.Dict):
                    for entry in element.value.elements:
                        if isinstance(entry, cst.DictElement) and self.facts.literal(entry.key) == key:
                            found.append(entry.value)
        return found

    def lr_set_by_scheduler(self, optimizer_call: cst.Call) -> bool:
        """Whether the optimizer built by this call goes to a scheduler that sets the learning rate
        itself (OneCycleLR from max_lr / div_factor, CyclicLR from base_lr), so its own lr is never used."""
        return optimizer_call in self._scheduled_lr_optimizers

    @functools.cached_property
    def _scheduled_lr_optimizers(self) -> set[cst.CSTNode]:
        facts = self.facts
        found: set[cst.CSTNode] = set()
        for scheduler in facts.calls_to(*LR_SETTING_SCHEDULERS):
            optimizer = facts.argument(scheduler, 0, "optimizer")
            if optimizer is not None:
                found.update(facts.origins(optimizer))
        return found

    def is_optimizer(self, expr: cst.BaseExpression) -> bool:
        kind = self.facts.kind_of(expr)
        if kind is not None:
            return kind == "optimizer"
        return bool(_OPTIMIZER_NAME.search(terminal_name(expr)))

    def is_optimizer_step(self, node: cst.CSTNode) -> bool:
        """`optimizer.step()` or `scaler.step(optimizer)`."""
        if not (type(node) is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value == "step"):
            return False
        receiver = node.func.value
        if self.facts.kind_of(receiver) == "scaler":
            return True
        return self.is_optimizer(receiver)

    @functools.cached_property
    def optimizer_steps(self) -> list[cst.Call]:
        return [call for call in self.facts.calls if self.is_optimizer_step(call)]

    @staticmethod
    def is_backward(node: cst.CSTNode) -> bool:
        """`loss.backward()`, `scaler.scale(loss).backward()`, `accelerator.backward(loss)`,
        `torch.autograd.backward(...)`, `manual_backward(loss)` (Lightning)."""
        if type(node) is not cst.Call:
            return False
        name = terminal_name(node.func)
        return name in ("backward", "manual_backward")

    @staticmethod
    def is_autograd_grad(node: cst.CSTNode) -> bool:
        """`torch.autograd.grad(outputs, inputs)` (`autograd.grad`, `th.autograd.grad`): a backward
        pass that returns the gradients instead of accumulating them."""
        return type(node) is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value == "grad" \
            and terminal_name(node.func.value) == "autograd"

    def computes_gradients(self, node: cst.CSTNode) -> bool:
        """A backward pass of either kind: `loss.backward()` or `torch.autograd.grad(loss, x)`."""
        return self.is_backward(node) or self.is_autograd_grad(node)

    def is_zero_grad(self, node: cst.CSTNode) -> bool:
        """`optimizer.zero_grad()`: the code around it trains, even when the backward pass and the
        step run in a callable the file does not show (`loss_scaler(loss, optimizer)`)."""
        return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "zero_grad" \
            and self.is_optimizer(node.func.value)

    def trains(self, nodes: list[cst.CSTNode]) -> bool:
        """Whether any of the nodes trains: a backward pass of either kind, an optimizer step or
        an optimizer's zero_grad()."""
        return any(self.computes_gradients(n) or self.is_optimizer_step(n) or self.is_zero_grad(n) for n in nodes)

    @staticmethod
    def differentiated(call: cst.Call) -> list[cst.BaseExpression]:
        """What a backward call may differentiate: `X` in `X.backward()` (`scaler.scale(X)`
        included) and the first argument of `accelerator.backward(X)` or `torch.autograd.backward(X)`."""
        candidates = [call.func.value] if isinstance(call.func, cst.Attribute) else []
        return candidates + [arg.value for arg in call.args[:1] if arg.keyword is None]

    def differentiated_loss(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """The one expression a backward call surely differentiates, or None where the spelling
        leaves it open: `X` in `X.backward()`; the argument of `accelerator.backward(loss)`,
        `torch.autograd.backward(loss)` or `self.manual_backward(loss)`, whose receiver holds no
        tensor. In `y.backward(g)` on an unresolved receiver, `g` may be the gradient."""
        receiver = call.func.value if isinstance(call.func, cst.Attribute) else None
        positional = [arg.value for arg in call.args if arg.keyword is None]
        if not positional:
            return receiver
        if receiver is None or self._holds_no_tensor(receiver):
            return positional[0]
        return None

    def _holds_no_tensor(self, receiver: cst.BaseExpression) -> bool:
        """`torch.autograd`, `self`, or an object built by a local class or by an API outside torch
        (`Accelerator()`, `Fabric()`)."""
        if self.facts.qualname(receiver) == "torch.autograd" or (isinstance(receiver, cst.Name) and receiver.value == "self"):
            return True
        classes = self.facts.classes_of(receiver)
        return bool(classes) and all(isinstance(cls, cst.ClassDef) or not cls.startswith("torch.") for cls in classes)

    def feeds_backward(self, value: cst.BaseExpression) -> bool:
        """Whether some backward pass differentiates a tensor computed from `value`, through
        assignments: `total = torch.stack(losses).mean(); total.backward()` is computed from
        `losses`. An assignment target is followed to the reads it reaches; another name or
        attribute (`running += loss`, `self.losses`) matches its spelling in the same scope."""
        targets, spellings, _ = self._backward_dependencies
        if isinstance(value, cst.Name) and value in self.facts.bindings:
            return value in targets
        return (self.facts.spelling(value), self._scope(value)) in spellings

    def spelled_in_backward(self, value: cst.Attribute) -> bool:
        """Whether a backward pass reads an attribute spelled the same in any function: a list
        that one function fills (`policy.saved_log_probs.append(...)`) and another differentiates."""
        return self.facts.spelling(value) in self._backward_spellings

    @functools.cached_property
    def _backward_spellings(self) -> set[str]:
        return {spelled for spelled, _ in self._backward_dependencies[1]}

    def returned_to_backward(self, value: cst.BaseExpression) -> bool:
        """Whether a returned expression is what a local function hands to a backward pass
        (`return criterion(model(x), y)` in the function whose result is differentiated)."""
        return value in self._backward_dependencies[2]

    @functools.cached_property
    def _backward_dependencies(self) -> tuple[set[cst.CSTNode], set[tuple[str, Optional[cst.CSTNode]]], set[cst.CSTNode]]:
        """Everything the file's backward passes are computed from, found once by one worklist
        over the data flow: the definitions the differentiated expressions' reads reach (and
        theirs, transitively), what is appended to the lists they read, what the local functions
        they call return, the spellings of the names and attributes they read, and the
        expressions walked."""
        facts = self.facts
        targets: set[cst.CSTNode] = set()
        spellings: set[tuple[str, Optional[cst.CSTNode]]] = set()
        seen: set[cst.CSTNode] = set()
        todo = [e for call in self.backward_calls for e in self.differentiated(call)]
        todo += [outputs for call in facts.calls if self.is_autograd_grad(call)
                 for outputs in [facts.argument(call, 0, "outputs")] if outputs is not None]
        while todo:
            expr = todo.pop()
            if expr in seen:
                continue
            seen.add(expr)
            for node in nodes_within(expr, (cst.Call, cst.Name, cst.Attribute)):
                if type(node) is cst.Call:
                    for function in facts.local_definitions(node.func, cst.FunctionDef):
                        todo.extend(facts.returns.get(function, []))
                    continue
                spelled = (facts.spelling(node), self._scope(node))
                spellings.add(spelled)
                todo.extend(self._appended.get(spelled, []))
                if type(node) is not cst.Name:
                    continue
                for definition in facts.reaching_nodes(node):
                    binding = facts.bindings.get(definition) if type(definition) is cst.Name else None
                    targets.add(definition)
                    if binding is not None:
                        todo.append(binding.value)
        return targets, spellings, seen

    @functools.cached_property
    def _appended(self) -> dict[tuple[str, Optional[cst.CSTNode]], list[cst.BaseExpression]]:
        """What is appended to each list, by its spelling and scope (`losses.append(loss)`)."""
        found: dict[tuple[str, Optional[cst.CSTNode]], list[cst.BaseExpression]] = {}
        for call in self.facts.calls:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("append", "extend", "appendleft") and call.args:
                key = (self.facts.spelling(func.value), self._scope(func.value))
                found.setdefault(key, []).append(call.args[0].value)
        return found

    @functools.cached_property
    def backward_calls(self) -> list[cst.Call]:
        return [call for call in self.facts.calls if self.is_backward(call)]

    def _scope(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        """Where a name lives: its function; the class for `self.x` in a method."""
        function = self.facts.enclosing_function(node)
        if isinstance(node, cst.Attribute) and function is not None:
            return self.facts.enclosing_class(function) or function
        return function

    def clears_gradients(self, node: cst.CSTNode, stepped: Optional[cst.BaseExpression] = None) -> bool:
        """`zero_grad()`, `p.grad = None`, `p.grad.zero_()`, `p.grad.detach_()`. Given the optimizer
        that steps, a `zero_grad()` only counts on that optimizer or on a model it optimizes (or on
        something that cannot be resolved), so clearing one GAN optimizer does not clear the other."""
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            if method == "zero_grad":
                return stepped is None or self._clears_for(node.func.value, stepped)
            if method in ("zero_", "detach_", "fill_") and self._mentions_grad(node.func.value):
                return True
        if isinstance(node, (cst.Assign,)):
            return any(self._mentions_grad(t.target) for t in node.targets)
        return False

    def _clears_for(self, receiver: cst.BaseExpression, stepped: cst.BaseExpression) -> bool:
        facts = self.facts
        kind = facts.kind_of(receiver)
        stepped_origins = set(facts.origins(stepped))
        if kind == "optimizer":
            return facts.same_object(receiver, stepped) or not any(facts.kind_of(o) == "optimizer" for o in stepped_origins)
        if kind == "model":
            optimized = self._optimized_models(stepped_origins)
            return not optimized or any(facts.same_object(receiver, model) for model in optimized)
        return True

    def _optimized_models(self, optimizers: set[cst.BaseExpression]) -> set[cst.BaseExpression]:
        """Origins of the models whose `.parameters()` an optimizer construction receives."""
        models: set[cst.BaseExpression] = set()
        for optimizer in optimizers:
            params = self.facts.argument(optimizer, 0, "params") if isinstance(optimizer, cst.Call) else None
            if isinstance(params, cst.Call) and isinstance(params.func, cst.Attribute) \
                    and params.func.attr.value in ("parameters", "named_parameters"):
                models.update(self.facts.origins(params.func.value))
            elif params is not None:
                return set()  # parameter groups or filtered lists: cannot tell which model
        return models

    @staticmethod
    def _mentions_grad(expr: cst.BaseExpression) -> bool:
        while isinstance(expr, cst.Attribute):
            if expr.attr.value == "grad":
                return True
            expr = expr.value
        return False

    def loops_around(self, node: cst.CSTNode) -> Iterator[Loop]:
        """Loops that run node: its own enclosing loops (innermost first), then, when node sits in
        a function, the loops around that function's call sites, recursively."""
        yield from self._loops_around(node, MAX_CALL_DEPTH, set())

    def _loops_around(self, node: cst.CSTNode, depth: int, seen: set) -> Iterator[Loop]:
        yield from self.facts.enclosing_loops(node)
        function = self.facts.enclosing_function(node)
        if function is None or depth == 0 or function in seen:
            return
        seen.add(function)
        for call in self.caller_sites(function):
            yield from self._loops_around(call, depth - 1, seen)

    def hands_to_unseen(self, call: cst.Call, value: cst.BaseExpression) -> bool:
        """Whether a call of a function we cannot see (neither local nor from torch, builtins or
        tqdm) receives the object `value` holds, or an attribute of it (`loader.sampler`): it may
        do anything with it."""
        facts = self.facts
        if facts.called_functions(call) or (facts.qualname(call.func) or "").startswith(_SEEN_APIS):
            return False
        for arg in call.args:
            part = arg.value
            while True:
                if facts.same_object(part, value):
                    return True
                if not isinstance(part, cst.Attribute):
                    break
                part = part.value
        return False

    def caller_sites(self, function: cst.FunctionDef) -> list[cst.Call]:
        """Calls that run a function: direct calls, and calls receiving it as an argument."""
        return list(self.facts.call_sites(function)) + self._calls_passing.get(function, [])

    @functools.cached_property
    def _calls_passing(self) -> dict[cst.FunctionDef, list[cst.Call]]:
        """The calls each local function is passed to as an argument (`closure` in
        `optimizer.step(closure)`), indexed once per file."""
        passing: dict[cst.FunctionDef, list[cst.Call]] = {}
        for call in self.facts.calls:
            functions = {f for arg in call.args for f in self.facts.local_definitions(arg.value, cst.FunctionDef)}
            for function in functions:
                passing.setdefault(function, []).append(call)
        return passing

    # ------------------------------------------------------------- optimizers and their models

    def constructions(self, optimizer: cst.BaseExpression) -> list[cst.Call]:
        """The optimizer constructor calls an optimizer expression may hold, through `opt = f(opt)`
        with `f` defined elsewhere (`optimizer = utils.optimizer_scheduler(optimizer=optimizer, p=p)`
        hands the same optimizer back)."""
        facts = self.facts
        found: list[cst.Call] = []
        todo, seen = [optimizer], set()
        while todo:
            for origin in facts.origins(todo.pop()):
                if origin in seen or not isinstance(origin, cst.Call):
                    continue
                seen.add(origin)
                if facts.kind_of(origin) == "optimizer":
                    found.append(origin)
                else:
                    todo.extend(self._handed_back(origin))
        return found

    def _handed_back(self, call: cst.Call) -> list[cst.BaseExpression]:
        """The argument of an unresolved call `x = f(..., x, ...)` spelled like its target."""
        facts = self.facts
        assignment = facts.parent.get(call)
        if facts.qualname(call.func) is not None or facts.called_functions(call) or not isinstance(assignment, cst.Assign) \
                or len(assignment.targets) != 1 or not isinstance(assignment.targets[0].target, cst.Name):
            return []
        name = assignment.targets[0].target.value
        return [arg.value for arg in call.args if isinstance(arg.value, cst.Name) and arg.value.value == name]

    def stepped_optimizer(self, step: cst.Call) -> cst.BaseExpression:
        """What a step call steps: `opt` in `opt.step()` and in `scaler.step(opt)`."""
        receiver = step.func.value  # type: ignore[attr-defined]
        return step.args[0].value if self.facts.kind_of(receiver) == "scaler" and step.args else receiver

    def plain_sgd(self, call: cst.Call) -> bool:
        """`torch.optim.SGD` with no momentum (absent or 0): it keeps no state between steps. A
        momentum the analysis cannot know counts as set."""
        if self.facts.qualname(call.func) != "torch.optim.SGD":
            return False
        momentum = self.facts.argument(call, 2, "momentum")
        return momentum is None or self.facts.literal(momentum) == 0

    def stale_rebinding(self, step: cst.Call) -> Optional[tuple[cst.Call, cst.Name]]:
        """(construction, rebinding) when the optimizer this step uses was built over
        `model.parameters()` and `model` was then bound to a new model (re-created, reloaded,
        deep-copied) before the step runs, with no optimizer built after it: the step updates a
        model that is no longer the one trained. Answered once per step (ML202 and ML211 ask)."""
        if step not in self._stale_cache:
            self._stale_cache[step] = self._stale_rebinding(step)
        return self._stale_cache[step]

    def _stale_rebinding(self, step: cst.Call) -> Optional[tuple[cst.Call, cst.Name]]:
        facts = self.facts
        constructions = self.constructions(self.stepped_optimizer(step))
        for construction in constructions:
            params = facts.argument(construction, 0, "params")
            if not (isinstance(params, cst.Call) and isinstance(params.func, cst.Attribute)
                    and params.func.attr.value in ("parameters", "named_parameters") and isinstance(params.func.value, cst.Name)):
                continue
            model = params.func.value
            scope = facts.enclosing_function(model)
            built, stepped = facts.order.get(model), self._time_in_scope(step, scope)
            if built is None or stepped is None:
                continue
            rebuilt = [self._time_in_scope(other, scope) or -1 for other in constructions if other is not construction]
            for bound, target in facts.timeline(model):
                if built < bound < stepped and self._new_model(target, model) and not any(bound < time for time in rebuilt):
                    return construction, target
        return None

    def _new_model(self, target: cst.Name, old: cst.Name) -> bool:
        """A binding whose value is a model object other than the one `old` held: `Net()`,
        `torch.load(path)`, `copy.deepcopy(model)`; not `model.to(device)` or a wrapper such as
        `DataParallel(model)` or `torch.compile(model)`, which share the parameters."""
        facts = self.facts
        name = old.value
        binding = facts.bindings.get(target)
        value = binding.value if binding is not None and not binding.loop and not binding.path else None
        if not isinstance(value, cst.Call):
            return False
        qualified = facts.qualname(value.func)
        if qualified in NEW_MODEL_CALLS:
            return True
        reads = {node.value for node in nodes_within(value, cst.Name)}
        if name in reads:
            return False
        if facts.kind_of(value) == "model":
            return True
        root = value  # `Net().to(device)`: the constructor call under the method calls
        while isinstance(root.func, cst.Attribute) and isinstance(root.func.value, cst.Call):
            root = root.func.value
        made_before = {facts.spelling(o.func) for o in facts.origins(old) if isinstance(o, cst.Call)}
        return facts.spelling(root.func) in made_before  # the same constructor again

    def _time_in_scope(self, node: cst.CSTNode, function: Optional[cst.FunctionDef]) -> Optional[int]:
        """When node runs on the clock of `function`'s scope: the time of its first name there, or
        that of the one call that leads to it (through the local functions that call its function)."""
        facts = self.facts
        for _ in range(MAX_CALL_DEPTH):
            own = facts.enclosing_function(node)
            if own is function:
                first = next(iter(nodes_within(node, cst.Name)), None)
                return facts.order.get(first) if first is not None else None
            sites = self.caller_sites(own) if own is not None else []
            if len(sites) != 1:
                return None
            node = sites[0]
        return None
