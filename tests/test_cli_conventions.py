"""ruff's command-line conventions: selection flags, exclusions and .gitignore, --statistics,
--diff, --output-file, --color, -q/-v, the fix summary and warnings for unknown codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import invoke

BAD = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=10.0)\n"
LOOP = "for x in data:\n    loss.backward()\n    opt.step()\n"
DECAY = "import torch\nopt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def codes(*args):
    result = invoke("check", "--format", "json", *args)
    assert result.exit_code in (0, 1), result.stderr
    return [(f["path"], f["code"]) for f in json.loads(result.stdout)["findings"]]


def paths(*args):
    return sorted({path for path, _ in codes(*args)})


# Selection.

def test_extend_select_and_extend_ignore_add_to_the_configuration(folder):
    write(folder, "pyproject.toml", '[tool.mlplint]\nselect = ["ML202"]\n')
    write(folder, "train.py", BAD + LOOP)
    assert codes("train.py") == [("train.py", "ML202")]
    assert codes("--extend-select", "ML201", "train.py") == [("train.py", "ML201"), ("train.py", "ML202")]
    assert codes("--select", "ML201", "train.py") == [("train.py", "ML201")]
    assert codes("--extend-select", "ML2", "--extend-ignore", "ML202", "train.py") == [("train.py", "ML201")]
    write(folder, "pyproject.toml", '[tool.mlplint]\nselect = ["ML202"]\nextend-select = ["ML201"]\nextend-ignore = ["ML202"]\n')
    assert codes("train.py") == [("train.py", "ML201")]


def test_unknown_codes_in_configuration_are_warnings(folder):
    write(folder, "pyproject.toml", '[tool.mlplint]\nignore = ["ML201", "ML999"]\n')
    write(folder, "train.py", BAD + LOOP)
    result = invoke("check", "train.py")
    assert result.exit_code == 1
    assert "pyproject.toml: 'ignore' has unknown rule code or prefix 'ML999'; ignored" in result.stderr
    assert result.stderr.count("ML999") == 1
    assert "ML201" not in result.stdout and "ML202" in result.stdout


def test_unknown_codes_in_noqa_are_warnings_and_other_tools_codes_are_not(folder):
    write(folder, "train.py", "import torch  # noqa: E501, F401\n"
                              "opt = torch.optim.Adam(m.parameters(), lr=10.0)  # noqa: ML201, ML299\n"
                              "# mlplint: disable=ML9999\n")
    result = invoke("check", "train.py")
    assert result.exit_code == 0
    assert "train.py:2: unknown rule code 'ML299' in `# noqa`" in result.stderr
    assert "train.py:3: unknown rule code 'ML9999' in `# mlplint: disable`" in result.stderr
    assert "E501" not in result.stderr and "F401" not in result.stderr


# Exclusions and .gitignore.

def test_exclude_and_extend_exclude(folder):
    for name in ("train.py", "experiments/old.py", "data/gen_1.py", "build/out.py", "src/keep.py"):
        write(folder, name, BAD)
    write(folder, "pyproject.toml", '[tool.mlplint]\nextend-exclude = ["experiments", "data/gen_*.py"]\n')
    assert paths(".") == ["./src/keep.py", "./train.py"]
    write(folder, "pyproject.toml", '[tool.mlplint]\nexclude = ["src"]\n')  # replaces the defaults
    assert paths(".") == ["./build/out.py", "./data/gen_1.py", "./experiments/old.py", "./train.py"]
    assert paths("src/keep.py") == ["src/keep.py"]  # a file named on the command line is checked
    assert paths("--force-exclude", "src/keep.py", "train.py") == ["train.py"]
    write(folder, "pyproject.toml", "[tool.mlplint]\n")  # the default exclusions, as pre-commit names files
    assert paths("--force-exclude", "build/out.py", "experiments/old.py") == ["experiments/old.py"]
    write(folder, "pyproject.toml", '[tool.mlplint]\nexclude = ["src"]\nforce-exclude = true\n')
    assert paths("src/keep.py", "train.py") == ["train.py"]


def test_exclude_and_extend_exclude_flags(folder):
    for name in ("train.py", "experiments/old.py", "sub/data/gen_1.py", "build/out.py", "sub/keep.py"):
        write(folder, name, BAD)
    assert paths("--extend-exclude", "experiments, sub/data/gen_*.py", ".") == ["./sub/keep.py", "./train.py"]
    assert paths("--exclude", "sub", ".") == ["./build/out.py", "./experiments/old.py", "./train.py"]
    write(folder, "pyproject.toml", '[tool.mlplint]\nextend-exclude = ["experiments"]\n')
    os.chdir("sub")  # a pattern with a folder is relative to the current directory, not the configuration's
    assert paths("--extend-exclude", "data/*", "..") == ["../sub/keep.py", "../train.py"]
    # --exclude replaces `exclude` (and the defaults: build/ is walked); the configured extend-exclude stays
    assert paths("--exclude", "keep.py", "..") == ["../build/out.py", "../sub/data/gen_1.py", "../train.py"]


def test_gitignore_is_honoured_in_folder_walks(folder):
    write(folder, ".gitignore", "generated/\n*_scratch.py\n!keep_scratch.py\n")
    (folder / ".git").mkdir()
    for name in ("train.py", "generated/a.py", "a_scratch.py", "keep_scratch.py", "sub/b_scratch.py",
                 "sub/local.py", "sub/other.py"):
        write(folder, name, BAD)
    write(folder, "sub/.gitignore", "local.py\n")
    assert paths(".") == ["./keep_scratch.py", "./sub/other.py", "./train.py"]
    # The repository's root .gitignore applies when only a subfolder is checked.
    assert paths("sub") == ["sub/other.py"]
    assert paths("a_scratch.py") == ["a_scratch.py"]  # named explicitly
    write(folder, "pyproject.toml", "[tool.mlplint]\nrespect-gitignore = false\n")
    assert len(paths(".")) == 7


def test_gitignore_outside_a_repository_applies_from_the_walked_folder_down(folder):
    write(folder, ".gitignore", "*.py\n")
    write(folder, "project/.gitignore", "scratch.py\n")
    write(folder, "project/train.py", BAD)
    write(folder, "project/scratch.py", BAD)
    assert paths("project") == ["project/train.py"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
def test_fifo_is_skipped_with_a_warning(folder):
    os.mkfifo(folder / "pipe.py")
    write(folder, "train.py", BAD)
    result = invoke("check", ".")
    assert result.exit_code == 1
    assert "pipe.py: not a regular file, skipped" in result.stderr


# Output options.

def test_statistics(folder):
    write(folder, "a.py", BAD + LOOP)
    write(folder, "b.py", BAD + DECAY.split("\n", 1)[1])
    result = invoke("check", "--statistics", ".")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "2\tML201\t[ ] extreme-learning-rate",
        "1\tML202\t[*] missing-zero-grad",
        "1\tML203\t[*] adam-weight-decay",
        "[*] fixable with `--fix --unsafe-fixes`",
    ]
    rows = json.loads(invoke("check", "--statistics", "--format", "json", ".").stdout)
    assert rows[0] == {"code": "ML201", "name": "extreme-learning-rate", "count": 2, "fixable": False}


def test_diff_writes_nothing_and_exits_one_only_with_fixes(folder):
    path = write(folder, "train.py", DECAY)
    result = invoke("check", "--diff", "--unsafe-fixes", "train.py")
    assert result.exit_code == 1
    assert path.read_text() == DECAY
    assert "-opt = torch.optim.Adam(" in result.stdout and "+opt = torch.optim.AdamW(" in result.stdout
    assert "Would fix 1 finding in 1 file." in result.stderr
    patched = subprocess.run(["patch", "-p0", "--dry-run"], input=result.stdout.encode(), cwd=folder, capture_output=True)
    assert patched.returncode == 0, patched.stdout
    no_fixes = invoke("check", "--diff", "train.py")  # the only fix is unsafe
    assert no_fixes.exit_code == 0 and no_fixes.stdout == ""


def test_fix_prints_fixed_and_remaining(folder):
    path = write(folder, "train.py", DECAY + "opt2 = torch.optim.Adam(m.parameters(), lr=10.0)\n")
    result = invoke("check", "--fix", "--unsafe-fixes", "train.py")
    assert result.exit_code == 1
    assert "Fixed 1 finding (1 remaining)." in result.stdout
    assert "optim.AdamW(" in path.read_text()
    json_result = invoke("check", "--fix", "--format", "json", "train.py")
    assert "Fixed 0 findings (1 remaining)." in json_result.stderr
    json.loads(json_result.stdout)


def test_output_file(folder):
    write(folder, "train.py", BAD)
    result = invoke("check", "--format", "json", "--output-file", "report.json", "--color", "always", "train.py")
    assert result.exit_code == 1 and result.stdout == ""
    assert json.loads((folder / "report.json").read_text())["findings"][0]["code"] == "ML201"
    unwritable = invoke("check", "--output-file", "missing/dir/report.txt", "train.py")
    assert unwritable.exit_code == 2
    assert unwritable.stderr.strip().startswith("mlplint: error: cannot write the report to missing/dir/report.txt")


@pytest.mark.parametrize("args, env, colored", [
    (["--color", "always"], {}, True),
    (["--color", "never"], {"FORCE_COLOR": "1"}, False),
    ([], {"FORCE_COLOR": "1"}, True),
    ([], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    ([], {}, False),  # not a terminal
    (["--color", "always"], {"NO_COLOR": "1"}, True),  # the flag wins over the environment
])
def test_color(folder, args, env, colored):
    write(folder, "train.py", BAD)
    environment = {"NO_COLOR": "", "FORCE_COLOR": "", **env}
    result = invoke("check", *args, "train.py", env=environment)
    assert ("\x1b[" in result.stdout) == colored


def test_color_auto_on_a_terminal(folder):
    """A real TTY (a pseudo-terminal) gets colour unless NO_COLOR is set."""
    pty = pytest.importorskip("pty")
    write(folder, "train.py", BAD)
    script = "import sys; from mlplint.cli import main; sys.argv = ['mlplint', 'check', 'train.py']; main()"
    for no_color, expected in (("", True), ("1", False)):
        leader, follower = pty.openpty()
        env = {**os.environ, "NO_COLOR": no_color, "FORCE_COLOR": ""}
        subprocess.run([sys.executable, "-c", script], stdout=follower, stderr=subprocess.DEVNULL, env=env, cwd=folder)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(leader)
        assert (b"\x1b[" in output) == expected, output[:200]


def test_quiet_and_verbose(folder):
    write(folder, "train.py", BAD)
    write(folder, "empty.py", "")
    quiet = invoke("check", "-q", "--format", "concise", ".")
    assert quiet.exit_code == 1
    assert quiet.stdout.splitlines()[0].startswith("./train.py:2:")
    assert len(quiet.stdout.splitlines()) == 1 and quiet.stderr == ""
    verbose = invoke("check", "-v", ".")
    assert "mlplint: checked ./train.py (default settings): 1 finding" in verbose.stderr
    assert "mlplint: checked 2 files in" in verbose.stderr


# The text format.

def test_text_shows_excerpt_caret_and_fix_hint(folder):
    write(folder, "train.py", "import torch\n\n\n" + DECAY.split("\n", 1)[1] + "x = 1\n")
    lines = invoke("check", "train.py").stdout.splitlines()
    assert lines[:8] == [
        "train.py:4:62: ML203 [*] " + lines[0].split(" [*] ", 1)[1],
        "  |",
        "2 |",
        "3 |",
        "4 | opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)",
        "  |                                                              ^^^^ ML203",
        "5 | x = 1",
        "  |",
    ]
    assert lines[8] == "  = help: Use AdamW (decoupled weight decay) (unsafe fix)"
    concise = invoke("check", "--format", "concise", "train.py").stdout.splitlines()
    assert concise[0] == lines[0] and concise[1].startswith("Found 1 finding")


def test_text_excerpt_expands_tabs_under_the_caret(folder):
    write(folder, "train.py", "import torch\nif True:\n\topt = torch.optim.Adam(m.parameters(), lr=10.0)\n")
    lines = invoke("check", "train.py").stdout.splitlines()
    source, carets = lines[4], lines[5]
    assert source == "3 |     opt = torch.optim.Adam(m.parameters(), lr=10.0)"
    assert carets.index("^") == source.index("10.0") and carets.endswith("^^^^ ML201")
