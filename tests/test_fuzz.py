"""Fuzzing what users can feed `mlplint check`, as ruff's py-fuzzer does: generated programs
(hypothesmith), mutated real scripts and notebooks (byte flips, truncation, deep nesting, other
newlines and encodings) and a table of bad configurations. Every case goes through the command
line in this process and must end, within its time limit, with exit status 0, 1 or 2, a one-line
reason for each error and no internal error or traceback.

The default run is small and fixed (derandomised, seeded) to stay within the suite's budget;
MLPLINT_FUZZ_SCALE=20 runs twenty times as many cases (about 12 minutes)."""

from __future__ import annotations

import json
import os
import random
import signal
from contextlib import contextmanager

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import ROOT, invoke
from notebook_helpers import code, notebook_text

SCALE = int(os.environ.get("MLPLINT_FUZZ_SCALE", "1"))
CASE_SECONDS = 20  # a case that runs longer has hung (the largest fixture checks in well under a second)
SCRIPTS = sorted((ROOT / "fixtures" / "lint").glob("*.py")) + sorted((ROOT / "fixtures" / "buggy").glob("*.py"))
NOTEBOOK = ROOT / "fixtures" / "examples" / "why_is_it_not_learning.ipynb"


@contextmanager
def time_limit(seconds: int):
    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_check(*args: str, input=None):
    """`mlplint check ARGS`, asserting the contract for bad input; returns (exit code, stdout)."""
    with time_limit(CASE_SECONDS):
        result = invoke("check", "--no-cache", *args, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"mlplint check {' '.join(args)} raised {result.exception!r}") from result.exception
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert "crashed" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(("mlplint: error:", "Error: "))]
    assert bool(errors) == (result.exit_code == 2), result.stderr  # a usage error is click's "Error: ..." line
    return result.exit_code, result.stdout


# Generated programs: valid Python of every shape, none of it a training script.

@settings(max_examples=40 * SCALE, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar())
def test_generated_programs(source):
    status, stdout = run_check("--format", "json", "--stdin-filename", "generated.py", "-", input=source.encode())
    errors = json.loads(stdout)["errors"]
    assert all("\n" not in e["message"] for e in errors)


# Mutated real scripts: near-misses of what the analysis is built for.

