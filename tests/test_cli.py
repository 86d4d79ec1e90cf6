"""The `mlplint check` command line, run for real in a subprocess."""

from __future__ import annotations

import json
import os
import sys

import pytest

from conftest import ROOT, run_cli

BAD = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=10.0)\n"
GOOD = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"


@pytest.fixture
def project(tmp_path):
    """A folder with no config above it that could leak in from the repo."""
    return tmp_path


def write(directory, name, text, mode="w"):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_clean_file_exits_zero(project):
    write(project, "good.py", GOOD)
    result = run_cli("check", "good.py", cwd=project)
    assert result.returncode == 0
    assert "All checks passed!" in result.stdout.decode()


def test_finding_exits_one_with_ruff_style_line(project):
    write(project, "bad.py", BAD)
    result = run_cli("check", "bad.py", cwd=project, env={"NO_COLOR": "1"})
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("bad.py:2:47: ML201 Adam lr=10")
    assert lines[-1] == "Found 1 finding (1 warning)."


def test_exit_zero_and_fail_on(project):
    write(project, "bad.py", BAD)
    assert run_cli("check", "--exit-zero", "bad.py", cwd=project).returncode == 0
    assert run_cli("check", "--fail-on", "error", "bad.py", cwd=project).returncode == 0
    assert run_cli("check", "--fail-on", "info", "bad.py", cwd=project).returncode == 1


def test_a_rule_reports_a_milder_case_below_its_own_severity(project):
    # ML502 is a warning, but a one-off pass over three samples is only info: it fails no build by default
    write(project, "small.py", "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
          "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)\nfor x, y in loader:\n    optimizer.zero_grad()\n"
          "    nn.functional.cross_entropy(model(x), y).backward()\n    optimizer.step()\nprint(model(torch.randn(3, 4)))\n")
    result = run_cli("check", "--format", "json", "small.py", cwd=project)
    assert result.returncode == 0
    (finding,) = json.loads(result.stdout)["findings"]
    assert (finding["code"], finding["severity"]) == ("ML502", "info") and "3×4 input" in finding["message"]


def test_json_schema(project):
    write(project, "bad.py", BAD)
    result = run_cli("check", "--format", "json", "bad.py", cwd=project)
    document = json.loads(result.stdout)
    assert document["version"] == 1 and document["errors"] == []
    (finding,) = document["findings"]
    assert set(finding) == {"code", "name", "severity", "path", "line", "column", "end_line", "end_column",
                            "message", "fix", "runtime"}
    assert (finding["code"], finding["name"], finding["severity"]) == ("ML201", "extreme-learning-rate", "warning")
    assert (finding["line"], finding["column"], finding["end_line"], finding["end_column"]) == (2, 47, 2, 51)
    assert finding["fix"] is None and finding["runtime"] is None


def test_sarif_and_github_formats(project):
    write(project, "bad.py", BAD)
    sarif = json.loads(run_cli("check", "--format", "sarif", "bad.py", cwd=project).stdout)
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "ML201" and result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
    github = run_cli("check", "--format", "github", "bad.py", cwd=project).stdout.decode()
    assert github.startswith("::warning title=mlplint (ML201),file=bad.py,line=2,col=47")


def test_select_and_ignore_by_code_and_prefix(project):
    write(project, "bad.py", BAD + "for x in data:\n    loss.backward()\n    opt.step()\n")
    codes = lambda *args: [f["code"] for f in json.loads(run_cli("check", "--format", "json", *args, "bad.py", cwd=project).stdout)["findings"]]
    assert codes() == ["ML201", "ML202"]
    assert codes("--select", "ML202") == ["ML202"]
    assert codes("--ignore", "ML2") == []
    assert codes("--select", "ML2", "--ignore", "ML201") == ["ML202"]


def test_unknown_selector_is_a_usage_error(project):
    write(project, "good.py", GOOD)
    result = run_cli("check", "--select", "ML999", "good.py", cwd=project)
    assert result.returncode == 2
    assert "ML999" in result.stderr.decode()


def test_directory_recursion_skips_venvs_and_caches(project):
    write(project, "src/train.py", BAD)
    write(project, "src/notes.txt", BAD)
    write(project, ".venv/lib/bad.py", BAD)
    write(project, "myenv/pyvenv.cfg", "")
    write(project, "myenv/lib/bad.py", BAD)
    write(project, "build/bad.py", BAD)
    write(project, "pkg/__pycache__/bad.py", BAD)
    write(project, ".git/bad.py", BAD)
    document = json.loads(run_cli("check", "--format", "json", ".", cwd=project).stdout)
    assert [f["path"] for f in document["findings"]] == [os.path.join(".", "src", "train.py")]


