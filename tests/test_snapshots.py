"""The real CLI's text and JSON output on each fixture, compared with reviewed snapshots
(rewrite them with `pytest --update-snapshots` and review the diff)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, invoke

FIXTURES = sorted((ROOT / "fixtures" / "lint").glob("ML*.py"))
SNAPSHOTS = ROOT / "tests" / "snapshots"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
@pytest.mark.parametrize("output_format", ["text", "json"])
def test_cli_output_matches_snapshot(fixture: Path, output_format: str, update_snapshots: bool, monkeypatch):
    monkeypatch.chdir(ROOT)
    relative = fixture.relative_to(ROOT).as_posix()
    result = invoke("check", "--format", output_format, "--select", fixture.stem, relative)
    assert result.exit_code in (0, 1), result.stderr
    output = result.stdout
    snapshot = SNAPSHOTS / f"{fixture.stem}.{'txt' if output_format == 'text' else 'json'}"
    if update_snapshots or not snapshot.exists():
        snapshot.write_text(output)
        if not update_snapshots:
            pytest.fail(f"snapshot {snapshot.name} was missing and has been written; review and commit it")
    assert output == snapshot.read_text()


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_fixture_has_errors_ok_and_silent_sections(fixture: Path):
    text = fixture.read_text()
    for heading in ("# Errors", "# OK", "# Cannot tell: stay silent"):
        assert heading in text, f"{fixture.name} lacks a '{heading}' section"
    from lint_helpers import lint

    findings = lint(text, select=[fixture.stem], path=fixture.name).findings
    lines = text.splitlines()
    errors_end = lines.index("# OK") + 1
    assert findings, f"{fixture.name}: nothing fires in the Errors section"
    assert all(f.line < errors_end for f in findings), (
        f"{fixture.name}: findings outside the Errors section: {[(f.line, f.message) for f in findings if f.line >= errors_end]}"
    )


NOTEBOOKS = sorted((ROOT / "fixtures" / "examples").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
@pytest.mark.parametrize("output_format", ["text", "json"])
def test_notebook_output_matches_snapshot(notebook: Path, output_format: str, update_snapshots: bool, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("check", "--format", output_format, notebook.relative_to(ROOT).as_posix())
    assert result.exit_code == 1, result.stderr
    snapshot = SNAPSHOTS / f"{notebook.stem}.ipynb.{'txt' if output_format == 'text' else 'json'}"
    if update_snapshots or not snapshot.exists():
        snapshot.write_text(result.stdout)
        if not update_snapshots:
            pytest.fail(f"snapshot {snapshot.name} was missing and has been written; review and commit it")
    assert result.stdout == snapshot.read_text()
