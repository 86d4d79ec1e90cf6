"""How much the probe slows training: step time of a 4-layer MLP (784-512-256-128-10, batch 128,
CPU, 2 threads) plain, with a no-op global forward hook (what a probe that keeps global hooks on
pays at least; the probe turns them on only to discover models and to measure layers), and under
the probe's session with its default settings (the same hooks, collectors and schedules as
`mlplint probe`, including the periodic writes of the stats file).

Conditions alternate in short rounds of 50 steps, in a new (seeded) random order each round. The
probe's session is created once and installed for each of its rounds, so its step count and
schedules run on as in one long probed run (the one-time discovery of the model at the first step
is left out). A condition's ratio is the median over rounds of its mean step time (sampled steps
included) divided by the plain mean of the same round, so drift in the machine's speed cancels out.

`--per-collector` adds a session with every collector off (the hooks and bookkeeping alone), one
that writes no stats file, and each collector's cost: the time spent in its hooks (a session with
timed hooks, averaged over all its steps: the first round's start-up work, such as the neighbour
statistic computed at the first timed stats write, included). Switching one collector off at a
time is not a measure of it: one collector costs well under 1% of a step, less than two medians
of step times differ by on this machine. On a shared machine use `--clock cpu` (the process's CPU
time, which does not count time spent waiting for a core) and `--threads 1` (a thread waiting at
a barrier for a descheduled one spins): all conditions of a round then see the same machine.
Run: python benchmarks/probe_overhead.py [--rounds N] [--per-collector] [--clock wall|cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from mlplint.probe.collectors import Collector
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


def switch_off(collector: Collector) -> None:
    """Make every hook of a collector do nothing (and answer as one that measures nothing)."""
    for name in hook_names(collector):
        if name.startswith("wrap_"):
            setattr(collector, name, lambda original, *_, **__: original)
        else:
            setattr(collector, name, lambda *args, _answer=OFF_ANSWERS.get(name), **kwargs: _answer)


# What a switched-off collector's hooks answer where the session uses the answer.
OFF_ANSWERS = {"due": False, "on_loss_call": False, "calls_since_step": 0}


def hook_names(collector: Collector) -> list[str]:
    return [name for name in dir(type(collector))
            if not name.startswith("_") and name not in ("flush", "active") and callable(getattr(collector, name))]


def time_hooks(collector: Collector, clock, totals: dict[str, float]) -> None:
    """Add the time spent in each hook of a collector (and in its flushes) to totals[collector.name]."""
    for name in [*hook_names(collector), "flush"]:
        if name.startswith("wrap_"):
            continue
        def timed(*args, _hook=getattr(collector, name), **kwargs):
            start = clock()
            try:
                return _hook(*args, **kwargs)
            finally:
                totals[collector.name] = totals.get(collector.name, 0.0) + clock() - start
        setattr(collector, name, timed)


def new_session(directory: str, off: bool = False, stats: bool = True) -> Session:
    """A session with default settings that never stops; `off`: with every collector switched off."""
    session = Session(steps=10**9, stats_path=str(Path(directory) / f"stats-{off}-{stats}.json") if stats else None)
    for collector in session.collectors if off else []:
        switch_off(collector)
    return session


def time_steps(step, condition, clock) -> list[float]:
    times = []
    with condition:
        for i in range(STEPS_PER_ROUND):
            start = clock()
            step(i)
            times.append(clock() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-collector", action="store_true", help="also time the hooks of each collector, and the session with all of them off")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    step = make_training()
    for i in range(WARMUP):
        step(i)
    own: dict[str, float] = {}  # collector -> seconds spent in its hooks in the timed session
    with tempfile.TemporaryDirectory() as directory:
        sessions = {"probe (defaults)": new_session(directory)}
        if args.per_collector:
            sessions["no stats file"] = new_session(directory, stats=False)
            sessions["all collectors off"] = new_session(directory, off=True)
            sessions["hooks timed"] = new_session(directory)
        for session in sessions.values():
            with probed(session):
                step(0)  # the model and optimizer are discovered once, at the first step
        if args.per_collector:
            for collector in sessions["hooks timed"].collectors:
                time_hooks(collector, clock, own)
        conditions = {"plain": plain, "no-op hook": noop_hook,
                      **{name: functools.partial(probed, session) for name, session in sessions.items()}}
        rounds: list[dict[str, float]] = []
        shuffle = random.Random(0).shuffle
        for _ in range(args.rounds):
            order = list(conditions)
            shuffle(order)  # a condition measured late in every round would carry the round's drift
            rounds.append({name: statistics.fmean(time_steps(step, conditions[name](), clock)) for name in order})
    print(f"MLP 784-512-256-128-10, batch {BATCH}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds x {STEPS_PER_ROUND} steps per condition, {args.clock} clock")
    ratios = {name: statistics.median(r[name] / r["plain"] for r in rounds) for name in conditions}
    for name in conditions:
        if name == "hooks timed":
            continue
        step_time = statistics.median(r[name] for r in rounds)
        saved = f"   saves {(ratios['probe (defaults)'] - ratios[name]) * 100:+5.1f}% of a plain step" \
            if name in ("no stats file", "all collectors off") else ""
        print(f"  {name:<20} {step_time * 1e3:7.3f} ms/step   ratio {ratios[name]:.3f}x{saved}")
    if args.per_collector:
        plain_step = statistics.median(r["plain"] for r in rounds)
        steps = args.rounds * STEPS_PER_ROUND
        print("  per collector: time in its hooks (timed session), and in % of a plain step")
        for name in sorted(own, key=own.get, reverse=True):
            per_step = own[name] / steps
            print(f"    {name:<24} {per_step * 1e6:7.1f} us/step {per_step / plain_step * 100:5.1f}%")


if __name__ == "__main__":
    main()
