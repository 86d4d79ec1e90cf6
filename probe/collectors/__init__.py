"""Collectors: each measures one statistic inside the child process, and judges nothing.

Runs under the user's interpreter, so this package depends on torch and the standard library
only. A collector keeps its reductions on the tensor's device in a `DeviceBuffer`; `flush`
moves everything pending to the host in one transfer per device and returns plain data.
`every` is the collector's schedule: it measures on steps where `step % every == 0`; a sampled
statistic (`every` > 1, or a collector that sets `thinned`) is measured LATER_FACTOR times less
often after the first DENSE_STEPS steps, where symptoms show first, so that a probe left on for a
long run stays cheap.
"""

from __future__ import annotations

from typing import Any, Hashable

import torch

DENSE_STEPS = 100
LATER_FACTOR = 5


class DeviceBuffer:
    """On-device statistics waiting to be moved to the host, keyed by the caller."""

    def __init__(self) -> None:
        self._pending: list[tuple[Hashable, torch.Tensor]] = []

    def add(self, key: Hashable, values: torch.Tensor) -> None:
        # checked first: each call that changes nothing still costs a dispatch, at every step;
        # shapes are flattened when drained (one stack for all the scalars)
        if values.requires_grad:
            values = values.detach()
        if values.dtype != torch.float32:
            values = values.float()
        self._pending.append((key, values))

    def drain(self) -> list[tuple[Hashable, list[float]]]:
        """Everything added since the last drain, in order, as flat lists of host floats."""
        by_device: dict[torch.device, list[int]] = {}
        for index, (_, values) in enumerate(self._pending):
            by_device.setdefault(values.device, []).append(index)
        host: dict[int, list[float]] = {}
        for indices in by_device.values():
            scalars = [i for i in indices if self._pending[i][1].dim() == 0]
            others = [i for i in indices if self._pending[i][1].dim() != 0]
            parts = [torch.stack([self._pending[i][1] for i in scalars])] if scalars else []
            flat = torch.cat(parts + [self._pending[i][1].reshape(-1) for i in others]).tolist()
            start = 0
            for i in scalars + others:
                size = self._pending[i][1].numel()
                host[i] = flat[start : start + size]
                start += size
        drained = [(key, host[i]) for i, (key, _) in enumerate(self._pending)]
        self._pending = []
        return drained


def vector_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of each tensor, as one float32 vector on the first tensor's device: one fused
    `_foreach_norm` per device (what `clip_grad_norm_` uses) instead of one kernel per tensor."""
    dense = [t.coalesce().values() if t.is_sparse else t for t in tensors]
    target = dense[0].device
    if all(t.device == target for t in dense):  # the usual case: one fused call, no per-tensor copies
        return torch.stack(torch._foreach_norm([t.detach() for t in dense])).float()
    by_device: dict[torch.device, list[int]] = {}
    for index, tensor in enumerate(dense):
        by_device.setdefault(tensor.device, []).append(index)
    norms: list[torch.Tensor] = [torch.empty(0)] * len(dense)
    for indices in by_device.values():
        for index, norm in zip(indices, torch._foreach_norm([dense[i].detach() for i in indices])):
            norms[index] = norm.float().to(target)
    return torch.stack(norms)


class Collector:
    """Base class: a name (its key in the recorded statistics) and a schedule."""

    name: str = ""
    default_every: int = 1
    # whether an every-step schedule thins out after DENSE_STEPS too (a symptom that shows at most steps)
    thinned: bool = False

    def __init__(self, every: int | None = None) -> None:
        self.every = max(1, int(every or self.default_every))
        self.buffer = DeviceBuffer()

    def due(self, step: int) -> bool:
        if step < DENSE_STEPS or (self.every == 1 and not self.thinned):
            return step % self.every == 0
        return step % (self.every * LATER_FACTOR) == 0

    def flush(self) -> dict[str, Any]:
        """Move pending values to the host and return the whole record so far."""
        raise NotImplementedError
