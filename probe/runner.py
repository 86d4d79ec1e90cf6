"""Run a script under the probe in a child process: the step budget, the timeout, the status.

The child (`child.py`, under the user's interpreter) records statistics into a file this process
names; the child can crash, exit, hang or be killed and this process still reads what was
flushed. Torch-free: torch is only imported in the child.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

from mlplint.probe.processes import ProcessTree
from mlplint.probe.ranks import RankFiles, gather
from mlplint.probe.stats import Stats

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
DEFAULT_STEPS = 50
DEFAULT_TIMEOUT = 120.0
DEVICES = ("auto", "cpu", "cuda")
# Characters of the script's own output kept with the statistics (shown when it dies by a signal).
OUTPUT_TAIL_CHARS = 4000
# How often the running child's descendants and progress are looked at, in seconds.
POLL_SECONDS = 0.25
# A frame of faulthandler's traceback (`File "path", line N in function`).
FAULT_FRAME = re.compile(r'^\s*File "(.+)", line (\d+) in ')


class Progress:
    """How far a running probe has got, as the child reports it after each optimizer step."""

    def __init__(self, script: str, budget: int) -> None:
        self.script, self.budget = script, budget
        self.steps, self.loss, self.started = 0, None, time.monotonic()
        self.losses: dict[str, list[list[float]]] = {}  # optimizer index -> [[step, loss], ...] read so far
        self._offset = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def read(self, path: str) -> bool:
        """Read the lines the child appended since the last call; True when there were any."""
        try:
            with open(path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return False
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("ascii", "replace").splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[0].isdigit():
                continue
            self.steps = max(self.steps, int(parts[0]))
            if len(parts) > 2:
                self.loss = float(parts[2])
                self.losses.setdefault(parts[1], []).append([int(parts[0]) - 1, self.loss])
        return bool(complete)


class ProbeError(Exception):
    """The probe itself could not run (not the script failing); str(error) is a one-line reason."""


def run_probe(
    script: str,
    args: Sequence[str] = (),
    *,
    steps: int = DEFAULT_STEPS,
    timeout: float = DEFAULT_TIMEOUT,
    device: str = "auto",
    python: Optional[str] = None,
    every: Optional[dict[str, int]] = None,
    trial: Optional[dict[str, Any]] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    nproc_per_node: int = 1,
) -> Stats:
    """Run `script` with `args` for at most `steps` optimizer steps and `timeout` seconds.
    `trial`: more settings for the child (`seed`, `sample`, `intervention`, `source`), used by
    --baseline and --trials (see trials.py); `on_progress` is told after each optimizer step the
    child reports (rank 0's, under torchrun). `nproc_per_node` > 1 runs the script through
    torch.distributed.run with that many ranks, each instrumented, each stopped by the budget."""
    if device not in DEVICES:
        raise ProbeError(f"unknown device '{device}' (expected one of {', '.join(DEVICES)})")
    python = python or sys.executable
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="mlplint-probe-") as workdir:
        stats_path = os.path.join(workdir, "stats.json")
        config_path = os.path.join(workdir, "config.json")
        output_path = os.path.join(workdir, "output.txt")
        progress_path = os.path.join(workdir, "progress.txt")
        ranks = RankFiles(workdir, nproc_per_node) if nproc_per_node > 1 else None
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump({"script": os.path.abspath(script), "args": list(args), "steps": steps,
                       "stats_path": stats_path, "progress_path": progress_path, "every": every or {}, **(trial or {}),
                       **(ranks.config() if ranks else {})}, handle)
        progress = Progress(script, steps)
        command = [python, CHILD, config_path]
        if ranks is not None:  # PyTorch's own launcher; --standalone: a rendezvous on a free local port
            command[1:1] = ["-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}", "--standalone", "--max-restarts=0"]
            progress_path = ranks.path("progress", 0)
        with open(output_path, "wb") as output:
            returncode, timed_out = _run_child(command, env, output, timeout, progress_path, progress, on_progress,
                                               ranks.ask_for_stacks if ranks else None)
        with open(output_path, "rb") as handle:
            tail = handle.read()[-OUTPUT_TAIL_CHARS:].decode("utf-8", "replace")
        if ranks is None:
            stats = _read_stats(stats_path)
            progress.read(progress_path)
            _recover_steps(stats, progress)
        else:
            stats = gather(ranks, [_rank_stats(ranks, rank, steps) for rank in range(nproc_per_node)], script, tail, timed_out)
    data = stats.data
    if data["status"] == "not-started" and "No module named 'torch'" in tail:
        raise ProbeError(f"the interpreter '{python}' cannot import torch, which the probe needs")
    data.update(script=script, args=list(args), requested_device=device, output_tail=tail)
    data.setdefault("budget", steps)  # nothing was written when the run ended before its first step
    if device == "cpu":
        data["device"] = "cpu"
    if timed_out:
        data["status"] = "timeout"
        hang = "".join(f"; {line}" for line in data.get("hang", []))
        data["error"] = {"type": "Timeout", "message": f"the run did not finish within {timeout:g} s (stopped after {stats.steps} steps{hang})"}
    elif data["status"] not in ("completed", "step-budget", "crashed", "no-training"):
        data["status"] = "crashed"
        rank = data.get("failing_rank")
        died = (f"rank {rank}: " if rank is not None else "") + _death_message(data.get("exitcode", returncode), tail)
        data["error"] = {"type": "ChildDied", "message": died, **_fault_location(tail, script)}
    elif data["status"] == "crashed" and data["error"].get("type") == "SystemExit" and _last_line(tail):
        data["error"]["message"] += f" (last output: {_last_line(tail)})"  # argparse's "error: ..." line
    return stats


def _run_child(command: list[str], env: dict[str, str], output, timeout: float, progress_path: str, progress: Progress,
               on_progress: Optional[Callable[[Progress], None]],
               on_timeout: Optional[Callable[[set[int]], None]] = None) -> tuple[Optional[int], bool]:
    """`on_timeout(pids)`: told the processes still running below the child before they are killed."""
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    except OSError as error:
        raise ProbeError(f"cannot run the interpreter '{command[0]}': {error.strerror or error}") from None
    tree = ProcessTree(process.pid)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                returncode, timed_out = process.wait(timeout=max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))), False
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    returncode, timed_out = None, True
                    if on_timeout is not None:
                        tree.watch()
                        on_timeout(set(tree.seen))
                    break
            tree.watch()
            if progress.read(progress_path) and on_progress is not None:
                on_progress(progress)
        if progress.read(progress_path) and on_progress is not None:  # a run shorter than one poll is shown too
            on_progress(progress)
        return returncode, timed_out
    finally:
        tree.end()  # what the script left behind: DataLoader workers, its own children, by descent
        process.wait()


def _recover_steps(stats: Stats, progress: Progress) -> None:
    """Steps the child reported after its last write of the statistics (it died by a signal or a
    segfault): the step count, and the losses it could report, are kept."""
    if progress.steps <= stats.steps:
        return
    stats.data["steps"] = progress.steps
    series = stats.data.setdefault("collectors", {}).setdefault("loss", {"every": 1, "series": {}}).setdefault("series", {})
    for index, points in progress.losses.items():
        known = {step for step, _ in series.get(index, [])}
        series.setdefault(index, []).extend(point for point in points if point[0] not in known)


def _rank_stats(ranks: RankFiles, rank: int, budget: int) -> Stats:
    stats = _read_stats(ranks.path("stats", rank))
    progress = Progress("", budget)
    progress.read(ranks.path("progress", rank))
    _recover_steps(stats, progress)
    return stats


def _read_stats(path: str) -> Stats:
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                return Stats(json.load(handle))
        except (OSError, ValueError):
            pass  # written by os.replace, so only a torn disk could get here; treat as nothing recorded
    return Stats({"status": "not-started", "error": None, "steps": 0, "collectors": {}, "models": {}, "optimizers": [], "seen": {}})


def _last_line(tail: str) -> str:
    """The script's last non-empty line of output before any fatal-error report, shortened."""
    own = tail.split("Fatal Python error:")[0]
    return next((line.strip() for line in reversed(own.splitlines()) if line.strip()), "")[:200]


def _fault_location(tail: str, script: str) -> dict[str, Any]:
    """{"file", "line"} of the script's innermost frame in faulthandler's report of the crashing
    thread (a segfault, an abort), or nothing when the report names no line of the script."""
    if "Fatal Python error:" not in tail:
        return {}
    report = tail.split("Fatal Python error:", 1)[1]
    crashing = report.split("Current thread", 1)[-1].split("\n\n", 1)[0]
    for line in crashing.splitlines():
        frame = FAULT_FRAME.match(line)
        if frame and os.path.abspath(frame.group(1)) == os.path.abspath(script):
            return {"file": script, "line": int(frame.group(2))}
    return {}


def _death_message(returncode: Optional[int], tail: str) -> str:
    last_line = _last_line(tail)
    fatal = re.search(r"Fatal Python error: ([^\n]+)", tail)
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        reason = f"the script's process was killed by {name}"
    else:
        reason = f"the script's process exited with status {returncode} before the probe could report"
    if fatal:
        reason += f" ({fatal.group(1).strip()})"
    return reason + (f" (last output: {last_line})" if last_line else "")
