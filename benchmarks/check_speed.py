"""Time `mlplint check` on one ~300-line training script and on a folder of 200 scripts.

Run: python benchmarks/check_speed.py [--repeat N]
Prints the median wall-clock seconds of the real CLI (a fresh process each time, as in
pre-commit or CI), so interpreter start-up and imports are included.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "fixtures").rglob("*.py"))


def three_hundred_line_script() -> str:
    """Realistic code, concatenated from the fixtures until it reaches 300 lines."""
    lines: list[str] = []
    for source in sorted((ROOT / "fixtures" / "clean").glob("*.py")):
        lines += [line for line in source.read_text().splitlines() if "__future__" not in line]
        if len(lines) >= 300:
            break
    while True:  # end on a complete statement
        text = "\n".join(lines[:300]) + "\n"
        try:
            compile(text, "train_300_lines.py", "exec")
            return text
        except SyntaxError:
            lines = lines[:299] + lines[300:]


def timed(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    cli = [sys.executable, "-m", "mlplint", "check", "--exit-zero"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "scripts"
        folder.mkdir()
        single = Path(scratch) / "train_300_lines.py"
        single.write_text(three_hundred_line_script())
        check = subprocess.run(cli + [str(single)], capture_output=True, text=True)
        assert "error:" not in check.stderr, check.stderr
        for index in range(200):
            shutil.copy(SOURCES[index % len(SOURCES)], folder / f"script_{index:03d}.py")
        total_lines = sum(len(p.read_text().splitlines()) for p in folder.iterdir())
        startup = timed([sys.executable, "-m", "mlplint", "--version"], options.repeat)
        one = timed(cli + [str(single)], options.repeat)
        many = timed(cli + [str(folder)], max(1, options.repeat // 2))
    print(f"CLI start-up (mlplint --version):        {startup:.3f} s median")
    print(f"one 300-line script:                     {one:.3f} s median")
    print(f"folder of 200 scripts ({total_lines} lines): {many:.3f} s median")


if __name__ == "__main__":
    main()
