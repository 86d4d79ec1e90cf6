"""Wrappers the probe's child installs on library attributes (torch's functions and methods), each
removed again in reverse order, so a wrapped attribute gets its original back."""

from __future__ import annotations

import functools
from typing import Any, Callable


class Patches:
    def __init__(self) -> None:
        self._installed: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attribute: str, make_wrapper: Callable[[Callable], Callable]) -> None:
        """Replace owner.attribute by make_wrapper(original)."""
        original = getattr(owner, attribute)
        self._installed.append((owner, attribute, original))
        setattr(owner, attribute, functools.wraps(original)(make_wrapper(original)))

    def remove(self) -> None:
        for owner, attribute, original in reversed(self._installed):
            setattr(owner, attribute, original)
        self._installed = []
