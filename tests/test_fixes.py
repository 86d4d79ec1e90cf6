"""Fix pairs: fixtures/fix/<CODE>.in.py becomes <CODE>.out.py with `--fix --unsafe-fixes`, and
the fixed file re-parses and re-checks clean for that code."""

from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, run_cli

PAIRS = sorted((ROOT / "fixtures" / "fix").glob("*.in.py"))


@pytest.mark.parametrize("source", PAIRS, ids=[p.name.split(".")[0] for p in PAIRS])
def test_fix_produces_expected_source(source, tmp_path):
    code = source.name.split(".")[0]
    target = tmp_path / "train.py"
    shutil.copy(source, target)
    safe_only = run_cli("check", "--select", code, "--fix", "train.py", cwd=tmp_path)
    assert safe_only.returncode == 1 and target.read_text() == source.read_text()  # these fixes are unsafe
    result = run_cli("check", "--select", code, "--fix", "--unsafe-fixes", "train.py", cwd=tmp_path)
    assert target.read_text() == (ROOT / "fixtures" / "fix" / f"{code}.out.py").read_text()
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    compile(target.read_text(), "train.py", "exec")
