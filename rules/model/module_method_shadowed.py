from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from mlplint.lint.facts.core import nodes_within
from mlplint.lint.facts.index import first_param, terminal_name
from mlplint.lint.finding import Severity
from mlplint.lint.registry import Invalid, Rule, RuleContext, register

LISTING = frozenset({
    "parameters", "named_parameters", "buffers", "named_buffers", "modules", "named_modules", "children",
    "named_children", "_named_members",
})
MOVING = frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "type", "_apply"})


@dataclass(frozen=True)
class _Spec:
    """What nn.Module's method is: its parameters after self, how many leading arguments its
    callers pass by position whatever the override names them, how many they always pass, what
    it does, the calls that keep its meaning and the attribute it may set instead."""

    params: tuple[str, ...]
    does: str
    consequence: str
    keeps: frozenset[str]
    rename: str
    any_name: int = 0
    always_passed: int = 0
    state: Optional[str] = None
    returns_self: bool = False


def _spec(params, does, consequence, keeps, rename, **kwargs) -> _Spec:
    return _Spec(tuple(params), does, consequence, frozenset(keeps), rename, **kwargs)


_MOVES = "moves or casts every parameter and buffer"
SPECS: dict[str, _Spec] = {
    "train": _spec(["mode"], "switches the module and its submodules to training mode (Dropout on, BatchNorm "
                   "updating its statistics) and is what nn.Module.eval() calls, as self.train(False)",
                   "the model never changes mode", {"train"}, "fit", state="training", returns_self=True),
    "eval": _spec([], "switches the module and its submodules to evaluation mode (Dropout off, BatchNorm on its "
                  "running statistics)", "Dropout and BatchNorm stay in training mode when the model is evaluated",
                  {"eval", "train"}, "evaluate", state="training", returns_self=True),
    "parameters": _spec(["recurse"], "yields the weights that optimizers, gradient clipping and parameter counts read",
                        "`torch.optim` optimizers and clipping get this method's result instead of the weights",
                        LISTING, "hyperparameters"),
    "named_parameters": _spec(["prefix", "recurse", "remove_duplicate"], "yields (name, weight) pairs",
                              "code that walks the weights by name gets this method's result", LISTING, "named_settings"),
    "buffers": _spec(["recurse"], "yields the buffers (BatchNorm's running statistics...)",
                     "code that walks the buffers gets this method's result", LISTING, "saved_tensors"),
    "named_buffers": _spec(["prefix", "recurse", "remove_duplicate"], "yields (name, buffer) pairs",
                           "code that walks the buffers gets this method's result", LISTING, "named_saved_tensors"),
    "modules": _spec([], "yields every submodule", "code that walks the submodules gets this method's result",
                     LISTING, "blocks"),
    "named_modules": _spec(["memo", "prefix", "remove_duplicate"], "yields (name, submodule) pairs",
                           "code that walks the submodules gets this method's result", LISTING, "named_blocks"),
    "children": _spec([], "yields the direct submodules", "code that walks the submodules gets this method's result",
                      LISTING, "blocks"),
    "named_children": _spec([], "yields (name, direct submodule) pairs",
                            "code that walks the submodules gets this method's result", LISTING, "named_blocks"),
    "zero_grad": _spec(["set_to_none"], "clears the gradient of every parameter",
                       "gradients are not cleared and pile up step after step", {"zero_grad"}, "reset"),
    "to": _spec(["device", "dtype", "non_blocking", "memory_format", "tensor"], _MOVES,
                "the parameters stay where and what they are", MOVING, "move", any_name=2, always_passed=1,
                returns_self=True),
    "cuda": _spec(["device"], "moves every parameter and buffer to the GPU", "the parameters stay on the CPU",
                  MOVING, "move_to_gpu", any_name=1, returns_self=True),
    "cpu": _spec([], "moves every parameter and buffer to the CPU", "the parameters stay where they are",
                 MOVING, "move_to_cpu", returns_self=True),
    "float": _spec([], "casts every floating-point parameter and buffer to float32", "the parameters keep their dtype",
                   MOVING, "as_float", returns_self=True),
    "double": _spec([], "casts every floating-point parameter and buffer to float64", "the parameters keep their dtype",
                    MOVING, "as_double", returns_self=True),
    "half": _spec([], "casts every floating-point parameter and buffer to float16", "the parameters keep their dtype",
                  MOVING, "as_half", returns_self=True),
    "bfloat16": _spec([], "casts every floating-point parameter and buffer to bfloat16",
                      "the parameters keep their dtype", MOVING, "as_bfloat16", returns_self=True),
    "state_dict": _spec(["destination", "prefix", "keep_vars"], "returns every parameter and buffer by name, for "
                        "checkpoints (a parent module calls it on each child with destination=, prefix=, keep_vars=)",
                        "checkpoints save this method's result", {"state_dict", "_save_to_state_dict"}, "checkpoint"),
    "load_state_dict": _spec(["state_dict", "strict", "assign"], "copies a checkpoint's tensors into the parameters "
                             "and buffers", "checkpoints are not restored", {"load_state_dict", "_load_from_state_dict"},
                             "restore", any_name=1, always_passed=1),
    "apply": _spec(["fn"], "calls a function on every submodule (how weight initialisation is applied)",
                   "initialisation functions never reach the layers", {"apply"}, "run", any_name=1, always_passed=1,
                   returns_self=True),
    "requires_grad_": _spec(["requires_grad"], "turns gradient tracking of every parameter on or off (freezing)",
                            "layers are not frozen or unfrozen", {"requires_grad_"}, "set_trainable", any_name=1,
                            state="requires_grad", returns_self=True),
}
# Decorators under which a method is not an instance method, or not a real definition.
SKIPPED_DECORATORS = {"staticmethod", "classmethod", "overload", "abstractmethod"}
PLAIN_VALUES = (
    cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.Dict,
    cst.DictComp, cst.List, cst.ListComp, cst.Tuple, cst.Set, cst.SetComp, cst.GeneratorExp, cst.BinaryOperation,
    cst.UnaryOperation, cst.Comparison, cst.BooleanOperation,
)
# Methods whose only positional argument is a flag (mode, recurse, set_to_none, requires_grad).
FLAG_METHODS = {"train", "parameters", "buffers", "zero_grad", "requires_grad_"}
PLAIN_BUILTINS = {f"builtins.{name}" for name in (
    "float", "int", "round", "sum", "len", "dict", "list", "tuple", "str", "bool", "max", "min", "abs", "sorted")}
