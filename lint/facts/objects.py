"""What objects expressions hold: the class that built them, their kind (model, optimizer, loss...),
the API a call applies, and the calls of a given API. Part of `core.ScriptFacts`."""

from __future__ import annotations

import functools
from typing import Iterator, Optional, Union

import libcst as cst

from mlplint.lint.facts import names


class ObjectKinds:
    """Mixed into ScriptFacts; uses its `qualname`, `origins`, `local_definitions` and `calls`."""

    def class_of(self, expr: cst.BaseExpression) -> Union[str, cst.ClassDef, None]:
        """The class that constructed an origin expression: a canonical API name or a local class."""
        if type(expr) is not cst.Call:  # exact type: see nodes_within
            return None
        qualified = self.qualname(expr.func)
        if qualified is not None:
            return qualified
        classes = self.local_definitions(expr.func, cst.ClassDef)
        return classes[0] if classes else None

    def classes_of(self, expr: cst.BaseExpression) -> list[Union[str, cst.ClassDef]]:
        return [cls for cls in map(self.class_of, self.origins(expr)) if cls is not None]

    def kind_of(self, expr: cst.BaseExpression) -> Optional[str]:
        """'model', 'optimizer', 'scheduler', 'loss', 'loader', 'scaler' or None."""
        for cls in self.classes_of(expr):
            kind = self._kind_of_class(cls)
            if kind is not None:
                return kind
        return None

    def _kind_of_class(self, cls: Union[str, cst.ClassDef]) -> Optional[str]:
        if isinstance(cls, cst.ClassDef):
            return "model" if self.is_module_class(cls) else None
        if names.is_optimizer_class(cls):
            return "optimizer"
        if names.is_scheduler_class(cls):
            return "scheduler"
        if names.is_loss_class(cls):
            return "loss"
        if cls == names.DATALOADER:
            return "loader"
        if cls in names.GRAD_SCALERS:
            return "scaler"
        if names.is_layer_class(cls) or cls.startswith(("torchvision.models.", "timm.create_model")):
            return "model"
        return None

    @functools.cached_property
    def _calls_by_callee(self) -> dict[str, list[cst.Call]]:
        """The calls of each imported or builtin API (canonical name), in evaluation order."""
        index: dict[str, list[cst.Call]] = {}
        for call in self.calls:
            qualified = self.qualname(call.func)
            if qualified is not None:
                index.setdefault(qualified, []).append(call)
        return index

    def calls_to(self, *qualified: str) -> Iterator[cst.Call]:
        """Calls whose callee is one of the given APIs (canonical names), in evaluation order."""
        found = [call for api in set(qualified) for call in self._calls_by_callee.get(api, ())]
        if len(qualified) > 1:
            found.sort(key=self.order_of)
        return iter(found)

    @functools.cached_property
    def _applied_apis(self) -> dict[cst.Call, Optional[str]]:
        return {}

    def applied_api(self, call: cst.Call) -> Optional[str]:
        """The API a call applies to its arguments, as a canonical name: the function for
        `F.cross_entropy(out, y)`, the instance's class for `criterion(out, y)` or
        `criterion.forward(out, y)`. None for constructor calls such as `nn.CrossEntropyLoss()`."""
        if call not in self._applied_apis:
            self._applied_apis[call] = self._applied_api(call)
        return self._applied_apis[call]

    def _applied_api(self, call: cst.Call) -> Optional[str]:
        func = call.func
        qualified = self.qualname(func)
        if qualified is not None:
            return None if qualified.rsplit(".", 1)[-1][:1].isupper() else qualified
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        for origin in self.origins(func):
            cls = self.class_of(origin)
            if isinstance(cls, str):
                return cls
            aliased = self.qualname(origin) if origin is not func else None
            if aliased is not None and not aliased.rsplit(".", 1)[-1][:1].isupper():
                return aliased  # `loss_fn = F.cross_entropy`
        return None

    def loss_calls(self, apis: set[str]) -> Iterator[tuple[cst.Call, str, Optional[cst.BaseExpression], Optional[cst.BaseExpression]]]:
        """Calls applying one of the given losses (module or functional): (call, api, prediction, target)."""
        for call in self.calls:
            api = self.applied_api(call)
            if api in apis:
                yield call, api, self.argument(call, 0, "input"), self.argument(call, 1, "target")

    @staticmethod
    def argument(call: cst.Call, position: Optional[int], keyword: str) -> Optional[cst.BaseExpression]:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == keyword:
                return arg.value
        plain = [arg for arg in call.args if arg.keyword is None and not arg.star]
        if position is not None and position < len(plain):
            return plain[position].value
        return None
