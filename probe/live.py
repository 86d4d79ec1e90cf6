"""Live progress of a probe run on a terminal: one line on stderr, rewritten after each step
(script or trial, step n of N, elapsed time, last loss) or each epoch of the scikit-learn fit,
and erased when the run ends; before the trials, one line that stays says how many runs follow
and how long they should take. Only on a TTY and with text output, so logs, pipes and
`--format json` get nothing extra."""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from mlplint.probe.runner import Progress


class LiveProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.label: Optional[str] = None  # what is running, when not the script as written ("trial 2/4: ML201 lr=0.001")
        self._shown = False

    @classmethod
    def for_terminal(cls, output_format: str, stream: Optional[TextIO] = None) -> Optional["LiveProgress"]:
        """A display on `stream` (stderr) when it is a terminal and the output is text, else None."""
        stream = stream or sys.stderr
        isatty = getattr(stream, "isatty", None)
        return cls(stream) if output_format == "text" and isatty is not None and isatty() else None

    def __call__(self, progress: Progress) -> None:
        loss = f", loss {progress.loss:.4g}" if progress.loss is not None else ""
        self._show(f"{self.label or progress.script}: step {progress.steps} of {progress.budget}, {progress.elapsed:.0f} s{loss}")

    def fitting(self, estimator: str, rows: int, epochs: int, seconds: float) -> None:
        self._show(f"baseline: fitting scikit-learn's {estimator} on {rows} rows, epoch {epochs}, {seconds:.0f} s")

    def announce(self, trials: int, run_seconds: float) -> None:
        """Say up front what the trials will take: one run each as long as the run as written,
        and one more for the combined trial where two fixes or more can be combined."""
        runs = f"{trials} trial{'s' if trials != 1 else ''}" + (" (and a combined one)" if trials > 1 else "")
        total = run_seconds * (trials + (trials > 1))
        self.close()
        self.stream.write(f"mlplint probe: {runs} follow, each about as long as the run ({run_seconds:.0f} s): "
                          f"up to {total:.0f} s in all\n")
        self.stream.flush()

    def _show(self, line: str) -> None:
        self.stream.write(f"\r\x1b[Kmlplint probe: {line}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
