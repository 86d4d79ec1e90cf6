"""Learning-rate scheduler `step()` calls, in order with the optimizer steps: for each scheduler,
how many steps its optimizer had taken when the scheduler first stepped (the step a scheduler
takes in its own constructor does not count)."""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import Collector


class SchedulerCallCollector(Collector):
    name = "scheduler_calls"
    default_every = 1

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self._schedulers: dict[int, dict[str, Any]] = {}  # id(scheduler) -> record
        self._depth = 0  # nested step() calls (a subclass's step calling its base's) and constructors

    def wrap_init(self, original: Callable) -> Callable:
        def __init__(scheduler: Any, *args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            try:
                return original(scheduler, *args, **kwargs)
            finally:
                self._depth -= 1

        return __init__

    def wrap_step(self, original: Callable, optimizer_steps: Callable[[Any], tuple[Optional[int], int]], step: Callable[[], int]) -> Callable:
        """`optimizer_steps(optimizer)` gives (optimizer index or None, steps it has taken)."""
        def scheduler_step(scheduler: Any, *args: Any, **kwargs: Any) -> Any:
            if self._depth == 0:
                self.on_step_call(scheduler, optimizer_steps(getattr(scheduler, "optimizer", None)), step())
            self._depth += 1
            try:
                return original(scheduler, *args, **kwargs)
            finally:
                self._depth -= 1

        return scheduler_step

    def on_step_call(self, scheduler: Any, optimizer: tuple[Optional[int], int], step: int) -> None:
        record = self._schedulers.get(id(scheduler))
        if record is None:
            record = self._schedulers[id(scheduler)] = {
                "class": type(scheduler).__name__, "optimizer": optimizer[0], "first_call_step": step,
                "optimizer_steps_at_first_call": optimizer[1], "calls": 0,
            }
        record["calls"] += 1

    def flush(self) -> dict[str, Any]:
        return {"every": self.every, "records": list(self._schedulers.values())}
