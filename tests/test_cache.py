"""The per-file result cache, through the real CLI: hits are served from the cache, anything that
changes the result (content, configuration, command-line selection, the mlplint build) misses,
and a damaged or unwritable cache costs one warning, never a crash or a stale result."""

from __future__ import annotations

import json
import os

import pytest

from conftest import run_cli
from mlplint.lint.cache import build_fingerprint

BAD = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=10.0)\n"
TAMPERED = "TAMPERED MESSAGE FROM THE CACHE"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "train.py").write_text(BAD)
    return tmp_path


def check(project, *args, env=None):
    result = run_cli("check", "--format", "json", *args, cwd=project, env={"NO_COLOR": "1", **(env or {})})
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result, document


def cache_files(directory):
    return sorted(directory.glob("*/*.json"))


def tamper(directory):
    """Rewrite every cached message, so that a result served from the cache can be recognised."""
    (cache_file,) = cache_files(directory)
    document = json.loads(cache_file.read_text())
    for entry in document["entries"].values():
        for finding in entry[2]:
            finding[3] = TAMPERED
    cache_file.write_text(json.dumps(document))


def messages(document):
    return [f["message"] for f in document["findings"]]


def test_cache_at_project_root_is_git_ignored_and_serves_unchanged_files(project):
    first, document = check(project, "train.py")
    assert first.returncode == 1 and "ML201" in [f["code"] for f in document["findings"]]
    cache = project / ".mlplint_cache"
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert len(cache_files(cache)) == 1
    tamper(cache)
    second, document = check(project, "train.py")
    assert messages(document) == [TAMPERED]
    assert second.returncode == 1 and second.stderr == b""


def test_project_root_is_where_the_configuration_is(project):
    (project / "pyproject.toml").write_text("[tool.mlplint]\nignore = ['ML205']\n")
    (project / "src").mkdir()
    check(project / "src", "../train.py")
    assert cache_files(project / ".mlplint_cache") and not (project / "src" / ".mlplint_cache").exists()


def test_changed_file_is_checked_again(project):
    check(project, "train.py")
    tamper(project / ".mlplint_cache")
    (project / "train.py").write_text(BAD.replace("lr=10.0", "lr=20.0"))
    _, document = check(project, "train.py")
    assert TAMPERED not in messages(document) and "lr=20" in messages(document)[0]


@pytest.mark.parametrize("config", [
    "[tool.mlplint]\nignore = ['ML201']\n",
    "[tool.mlplint.extreme-learning-rate]\nadam = [1e-6, 100.0]\n",
    "[tool.mlplint]\nper-file-ignores = { 'train.py' = ['ML201'] }\n",
])
def test_changed_configuration_is_checked_again(project, config):
    check(project, "train.py")
    tamper(project / ".mlplint_cache")
    (project / "pyproject.toml").write_text(config)
    result, document = check(project, "train.py")
    assert document["findings"] == [] and result.returncode == 0


def test_configuration_that_changes_nothing_for_the_file_keeps_its_entry(project):
    check(project, "train.py")
    tamper(project / ".mlplint_cache")
    (project / "pyproject.toml").write_text("[tool.mlplint]\nper-file-ignores = { 'other/*' = ['ML201'] }\n")
    _, document = check(project, "train.py")
    assert messages(document) == [TAMPERED]


def test_command_line_selection_is_part_of_the_key(project):
    check(project, "train.py")
    tamper(project / ".mlplint_cache")
    _, document = check(project, "--ignore", "ML201", "train.py")
    assert document["findings"] == []
    _, document = check(project, "--select", "ML2", "train.py")
    assert messages(document) and TAMPERED not in messages(document)


def test_no_cache_reads_and_writes_nothing(project):
    check(project, "--no-cache", "train.py")
    check(project, "train.py", env={"MLPLINT_NO_CACHE": "1"})
    assert not (project / ".mlplint_cache").exists()
    check(project, "train.py")
    tamper(project / ".mlplint_cache")
    _, document = check(project, "--no-cache", "train.py")
    assert TAMPERED not in messages(document)


def test_cache_dir_option_and_environment_variable(project, tmp_path_factory):
    chosen, from_env = tmp_path_factory.mktemp("chosen"), tmp_path_factory.mktemp("env")
    check(project, "--cache-dir", str(chosen / "c"), "train.py")
    check(project, "train.py", env={"MLPLINT_CACHE_DIR": str(from_env / "c")})
    assert cache_files(chosen / "c") and cache_files(from_env / "c")
    assert (chosen / "c" / ".gitignore").exists()
    assert not (project / ".mlplint_cache").exists()


