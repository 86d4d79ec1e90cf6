"""Live progress of a probe run on a terminal: one line on stderr, rewritten after each step
(script, step n of N, elapsed time, last loss) and erased when the run ends. Only on a TTY and
with text output, so logs, pipes and `--format json` get nothing extra."""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from mlplint.probe.runner import Progress


class LiveProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._shown = False

    @classmethod
    def for_terminal(cls, output_format: str, stream: Optional[TextIO] = None) -> Optional["LiveProgress"]:
        """A display on `stream` (stderr) when it is a terminal and the output is text, else None."""
        stream = stream or sys.stderr
        isatty = getattr(stream, "isatty", None)
        return cls(stream) if output_format == "text" and isatty is not None and isatty() else None

    def __call__(self, progress: Progress) -> None:
        loss = f", loss {progress.loss:.4g}" if progress.loss is not None else ""
        line = f"mlplint probe: {progress.script}: step {progress.steps} of {progress.budget}, {progress.elapsed:.0f} s{loss}"
        self.stream.write(f"\r\x1b[K{line}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