FOREIGN_LISTINGS = (cst.Dict, cst.DictComp, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString,
                    cst.Integer, cst.Float)


@register
class ModuleMethodShadowed(Rule):
    """
    ## What it does
    Finds an `nn.Module` subclass that redefines one of nn.Module's own methods (`train`,
    `eval`, `parameters`, `to`, `state_dict`...) with another meaning, or whose `forward()` runs a
    training step.

    The methods checked are `train`, `eval`, `parameters`, `named_parameters`, `buffers`,
    `named_buffers`, `modules`, `named_modules`, `children`, `named_children`, `zero_grad`, `to`,
    `cuda`, `cpu`, `float`, `double`, `half`, `bfloat16`, `state_dict`, `load_state_dict`,
    `apply` and `requires_grad_`. One has another meaning when any of these holds:
    - it runs a training step: it calls `backward()` or an optimizer's `step()`, itself or through
      the local functions it calls;
    - its signature does not take nn.Module's calls: a parameter in a place where nn.Module's
      method has another one (`def train(self, epochs=10)`: nn.Module.eval() calls
      `self.train(False)`), a parameter that nn.Module's callers never pass and that has no default
      (`def eval(self, loader)`), or none where they always pass one (`def to(self)`). The leading
      arguments that callers pass by position and whose name does not matter (the device of `to`,
      the dict of `load_state_dict`, the function of `apply`) may have any name, and extra
      parameters with defaults are extensions; a parameter named differently but handed on to the
      method it overrides (`super().train(flag)`) or stored as the state (`self.training = flag`)
      is fine;
    - it returns something nn.Module's method never does: a value other than the module from
      `train`, `eval`, `to` and the other methods that return `self` (an accuracy, a loss), a dict,
      string or number from `parameters`, `modules` and the other listings;
    - it does not do the job at all: it never calls the method it overrides (through `super()`,
      a base class, or another module: `self.backbone.train(mode)`) or an equivalent one
      (`self.train(False)` in `eval`, `self.to("cuda")` in `cuda`), never sets the state itself
      (`self.training = mode`, `p.grad = None`, `p.requires_grad = flag`, calling `apply`'s
      function), and for the listings returns nothing. A body that only returns `self` or does
      nothing is taken as a deliberate no-op (a module frozen in eval mode) and stays quiet.

    A `forward()` has another meaning when it calls an optimizer's `step()`, or `backward()`
    without reading any `.grad` itself (an attack that differentiates the inputs, such as PGD,
    reads `x.grad` and stays quiet). Classes that are not nn.Module subclasses (a `Trainer` with
    its own `train()` and `eval()`) stay quiet.

    ## Why is this bad?
    `model.train()`, `model.eval()`, `model.parameters()`, `model.to(device)` are called by the
    script, by libraries (Lightning, the Hugging Face Trainer), by evaluation helpers, and by
    nn.Module itself: `eval()` is `self.train(False)`, and a parent's `train()` and `state_dict()`
    call the same methods on each child. A method with another meaning silently replaces them:
    `model.eval()` runs your training loop with `epochs=False` and the model stays in training
    mode, with Dropout on, for the whole evaluation; an optimizer built from `model.parameters()`
    gets a dict of hyper-parameters. A `forward()` that steps the optimizer updates the weights on
    every call, evaluation included.

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 2))

        def forward(self, x):
            return self.fc(x)

        def train(self, loader, optimizer, criterion):
            for x, y in loader:
                optimizer.zero_grad()
                criterion(self(x), y).backward()
                optimizer.step()
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 2))

        def forward(self, x):
            return self.fc(x)

        def fit(self, loader, optimizer, criterion):
            self.train()
            for x, y in loader:
                optimizer.zero_grad()
                criterion(self(x), y).backward()
                optimizer.step()
    ```
    """

    code = "ML310"
    name = "module-method-shadowed"
    severity = Severity.ERROR
    symptoms = ("ML917", "ML919")

    VALID = [
        # freezing the backbone's BatchNorm: a real override of train()
        """
import torch.nn as nn
import torchvision
class FineTuner(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.resnet18(weights="DEFAULT")
        self.head = nn.Linear(1000, 10)
    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()
        return self
    def forward(self, x):
        return self.head(self.backbone(x))
""",
        # eval() through train(False), as nn.Module's own; train() setting the flag by hand
        """
import torch.nn as nn
class Net(nn.Module):
    def train(self, mode: bool = True):
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self
    def eval(self):
        return self.train(False)
""",
        # to() and state_dict() that add something, then delegate
        """
import torch
import torch.nn as nn
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.device = torch.device("cpu")
    def to(self, *args, **kwargs):
        self.device = torch.device(args[0]) if args else self.device
        return super().to(*args, **kwargs)
    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state["version"] = torch.tensor(2)
        return state
""",
        # parameters() limited to the head, for an optimizer that trains only the head
        """
import torch.nn as nn
class Probe(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(512, 10)
    def parameters(self, recurse=True):
        return self.head.parameters(recurse)
""",
        # a plain Trainer class is no nn.Module
        """
import torch
class Trainer:
    def __init__(self, model, loader, optimizer):
        self.model, self.loader, self.optimizer = model, loader, optimizer
    def train(self, epochs):
        for _ in range(epochs):
            for x, y in self.loader:
                self.optimizer.zero_grad()
                torch.nn.functional.cross_entropy(self.model(x), y).backward()
                self.optimizer.step()
    def eval(self):
        self.model.eval()
""",
        # a module frozen in evaluation mode on purpose: train() is a no-op
        """
import torch.nn as nn
class FrozenEncoder(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder.eval()
    def train(self, mode=True):
        return self
""",
        # an extra parameter with a default extends train(); cuda() with a device
        """
import torch.nn as nn
class Net(nn.Module):
    def train(self, mode=True, freeze_bn=False):
        super().train(mode)
        if freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self
    def cuda(self, device=None):
        self.on_gpu = True
        return super().cuda(device)
    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            p.grad = None
""",
        # PGD: forward differentiates the inputs and reads x.grad, it does not train
        """
import torch
import torch.nn as nn
class PGDAttack(nn.Module):
    def __init__(self, model, eps=8 / 255, steps=10):
        super().__init__()
        self.model, self.eps, self.steps = model, eps, steps
    def forward(self, x, y):
        x_adv = x.clone().detach()
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            loss = nn.functional.cross_entropy(self.model(x_adv), y)
            loss.backward()
            x_adv = (x_adv + 2 / 255 * x_adv.grad.sign()).clamp(x - self.eps, x + self.eps).detach()
        return x_adv
""",
        # a renamed parameter handed on to nn.Module's method
        """
import torch.nn as nn
class Net(nn.Module):
    def train(self, flag=True):
        return super().train(flag)
""",
    ]
    INVALID = [
        Invalid(
            """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(64, 2)
    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))
    def train(self, loader, epochs):
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(self(x), y)
                loss.backward()
                optimizer.step()
model = Net()
model.train(train_loader, 10)
model.eval()
with torch.no_grad():
    accuracy = (model(x_test).argmax(1) == y_test).float().mean()
""",
            line=12,
            message="model.eval() at line 22 runs this method instead",
        ),
        # an evaluation loop named eval(): model.eval() elsewhere would need a loader
        Invalid(
            """
import torch
import torch.nn as nn
class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    def forward(self, x):
        return self.net(x)
    @torch.no_grad()
    def eval(self, loader):
        correct = 0
        for x, y in loader:
            correct += (self(x).argmax(1) == y).sum().item()
        return correct / len(loader.dataset)
clf = Classifier()
print(clf.eval(test_loader))
""",
            line=11,
            message="`loader`",
        ),
        # eval() with no parameter, but an evaluation loop: nothing switches the mode
        Invalid(
            """
import torch
import torch.nn as nn
class Model(nn.Module):
    def __init__(self, test_loader):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, 1))
        self.test_loader = test_loader
    def forward(self, x):
        return self.layers(x)
    def eval(self):
        total = 0.0
        with torch.no_grad():
            for x, y in self.test_loader:
                total += nn.functional.mse_loss(self(x), y).item()
        print("test loss", total / len(self.test_loader))
""",
            line=11,
            message="never calls nn.Module.eval()",
        ),
        Invalid(
            """
import torch.nn as nn
import torch.optim as optim
class MLP(nn.Module):
    def __init__(self, lr=0.01, hidden=64):
        super().__init__()
        self.lr, self.hidden = lr, hidden
        self.fc = nn.Linear(10, hidden)
        self.out = nn.Linear(hidden, 1)
    def parameters(self):
        return {"lr": self.lr, "hidden": self.hidden}
    def forward(self, x):
        return self.out(self.fc(x).relu())
model = MLP()
optimizer = optim.SGD(model.parameters(), lr=model.lr)
""",
            line=10,
            message="model.parameters() at line 15 runs this method instead",
        ),
        # the training loop in a helper: train(epochs=...) has another parameter in mode's place
        Invalid(
            """
import torch
import torch.nn as nn
class AutoEncoder(nn.Module):
    def __init__(self, data):
        super().__init__()
        self.enc = nn.Linear(784, 32)
        self.dec = nn.Linear(32, 784)
        self.data = data
        self.opt = torch.optim.Adam(self.parameters())
    def forward(self, x):
        return self.dec(torch.relu(self.enc(x)))
    def step(self, x):
        self.opt.zero_grad()
        loss = nn.functional.mse_loss(self(x), x)
        loss.backward()
        self.opt.step()
    def train(self, epochs=5):
        for _ in range(epochs):
            for x in self.data:
                self.step(x)
""",
            line=18,
            message="runs a training step",
        ),
        # forward() that trains
        Invalid(
            """
import torch
import torch.nn as nn
class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)
        self.criterion = nn.MSELoss()
        self.optimizer = torch.optim.SGD(self.fc.parameters(), lr=0.01)
    def forward(self, x, y):
        pred = self.fc(x)
        loss = self.criterion(pred, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return pred
model = Regressor()
for x, y in loader:
    model(x, y)
""",
            line=10,
            message="model(x, y) at line 19",
        ),
        # to() that only records the device: nothing moves
        Invalid(
            """
import torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def to(self, device):
        self.device = device
net = Net()
net.to("cuda")
""",
            line=7,
            message='net.to("cuda") at line 10',
        ),
    ]

    @classmethod
    def symptoms_for(cls, message: str) -> tuple[str, ...]:
        """A shadowed eval() leaves Dropout/BatchNorm in training mode during evaluation (ML917); a
        shadowed train() also catches model.eval() (nn.Module.eval calls self.train(False)), and
        leaves the model in eval mode while it trains (ML919). Nothing at runtime tests the others."""
        if message.startswith("`def eval("):
            return ("ML917",)
        if message.startswith("`def train("):
            return cls.symptoms
        return ()

    def check(self, ctx: RuleContext) -> None:
        facts = ctx.facts
        found: list[tuple[cst.ClassDef, cst.FunctionDef, str]] = []
        for owner in facts.classes:
            if not facts.is_module_class(owner):
                continue
            methods = facts.methods(owner)
            for name, method in methods.items():
                if name not in SPECS and name != "forward" or _skipped(facts, method):
                    continue
                reason = _forward_problem(facts, owner, method) if name == "forward" \
                    else _method_problem(facts, owner, method, SPECS[name])
                if reason is not None:
                    found.append((owner, method, reason))
        if not found:
            return
        callers = _callers(facts, found)
        for owner, method, reason in found:
            name = method.name.value
            signature = f"`def {name}({facts.module.code_for_node(method.params)})`"
            sites = callers.get(method, [])
            if name == "forward":
                ctx.report(
                    method.name,
                    f"{signature} {reason}: every call of the model ({_sites_text(facts, sites) or 'model(x)'}), "
                    "evaluation and inference included, updates the weights; keep forward() to computing the "
                    "output and take the training step in the training loop",
                )
                continue
            spec = SPECS[name]
            sites = [call for call in sites if _module_style(facts, call, spec, name)]
            runs = _sites_text(facts, sites)
            if not runs:
                calls = "`model.train()` and `model.eval()`" if name == "train" and facts.method(owner, "eval") is None \
                    else f"`model.{name}()`"
                runs = f"every {calls} (this script's, a library's, a trainer's)"
            several = len(sites) > 1
            outcome = spec.consequence if _takes_module_calls(method, spec) else \
                f"{'they fail' if several else 'it fails'} with a TypeError"
            ctx.report(
                method.name,
                f"{signature} gives nn.Module.{name}() another meaning ({reason}): {runs} "
                f"run{'' if several else 's'} this method instead of nn.Module's, which {spec.does}, so {outcome}; "
                f"rename it (e.g. `{spec.rename}`)",
            )


