"""The processes a probe run leaves behind, found by descent (parent links in /proc), not by
process group alone: a child the script starts in a new session (`start_new_session=True`) has
left the group, and one that ignores SIGTERM outlives a polite stop. While a run is watched, this
process is a child subreaper (Linux), so descendants orphaned by the script's exit are re-parented
here instead of to init and can still be found. Torch-free."""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Optional

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
_PROC = "/proc"
_ACTIVE_ROOTS: set[int] = set()  # children being watched now (several runs may share this process)
_subreaper_users = 0  # watched runs that need this process to stay a subreaper


def _stat(pid: int) -> Optional[tuple[int, int]]:
    """(parent pid, start time) of a live process, None when it is gone or unreadable."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":  # a zombie holds nothing; it only waits to be reaped
        return None
    return int(fields[1]), int(fields[19])


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every live process."""
    table = {}
    try:
        names = os.listdir(_PROC)
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            found = _stat(int(name))
            if found is not None:
                table[int(name)] = found
    return table


def descendants(roots: set[int], table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """pid -> start time of every process below `roots` in the table."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, pending = {}, list(roots)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found[child] = table[child][1]
                pending.append(child)
    return found


class ProcessTree:
    """The descendants of one child process, remembered as they are seen, and ended at the end."""

    def __init__(self, root: int) -> None:
        global _subreaper_users
        self.root = root
        self.seen: dict[int, int] = {}  # pid -> start time, so that a reused pid is never killed
        found = _stat(root)
        self.started = found[1] if found else 0
        _ACTIVE_ROOTS.add(root)
        if _subreaper_users == 0:
            _set_subreaper(True)
        _subreaper_users += 1

    def watch(self) -> None:
        self.seen.update(descendants({self.root}, process_table()))

    def end(self) -> None:
        """SIGKILL the root's process group and every descendant seen or still findable (also
        those re-parented to this process), then reap the ones that are this process's children."""
        try:
            os.killpg(self.root, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        global _subreaper_users
        table = process_table()
        # re-parented here: seen below the root, or started since it and not another run's child
        orphans = {pid: start for pid, (parent, start) in table.items() if parent == os.getpid() and pid not in _ACTIVE_ROOTS
                   and (pid in self.seen or start >= self.started)}
        targets = {**{pid: start for pid, start in self.seen.items() if pid in table and table[pid][1] == start},
                   **descendants({self.root}, table), **orphans}
        targets.update(descendants(set(targets), table))
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in targets:
            try:
                os.waitpid(pid, 0)
            except (ChildProcessError, OSError):
                pass  # not our child: init (or its own parent) reaps it
        _ACTIVE_ROOTS.discard(self.root)
        _subreaper_users -= 1
        if _subreaper_users == 0:
            _set_subreaper(False)


_was_subreaper: Optional[bool] = None


def _set_subreaper(on: bool) -> None:
    """Make this process a child subreaper, or go back to what it was (Linux only; elsewhere
    nothing happens)."""
    global _was_subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if on:
            current = ctypes.c_int(0)
            _was_subreaper = libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(current), 0, 0, 0) == 0 and bool(current.value)
        if on or not _was_subreaper:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
