"""Real users' threads (fixtures/threads/): a script a user posted, reduced to run here, and the
cause an answer named. Each header says, written from the thread before the tool was run:

    # Expected: ML406            the catalogue codes that name the answer's cause
    # Expected-none: <reason>    the cause is not in the catalogue
    # Also: ML502 (<why>)        other findings, true on this script (any other finding fails)
    # Check-miss: <reason>       check cannot name the cause (the test is an expected failure)
    # Probe: ML915               the runtime symptom by which the probe names it (slow test)

`check` must name the expected cause, report nothing else than the declared extra findings,
and the probe must show the declared symptom.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplint.lint.config import ConfigResolver
from mlplint.lint.engine import check_source

ROOT = Path(__file__).resolve().parents[1]
THREADS = sorted((ROOT / "fixtures" / "threads").glob("*.py"))


@dataclass(frozen=True)
class Thread:
    path: Path
    url: str
    expected: frozenset[str]
    also: frozenset[str]
    check_miss: str
    probe: frozenset[str]


def read_thread(path: Path) -> Thread:
    header = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        header.setdefault(key, value)
    codes = lambda key: frozenset(re.findall(r"ML\d{3}", header.get(key, "")))  # noqa: E731
    return Thread(path, header.get("Thread", ""), codes("Expected"), codes("Also"), header.get("Check-miss", ""),
                  codes("Probe"))


def found_by_check(path: Path) -> set[str]:
    settings = ConfigResolver(None).for_path(str(path))
    result = check_source(path.read_text(), str(path), settings)
    assert not result.errors, result.errors
    return {f.code for f in result.findings}


def test_the_set_holds_enough_threads_with_headers():
    threads = [read_thread(path) for path in THREADS]
    assert len(threads) >= 25
    assert len({t.url for t in threads}) == len(threads), "one script per thread"
    for thread in threads:
        assert thread.url.startswith("https://"), thread.path.name
        none = "Expected-none" in thread.path.read_text().split("\nimport", 1)[0]
        assert bool(thread.expected) != none, f"{thread.path.name}: Expected or Expected-none"


@pytest.mark.parametrize("path", THREADS, ids=lambda p: p.stem)
def test_check_names_the_cause_and_nothing_false(path, request):
    thread = read_thread(path)
    found = found_by_check(path)
    unexpected = found - thread.expected - thread.also
    assert not unexpected, f"findings the thread does not account for: {sorted(unexpected)}"
    if thread.check_miss:
        request.applymarker(pytest.mark.xfail(reason=thread.check_miss, strict=True))
    assert thread.expected <= found, f"missed {sorted(thread.expected - found)}"


PROBED = [path for path in THREADS if read_thread(path).probe]


def probe_document(path: Path) -> dict:
    """The probe's JSON report on a thread's script (one torch thread: two probes share the cores)."""
    run = subprocess.run([sys.executable, "-m", "mlplint", "probe", "--device", "cpu", "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.stdout, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def probe_documents() -> dict[Path, dict]:
    """Every probed thread's report, two runs at a time."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(PROBED, pool.map(probe_document, PROBED)))


@pytest.mark.slow
@pytest.mark.parametrize("path", PROBED, ids=lambda p: p.stem)
def test_probe_shows_the_declared_symptom(path, probe_documents):
    thread = read_thread(path)
    document = probe_documents[path]
    shown = {s["code"] for s in document["symptoms"]}
    shown |= {code for f in document["findings"] if (f.get("runtime") or {}).get("status") == "confirmed"
              for code in f["runtime"]["symptoms"]}
    assert thread.probe <= shown, (document["status"], sorted(shown))
