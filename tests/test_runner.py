"""The file driver: worker processes give the same results as one process, and no single file
(a crash of its worker, an internal error, absurd nesting) can cost the others their findings."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from conftest import ROOT, run_cli
from mlplint.lint import runner
from mlplint.lint.engine import parse
from mlplint.lint.runner import Checker, CheckOptions

BAD = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=10.0)\n"
OPTIONS = CheckOptions(None, None, None, False, False)
needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="a patched checker reaches workers only when they are forked")


@pytest.fixture
def pool_for_any_size(monkeypatch):
    """Send even a few small files to the pool, and record that it ran."""
    monkeypatch.setattr(runner, "_PARALLEL_MIN_BYTES", {"fork": 0, "spawn": 0})
    runs = []
    real_run = runner._Pool.run

    def recorded(self, tasks):
        runs.append(len(tasks))
        return real_run(self, tasks)

    monkeypatch.setattr(runner._Pool, "run", recorded)
    return runs


def _outcome(checked):
    return [(c.result.path, c.result.findings, c.result.errors) for c in checked]


def test_pool_gives_the_in_process_results_in_input_order(pool_for_any_size):
    files = [str(p) for p in sorted((ROOT / "fixtures" / "buggy").glob("*.py"))]
    in_process = Checker(OPTIONS, workers=1).check_files(files)
    assert pool_for_any_size == []
    pooled = Checker(OPTIONS, workers=2).check_files(files)
    assert pool_for_any_size == [len(files)]
    assert [path for path, _, _ in _outcome(pooled)] == files
    assert _outcome(pooled) == _outcome(in_process)
    assert sum(len(findings) for _, findings, _ in _outcome(pooled)) >= len(files)


def test_chunks_put_the_largest_files_first_and_cover_every_file():
    tasks = [runner._Task(i, f"f{i}.py", "x = 1\n" * size) for i, size in enumerate([5, 500, 50, 5, 5, 200])]
    chunks = runner._chunks(tasks, workers=2)
    assert [task.index for task in chunks[0]] == [1]
    assert sorted(task.index for chunk in chunks for task in chunk) == list(range(len(tasks)))
    sizes = [len(task.text) for chunk in chunks for task in chunk]
    assert sizes == sorted(sizes, reverse=True)


@needs_fork
def test_a_worker_that_dies_costs_only_the_file_it_was_checking(tmp_path, monkeypatch, pool_for_any_size):
    real_check_text = runner.check_text

    def segfault_on_marker(text, path, options):
        if "# CRASH" in text:
            os.kill(os.getpid(), signal.SIGSEGV)
        return real_check_text(text, path, options)

    monkeypatch.setattr(runner, "check_text", segfault_on_marker)
    paths = []
    for index in range(30):  # equal sizes: chunks of several files, crashers in the middle of theirs
        path = tmp_path / f"script_{index:02d}.py"
        path.write_text(BAD + ("# CRASH\n" if index in (4, 17) else "# fine  \n"))
        paths.append(str(path))
    checked = Checker(OPTIONS, workers=2).check_files(paths)
    assert pool_for_any_size == [30]
    for index, result in enumerate(c.result for c in checked):
        assert result.path == paths[index]
        if index in (4, 17):
            assert result.findings == []
            (error,) = result.errors
            assert "SIGSEGV" in error.message and "\n" not in error.message
        else:
            assert [f.code for f in result.findings] == ["ML201"] and result.errors == []


@pytest.mark.parametrize("workers", [1, 2])
def test_an_internal_error_is_that_files_error(tmp_path, monkeypatch, pool_for_any_size, workers):
    real_check_source = runner.check_source

    def broken_on_marker(text, path, settings):
        if "# BREAK" in text:
            raise KeyError("boom")
        return real_check_source(text, path, settings)

    monkeypatch.setattr(runner, "check_source", broken_on_marker)
    good, broken = tmp_path / "good.py", tmp_path / "broken.py"
    good.write_text(BAD)
    broken.write_text(BAD + "# BREAK\n")
    if workers == 2 and "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the patched check reaches workers only when they are forked")
    first, second = Checker(OPTIONS, workers=workers).check_files([str(broken), str(good)])
    assert [e.message for e in first.result.errors] == ["internal error (KeyError: 'boom'); please report it"]
    assert [f.code for f in second.result.findings] == ["ML201"]


@pytest.mark.parametrize("source, message", [
    ("x = " + "(" * 10_000 + "1" + ")" * 10_000 + "\n", "too many nested parentheses"),  # segfaulted LibCST
    ("y = x" + "[0]" * 100_000 + "\n", "file too deeply nested to parse"),
    ("".join(" " * i + "if x:\n" for i in range(150)) + " " * 150 + "pass\n", "too many levels of indentation"),
])
def test_nesting_that_cpython_rejects_is_a_syntax_error(source, message):
    module, _, error = parse(source, "deep.py")
    assert module is None and message in error.message


def test_valid_deep_code_still_parses():
    module, tree, error = parse("x = " + "(" * 150 + "1" + ")" * 150 + "\n", "deep.py")
    assert error is None and module is not None and tree is not None


def test_absurd_nesting_does_not_take_the_run_down(tmp_path):
    (tmp_path / "deep.py").write_text("x = " + "(" * 10_000 + "1" + ")" * 10_000 + "\n")
    (tmp_path / "bad.py").write_text(BAD)
    result = run_cli("check", "--no-cache", "deep.py", "bad.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "mlplint: error: deep.py: syntax error at line 1" in result.stderr.decode()
    assert "bad.py:2:" in result.stdout.decode() and "ML201" in result.stdout.decode()