def test_stdin_with_filename(project):
    result = run_cli("check", "--stdin-filename", "train.py", "-", cwd=project, stdin=BAD.encode(), env={"NO_COLOR": "1"})
    assert result.returncode == 1
    assert result.stdout.decode().startswith("train.py:2:47: ML201")


def test_syntax_error_is_reported_and_other_files_still_checked(project):
    write(project, "broken.py", "def f(:\n    pass\n")
    write(project, "bad.py", BAD)
    result = run_cli("check", "--format", "json", "broken.py", "bad.py", cwd=project)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert [f["code"] for f in document["findings"]] == ["ML201"]
    (error,) = document["errors"]
    assert error["path"] == "broken.py"
    assert error["message"].startswith("syntax error at line 1, column 7")
    assert "broken.py: syntax error at line 1" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("latin1.py", "x = 'caf\xe9'\n".encode("latin-1"), "not valid utf-8 text"),
        ("binary.py", b"\x7fELF\x00\x01\x02", "binary file"),
    ],
)
def test_unreadable_files_are_clear_errors(project, name, content, message):
    write(project, name, content)
    write(project, "bad.py", BAD)
    result = run_cli("check", "--format", "json", name, "bad.py", cwd=project)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert len(document["findings"]) == 1
    assert message in document["errors"][0]["message"]
    assert "Traceback" not in result.stderr.decode()


def test_declared_encoding_is_honoured(project):
    write(project, "latin1.py", "# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n".encode("latin-1"))
    assert run_cli("check", "latin1.py", cwd=project).returncode == 0


def test_missing_path(project):
    write(project, "bad.py", BAD)
    result = run_cli("check", "nope.py", "bad.py", cwd=project, env={"NO_COLOR": "1"})
    assert result.returncode == 2
    assert "mlplint: error: nope.py: no such file or directory" in result.stderr.decode()
    assert "bad.py:2:47: ML201" in result.stdout.decode()


def test_empty_file_is_checked_with_a_note(project):
    write(project, "empty.py", "")
    write(project, "pkg/__init__.py", "")
    result = run_cli("check", "empty.py", "pkg", cwd=project)
    assert result.returncode == 0
    assert "empty.py: empty file" in result.stderr.decode()
    assert "__init__" not in result.stderr.decode()  # a package's marker is empty by design


def test_folder_without_python_files(project):
    write(project, "docs/readme.md", "hello")
    result = run_cli("check", "docs", cwd=project)
    assert result.returncode == 0
    assert "docs: no Python files or notebooks found" in result.stderr.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlink_loop(project):
    os.symlink("b.py", project / "a.py")
    os.symlink("a.py", project / "b.py")
    os.symlink(project / "loop", project / "loop")
    result = run_cli("check", "a.py", "loop", cwd=project)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "a.py: symbolic link loop" in stderr and "loop: symbolic link loop" in stderr
    assert "Traceback" not in stderr
    (project / "sub").mkdir()
    os.symlink("../sub", project / "sub" / "cycle")  # a directory cycle inside a tree
    write(project, "sub/bad.py", BAD)
    assert run_cli("check", "sub", cwd=project).returncode == 1


def test_noqa_and_file_level_disable(project):
    write(project, "a.py", "import torch\nopt = torch.optim.Adam(m.parameters(), lr=10.0)  # noqa: ML201\n")
    write(project, "b.py", "import torch\nopt = torch.optim.Adam(m.parameters(), lr=10.0)  # noqa\n")
    write(project, "c.py", "import torch\nopt = torch.optim.Adam(m.parameters(), lr=10.0)  # noqa: ML202\n")
    write(project, "d.py", "# mlplint: disable=ML201\nimport torch\nopt = torch.optim.Adam(m.parameters(), lr=10.0)\n")
    write(project, "e.py", "import torch\ns = '# noqa'\nopt = torch.optim.Adam(m.parameters(), lr=10.0)\n")
    document = json.loads(run_cli("check", "--format", "json", ".", cwd=project).stdout)
    assert sorted(f["path"] for f in document["findings"]) == [os.path.join(".", "c.py"), os.path.join(".", "e.py")]