def _sites_text(facts, sites: list[cst.Call]) -> str:
    """`model.eval() at line 40 and model.eval() at line 57 (and 3 more)`, or '' for none."""
    text = " and ".join(f"{_call_text(facts, call)} at line {facts.line_of(call)}" for call in sites[:2])
    return text + (f" (and {len(sites) - 2} more)" if len(sites) > 2 else "")


def _takes_module_calls(method: cst.FunctionDef, spec: _Spec) -> bool:
    """Whether the calls nn.Module's callers make bind to the method's parameters: the argument
    they always pass, and for train() also the one nn.Module.eval() passes (`self.train(False)`)."""
    params = method.params
    positional = (list(params.posonly_params) + list(params.params))[1:]
    required = sum(1 for param in positional if param.default is None)
    counts = {spec.always_passed} | ({1} if method.name.value == "train" else set())
    fits = all(required <= count and (count <= len(positional) or isinstance(params.star_arg, cst.Param)) for count in counts)
    return fits and all(param.default is not None for param in params.kwonly_params)


def _module_style(facts, call: cst.Call, spec: _Spec, name: str) -> bool:
    """Whether a call is one nn.Module's method takes (`model.eval()`, `model.to(device)`), not the
    replacement's own use (`model.train(loader, 10)`)."""
    if name == "train" and isinstance(call.func, cst.Attribute) and call.func.attr.value == "eval":
        return True  # nn.Module.eval() calls self.train(False)
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    keywords = {arg.keyword.value for arg in call.args if arg.keyword is not None}
    if name in FLAG_METHODS and not all(_may_be_flag(facts, arg.value) for arg in positional):
        return False  # `model.train(loader)`, `model.train(10)`: the replacement's own call
    most = max(len(spec.params), spec.always_passed) if name != "to" else 2
    return spec.always_passed <= len(positional) <= most and keywords <= set(spec.params) | {"non_blocking", "copy"}