def test_stdin_is_never_cached(project):
    run_cli("check", "-", "--stdin-filename", "train.py", cwd=project, stdin=BAD.encode())
    assert not (project / ".mlplint_cache").exists()


@pytest.mark.parametrize("damage", [
    b"\x00\xff not json at all",
    b'{"entries": []}',
    b'{"entries": {"PATH": ["digest", "settings"]}}',
    b'{"entries": {"PATH": [DIGEST, SETTINGS, [["ML201", "n", "warning", "m", "1", 1, 1, 2, null]], []]}}',
    b'{"entries": {"PATH": [DIGEST, SETTINGS, [["ML201", "n", "loud", "m", 1, 1, 1, 2, null]], []]}}',
])
def test_damaged_cache_is_ignored_with_one_warning(project, damage):
    (project / "second.py").write_text(BAD)
    _, clean = check(project, "--no-cache", "train.py", "second.py")
    check(project, "train.py", "second.py")
    (cache_file,) = cache_files(project / ".mlplint_cache")
    entry = json.loads(cache_file.read_text())["entries"][str(project / "train.py")]
    damage = (damage.replace(b"PATH", str(project / "train.py").encode())
              .replace(b"DIGEST", json.dumps(entry[0]).encode()).replace(b"SETTINGS", json.dumps(entry[1]).encode()))
    cache_file.write_bytes(damage)
    result, document = check(project, "train.py", "second.py")
    warnings = result.stderr.decode().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("mlplint: warning: ignoring the") and "cache" in warnings[0]
    assert document == clean and result.returncode == 1
    again, document = check(project, "train.py", "second.py")
    assert again.stderr == b"" and document == clean  # the damaged cache was replaced


def test_unwritable_cache_is_ignored_with_one_warning(project):
    (project / "second.py").write_text(BAD)
    (project / "a_file").write_text("not a folder")
    _, clean = check(project, "--no-cache", "train.py", "second.py")
    result, document = check(project, "--cache-dir", str(project / "a_file" / "cache"), "train.py", "second.py")
    warnings = result.stderr.decode().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("mlplint: warning: cannot write the cache")
    assert document == clean and result.returncode == 1


def test_fix_is_applied_to_a_file_whose_result_is_cached(project):
    source = "import torch\nopt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)\n"
    path = project / "train.py"
    path.write_text(source)
    check(project, "train.py")
    run_cli("check", "--fix", "--unsafe-fixes", "train.py", cwd=project)
    assert "optim.AdamW(" in path.read_text()
    result, document = check(project, "train.py")  # the fixed content is cached under its own digest
    assert document["findings"] == [] and result.returncode == 0


def test_build_fingerprint_follows_every_source_file(tmp_path):
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    module = package / "sub" / "rule.py"
    module.write_text("A = 1\n")
    before = build_fingerprint([str(package), str(package / "sub")])
    assert build_fingerprint([str(package)]) == before
    module.write_text("A = 22\n")
    assert build_fingerprint([str(package)]) != before
    changed = build_fingerprint([str(package)])
    os.utime(module, ns=(1, 1))
    assert build_fingerprint([str(package)]) != changed


def test_cached_results_equal_fresh_ones_and_nothing_is_checked_twice(tmp_path, monkeypatch):
    from conftest import ROOT
    from mlplint.lint import runner
    from mlplint.lint.cache import ResultCache

    files = [str(p) for p in sorted((ROOT / "fixtures" / "buggy").glob("*.py"))]
    options = runner.CheckOptions(None, None, None, False, False)
    checked_texts = []
    real_check_source = runner.check_source

    def counted(text, path, settings):
        checked_texts.append(path)
        return real_check_source(text, path, settings)

    monkeypatch.setattr(runner, "check_source", counted)
    warnings = []
    outcome = lambda results: [(c.result.path, c.result.findings, c.result.errors) for c in results]
    cold = runner.Checker(options, ResultCache(tmp_path / "cache", "build", warnings.append), workers=1).check_files(files)
    assert sorted(checked_texts) == sorted(files)
    assert any(f.fix for c in cold for f in c.result.findings)  # fixes make the round trip too
    checked_texts.clear()
    warm = runner.Checker(options, ResultCache(tmp_path / "cache", "build", warnings.append), workers=1).check_files(files)
    assert checked_texts == [] and outcome(warm) == outcome(cold) and warnings == []
    other_build = runner.Checker(options, ResultCache(tmp_path / "cache", "rebuilt", warnings.append), workers=1)
    other_build.check_files(files[:1])
    assert checked_texts == files[:1]


