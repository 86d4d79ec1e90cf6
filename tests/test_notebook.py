"""Jupyter notebooks: code cells checked as one module, findings told by cell, fixes written back
in the notebook's own layout."""

from __future__ import annotations

import json

import pytest
from conftest import invoke
from mlplint.lint.finding import Edit, Finding, Fix, Severity
from mlplint.lint.notebook import Notebook
from mlplint.lint.source import SourceError
from notebook_helpers import ADAM, IMPORTS, LOOP, MODEL, code, markdown, notebook_text


def run(*args, input=None):
    return invoke("check", *args, input=input)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def training_notebook() -> str:
    return notebook_text(
        markdown("# Training\nThe model is defined below."),
        code("%matplotlib inline\n!pip install torch\n" + IMPORTS),
        code(MODEL + ADAM),
        code("%%time\n" + LOOP, outputs=[{"name": "stdout", "output_type": "stream", "text": ["CPU times: 1 s\n"]}]),
        code("%%bash\nls -l | grep x\n"),
    )


# The module the cells form.

def test_code_cells_form_one_module_with_magics_as_pass_lines():
    notebook = Notebook.parse(training_notebook())
    lines = notebook.module.splitlines()
    assert lines[:3] == ["pass", "pass", "import torch"]
    assert "ls -l" not in notebook.module and "# Training" not in notebook.module  # bash and markdown left out
    assert [cell.cell for cell in notebook.code_cells] == [2, 3, 4]
    assert lines[notebook.code_cells[2].first_line - 1] == "pass"  # the %%time line
    compile(notebook.module, "nb", "exec")


@pytest.mark.parametrize("cell, magic_lines", [
    ("!pip install torch \\\n    torchvision\nimport torch\n", {1, 2}),
    ("files = !ls data\nx = 1\n", {1}),
    ("t = %timeit -o f()\n", {1}),
    ("model?\nmodel.forward??\n", {1, 2}),
    ("for i in range(3):\n    %time f(i)\n", {2}),
    ("x = (a\n% b)\n", set()),  # a continued modulo, valid Python as it is
    ("%%timeit\nsum(range(10))\n", {1}),
])
def test_magic_and_shell_lines(cell, magic_lines):
    notebook = Notebook.parse(notebook_text(code(cell)))
    (checked,) = notebook.code_cells
    assert set(checked.magic_lines) == magic_lines
    assert len(notebook.module.splitlines()) == len(cell.splitlines())
    compile(notebook.module, "<module>", "exec")


def test_foreign_cell_magic_leaves_the_cell_out():
    notebook = Notebook.parse(notebook_text(code("%%writefile train.py\nimport torch\n"), code("x = 1\n")))
    assert [cell.cell for cell in notebook.code_cells] == [2]


def test_findings_use_names_from_earlier_cells_and_carry_the_cell(folder):
    (folder / "nb.ipynb").write_text(training_notebook())
    result = run("--format", "json", "nb.ipynb")
    assert result.exit_code == 1, result.stderr
    findings = {f["code"]: f for f in json.loads(result.stdout)["findings"]}
    softmax = findings["ML401"]
    assert (softmax["cell"], softmax["line"], softmax["column"]) == (4, 4, 11)
    assert (softmax["end_line"], softmax["end_column"]) == (4, 37)
    assert "CrossEntropyLoss (line 5)" in softmax["message"]  # a line of the same cell, not of the module
    adam = findings["ML203"]
    assert (adam["cell"], adam["line"]) == (3, 3)
    assert adam["fix"]["edits"][0]["cell"] == 3


def test_text_output_names_the_cell_and_shows_the_cell_source(folder):
    (folder / "nb.ipynb").write_text(training_notebook())
    lines = run("nb.ipynb").stdout.splitlines()
    header = next(line for line in lines if "ML401" in line and line.startswith("nb.ipynb"))
    assert header.startswith("nb.ipynb:cell 4:4:11: ML401 ")
    excerpt = lines[lines.index(header) + 1: lines.index(header) + 8]
    assert "4 |     out = F.softmax(model(x), dim=1)" in excerpt
    assert "  |           ^^^^^^^^^^^^^^^^^^^^^^^^^^ ML401" in excerpt
    concise = run("--format", "concise", "nb.ipynb").stdout
    assert "nb.ipynb:cell 3:3:" in concise and "  |" not in concise