def _may_be_flag(facts, expr: cst.BaseExpression) -> bool:
    """An argument that may be a bool: `False`, `mode`, `not frozen`, `epoch < 5`; not a call, a
    literal number or display, nor a known object (a loader, a model)."""
    if isinstance(expr, (cst.Comparison, cst.UnaryOperation, cst.BooleanOperation)):
        return True
    return isinstance(expr, (cst.Name, cst.Attribute)) and facts.kind_of(expr) is None


def _skipped(facts, method: cst.FunctionDef) -> bool:
    for decorator in method.decorators:
        expr = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
        if terminal_name(expr) in SKIPPED_DECORATORS:
            return True
    return first_param(method) is None


def _own_nodes(facts, method: cst.FunctionDef) -> list[cst.CSTNode]:
    """The calls and assignments of a method's own body (nested functions left out)."""
    return [node for node in facts.effects.get(method, []) if facts.enclosing_function(node) is method]


def _reached_nodes(facts, owner: cst.ClassDef, method: cst.FunctionDef) -> list[cst.CSTNode]:
    """A method's own calls and assignments, and those of the local functions it calls
    (transitively), except the class's other nn.Module-named methods, which answer for themselves."""
    own = _own_nodes(facts, method)
    reached = list(own)
    for node in own:
        if not isinstance(node, cst.Call):
            continue
        for callee in facts.called_functions(node):
            if facts.enclosing_class(callee) is not None and callee.name.value in SPECS:
                continue
            reached.extend(facts.training.reachable(callee))
    return reached


