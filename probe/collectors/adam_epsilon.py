"""How much an Adam-family optimizer's `eps` changes its steps: after a measured optimizer step,
for each parameter with Adam state, the share of its values whose step size differs more than
twofold from what the default eps (1e-8) would give. Adam divides by sqrt(v_hat) + eps, so the
factor is (sqrt(v_hat) + 1e-8) / (sqrt(v_hat) + eps); values whose second moment is zero (never a
gradient) are not counted. Large parameters are measured on a strided subset."""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import Collector
from .updates import sampled_values

DEFAULT_EPS = 1e-8
# A step scaled by more than this factor (or less than its inverse) counts as changed.
CHANGE_FACTOR = 2.0


def step_scale_shares(exp_avg_sq: torch.Tensor, step: Any, beta2: float, eps: float) -> torch.Tensor:
    """[values with a second moment, share damped, share amplified] on the state's device."""
    v = sampled_values(exp_avg_sq).float()
    t = torch.as_tensor(step, dtype=torch.float32).to(v.device).clamp_min(1.0)  # on the device: no sync per parameter
    root = (v / (1 - torch.pow(torch.tensor(beta2, device=v.device), t)).clamp_min(1e-30)).sqrt()
    factor = (root + DEFAULT_EPS) / (root + eps)
    seen = v > 0
    count = seen.sum().float()
    damped = ((factor < 1 / CHANGE_FACTOR) & seen).sum().float()
    amplified = ((factor > CHANGE_FACTOR) & seen).sum().float()
    return torch.stack([count, damped, amplified])


class AdamEpsilonCollector(Collector):
    name = "adam_epsilon"
    default_every = 10

    def __init__(self, every: Optional[int] = None) -> None:
        super().__init__(every)
        self.records: list[dict[str, Any]] = []

    def after_step(self, optimizer: torch.optim.Optimizer, optimizer_index: int, step: int) -> None:
        if not self.due(step):
            return
        shares, eps_values = [], set()
        for group in optimizer.param_groups:
            eps, betas = group.get("eps"), group.get("betas")
            if not isinstance(eps, (int, float)) or not isinstance(betas, (tuple, list)) or len(betas) != 2:
                continue
            for param in group["params"]:
                state = optimizer.state.get(param, {})
                if not (isinstance(state.get("exp_avg_sq"), torch.Tensor) and "step" in state) or state["exp_avg_sq"].is_complex():
                    continue
                try:
                    shares.append(step_scale_shares(state["exp_avg_sq"], state["step"], float(betas[1]), float(eps)))
                except (RuntimeError, TypeError, ValueError):  # a look-alike optimizer's state in another layout
                    continue
                eps_values.add(float(eps))
        if not shares:
            return
        self.records.append({"step": step, "optimizer": optimizer_index, "class": type(optimizer).__name__, "eps": sorted(eps_values)})
        self.buffer.add(len(self.records) - 1, torch.stack([s.to(shares[0].device) for s in shares]).sum(dim=0))

    def flush(self) -> dict[str, Any]:
        for index, (count, damped, amplified) in self.buffer.drain():
            self.records[index].update(values=int(count), damped=damped / max(count, 1), amplified=amplified / max(count, 1))
        return {"every": self.every, "records": self.records}