def test_sarif_and_github_carry_the_cell(folder):
    (folder / "nb.ipynb").write_text(training_notebook())
    sarif = json.loads(run("--format", "sarif", "--select", "ML401", "nb.ipynb").stdout)
    (result,) = sarif["runs"][0]["results"]
    assert result["properties"] == {"cell": 4}
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 4
    github = run("--format", "github", "--select", "ML401", "nb.ipynb").stdout
    assert github.startswith("::error title=mlplint (ML401) in cell 4,file=nb.ipynb,line=4,col=11,")
    assert "::cell 4: ML401 softmax-before-cross-entropy:" in github


def test_noqa_in_a_cell(folder):
    (folder / "nb.ipynb").write_text(notebook_text(code(IMPORTS + MODEL), code(ADAM + "  # noqa: ML203")))
    assert run("nb.ipynb").exit_code == 0


# Fixes written back.

def test_fix_rewrites_only_the_fixed_line_and_keeps_outputs_and_metadata(folder):
    original = training_notebook()
    path = folder / "nb.ipynb"
    path.write_text(original)
    result = run("--fix", "--unsafe-fixes", "--select", "ML203", "nb.ipynb")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Fixed 1 finding (0 remaining)." in result.stdout
    fixed = path.read_text()
    assert fixed == original.replace("torch.optim.Adam(", "torch.optim.AdamW(")
    assert json.loads(fixed)["cells"][3]["outputs"][0]["text"] == ["CPU times: 1 s\n"]


@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_fix_keeps_other_layouts(folder, indent):
    original = notebook_text(code(IMPORTS + MODEL), code(ADAM, split=False), indent=indent)
    original = original.rstrip("\n")  # and no trailing newline
    path = folder / "nb.ipynb"
    path.write_text(original)
    run("--fix", "--unsafe-fixes", "nb.ipynb")
    assert path.read_text() == original.replace("optim.Adam(", "optim.AdamW(")


def test_fix_keeps_windows_line_ends(folder):
    original = notebook_text(code(IMPORTS + MODEL), code(ADAM)).replace("\n", "\r\n")
    path = folder / "nb.ipynb"
    path.write_bytes(original.encode())
    run("--fix", "--unsafe-fixes", "nb.ipynb")
    assert path.read_bytes() == original.replace("optim.Adam(", "optim.AdamW(").encode()


def test_diff_shows_the_cell_and_writes_nothing(folder):
    original = training_notebook()
    path = folder / "nb.ipynb"
    path.write_text(original)
    result = run("--diff", "--unsafe-fixes", "nb.ipynb")
    assert result.exit_code == 1
    assert result.stdout.startswith("--- nb.ipynb:cell 3\n+++ nb.ipynb:cell 3\n")
    assert "+optimizer = torch.optim.AdamW(" in result.stdout
    assert path.read_text() == original


def _finding(edit: Edit, line: int = 1) -> Finding:
    return Finding("ML203", "adam-weight-decay", Severity.WARNING, "m", "nb.ipynb", line, 1, line, 2,
                   fix=Fix("unsafe", (edit,)))


def test_fixes_that_touch_a_magic_line_or_span_cells_are_dropped():
    notebook = Notebook.parse(notebook_text(code("x = 1\n%time f()\ny = 2\n"), code("z = 3\n")))
    across_magic = notebook.to_cells(_finding(Edit(1, 1, 3, 2, "w")))
    across_cells = notebook.to_cells(_finding(Edit(3, 1, 4, 2, "w")))
    inside = notebook.to_cells(_finding(Edit(4, 1, 4, 2, "w"), line=4))
    assert across_magic.fix is None and across_cells.fix is None
    assert inside.cell == 2 and inside.fix.edits == (Edit(1, 1, 1, 2, "w", cell=2),)
    fixed, applied = notebook.with_fixes([inside], unsafe=True)
    assert applied == 1 and json.loads(fixed.dumps())["cells"][1]["source"] == ["w = 3\n"]
    assert json.loads(fixed.dumps())["cells"][0]["source"] == ["x = 1\n", "%time f()\n", "y = 2\n"]


# Bad notebooks and what is around them.

@pytest.mark.parametrize("content, message", [
    ('{"cells": [', "not a valid notebook: invalid JSON at line 1, column 12"),
    ("[1, 2]", "not a valid notebook: the JSON document is not an object"),
    ('{"cells": 3}', "'cells' is not a list of objects"),
    ('{"worksheets": [], "nbformat": 3}', "nbformat 3 notebooks are not supported"),
    ('{"cells": [{"cell_type": "code", "source": 7}]}', "cell 1 has a 'source' that is neither text nor a list"),
])
def test_malformed_notebook_is_a_one_line_error_and_others_are_still_checked(folder, content, message):
    (folder / "broken.ipynb").write_text(content)
    (folder / "nb.ipynb").write_text(training_notebook())
    result = run("--format", "json", ".")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    (error,) = document["errors"]
    assert error["path"].endswith("broken.ipynb") and message in error["message"]
    assert "\n" not in error["message"]
    assert any(f["code"] == "ML401" for f in document["findings"])
    with pytest.raises(SourceError):
        Notebook.parse(content)