def _training_step(facts, nodes: list[cst.CSTNode]) -> Optional[cst.Call]:
    training = facts.training
    return next((node for node in nodes if isinstance(node, cst.Call)
                 and (training.is_optimizer_step(node) or training.is_backward(node))), None)


def _forward_problem(facts, owner: cst.ClassDef, method: cst.FunctionDef) -> Optional[str]:
    nodes = _reached_nodes(facts, owner, method)
    training = facts.training
    step = next((n for n in nodes if isinstance(n, cst.Call) and training.is_optimizer_step(n)), None)
    if step is None:
        backward = next((n for n in nodes if isinstance(n, cst.Call) and training.is_backward(n)), None)
        if backward is None or any(_reads_grad(node) for node in nodes):
            return None
        step = backward
    return f"runs a training step ({_call_text(facts, step)} at line {facts.line_of(step)})"


def _reads_grad(node: cst.CSTNode) -> bool:
    return any(attribute.attr.value == "grad" for attribute in nodes_within(node, cst.Attribute))


def _method_problem(facts, owner: cst.ClassDef, method: cst.FunctionDef, spec: _Spec) -> Optional[str]:
    name = method.name.value
    own = _own_nodes(facts, method)
    step = _training_step(facts, _reached_nodes(facts, owner, method))
    if step is not None:
        return f"it runs a training step: {_call_text(facts, step)} at line {facts.line_of(step)}"
    if any(_decorator_name(d) == "property" for d in method.decorators):
        return f"it is a property, so `model.{name}()` calls its value"
    self_name = first_param(method)
    keeping = [n for n in own if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute)
               and n.func.attr.value in spec.keeps
               and not (n.func.attr.value == name and isinstance(n.func.value, cst.Name) and n.func.value.value == self_name)]
    states = [n for n in own if isinstance(n, (cst.Assign, cst.AugAssign)) and _sets_state(n, spec)]
    # parameters passed on to nn.Module's method or stored as its state keep their meaning under any name
    handed_on = {n.value for node in keeping for arg in node.args for n in nodes_within(arg.value, cst.Name)}
    handed_on |= {n.value for node in states if isinstance(node, cst.Assign) for n in nodes_within(node.value, cst.Name)}
    problem = _signature_problem(method, spec, handed_on)
    if problem is not None:
        return problem
    returned = facts.returns.get(method, [])
    for value in returned:
        foreign = _foreign_return(facts, value, spec, self_name)
        if foreign is not None:
            return foreign
    if keeping or states or _is_no_op(method, self_name):
        return None
    if name == "zero_grad" and any(facts.training.clears_gradients(n) for n in own):
        return None
    if name == "apply" and _calls_parameter(facts, own, method):
        return None
    if spec.keeps is LISTING and (returned or nodes_within(method.body, cst.Yield)):
        return None
    if name in ("state_dict", "load_state_dict") and (returned or _uses_first_argument(facts, own, method)):
        return None
    kept = "nor sets `training`" if spec.state == "training" else "nor an equivalent"
    return f"it never calls nn.Module.{name}() {kept}"


