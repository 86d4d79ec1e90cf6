"""The constant values of expressions: literals, arithmetic on them, names bound once, argparse
defaults, dataclass and config fields, dict and list lookups. Part of `core.ScriptFacts`."""

from __future__ import annotations

from typing import Any, Optional

import libcst as cst

MISSING = object()  # "no constant value" (None is a value)


def is_integer(value: object) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


class LiteralValues:
    """Mixed into ScriptFacts; uses its `origins`, `argparse_defaults` and class lookups."""

    def literal(self, expr: Optional[cst.BaseExpression]) -> Any:
        """The constant value of expr, or None when it cannot be known statically."""
        value = self._literal(expr, 0) if expr is not None else MISSING
        return None if value is MISSING else value

    def integer_literal(self, expr: Optional[cst.BaseExpression]) -> Optional[int]:
        """The constant value of expr when it is an int (not a bool), else None."""
        value = self.literal(expr)
        return value if is_integer(value) else None

    def _literal(self, expr: cst.BaseExpression, depth: int) -> Any:
        if depth > 12:
            return MISSING
        if type(expr) in (cst.Integer, cst.Float):
            return expr.evaluated_value
        if type(expr) in (cst.SimpleString, cst.ConcatenatedString):
            return expr.evaluated_value
        if type(expr) is cst.Name and expr.value in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[expr.value]
        if type(expr) is cst.UnaryOperation:
            operand = self._literal(expr.expression, depth + 1)
            if isinstance(operand, (int, float)) and not isinstance(operand, bool):
                if type(expr.operator) is cst.Minus:
                    return -operand
                if type(expr.operator) is cst.Plus:
                    return operand
            if type(expr.operator) is cst.Not and operand is not MISSING:
                return not operand
            return MISSING
        if type(expr) is cst.BinaryOperation:
            return self._binary(expr, depth)
        if type(expr) is cst.Name:
            return self._agreed([o for o in self.origins(expr) if o is not expr], depth)
        if type(expr) is cst.Attribute:
            return self._attribute_literal(expr, depth)
        if type(expr) is cst.Subscript:
            return self._subscript_literal(expr, depth)
        if type(expr) is cst.Call:
            return self._call_literal(expr, depth)
        return MISSING

    def _agreed(self, candidates: list[cst.BaseExpression], depth: int) -> Any:
        values = [self._literal(c, depth + 1) for c in candidates]
        if not values or any(v is MISSING for v in values):
            return MISSING
        first = values[0]
        return first if all(v == first for v in values) else MISSING

    def _binary(self, expr: cst.BinaryOperation, depth: int) -> Any:
        left = self._literal(expr.left, depth + 1)
        right = self._literal(expr.right, depth + 1)
        numbers = (int, float)
        if not (isinstance(left, numbers) and isinstance(right, numbers)):
            return MISSING
        operations = {
            cst.Add: lambda a, b: a + b,
            cst.Subtract: lambda a, b: a - b,
            cst.Multiply: lambda a, b: a * b,
            cst.Divide: lambda a, b: a / b,
            cst.FloorDivide: lambda a, b: a // b,
            cst.Power: lambda a, b: a**b if abs(b) < 64 else MISSING,
        }
        operation = operations.get(type(expr.operator))
        try:
            return operation(left, right) if operation else MISSING
        except (ArithmeticError, ValueError):
            return MISSING

    def _attribute_literal(self, expr: cst.Attribute, depth: int) -> Any:
        origins = [o for o in self.origins(expr) if o is not expr]
        if origins:
            return self._agreed(origins, depth)
        attribute = expr.attr.value
        receivers = self.origins(expr.value)
        if attribute in self.argparse_defaults and not any(isinstance(r, (cst.Dict, cst.Call)) and
                                                           not self._is_parse_args(r) for r in receivers):
            return self._literal(self.argparse_defaults[attribute], depth + 1)
        for receiver in receivers:
            classes = self.local_definitions(receiver.func if isinstance(receiver, cst.Call) else receiver, cst.ClassDef)
            fields = self._class_fields(classes[0]) if classes else {}
            if isinstance(receiver, cst.Call):
                dataclass = classes and any(
                    self.qualname(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator) == "dataclasses.dataclass"
                    for d in classes[0].decorators
                )
                position = list(fields).index(attribute) if dataclass and attribute in fields else None
                given = self.argument(receiver, position, attribute)
                if given is not None:
                    return self._literal(given, depth + 1)
            if fields.get(attribute) is not None:  # a dataclass field's or class attribute's default
                return self._literal(fields[attribute], depth + 1)
        return MISSING

    @staticmethod
    def _class_fields(owner: cst.ClassDef) -> dict[str, Optional[cst.BaseExpression]]:
        """Names assigned in a class body, in order, with their values (`lr: float = 1e-3` in a
        dataclass or a plain config class)."""
        fields: dict[str, Optional[cst.BaseExpression]] = {}
        for statement in owner.body.body:
            for small in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
                if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    fields[small.target.value] = small.value
                elif isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                    fields[small.targets[0].target.value] = small.value
        return fields

    @staticmethod
    def _is_parse_args(expr: cst.BaseExpression) -> bool:
        return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and \
            expr.func.attr.value in ("parse_args", "parse_known_args")

    def _subscript_literal(self, expr: cst.Subscript, depth: int) -> Any:
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return MISSING
        key = self._literal(expr.slice[0].slice.value, depth + 1)
        if key is MISSING:
            return MISSING
        found = [self._mapping_value(o, key, depth) for o in self.origins(expr.value)]
        if not found or any(v is MISSING for v in found):
            return MISSING
        return found[0] if all(v == found[0] for v in found) else MISSING

    def _mapping_value(self, mapping: cst.BaseExpression, key: Any, depth: int) -> Any:
        if isinstance(mapping, cst.Dict):
            for element in mapping.elements:
                if isinstance(element, cst.DictElement) and self._literal(element.key, depth + 1) == key:
                    return self._literal(element.value, depth + 1)
        if isinstance(mapping, cst.Call) and self.qualname(mapping.func) == "builtins.dict" and isinstance(key, str):
            value = self.argument(mapping, None, key)
            if value is not None:
                return self._literal(value, depth + 1)
        if isinstance(mapping, (cst.Tuple, cst.List)) and isinstance(key, int) and -len(mapping.elements) <= key < len(mapping.elements):
            return self._literal(mapping.elements[key].value, depth + 1)
        return MISSING

    def _call_literal(self, call: cst.Call, depth: int) -> Any:
        qualified = self.qualname(call.func)
        if qualified in ("builtins.float", "builtins.int") and len(call.args) == 1:
            value = self._literal(call.args[0].value, depth + 1)
            if isinstance(value, (int, float, str)):
                try:
                    return float(value) if qualified == "builtins.float" else int(value)
                except ValueError:
                    return MISSING
            return MISSING
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "get" and call.args:
            key = self._literal(call.args[0].value, depth + 1)
            default = call.args[1].value if len(call.args) > 1 else None
            values = []
            for mapping in self.origins(func.value):
                value = self._mapping_value(mapping, key, depth)
                if value is MISSING and isinstance(mapping, cst.Dict) and default is not None:
                    value = self._literal(default, depth + 1)
                values.append(value)
            if values and all(v is not MISSING and v == values[0] for v in values):
                return values[0]
        return MISSING
