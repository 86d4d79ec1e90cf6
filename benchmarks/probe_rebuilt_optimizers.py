"""The probe's cost per step when the script builds a new optimizer at every step (ML941), against
the same loop with one optimizer built before it: a small MLP (20-64-2, batch 32, CPU), run under
the probe's session (the hooks, collectors and stats writes of `mlplint probe`) for --steps steps.
The step time is the mean over each window of --window steps; with the cost per step independent
of how many optimizers were built before, the windows stay level (the first one also pays for
torch's lazy start-up). Run: python benchmarks/probe_rebuilt_optimizers.py [--steps 2000] [--window 250]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

from mlplint.probe.instrument import Session

SCRIPT = """
import time
import torch
from torch import nn

torch.manual_seed(0)
X = torch.randn(512, 20)
y = (X[:, :3].sum(dim=1) > 0).long()
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
TIMES.append(time.perf_counter())
for step in range(STEPS + 1):
    batch = torch.randint(0, len(X), (32,))
    if PER_STEP:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    criterion(model(X[batch]), y[batch]).backward()
    optimizer.step()
    TIMES.append(time.perf_counter())
"""


def step_times(per_step: bool, steps: int, folder: Path) -> tuple[list[float], dict]:
    script = folder / f"train_{'per_step' if per_step else 'once'}.py"
    script.write_text(textwrap.dedent(SCRIPT).replace("PER_STEP", str(per_step)).replace("STEPS", str(steps)))
    times: list[float] = []
    import builtins
    builtins.TIMES = times  # the script appends a timestamp after each step
    try:
        stats = Session(steps, str(folder / "stats.json")).run_script(str(script), [])
    finally:
        del builtins.TIMES
    return [b - a for a, b in zip(times, times[1:])], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--window", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for per_step in (False, True):
            durations, stats = step_times(per_step, args.steps, Path(folder))
            windows = [durations[i:i + args.window] for i in range(0, len(durations), args.window)]
            means = [1000 * sum(w) / len(w) for w in windows if w]
            built = stats["collectors"].get("optimizer_constructions", {}).get("records", [])
            print(f"{'optimizer per step' if per_step else 'optimizer built once'}: {stats['status']} after {stats['steps']} steps, "
                  f"{built[0]['constructions'] if built else 0} optimizers built, {len(stats['optimizers'])} in the stats")
            print("  ms per step, by window of", args.window, "steps:", " ".join(f"{m:.2f}" for m in means))


if __name__ == "__main__":
    main()
