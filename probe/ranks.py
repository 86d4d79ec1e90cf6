"""A torchrun job as one probe run (parent side, torch-free): the files each rank writes, where
each rank was when the job timed out, and the ranks' statistics gathered into one `Stats`.

Every rank records into its own files (`stats.rank<k>.json`, `progress.rank<k>.txt`, and the stack
faulthandler writes on SIGUSR1 into `trace.rank<k>.txt`); nothing passes through the script's
process group. The job's statistics are rank 0's, with a `ranks` list holding each rank's status,
steps, error and the collectors the cross-rank symptoms compare (ML922, ML942-ML944).
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any, Optional

from mlplint.probe.stats import Stats

# Collectors kept for every rank: what the rank-aware detectors compare.
RANK_COLLECTORS = ("batches", "rank_params", "grad_scaler")
FINISHED = ("completed", "step-budget", "no-training")
# Seconds the ranks get to write their stacks before the job is killed.
STACK_WAIT_SECONDS = 0.5
# torchrun's report of the first rank that failed: its rank and exit code (negative: killed by a signal)
_TORCHRUN_ROOT_CAUSE = re.compile(r"Root Cause \(first observed failure\):.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<function>\S+)')


class RankFiles:
    def __init__(self, workdir: str, ranks: int) -> None:
        self.ranks = ranks
        self.templates = {kind: os.path.join(workdir, f"{kind}.rank{{rank}}.{ext}")
                          for kind, ext in (("stats", "json"), ("progress", "txt"), ("trace", "txt"))}

    def path(self, kind: str, rank: int) -> str:
        return self.templates[kind].replace("{rank}", str(rank))

    def config(self) -> dict[str, Any]:
        return {"ranks": self.ranks, "stats_path": self.templates["stats"], "progress_path": self.templates["progress"],
                "trace_path": self.templates["trace"]}

    def pids(self) -> dict[int, int]:
        """rank -> pid, from the first line each rank wrote in its progress file."""
        found = {}
        for rank in range(self.ranks):
            try:
                with open(self.path("progress", rank), encoding="ascii", errors="replace") as handle:
                    first = handle.readline().split()
            except OSError:
                continue
            if first[:2] == ["#", "pid"] and len(first) > 2 and first[2].isdigit():
                found[rank] = int(first[2])
        return found

    def ask_for_stacks(self, alive: set[int]) -> None:
        """SIGUSR1 to every rank still running (`alive`: pids below the probe's child), then a short wait."""
        asked = False
        for pid in self.pids().values():
            if pid in alive:
                try:
                    os.kill(pid, signal.SIGUSR1)
                    asked = True
                except (ProcessLookupError, PermissionError):
                    pass
        if asked:
            time.sleep(STACK_WAIT_SECONDS)

    def where(self, rank: int, script: str) -> Optional[dict[str, Any]]:
        """Where a rank was when asked: its innermost frame, whether that is in torch's own code (a
        rank waiting in a collective or a backward), and its innermost frame in the script."""
        try:
            with open(self.path("trace", rank), encoding="utf-8", errors="replace") as handle:
                main_thread = re.split(r"^(?:Current thread|Thread) 0x", handle.read(), flags=re.M)[-1]
                frames = [m.groupdict() for m in _FRAME.finditer(main_thread)]
        except OSError:
            return None
        if not frames:
            return None
        script_path = os.path.abspath(script)
        in_script = next((f for f in frames if os.path.abspath(f["file"]) == script_path), None)
        in_torch = next((f for f in frames if f"{os.sep}torch{os.sep}" in f["file"]), None)
        innermost = next((f for f in frames if f is in_script or f is in_torch), frames[0])  # not the standard library's
        return {"in_torch": innermost is in_torch, "innermost": innermost, "script": in_script}


def gather(files: RankFiles, stats: list[Stats], script: str, output_tail: str, timed_out: bool) -> Stats:
    """One Stats for the job: rank 0's data with the `ranks` list, and the rank that failed."""
    primary = stats[0]
    data = primary.data
    data["ranks"] = [_rank_record(rank, s) for rank, s in enumerate(stats)]
    data["world_size"] = files.ranks
    data["mapped"] = sorted({change for s in stats for change in s.data.get("mapped", [])})
    data["steps"] = min(s.steps for s in stats)  # the job's steps: every rank took at least these
    crashed = [(s.data["error"].get("time") or 0, rank) for rank, s in enumerate(stats)
               if s.data.get("status") == "crashed" and s.data.get("error")]
    if timed_out:
        data["failing_rank"], data["hang"] = _hung_ranks(files, stats, script)
    elif crashed:
        _, rank = min(crashed)
        data["failing_rank"] = rank
        data["status"] = "crashed"
        data["error"] = dict(stats[rank].data["error"], message=f"rank {rank}: {stats[rank].data['error']['message']}")
    elif any(s.data.get("status") not in FINISHED for s in stats):
        match = _TORCHRUN_ROOT_CAUSE.search(output_tail)
        if match:
            data["failing_rank"], data["exitcode"] = int(match.group(1)), int(match.group(2))
        if data["status"] in FINISHED:  # rank 0 finished, another did not: the runner words it as a death
            data["status"] = "died"
    for record in data["ranks"]:  # a rank that did not end by itself was ended with the job
        if record["status"] in ("running", "not-started"):
            failed = record["rank"] == data.get("failing_rank")
            record["status"] = ("hung" if timed_out else "died") if failed else "stopped"
    return primary


def _rank_record(rank: int, stats: Stats) -> dict[str, Any]:
    data = stats.data
    return {"rank": rank, "status": data.get("status"), "steps": stats.steps, "error": data.get("error"),
            "device": data.get("device"), "collectors": {name: stats.collector(name) for name in RANK_COLLECTORS}}


def _hung_ranks(files: RankFiles, stats: list[Stats], script: str) -> tuple[Optional[int], list[str]]:
    """The rank that hangs (the one whose stack is in its own code while the others wait in torch),
    and one line per rank saying where it was."""
    lines, outside = [], []
    for rank, rank_stats in enumerate(stats):
        where = files.where(rank, script)
        if where is None:
            lines.append(f"rank {rank}: stopped after {rank_stats.steps} steps, no stack (it had ended or never started)")
            continue
        frame, own = where["innermost"], where["script"]
        called = f", called from {os.path.basename(own['file'])}:{own['line']}" if own and own is not frame else ""
        state = "waiting in torch" if where["in_torch"] else "running"
        lines.append(f"rank {rank}: {state} in {frame['function']} ({os.path.basename(frame['file'])}:{frame['line']}{called}) "
                     f"after {rank_stats.steps} steps")
        if not where["in_torch"]:
            outside.append(rank)
    if len(outside) == 1 and len(lines) > 1:
        return outside[0], [f"rank {outside[0]} hangs in its own code while the other ranks wait for it in torch", *lines]
    return None, lines