def test_file_level_noqa_as_ruff_reads_it_and_unknown_directives_warn(project, monkeypatch):
    from conftest import invoke

    monkeypatch.chdir(project)
    lr_and_decay = "import torch\nopt = torch.optim.Adam(m.parameters(), lr=10.0, weight_decay=1e-4)\n"
    write(project, "all.py", "# mlplint: noqa\n" + lr_and_decay)
    write(project, "one.py", "# mlplint: NOQA: ML201\n" + lr_and_decay)
    write(project, "no_colon.py", "# mlplint: noqa ML201\n" + lr_and_decay)
    write(project, "bare_disable.py", lr_and_decay + "# mlplint: disable\n# mlplint: enable\n")
    write(project, "prose.py", "# this file is checked by mlplint: noqa comments are rare\n" + lr_and_decay)
    result = invoke("check", "--format", "json", ".")
    found = sorted((f["path"].removeprefix("./"), f["code"]) for f in json.loads(result.stdout)["findings"])
    assert found == [(name, code) for name in ("bare_disable.py", "no_colon.py", "one.py", "prose.py")
                     for code in ("ML201", "ML203") if (name, code) != ("one.py", "ML201")]
    warnings = result.stderr.splitlines()
    assert [w for w in warnings if "unknown directive" in w] == [
        "mlplint: warning: ./bare_disable.py:3: unknown directive `# mlplint: disable`, ignored (for the whole file: "
        "`# mlplint: noqa`, `# mlplint: noqa: ML201` or `# mlplint: disable=ML201`)",
        "mlplint: warning: ./no_colon.py:1: unknown directive `# mlplint: noqa ML201`, ignored (for the whole file: "
        "`# mlplint: noqa`, `# mlplint: noqa: ML201` or `# mlplint: disable=ML201`)",
    ]


def test_pyproject_config_select_ignore_per_file(project):
    write(project, "pyproject.toml", '[tool.mlplint]\nignore = ["ML201"]\nper-file-ignores = {"scripts/*" = ["ML202"]}\n')
    loop = "for x in data:\n    loss.backward()\n    opt.step()\n"
    write(project, "sub/train.py", BAD + loop)
    write(project, "scripts/run.py", BAD + loop)
    document = json.loads(run_cli("check", "--format", "json", ".", cwd=project / "sub").stdout)
    assert [f["code"] for f in document["findings"]] == ["ML202"]
    document = json.loads(run_cli("check", "--format", "json", "scripts/run.py", cwd=project).stdout)
    assert document["findings"] == []


def test_rule_thresholds_from_config(project):
    write(project, "pyproject.toml", "[tool.mlplint.extreme-learning-rate]\nadam = [1e-6, 20.0]\n")
    write(project, "bad.py", BAD)
    assert run_cli("check", "bad.py", cwd=project).returncode == 0


def test_explicit_config_overrides_pyproject(project):
    write(project, "pyproject.toml", '[tool.mlplint]\nignore = ["ML201"]\n')
    write(project, "strict.toml", '[tool.mlplint]\nselect = ["ML2"]\n')
    write(project, "bad.py", BAD)
    assert run_cli("check", "bad.py", cwd=project).returncode == 0
    assert run_cli("check", "--config", "strict.toml", "bad.py", cwd=project).returncode == 1


@pytest.mark.parametrize(
    "config, key",
    [
        ('[tool.mlplint]\nselect = [1]\n', "select"),
        ('[tool.mlplint]\nignore = 3\n', "ignore"),
        ('[tool.mlplint]\ncolour = true\n', "tool.mlplint.colour"),
        ("[tool.mlplint.extreme-learning-rate]\nadam = [1.0]\n", "tool.mlplint.extreme-learning-rate.adam"),
        ("[tool.mlplint.extreme-learning-rate]\nadamw = [1.0, 2.0]\n", "tool.mlplint.extreme-learning-rate.adamw"),
        ("[tool.mlplint\n", "invalid TOML"),
    ],
)
def test_bad_config_value_names_the_key(project, config, key):
    write(project, "pyproject.toml", config)
    write(project, "good.py", GOOD)
    result = run_cli("check", "good.py", cwd=project)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert key in stderr and "pyproject.toml" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_unsafe_fix_rewrites_file_only_with_flags(project):
    source = "import torch\nopt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)\n"
    path = write(project, "train.py", source)
    run_cli("check", "train.py", cwd=project)
    run_cli("check", "--fix", "train.py", cwd=project)
    assert path.read_text() == source  # the only fix is unsafe
    result = run_cli("check", "--fix", "--unsafe-fixes", "train.py", cwd=project)
    assert path.read_text() == source.replace("optim.Adam(", "optim.AdamW(")
    assert result.returncode == 0


