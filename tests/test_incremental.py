"""The language server's re-check of an edited file (lint/incremental.py): the tree put together
from the top-level statements is the tree LibCST gives for the whole text, unchanged statements are
reused, and the findings (positions included) are those of a check from scratch."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import libcst as cst
import pytest

from conftest import ROOT
from mlplint.lint.config import Settings
from mlplint.lint.engine import check_source
from mlplint.lint.incremental import StatementCache

SCRIPTS = sorted((ROOT / "fixtures" / "buggy").glob("*.py")) + sorted((ROOT / "fixtures" / "clean").glob("*.py"))
# What people type between statements, at a line's end or on a line of its own.
EDITS = ["  # note", "", "    # indented comment", "# comment", "   ", "x = 1", "def helper():\n    return 2",
         "@decorator\n# between\ndef decorated():\n    pass", "if True:\n  y = 2"]


def _edited(text: str, seed: int, count: int) -> list[str]:
    """count successive random edits of text, each a whole valid file."""
    rng = random.Random(seed)
    versions = []
    lines = text.splitlines(keepends=True)
    while len(versions) < count:
        candidate = list(lines)
        index = rng.randrange(len(candidate) + 1)
        edit = rng.choice(EDITS)
        if index < len(candidate) and candidate[index].endswith("\n") and "\n" not in edit and rng.random() < 0.5:
            candidate[index] = candidate[index][:-1] + edit + "\n"
        else:
            candidate.insert(index, edit + "\n")
        new_text = "".join(candidate)
        try:
            ast.parse(new_text)
        except SyntaxError:
            continue
        lines = candidate
        versions.append(new_text)
    return versions


def _same_tree(cache: StatementCache, text: str) -> cst.Module:
    module = cache.parse(text, ast.parse(text))
    whole = cst.parse_module(text)
    assert _stands_once(module)
    assert module.code == whole.code  # the text itself, except where LibCST's own parse loses trailing spaces
    assert module.deep_equals(whole)
    for name in ("default_indent", "default_newline", "has_trailing_newline", "encoding"):
        assert getattr(module, name) == getattr(whole, name), name
    return module


def _stands_once(module: cst.Module) -> bool:
    """Every node of the tree stands at one place in it (the analysis keys its facts by node)."""
    seen, stack = set(), [module]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return False
        seen.add(id(node))
        stack.extend(node.children)
    return True


@pytest.mark.parametrize("script", SCRIPTS[::5], ids=lambda path: path.name)
def test_the_tree_from_pieces_is_the_whole_files_tree_through_edits(script):
    cache = StatementCache()
    text = script.read_text()
    _same_tree(cache, text)
    for version in _edited(text, seed=len(text), count=12):
        _same_tree(cache, version)


def test_an_edit_inside_one_function_reparses_only_that_function():
    text = "import torch\n\n\ndef a():\n    return 1\n\n\ndef b():\n    return 2\n\n\nmodel = torch.nn.Linear(2, 2)\n"
    cache = StatementCache()
    first = _same_tree(cache, text)
    second = _same_tree(cache, text.replace("return 2", "return 3"))
    assert cache.reused == 3
    assert [a is b for a, b in zip(first.body[:3], second.body[:3])] == [True, True, False]
    # the statement after it keeps its parse; the blank lines before it are the edited piece's
    assert second.body[3] is not first.body[3] and second.body[3].body is first.body[3].body


@pytest.mark.parametrize("text", [
    "import os\r\nx = 1\r\n\r\ndef f():\r\n    return x\r\n",  # CRLF
    "import os\nx = 1\r\ndef f():\n    return x\n",  # mixed line endings: parsed whole
    "def f():\n  return 1\n\n\ndef g():\n    return 2\n",  # two indentations: parsed whole
    "def f():\n    return 1\n    # the block's own comment\n\n# the next one's\nx = 2\n",
    "def f():\n    return 1\n  # less indented\ny = 3\n",
    "x = 1; y = 2\nz = 3",  # no newline at the end
    "# only a header\n\nimport os\n   \n   ",  # spaces on the last lines
    "import os\n",  # a single statement
    "# nothing but a comment\n",
    "class A:\n    @property\n    # a comment among decorators\n    def x(self):\n        return 1\n\n\n@staticmethod\ndef g():\n    pass\n",
    "if x:\n    pass\nelse:\n    y = 1\ntry:\n    z = 1\nexcept E:\n    pass\n",
])
def test_awkward_files_give_the_whole_files_tree(text):
    cache = StatementCache()
    _same_tree(cache, text)
    _same_tree(cache, text + "w = 0\n" if text.endswith("\n") else text + "\nw = 0\n")


@pytest.mark.parametrize("script", SCRIPTS[2::8], ids=lambda path: path.name)
def test_rechecks_find_what_a_check_from_scratch_finds(script):
    settings = Settings()
    cache = StatementCache()
    text = script.read_text()
    for version in [text, *_edited(text, seed=7, count=6)]:
        assert check_source(version, "train.py", settings, cache) == check_source(version, "train.py", settings)


def test_scripts_joined_twice_keep_one_node_per_place_and_their_findings():
    """The same statements twice in one file (scripts pasted one after the other): each copy is
    its own tree, so a name's last definition before a read is the one in the same copy."""
    first, second = SCRIPTS[0].read_text(), SCRIPTS[1].read_text()
    text = first + "\n\n" + second + "\n\n" + first
    settings = Settings()
    cache = StatementCache()
    check_source(text, "train.py", settings, cache)
    for version in _edited(text, seed=3, count=4):
        _same_tree(cache, version)
        assert check_source(version, "train.py", settings, cache) == check_source(version, "train.py", settings)
