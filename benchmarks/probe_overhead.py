"""How much the probe slows training: step time of a 4-layer MLP (784-512-256-128-10, batch 128,
CPU, 2 threads) plain, with a no-op global forward hook (what a probe that keeps global hooks on
pays at least; the probe turns them on only to discover models and to measure layers), and under
the probe's session with its default settings (the same hooks, collectors and schedules as
`mlplint probe`, including the periodic writes of the stats file).

Conditions alternate in short rounds of 50 steps. The probe's session is created once and installed
for each of its rounds, so its step count and schedules run on as in one long probed run (the
one-time discovery of the model at the first step is left out). A condition's ratio is the median
over rounds of its mean step time (sampled steps included) divided by the plain mean of the same
round, so drift in the machine's speed cancels out. Run: python benchmarks/probe_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from mlplint.probe.instrument import Session

BATCH, STEPS_PER_ROUND, WARMUP = 128, 50, 20


def make_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    batches = [(torch.randn(BATCH, 784), torch.randint(0, 10, (BATCH,))) for _ in range(8)]

    def step(i: int) -> None:
        x, y = batches[i % len(batches)]
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()

    return step


@contextmanager
def plain():
    yield


@contextmanager
def noop_hook():
    handle = nn.modules.module.register_module_forward_hook(lambda module, args, output: None)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def probed(session: Session):
    session.install()
    try:
        yield
    finally:
        session.remove()


def time_steps(step, condition) -> list[float]:
    times = []
    with condition:
        for i in range(STEPS_PER_ROUND):
            start = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(2)
    step = make_training()
    for i in range(WARMUP):
        step(i)
    with tempfile.TemporaryDirectory() as directory:
        session = Session(steps=10**9, stats_path=str(Path(directory) / "stats.json"))  # default settings, never stops
        with probed(session):
            step(0)  # the model and optimizer are discovered once, at the first step
        conditions = {"plain": plain, "no-op hook": noop_hook, "probe (defaults)": lambda: probed(session)}
        rounds: list[dict[str, float]] = []
        for _ in range(args.rounds):
            rounds.append({name: statistics.fmean(time_steps(step, make())) for name, make in conditions.items()})
    print(f"MLP 784-512-256-128-10, batch {BATCH}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds x {STEPS_PER_ROUND} steps per condition")
    for name in conditions:
        step_time = statistics.median(r[name] for r in rounds)
        ratio = statistics.median(r[name] / r["plain"] for r in rounds)
        print(f"  {name:<18} {step_time * 1e3:7.3f} ms/step   ratio {ratio:.3f}x")


if __name__ == "__main__":
    main()
