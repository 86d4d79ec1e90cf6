"""A run whose files are all cached answers from the cache alone: it imports neither LibCST nor
the rules (most of a cold run's start-up), and says what a fresh check says."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, run_cli

CONFIG = '[tool.mlplint]\nignore = ["ML102"]\n\n[tool.mlplint.extreme-learning-rate]\nadam = [1e-6, 0.01]\n'


def _imports_of(folder, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the CLI under `python -X importtime`: its outcome and the modules it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlplint", *args], cwd=folder,
                          capture_output=True, timeout=300)
    lines = done.stderr.decode().splitlines()
    return done, {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}


def test_a_fully_cached_run_imports_neither_libcst_nor_the_rules(tmp_path):
    (tmp_path / "pyproject.toml").write_text(CONFIG)  # selectors and options: read with the cached catalogue
    (tmp_path / "train.py").write_text((ROOT / "fixtures" / "examples" / "why_is_it_not_learning.py").read_text())
    cached = ("check", "--cache-dir", str(tmp_path / "cache"), "--format", "concise", "train.py")
    fresh = run_cli("check", "--no-cache", "--format", "concise", "train.py", cwd=tmp_path)
    cold, cold_imports = _imports_of(tmp_path, *cached)
    warm, warm_imports = _imports_of(tmp_path, *cached)
    assert fresh.returncode == cold.returncode == warm.returncode == 1 and fresh.stdout
    assert warm.stdout == cold.stdout == fresh.stdout
    assert {"libcst", "mlplint.lint.engine"} <= cold_imports  # the measurement sees them when they load
    heavy = [name for name in warm_imports if name in ("libcst", "mlplint.lint.engine")
             or name.startswith(("libcst.", "mlplint.rules.", "mlplint.lint.facts"))]
    assert heavy == []