def test_syntax_error_names_the_cell(folder):
    (folder / "nb.ipynb").write_text(notebook_text(markdown("x"), code("x = 1\n"), code("y = 2\ndef f(:\n")))
    result = run("--format", "json", "nb.ipynb")
    assert result.exit_code == 2
    (error,) = json.loads(result.stdout)["errors"]
    assert error["message"].startswith("syntax error in cell 3 at line 2, column 7")


def test_not_utf8_and_not_python_notebooks(folder):
    (folder / "latin.ipynb").write_bytes('{"cells": [], "x": "caf\xe9"}'.encode("latin-1"))
    (folder / "r.ipynb").write_text(notebook_text(code("library(ggplot2)\n"), language="R"))
    result = run("latin.ipynb", "r.ipynb")
    assert result.exit_code == 2
    assert "latin.ipynb: not a valid notebook: not UTF-8 text at byte" in result.stderr
    assert "r.ipynb: a r notebook, not Python; skipped" in result.stderr


def test_folder_scan_includes_notebooks_and_skips_checkpoints(folder):
    (folder / "nb.ipynb").write_text(training_notebook())
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_text(training_notebook())
    paths = {f["path"] for f in json.loads(run("--format", "json", ".").stdout)["findings"]}
    assert paths == {"./nb.ipynb"}


def test_notebook_from_stdin(folder):
    result = run("--format", "json", "--stdin-filename", "nb.ipynb", "-", input=training_notebook())
    assert result.exit_code == 1
    assert {f["cell"] for f in json.loads(result.stdout)["findings"]} == {3, 4}


def test_form_feeds_and_line_separators_do_not_shift_lines(folder):
    cell = "import torch\n\x0c\nnote = 'a\u2028b'\n" + "opt = torch.optim.Adam(m.parameters(), lr=10.0)\n"
    (folder / "nb.ipynb").write_text(notebook_text(code(cell)))
    (finding,) = json.loads(run("--format", "json", "nb.ipynb").stdout)["findings"]
    assert (finding["cell"], finding["line"]) == (1, 4)


def test_from_cells_builds_the_same_module_as_the_file():
    cells = [("markdown", "# t"), ("code", "%time x = 1\nimport torch\n"), ("code", ADAM)]
    from_editor = Notebook.from_cells(cells)
    from_file = Notebook.parse(notebook_text(markdown("# t"), code(cells[1][1]), code(ADAM)))
    assert from_editor.module == from_file.module
    assert [c.cell for c in from_editor.code_cells] == [2, 3]


@pytest.mark.parametrize("document", [
    {"cells": []},
    {"cells": [{"source": "x = 1"}]},  # no cell_type: not a code cell
    {"cells": [{"cell_type": "code"}]},  # no source
    {"cells": [{"cell_type": "code", "source": None}]},
    {"cells": [{"cell_type": "code", "source": ["a", 1]}]},
    {"cells": [{"cell_type": "code", "source": "x = 1"}], "metadata": "python"},
    {"cells": [{"cell_type": "code", "source": "x = 1"}], "metadata": {"language_info": {"name": 3}}},
    {"cells": [{"cell_type": "code", "source": "%%bash\n"}, {"cell_type": "code", "source": "   \n"}]},
    {"cells": [{"cell_type": "code", "source": "def f(:\n"}, {"cell_type": "code", "source": "!ls\n"}]},
    {"cells": [{"cell_type": "code", "source": "x = 1\\\n"}, {"cell_type": "code", "source": "y = (\n"}]},
    {"cells": [{"cell_type": "code", "source": "\ufeff\x00import torch\n"}]},
    '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than the JSON parser recurses
])
def test_odd_notebooks_never_crash_the_run(folder, document):
    (folder / "odd.ipynb").write_text(document if isinstance(document, str) else json.dumps(document))
    (folder / "nb.ipynb").write_text(training_notebook())
    result = run("--fix", "--format", "json", ".")
    assert result.exit_code in (1, 2), result.stderr
    assert "internal error" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert any(f["code"] == "ML401" for f in json.loads(result.stdout)["findings"])
    assert all("\n" not in line for line in result.stderr.splitlines())
