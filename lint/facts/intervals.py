"""Value intervals: the values an array or tensor can hold, as the tensor analysis carries them
through arithmetic (`lint/facts/tensors.py`). A normal draw counts as mean +- 3 std; one interval
per column where a column stack or a DataFrame of named arrays gives them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import libcst as cst

PathItem = Union[int, str]


@dataclass(frozen=True)
class ValueRange:
    """Values lie in [low, high]; `columns` gives one range per column when known (a column
    stack or a DataFrame built from named arrays), with `names` for the named ones."""

    low: float
    high: float
    columns: tuple["ValueRange", ...] = ()
    names: tuple[str, ...] = ()

    @property
    def magnitude(self) -> float:
        return max(abs(self.low), abs(self.high))

    def hull(self, other: "ValueRange") -> "ValueRange":
        return ValueRange(min(self.low, other.low), max(self.high, other.high))

    def plain(self) -> "ValueRange":
        return ValueRange(self.low, self.high)

    def column(self, key: PathItem) -> Optional["ValueRange"]:
        if isinstance(key, str):
            return self.columns[self.names.index(key)] if key in self.names else None
        return self.columns[key] if -len(self.columns) <= key < len(self.columns) else None


def point(value: float) -> ValueRange:
    return ValueRange(float(value), float(value))


def hull(ranges: list[Optional[ValueRange]]) -> Optional[ValueRange]:
    if not ranges or any(r is None for r in ranges):
        return None
    low, high = min(r.low for r in ranges), max(r.high for r in ranges)
    return ValueRange(low, high) if math.isfinite(low) and math.isfinite(high) else None


def with_columns(columns: list[Optional[ValueRange]], names: tuple[str, ...] = ()) -> Optional[ValueRange]:
    whole = hull(columns)
    return ValueRange(whole.low, whole.high, tuple(c.plain() for c in columns), names) if whole else None


def arith(operator: cst.BaseBinaryOp, a: ValueRange, b: ValueRange) -> Optional[ValueRange]:
    if isinstance(operator, cst.Add):
        return ValueRange(a.low + b.low, a.high + b.high)
    if isinstance(operator, cst.Subtract):
        return ValueRange(a.low - b.high, a.high - b.low)
    if isinstance(operator, cst.Multiply):
        products = [a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high]
        return ValueRange(min(products), max(products))
    if isinstance(operator, (cst.Divide, cst.FloorDivide)):
        if b.low <= 0 <= b.high:
            return None
        quotients = [a.low / b.low, a.low / b.high, a.high / b.low, a.high / b.high]
        return ValueRange(min(quotients), max(quotients))
    if isinstance(operator, cst.Power) and b.low == b.high and float(b.low).is_integer() and 0 <= b.low <= 8:
        exponent = int(b.low)
        values = [a.low**exponent, a.high**exponent] + ([0.0] if a.low < 0 < a.high else [])
        return ValueRange(min(values), max(values))
    return None


def combine(operator: cst.BaseBinaryOp, a: ValueRange, b: ValueRange) -> Optional[ValueRange]:
    """Interval arithmetic, column by column when one side (or both, alike) has columns."""
    if a.columns and b.columns and len(a.columns) != len(b.columns):
        return arith(operator, a.plain(), b.plain())
    if a.columns or b.columns:
        count = len(a.columns or b.columns)
        left = a.columns or (a,) * count
        right = b.columns or (b,) * count
        return with_columns([arith(operator, x, y) for x, y in zip(left, right)], a.names or b.names)
    return arith(operator, a, b)


def map_columns(value: Optional[ValueRange], function: Callable[[ValueRange], Optional[ValueRange]]) -> Optional[ValueRange]:
    if value is None:
        return None
    if value.columns:
        return with_columns([function(c) for c in value.columns], value.names)
    return function(value)


def absolute(r: ValueRange) -> ValueRange:
    if r.low >= 0:
        return r.plain()
    if r.high <= 0:
        return ValueRange(-r.high, -r.low)
    return ValueRange(0.0, max(-r.low, r.high))


def monotone(r: ValueRange, function: Callable[[float], float], domain: float) -> Optional[ValueRange]:
    if r.low < domain:
        return None
    try:
        return ValueRange(function(r.low), function(r.high))
    except (OverflowError, ValueError):
        return None