def test_check_does_not_import_torch_numpy_or_sklearn(project):
    write(project, "bad.py", BAD)
    probe = (  # mlplint ends its process itself once atexit handlers have run
        "import atexit, sys, runpy\n"
        "def report():\n"
        "    heavy = sorted(m for m in ('torch', 'numpy', 'sklearn') if m in sys.modules)\n"
        "    sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
        "atexit.register(report)\n"
        "sys.argv = ['mlplint', 'check', 'bad.py']\n"
        "runpy.run_module('mlplint', run_name='__main__')\n"
    )
    result = __import__("subprocess").run([sys.executable, "-c", probe], cwd=project, capture_output=True)
    assert "HEAVY=\n" in result.stderr.decode(), result.stderr.decode()
    assert "ML201" in result.stdout.decode()


def test_console_script_and_rule_docs():
    import shutil
    import subprocess

    executable = shutil.which("mlplint")
    assert executable, "the mlplint console script is not installed"
    result = subprocess.run([executable, "rule", "ML401"], capture_output=True)
    text = result.stdout.decode()
    assert result.returncode == 0
    for heading in ("## What it does", "## Why is this bad?", "## Example", "Use instead:", "ML914"):
        assert heading in text
    rules = run_cli("rules").stdout.decode()
    assert "ML401  softmax-before-cross-entropy" in rules and "ML902" in rules
    assert run_cli("rule", "ML000").returncode == 2


@pytest.mark.slow
def test_wheel_installs_everything_under_one_namespace(tmp_path):
    import subprocess
    import zipfile

    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
    )
    assert build.returncode == 0, build.stderr.decode()
    (wheel,) = tmp_path.glob("mlplint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"mlplint", wheel.name.split("-py")[0] + ".dist-info"}
    for module in ("mlplint/lint/engine.py", "mlplint/rules/loss/softmax_before_cross_entropy.py",
                   "mlplint/probe/symptoms.py", "mlplint/__main__.py"):
        assert module in names


def test_process_ends_with_the_whole_report_and_its_exit_code(project):
    """mlplint skips the interpreter's teardown: a report larger than a pipe's buffer still
    arrives whole, to stdout and to --output-file, with the exit code of the findings."""
    for index in range(300):
        write(project, f"bad_{index:03}.py", BAD)
    piped = run_cli("check", "--no-cache", ".", cwd=project)
    assert piped.returncode == 1
    assert piped.stdout.decode().count(": ML201 ") == 300
    assert "Found 300 findings" in piped.stdout.decode()
    written = run_cli("check", "--no-cache", "--output-file", "report.txt", ".", cwd=project)
    assert written.returncode == 1
    assert (project / "report.txt").read_text().count(": ML201 ") == 300


def test_a_closed_pipe_is_not_an_error(project):
    write(project, "bad.py", BAD * 50)
    import subprocess

    command = f"{sys.executable} -m mlplint check --no-cache bad.py | head -c 10"
    result = subprocess.run(command, shell=True, cwd=project, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0
    assert "Traceback" not in result.stderr.decode()


def test_rules_table_fits_in_100_columns_and_lists_every_code():
    from conftest import invoke
    from mlplint.lint.config import known_codes

    result = invoke("rules")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and max(len(line) for line in lines) <= 100
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == known_codes()
    assert "ML203  adam-weight-decay" in result.stdout and "`torch.optim.Adam` constructed with a positive" in result.stdout


def test_readme_sample_output_is_what_check_prints(monkeypatch):
    """The README's sample output is the real output of its commands in a fresh clone."""
    import re
    import shlex

    from conftest import invoke

    monkeypatch.chdir(ROOT)
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Sample output\n\n```\n(.*?)```", readme, re.DOTALL).group(1)
    samples = re.findall(r"^\$ mlplint (.*)\n((?:(?!\$ ).*\n)*)", block, re.MULTILINE)
    assert len(samples) == 2
    for command, expected in samples:
        result = invoke(*shlex.split(command), "--no-cache")
        assert result.exit_code == 1 and result.stdout == expected.rstrip("\n") + "\n", command


@pytest.mark.slow  # the probe reads the configuration after its run
def test_probe_reports_a_bad_configuration_in_one_line(project):
    write(project, "pyproject.toml", "tool = 5\n")
    write(project, "train.py", GOOD)
    result = run_cli("probe", "train.py", cwd=project)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [f"mlplint: error: {project / 'pyproject.toml'}: 'tool' must be a table, got 5"]