def test_notebooks_and_file_warnings_are_served_from_the_cache(tmp_path, monkeypatch):
    """A notebook's findings keep their cells and excerpts, and a file's own warnings (empty file,
    unknown code in a noqa) come back with the cached result, under the path as spelled now."""
    from notebook_helpers import IMPORTS, LOOP, MODEL, code, markdown, notebook_text
    from mlplint.lint import runner
    from mlplint.lint.cache import ResultCache

    (tmp_path / "nb.ipynb").write_text(notebook_text(markdown("# t"), code(IMPORTS), code(MODEL), code(LOOP)))
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "noqa.py").write_text("x = 1  # noqa: ML999\n")
    files = [str(tmp_path / name) for name in ("nb.ipynb", "empty.py", "noqa.py")]
    options = runner.CheckOptions(None, None, None, False, False)
    checked_texts = []
    real_check_source = runner.check_source
    monkeypatch.setattr(runner, "check_source", lambda text, path, settings: checked_texts.append(path) or real_check_source(text, path, settings))
    seen = lambda results: [(c.result.findings, c.result.errors, c.warnings, c.sources) for c in results]
    cold = runner.Checker(options, ResultCache(tmp_path / "cache", "build", print), workers=1).check_files(files)
    assert len(checked_texts) == 3
    assert [f.cell for f in cold[0].result.findings] and all(f.cell is not None for f in cold[0].result.findings)
    assert any("empty file" in w for w in cold[1].warnings) and any("ML999" in w for w in cold[2].warnings)
    checked_texts.clear()
    warm = runner.Checker(options, ResultCache(tmp_path / "cache", "build", print), workers=1).check_files(files)
    assert checked_texts == [] and seen(warm) == seen(cold)
    monkeypatch.chdir(tmp_path)
    relative = runner.Checker(options, ResultCache(tmp_path / "cache", "build", print), workers=1).check_files(["empty.py"])
    assert checked_texts == [] and relative[0].warnings == ["empty.py: empty file, nothing to check"]


FIXABLE = """import torch
import torch.nn as nn
from data import train_loader, val_loader

model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
criterion = nn.CrossEntropyLoss()
for epoch in range(3):
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
    for x, y in val_loader:
        val_loss = criterion(model(x), y).item()
"""  # ML502 has a safe fix, ML203 an unsafe one


def _fixable_file(directory, name):
    from notebook_helpers import code, notebook_text

    (directory / name).write_text(notebook_text(code(FIXABLE)) if name.endswith(".ipynb") else FIXABLE)


@pytest.mark.parametrize("name", ["train.py", "nb.ipynb"])
@pytest.mark.parametrize("mode", [
    ["--diff"], ["--diff", "--unsafe-fixes"], ["--fix"], ["--fix", "--unsafe-fixes"], ["--fix", "--diff"],
    ["--stdin-filename", "NAME", "-"],
], ids=lambda mode: " ".join(mode))
def test_any_mode_then_a_plain_check_says_what_no_cache_says(tmp_path, monkeypatch, mode, name):
    """A mode that previews fixed text (--diff) must not cache that text's result as the file's;
    --fix caches the result of what it wrote."""
    from conftest import invoke

    monkeypatch.chdir(tmp_path)
    _fixable_file(tmp_path, name)
    invoke("check", name)  # an entry for the file as written
    arguments = [name if argument == "NAME" else argument for argument in mode]
    invoke("check", *arguments, *([] if "-" in arguments else [name]), input=FIXABLE)
    cached, fresh = invoke("check", "--format", "json", name), invoke("check", "--no-cache", "--format", "json", name)
    assert (cached.exit_code, cached.stdout) == (fresh.exit_code, fresh.stdout)


@pytest.mark.slow
def test_probe_then_a_plain_check_says_what_no_cache_says(tmp_path, monkeypatch):
    from conftest import invoke

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(BAD.replace("model.parameters()", "[torch.zeros(1, requires_grad=True)]"))
    probed = invoke("check", "--probe", "--format", "json", "train.py")
    assert json.loads(probed.stdout)["findings"], probed.output
    cached, fresh = invoke("check", "--format", "json", "train.py"), invoke("check", "--no-cache", "--format", "json", "train.py")
    assert (cached.exit_code, cached.stdout) == (fresh.exit_code, fresh.stdout)


def test_a_fifo_in_place_of_the_cache_file_is_damage_not_a_wait(project):
    check(project, "train.py")
    (cache_file,) = cache_files(project / ".mlplint_cache")
    cache_file.unlink()
    os.mkfifo(cache_file)
    result, document = check(project, "train.py")  # run_cli's timeout fails the test if this blocks
    assert result.returncode == 1 and messages(document)
    assert result.stderr.decode().count("not a regular file") == 1
    assert cache_file.is_file()  # replaced by a sound cache
    again, _ = check(project, "train.py")
    assert again.stderr == b""