def _decorator_name(decorator: cst.Decorator) -> str:
    return terminal_name(decorator.decorator)


def _sets_state(node: Union[cst.Assign, cst.AugAssign], spec: _Spec) -> bool:
    """`self.training = mode`, `p.requires_grad = flag`: the state nn.Module's method sets."""
    targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
    return spec.state is not None and any(isinstance(t, cst.Attribute) and t.attr.value == spec.state for t in targets)


def _signature_problem(method: cst.FunctionDef, spec: _Spec, handed_on: set[str]) -> Optional[str]:
    name = method.name.value
    params = method.params
    positional = (list(params.posonly_params) + list(params.params))[1:]
    for index, param in enumerate(positional):
        label = param.name.value
        if index < len(spec.params) and index >= spec.any_name and label != spec.params[index] and label not in handed_on:
            return (f"it takes `{label}` where nn.Module.{name}() takes `{spec.params[index]}`"
                    + (", and nn.Module.eval() calls self.train(False)" if name == "train" else ""))
        if param.default is None and index >= spec.always_passed:
            return f"it requires `{label}`, which `model.{name}()` does not pass"
    for param in params.kwonly_params:
        if param.default is None:
            return f"it requires `{param.name.value}`, which `model.{name}()` does not pass"
    if len(positional) < spec.always_passed and not isinstance(params.star_arg, cst.Param):
        return f"it takes no argument, where nn.Module.{name}() takes `{spec.params[0]}`"
    return None


