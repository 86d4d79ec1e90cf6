"""The benchmark's corpus labels are well formed: every extra symptom a fixture says its run shows
is a known symptom other than its own, and every held-out script names real static rules that the
static checker reports on it (so the held-out share is measured on findings that exist)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from mlplint.lint.engine import check_source
from mlplint.lint.config import ConfigResolver
from mlplint.probe.symptoms import SYMPTOMS

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("probe_confirmation", ROOT / "benchmarks" / "probe_confirmation.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)
HELD_OUT = sorted((ROOT / "fixtures" / "probe_heldout").glob("*.py"))


def test_extra_symptoms_are_known_and_not_the_fixtures_own():
    labelled = 0
    for code, symptom in SYMPTOMS.items():
        path = ROOT / "fixtures" / "probe" / f"{symptom.name.replace('-', '_')}.py"
        extra = benchmark.also_shows(path)
        assert extra <= set(SYMPTOMS) and code not in extra, (path.name, extra)
        labelled += bool(extra)
    assert labelled >= 10


def test_also_shows_reads_only_its_own_lines(tmp_path):
    script = tmp_path / "s.py"
    script.write_text('"""ML902 in the docstring is not a label."""\n# also shows: ML922 (why), ML911 (ratio 2.8)\nx = 1  # ML905\n')
    assert benchmark.also_shows(script) == {"ML922", "ML911"}


@pytest.mark.parametrize("path", HELD_OUT, ids=lambda p: p.name)
def test_held_out_scripts_name_findings_the_checker_reports(path):
    expected = set(re.findall(r"ML\d{3}", path.read_text().splitlines()[0]))
    assert expected
    settings = ConfigResolver(None).for_path(str(path))
    found = {f.code for f in check_source(path.read_text(), str(path), settings).findings}
    assert expected <= found, (expected, found)
