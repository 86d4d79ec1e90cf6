"""How much the probe slows a data-parallel training step, at 1 and 2 ranks: a DDP-wrapped MLP
(784-512-256-128-10, batch 128 per rank, gloo on the CPU, 1 thread per rank) run plain through
torch.distributed.run and under `mlplint probe --nproc-per-node N` (one rank: the probe's world of
one, no launcher). The script times its own steps (after WARMUP steps, until MEASURED more) and
writes each rank's mean step time to a file, so the launchers' start-up is not counted. Conditions
alternate in rounds; the ratio is the median over rounds of probed / plain mean step time.
Run: python benchmarks/probe_overhead_ranks.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP, MEASURED = 10, 60
SCRIPT = '''
import os, sys, time
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(rank)
model = DDP(nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
criterion = nn.CrossEntropyLoss()
batches = [(torch.randn(128, 784), torch.randint(0, 10, (128,))) for _ in range(8)]
warmup, measured = int(sys.argv[1]), int(sys.argv[2])
for step in range(warmup + measured + 10):
    if step == warmup:
        started = time.perf_counter()
    if step == warmup + measured:
        with open(f"{sys.argv[3]}.rank{rank}", "w") as handle:
            handle.write(str((time.perf_counter() - started) / measured))
    x, y = batches[step % len(batches)]
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
'''


def step_time(ranks: int, probed: bool, workdir: Path, round_: int) -> float:
    script, out = workdir / "ddp_mlp.py", workdir / f"time-{ranks}-{probed}-{round_}"
    args = [str(WARMUP), str(MEASURED), str(out)]
    if probed:
        command = [sys.executable, "-m", "mlplint", "probe", "--steps", str(WARMUP + MEASURED + 5), "--timeout", "600",
                   *(["--nproc-per-node", str(ranks)] if ranks > 1 else []), str(script), "--", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", str(script), *args]
    subprocess.run(command, capture_output=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return statistics.mean(float((workdir / f"{out.name}.rank{rank}").read_text()) for rank in range(ranks))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        (workdir / "ddp_mlp.py").write_text(SCRIPT)
        for ranks in (1, 2):
            ratios, plain_times, probed_times = [], [], []
            for round_ in range(rounds):
                plain = step_time(ranks, False, workdir, round_)
                probed = step_time(ranks, True, workdir, round_)
                plain_times.append(plain)
                probed_times.append(probed)
                ratios.append(probed / plain)
            print(f"{ranks} rank{'s' if ranks > 1 else ''}: plain {statistics.median(plain_times) * 1e3:.2f} ms/step, "
                  f"probed {statistics.median(probed_times) * 1e3:.2f} ms/step, ratio {statistics.median(ratios):.2f} "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