def _foreign_return(facts, value: cst.BaseExpression, spec: _Spec, self_name: Optional[str]) -> Optional[str]:
    """What a return gives that nn.Module's method never does, when every origin of the value
    says so: a number, a string, a display or arithmetic where the module is returned (an
    accuracy from eval()), a dict, string or number from a listing."""
    if not spec.returns_self and spec.keeps is not LISTING:
        return None
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in spec.keeps:
        return None  # `return super().train(mode)`
    origins = facts.origins(value)
    if not origins:
        return None
    if spec.returns_self and all(_plain_value(facts, origin) for origin in origins):
        return f"it returns `{_short(facts, value)}`, not the module"
    if spec.keeps is LISTING and all(isinstance(origin, FOREIGN_LISTINGS) or isinstance(origin, cst.Call)
                                     and facts.qualname(origin.func) == "builtins.dict" for origin in origins):
        return f"it returns `{_short(facts, value)}`"
    return None


def _plain_value(facts, expr: cst.BaseExpression) -> bool:
    """An expression that cannot hold a module: a literal, a display, arithmetic or a comparison,
    a builtin's or a numeric function's result, `.item()`."""
    if isinstance(expr, PLAIN_VALUES):
        return True
    if isinstance(expr, cst.Name):
        return expr.value in ("True", "False")
    if not isinstance(expr, cst.Call):
        return False
    if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("item", "tolist", "mean", "sum", "numpy"):
        return True
    qualified = facts.qualname(expr.func) or ""
    return qualified in PLAIN_BUILTINS or qualified.startswith(("numpy.", "sklearn.metrics.", "math.", "statistics.")) \
        or qualified.startswith("torch.") and qualified.rsplit(".", 1)[-1][:1].islower()


