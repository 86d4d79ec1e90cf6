"""How well the probe tests static findings and sees symptoms, on the fixture corpus.

- Confirmed share: `mlplint check --probe` on fixtures/buggy/ (each script's first line names its
  true findings, `# expect: ML101, ...`); the share of those true findings that end `confirmed`,
  with the status of each.
- Runtime recall and precision: `mlplint probe` on fixtures/probe/<symptom>.py (each must show its
  own symptom), the near misses in fixtures/probe/healthy_variants/ and healthy.py (which must show
  none); recall = expected symptoms seen / expected, precision = reported symptoms that were
  expected / reported. A fixture may name further symptoms its run truly shows in a
  `# also shows: ML922 (why)` line (checked in the script, not taken from the probe's output).
- Findings of scripts that cannot run on this machine (a module not installed, a dataset
  download with no network, before the first optimizer step) are counted apart: the share is
  given over all true findings and over those of scripts that ran.

fixtures/probe_heldout/ holds buggy scripts of other styles (trainer classes, functions, DataLoader
loops, synthetic images, tabular) that no detector was tuned on: `--corpus fixtures/probe_heldout`;
the `tester_*` ones were written by an independent tester, one classic mistake each (on its first
pass 18 of their 19 static findings ended `confirmed`; the one left was a false ML101, since fixed,
and one mistake, ML106 on a dataset's attributes, had no static finding, since fixed).

Usage: python benchmarks/probe_confirmation.py [--jobs N] [--corpus DIR]   (runs the scripts: minutes)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def mlplint(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "mlplint", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    return json.loads(result.stdout) if result.stdout.strip() else {}


def confirmed_share(jobs: int, corpus: Path) -> None:
    scripts = sorted(corpus.glob("*.py"))
    with ThreadPoolExecutor(jobs) as pool:
        documents = list(pool.map(lambda path: mlplint("check", "--probe", "--format", "json", "--exit-zero", str(path)), scripts))
    total = confirmed = unrunnable = 0
    by_status: dict[str, int] = {}
    for path, document in zip(scripts, documents):
        expected = set(re.findall(r"ML\d{3}", path.read_text().splitlines()[0]))
        for finding in document.get("findings", []):
            if finding["code"] not in expected or finding["code"].startswith("ML9"):
                continue
            status = (finding.get("runtime") or {}).get("status", "none")
            if status == "inconclusive" and not runnable_here(path):
                status = "cannot-run-here"
                unrunnable += 1
            by_status[status] = by_status.get(status, 0) + 1
            total += 1
            confirmed += status == "confirmed"
            symptoms = ",".join((finding.get("runtime") or {}).get("symptoms", []))
            print(f"{path.name:45s} {finding['code']} {status:14s} {symptoms:12s} {(finding.get('runtime') or {}).get('evidence', '')[:90]}")
    ran = total - unrunnable
    print(f"\nconfirmed share: {confirmed}/{total} = {confirmed / max(1, total):.0%} of true static findings; "
          f"{confirmed}/{ran} = {confirmed / max(1, ran):.0%} of those in scripts that ran here; by status {by_status}\n")


def runnable_here(path: Path) -> bool:
    """Whether the script gets to its first optimizer step on this machine: not when it stops
    first for a module that is not installed or a download with no network."""
    document = mlplint("probe", "--format", "json", str(path))
    error = document.get("error") or ""
    return not (document.get("steps") == 0 and re.match(r"(ModuleNotFoundError|URLError|ConnectionError|HTTPError)", error))


def also_shows(path: Path) -> set[str]:
    """Symptoms a fixture says its run truly shows besides its own (`# also shows: ML922 (why)`)."""
    return {code for line in path.read_text().splitlines() if line.startswith("# also shows:") for code in re.findall(r"ML9\d\d", line)}


def runtime_scores(jobs: int) -> None:
    from mlplint.probe.symptoms import SYMPTOMS

    fixtures = ROOT / "fixtures" / "probe"
    cases = {fixtures / f"{s.name.replace('-', '_')}.py": {code} for code, s in SYMPTOMS.items()}
    cases = {path: codes | also_shows(path) for path, codes in cases.items()}
    cases.update({path: set() for path in (fixtures / "healthy_variants").glob("*.py")})
    cases[fixtures / "healthy.py"] = set()
    paths = sorted(cases)
    with ThreadPoolExecutor(jobs) as pool:
        documents = list(pool.map(lambda path: mlplint("probe", "--format", "json", str(path)), paths))
    expected_total = seen_expected = reported = reported_expected = 0
    for path, document in zip(paths, documents):
        got = {s["code"] for s in document.get("symptoms", [])}
        expected = cases[path]
        expected_total += len(expected)
        seen_expected += len(expected & got)
        reported += len(got)
        reported_expected += len(got & expected)
        if got != expected:
            print(f"{path.relative_to(fixtures)}: expected {sorted(expected)}, got {sorted(got)}")
    print(f"runtime recall {seen_expected}/{expected_total} = {seen_expected / max(1, expected_total):.2f}, "
          f"precision {reported_expected}/{reported} = {reported_expected / max(1, reported):.2f} over {len(paths)} scripts")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", choices=("confirmed", "runtime"), help="run one of the two measurements")
    parser.add_argument("--corpus", type=Path, default=ROOT / "fixtures" / "buggy", help="scripts for the confirmed share")
    options = parser.parse_args()
    if options.only != "runtime":
        confirmed_share(options.jobs, options.corpus.resolve())
    if options.only != "confirmed":
        runtime_scores(options.jobs)