TOKENS = ["(", ")", "[", "]", ":", ",", "\\\n", "lambda: ", "yield ", "await ", "*", "**", "\x00", "\r", "\x0c",
          "\t", "'''", '"', "#", "\n    ", "\n", "nn.", "torch.", "model(", ".backward()", "for x in y:\n", "= ",
          "global model\n", "del model\n", "@", "async ", "\\N{", "\udcff", "\u2028", "\ufeff", "é"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    text = data.decode("utf-8")
    lines = text.splitlines(keepends=True)
    kind = rng.choice(["flip", "truncate", "insert", "drop_lines", "repeat_lines", "swap_lines", "nest", "deep_expr",
                       "newlines", "encoding", "dedent"])
    if kind == "flip":
        position = rng.randrange(len(data))
        return data[:position] + bytes([rng.randrange(256)]) + data[position + 1:]
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "insert":
        position = rng.randrange(len(text))
        return (text[:position] + rng.choice(TOKENS) + text[position:]).encode("utf-8", "surrogatepass")
    if kind in ("drop_lines", "repeat_lines", "swap_lines"):
        start = rng.randrange(len(lines))
        end = min(len(lines), start + rng.randint(1, 8))
        if kind == "drop_lines":
            lines[start:end] = []
        elif kind == "repeat_lines":
            lines[start:start] = lines[start:end] * rng.randint(2, 50)
        else:
            other = rng.randrange(len(lines))
            lines[start], lines[other] = lines[other], lines[start]
        return "".join(lines).encode()
    if kind == "nest":  # the whole script inside many blocks
        depth = rng.choice([20, 90, 200])
        header = "".join("    " * level + rng.choice(["if x:\n", "for i in y:\n", "def f():\n", "with m:\n", "class C:\n"])
                         for level in range(depth))
        return (header + "".join("    " * depth + line if line.strip() else line for line in lines)).encode()
    if kind == "deep_expr":
        depth = rng.choice([50, 150, 400])
        opener, closer = rng.choice([("(", ")"), ("[", "]"), ("f(", ")"), ("-", ""), ("not ", ""), ("x.y(", ")")])
        return (text + "z = " + opener * depth + "1" + closer * depth + "\n").encode()
    if kind == "newlines":
        return text.replace("\n", rng.choice(["\r\n", "\r"])).encode()
    if kind == "encoding":
        return rng.choice([b"\xef\xbb\xbf" + data, b"# -*- coding: latin-1 -*-\n" + text.encode("latin-1", "replace"),
                           b"# coding: nope\n" + data, data.decode().encode("utf-16")])
    return "".join(line.lstrip(" ") if rng.random() < 0.2 else line for line in lines).encode()


def mutate_notebook(data: bytes, rng: random.Random) -> bytes:
    """Byte damage to the JSON, or a mutated script as one of its code cells."""
    if rng.random() < 0.3:
        return mutate(data, rng)
    document = json.loads(data)
    cells = [cell for cell in document["cells"] if cell["cell_type"] == "code"]
    cell = rng.choice(cells)
    source = "".join(cell["source"]).encode()
    cell["source"] = mutate(source, rng).decode("utf-8", "replace").splitlines(keepends=True)
    return json.dumps(document).encode()


@pytest.mark.parametrize("seed", range(60 * SCALE))
def test_mutated_scripts_and_notebooks(seed, tmp_path):
    rng = random.Random(seed)
    if seed % 10 == 9:
        path = tmp_path / "mutant.ipynb"
        path.write_bytes(mutate_notebook(NOTEBOOK.read_bytes(), rng))
    else:
        path = tmp_path / "mutant.py"
        path.write_bytes(mutate(rng.choice(SCRIPTS).read_bytes(), rng))
    mode = ["--diff", "--unsafe-fixes"] if seed % 3 == 0 else ["--format", "json"]
    run_check(*mode, str(path))


# Bad configurations: each is one line naming the file (and the key), exit 2.

BAD_CONFIGS = {
    "tool is a number": (b"tool = 5\n", "'tool'"),
    "tool is a string": (b'tool = "x"\n', "'tool'"),
    "tool is a string holding mlplint": (b'tool = "mlplint"\n', "'tool'"),
    "mlplint is a number": (b"[tool]\nmlplint = 5\n", "'tool.mlplint'"),
    "not UTF-8": (b"[tool.mlplint]\nselect = ['\xff']\n", "UTF-8"),
    "UTF-16": ("[tool.mlplint]\n".encode("utf-16"), "UTF-8"),
    "NUL bytes": (b"[tool.mlplint]\x00\n", "invalid TOML"),
    "invalid TOML": (b"[tool.mlplint\n", "invalid TOML"),
    "select empty string": (b'[tool.mlplint]\nselect = ""\n', "'select'"),
    "select empty list": (b"[tool.mlplint]\nselect = []\n", "'select'"),
    "select a typo": (b'[tool.mlplint]\nselect = ["ML2O1"]\n', "'select'"),
    "select a number": (b"[tool.mlplint]\nselect = 5\n", "'select'"),
    "select list of numbers": (b"[tool.mlplint]\nselect = [1, 2]\n", "'select'"),
    "ignore a table": (b"[tool.mlplint]\nignore = {a = 1}\n", "'ignore'"),
    "per-file-ignores a list": (b"[tool.mlplint]\nper-file-ignores = []\n", "'per-file-ignores'"),
    "per-file-ignores value": (b"[tool.mlplint]\nper-file-ignores = {'x.py' = 5}\n", "'per-file-ignores.x.py'"),
    "exclude a string": (b'[tool.mlplint]\nexclude = "build"\n', "'exclude'"),
    "respect-gitignore a string": (b'[tool.mlplint]\nrespect-gitignore = "no"\n', "'respect-gitignore'"),
    "unknown key": (b"[tool.mlplint]\nselct = ['ML2']\n", "'tool.mlplint.selct'"),
    "unknown option": (b"[tool.mlplint.extreme-learning-rate]\nsgdd = [0.1, 1.0]\n", "'tool.mlplint.extreme-learning-rate.sgdd'"),
    "NaN threshold": (b"[tool.mlplint.extreme-regularization]\nmax-dropout = nan\n", "max-dropout"),
    "negative threshold": (b"[tool.mlplint.extreme-regularization]\nmax-dropout = -0.5\n", "max-dropout"),
    "NaN in a range": (b"[tool.mlplint.extreme-learning-rate]\nadam = [nan, 1.0]\n", "adam"),
    "negative in a range": (b"[tool.mlplint.extreme-learning-rate]\nadam = [-1.0, 1.0]\n", "adam"),
    "inverted range": (b"[tool.mlplint.extreme-learning-rate]\nadam = [1.0, 0.1]\n", "adam"),
    "range too long": (b"[tool.mlplint.extreme-learning-rate]\nadam = [0.1, 0.2, 0.3]\n", "adam"),
    "float depth": (b"[tool.mlplint.deep-default-init]\nmin-depth = 2.5\n", "min-depth"),
    "boolean threshold": (b"[tool.mlplint.unscaled-input]\nmax-magnitude = true\n", "max-magnitude"),
    "options not a table": (b"[tool.mlplint]\nextreme-learning-rate = 5\n", "extreme-learning-rate"),
}
GOOD_CONFIGS = {
    "empty file": b"",
    "no mlplint table": b"[tool.black]\nline-length = 100\n",
    "select ALL": b'[tool.mlplint]\nselect = ["ALL"]\n',
    "infinite bound": b"[tool.mlplint.extreme-learning-rate]\nadam = [0.0, inf]\n",
    "huge number": b"[tool.mlplint.unscaled-input]\nmax-magnitude = 1e400\n",
    "one unknown code among known": b'[tool.mlplint]\nselect = ["ML2", "ML2O1"]\n',
}
SCRIPT = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=10.0)\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(SCRIPT)
    return tmp_path


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_configuration_is_one_line_naming_file_and_key(project, name):
    content, key = BAD_CONFIGS[name]
    (project / "pyproject.toml").write_bytes(content)
    for arguments in (["train.py"], ["--config", "pyproject.toml", "train.py"]):
        status, _ = run_check(*arguments)
        assert status == 2
    error = invoke("check", "--no-cache", "train.py").stderr.splitlines()
    assert len(error) == 1 and "pyproject.toml" in error[0] and key in error[0], error


@pytest.mark.parametrize("name", GOOD_CONFIGS)
def test_unusual_but_valid_configuration_is_used(project, name):
    (project / "pyproject.toml").write_bytes(GOOD_CONFIGS[name])
    status, _ = run_check("train.py")
    assert status in (0, 1)


@pytest.mark.parametrize("make", ["fifo", "folder", "missing"])
def test_config_that_is_not_a_regular_file_is_refused_without_waiting(project, make):
    target = project / "special.toml"
    if make == "fifo":
        os.mkfifo(target)
    elif make == "folder":
        target.mkdir()
    status, _ = run_check("--config", str(target), "train.py")
    assert status == 2


@pytest.mark.parametrize("selection", ["--select=", "--select= , ", "--select=ML2O1", "--ignore=ML2O1", "--select=ML,,",
                                       "--extend-select=", "--exclude=", "--extend-exclude=,"])
def test_odd_selections_on_the_command_line(project, selection):
    status, _ = run_check(selection, "train.py")
    assert status in (1, 2)