def _is_no_op(method: cst.FunctionDef, self_name: Optional[str]) -> bool:
    """`pass`, `...`, a docstring, `return` or `return self` only."""
    body = method.body
    statements = body.body if isinstance(body, cst.IndentedBlock) else [body]
    for statement in statements:
        smalls = statement.body if isinstance(statement, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else None
        if smalls is None:
            return False
        for small in smalls:
            if isinstance(small, cst.Pass) or isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString, cst.Ellipsis)):
                continue
            if isinstance(small, cst.Return) and (small.value is None or isinstance(small.value, cst.Name) and small.value.value == self_name):
                continue
            return False
    return True


def _calls_parameter(facts, own: list[cst.CSTNode], method: cst.FunctionDef) -> bool:
    positional = (list(method.params.posonly_params) + list(method.params.params))[1:]
    names = {p.name.value for p in positional[:1]}
    return any(isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value in names for n in own)


def _uses_first_argument(facts, own: list[cst.CSTNode], method: cst.FunctionDef) -> bool:
    positional = (list(method.params.posonly_params) + list(method.params.params))[1:]
    if not positional:
        return False
    wanted = positional[0].name.value
    return any(isinstance(n, cst.Name) and n.value == wanted for node in own for n in nodes_within(node, cst.Name))


def _callers(facts, found: list[tuple[cst.ClassDef, cst.FunctionDef, str]]) -> dict[cst.FunctionDef, list[cst.Call]]:
    """The calls in the file that run each reported method: `model.train(...)` resolved to it;
    `model.eval()` for a reported train() when the class has no eval() of its own; `model(x)` for
    a reported forward(). One pass over the file's calls."""
    by_name: dict[str, list[cst.FunctionDef]] = {}
    forwards: dict[cst.ClassDef, cst.FunctionDef] = {}
    eval_routes: dict[cst.ClassDef, cst.FunctionDef] = {}
    for owner, method, _ in found:
        by_name.setdefault(method.name.value, []).append(method)
        if method.name.value == "forward":
            forwards[owner] = method
        if method.name.value == "train" and facts.method(owner, "eval") is None:
            eval_routes[owner] = method
    callers: dict[cst.FunctionDef, list[cst.Call]] = {}
    for call in facts.calls:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in by_name:
            for callee in facts.called_functions(call):
                if callee in by_name[func.attr.value] and facts.enclosing_function(call) is not callee:
                    callers.setdefault(callee, []).append(call)
        if isinstance(func, cst.Attribute) and func.attr.value == "eval" and eval_routes and not call.args:
            for cls in facts.classes_of(func.value):
                if cls in eval_routes:
                    callers.setdefault(eval_routes[cls], []).append(call)
                    break
        if forwards and isinstance(func, (cst.Name, cst.Attribute)) and facts.qualname(func) is None:
            for cls in facts.classes_of(func):
                if cls in forwards:
                    callers.setdefault(forwards[cls], []).append(call)
                    break
    return callers


def _call_text(facts, call: cst.Call) -> str:
    text = facts.module.code_for_node(call)
    if len(text) <= 50 and "\n" not in text:
        return text
    func = " ".join(facts.module.code_for_node(call.func).split())
    if len(func) > 40 and isinstance(call.func, cst.Attribute):
        func = f".{call.func.attr.value}"
    return f"{func}({'...' if call.args else ''})"


def _short(facts, value: cst.BaseExpression) -> str:
    text = " ".join(facts.module.code_for_node(value).split())
    return text if len(text) <= 40 else text[:37] + "..."
