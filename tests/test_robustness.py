"""Inputs that once crashed or hung the analysis (issue: quiet and unbreakable on real
repositories). Each must end with findings or a one-line file error, never an internal error."""

from __future__ import annotations

import pytest

from conftest import ROOT, run_cli
from lint_helpers import lint
from mlplint.lint.runner import CheckOptions, check_text

HEADER = "import torch\nimport torch.nn as nn\n"


def _no_internal_error(result):
    assert not any("internal error" in error.message for error in result.errors), result.errors


def test_forward_reassigning_a_name_from_itself_terminates():
    source = HEADER + """
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU()
    def forward(self, x):
        x = x.contiguous()
        x = self.act(self.fc(x))
        x = x.permute(0, 1)
        return x
"""
    result = lint(source)
    _no_internal_error(result)
    assert not result.errors


@pytest.mark.slow
def test_two_thousand_self_assignments():
    source = HEADER + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
    def forward(self, x):
        x = self.fc(x)
""" + "        x = x.view(-1, 3)\n" * 2000 + "        return torch.softmax(x, dim=1)\n" + """
model = Net()
criterion = nn.CrossEntropyLoss()
loss = criterion(model(torch.randn(2, 3)), torch.tensor([0, 1]))
"""
    result = lint(source)
    _no_internal_error(result)
    assert not result.errors
    # the softmax is still found through 2,000 reshapes
    assert "ML401" in {finding.code for finding in result.findings}


@pytest.mark.slow
def test_two_thousand_functions_each_calling_the_next():
    source = HEADER + "".join(f"def f{i}(x):\n    return f{i + 1}(x)\n" for i in range(2000))
    source += "def f2000(x):\n    return x\nmodel = f0(nn.Linear(3, 3))\nopt = torch.optim.SGD(model.parameters(), lr=f0(10.0))\n"
    source += "opt2 = torch.optim.Adam(model.parameters(), lr=10.0)\n"
    result = lint(source)
    _no_internal_error(result)
    assert not result.errors
    assert "ML201" in {finding.code for finding in result.findings}


def test_long_flat_chains_are_analysed():
    source = HEADER + "a = 1\nb = " + " + ".join(["a"] * 600) + "\nc = torch" + ".x" * 1000 + "\n"
    result = lint(source)
    assert result.errors == []


@pytest.mark.parametrize("source", ["x = " + "(" * 1500 + "1" + ")" * 1500 + "\n", "x = " + "[" * 5000 + "]" * 5000 + "\n"],
                         ids=["1500-parentheses", "5000-brackets"])
def test_nesting_cpython_rejects_is_a_syntax_error(source):
    result = lint(source)
    assert len(result.errors) == 1
    assert result.errors[0].message.startswith("syntax error at line 1")


def test_absurd_nesting_does_not_take_other_files_down(tmp_path):
    (tmp_path / "nested.py").write_text("x = " + "(" * 1500 + "1" + ")" * 1500 + "\n")
    (tmp_path / "train.py").write_text(HEADER + "model = nn.Linear(3, 1)\nopt = torch.optim.Adam(model.parameters(), lr=10.0)\n")
    result = run_cli("check", str(tmp_path / "nested.py"), str(tmp_path / "train.py"), env={"NO_COLOR": "1"})
    assert result.returncode == 2
    assert "ML201" in result.stdout.decode()
    assert "nested.py" in result.stderr.decode()


def test_function_defined_inside_the_training_loop():
    source = HEADER + """
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.8)
criterion = nn.MSELoss()
for epoch in range(10):
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss
    optimizer.step(closure)
    def plot(values):
        print(values)
    with torch.no_grad():
        future = model(x_test)
    plot(future)
"""
    result = lint(source)
    _no_internal_error(result)
    assert not result.errors


def test_test_modules_are_not_training_scripts():
    source = HEADER + """
import pytest
def test_model_forward():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=10.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
    for _ in range(3):
        scheduler.step()
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
    out = model(torch.randn(2, 4))
"""
    as_test = lint(source, path="tests/test_models.py")
    assert [f.code for f in as_test.findings if f.code in ("ML202", "ML204", "ML501", "ML502", "ML201", "ML306")] == []
    as_script = lint(source, path="train.py")
    assert {"ML202", "ML204", "ML201", "ML306"} <= {f.code for f in as_script.findings}


def test_fix_keeps_the_files_encoding_and_bom(tmp_path):
    decay = "import torch\nmodel = torch.nn.Linear(3, 1)\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + decay.encode())
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n" + decay.encode())
    result = run_cli("check", "--no-cache", "--fix", "--unsafe-fixes", str(bom), str(latin))
    assert result.returncode == 0, result.stderr
    assert bom.read_bytes() == b"\xef\xbb\xbf" + decay.replace("Adam(", "AdamW(").encode()
    assert latin.read_bytes() == b"# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n" + decay.replace("Adam(", "AdamW(").encode()


FIX_PAIRS = ROOT / "fixtures" / "fix"


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["CRLF", "CR"])
@pytest.mark.parametrize("code", sorted(p.name.split(".")[0] for p in FIX_PAIRS.glob("*.in.py")))
def test_fixes_keep_the_files_newline(code, newline):
    """A CRLF or CR file stays one: the lines a fix adds use the file's newline, not `\\n`."""
    source, expected = ((FIX_PAIRS / f"{code}.{part}.py").read_bytes().decode() for part in ("in", "out"))
    options = CheckOptions(None, [code], None, fix=True, unsafe_fixes=True)
    assert check_text(source.replace("\n", newline), "train.py", options).fixed == expected.replace("\n", newline)


def test_code_libcst_rejects_after_parsing_is_the_syntax_error_cpython_gives():
    source = HEADER + "try:\n    pass\nexcept:\n    pass\nexcept ValueError:\n    pass\n"
    result = lint(source)
    assert [error.message for error in result.errors] == ["syntax error at line 5, column 1: default 'except:' must be last"]
