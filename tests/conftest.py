from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true", help="rewrite snapshot files from current output")


@pytest.fixture
def update_snapshots(request) -> bool:
    return request.config.getoption("--update-snapshots")


def run_cli(*args: str, cwd=None, stdin: bytes | None = None, env=None) -> subprocess.CompletedProcess:
    """Run the real `mlplint` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "mlplint", *args],
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture
def cli():
    return run_cli


def invoke(*args: str, input=None, env=None):
    """Run `mlplint ARGS` in this process (fast; stdout and stderr kept apart)."""
    from click.testing import CliRunner

    from mlplint.cli import cli

    return CliRunner().invoke(cli, list(args), input=input, env={"NO_COLOR": "1", **(env or {})})
