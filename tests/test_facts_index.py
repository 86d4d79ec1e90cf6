"""The single walk's own name scopes, source positions and visiting order, each checked against
what LibCST's ScopeProvider, PositionProvider and visitors give on the same code."""

from __future__ import annotations

import ast
import textwrap

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider, ScopeProvider

from mlplint.lint.facts import ScriptFacts
from mlplint.lint.facts.index import child_fields

SCOPES = textwrap.dedent('''
    import torch.nn as tnn
    import torch.optim
    from torch import nn
    from . import utils
    from .models import Net as Model
    from os.path import *

    counter = 0
    lr = 0.1

    class Config:
        lr = 1e-3
        steps = [lr * k for k in range(3)]
        @torch.no_grad()
        def build(self, lr=lr):
            return lr

    def train(model, *args, epochs: int = 3, **kwargs):
        global counter
        counter += 1
        total = 0
        def step():
            nonlocal total
            total = total + 1
            return total
        squares = {i: i * i for i in range(epochs) if i}
        if (best := max(squares, default=0)) > 0:
            pass
        pairs = [(a, b) for a in range(3) for b in range(a)]
        try:
            step()
        except ValueError as error:
            print(error)
        with open("log") as handle, torch.no_grad():
            for index, (x, *rest) in enumerate(handle):
                lambda_fn = lambda value, scale=lr: value * scale
        match model:
            case {"name": name, **others}:
                pass
            case [first, *tail]:
                pass
            case tnn.Linear() as layer:
                pass
        del total
        return best, pairs, lambda_fn, Config, len
''')


def _libcst_definitions(scopes, name: cst.Name) -> set:
    scope = scopes.get(name)
    if scope is None or name.value not in scope:
        return set()
    return {assignment.node for assignment in scope[name.value] if getattr(assignment, "node", None) is not None}


def test_every_name_means_what_libcst_scope_analysis_says():
    module = cst.parse_module(SCOPES)
    scopes = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ScopeProvider)
    facts = ScriptFacts(module)
    names = [node for node in facts.scope_of if isinstance(node, cst.Name)]
    assert len(names) > 90
    for name in names:
        if scopes.get(name) is None or any(isinstance(a, cst.Match) for a in facts.ancestors(name)):
            continue  # LibCST gives names in imports no scope (they are not reads) and binds no match capture
        mine = {definition.node for definition in facts.bindings_of(facts.resolution(facts.scope_of[name], name.value))} - {None}
        assert mine == _libcst_definitions(scopes, name), (name.value, facts.line_of(name))


def _read(facts: ScriptFacts, spelling: str, line_text: str) -> cst.CSTNode:
    """The one Name or Attribute spelled so on the line that holds line_text."""
    line = 1 + next(i for i, text in enumerate(SCOPES.splitlines()) if line_text in text)
    (node,) = [n for n in facts.scope_of if facts.line_of(n) == line and facts.module.code_for_node(n) == spelling]
    return node


def test_class_bodies_are_not_seen_from_their_methods_and_comprehensions():
    facts = ScriptFacts(cst.parse_module(SCOPES))
    (default,) = [n for n in facts.scope_of if facts.line_of(n) == facts.line_of(_read(facts, "self", "def build"))
                  and isinstance(n, cst.Name) and n.value == "lr"][1:]
    assert facts.literal(default) == 1e-3  # `def build(self, lr=lr)`: the default reads the class body
    assert facts.literal(_read(facts, "lr", "return lr")) == 1e-3  # the parameter: nobody passes it, so its default
    assert facts.literal(_read(facts, "lr", "lambda value")) == 0.1  # inside a function: the module's lr


def test_global_nonlocal_and_walrus_bind_where_python_binds_them():
    facts = ScriptFacts(cst.parse_module(SCOPES))
    module_scope = facts.module_scope
    assert {type(d.node) for d in module_scope.bindings["counter"]} == {cst.Name}
    assert len(module_scope.bindings["counter"]) == 2  # `counter = 0` and the global `counter += 1`
    train_scope = facts.scope_of[_read(facts, "total", "total = 0")]
    assert len(train_scope.bindings["total"]) == 2  # `total = 0` and the nonlocal `total = total + 1`
    assert "best" in train_scope.bindings  # a walrus binds in the function, not in a comprehension
    assert {"name", "others", "first", "tail", "layer"} <= set(train_scope.bindings)  # match captures


@pytest.mark.parametrize("spelling, line_text, expected", [
    ("tnn.Linear", "case tnn.Linear", "torch.nn.Linear"),
    ("torch.no_grad", "with open", "torch.no_grad"),
    ("len", "return best", "builtins.len"),
    ("print", "print(error)", "builtins.print"),
    ("Model", "from .models", ".models.Net"),
    ("utils", "from . import", ".utils"),
])
def test_qualified_names_come_from_the_import_bindings(spelling, line_text, expected):
    facts = ScriptFacts(cst.parse_module(SCOPES))
    assert facts.qualname(_read(facts, spelling, line_text)) == expected


def test_an_unbound_name_is_unknown_and_a_local_one_is_not_an_import():
    facts = ScriptFacts(cst.parse_module("import torch\ntorch = torch.compile(model)\ntorch.save(x)\n"))
    save = facts.module.body[2].body[0].value.func
    assert facts.qualname(save) is None  # `torch` now holds a compiled model
    facts = ScriptFacts(cst.parse_module("undefined_thing.run()\n"))
    assert facts.qualname(facts.module.body[0].body[0].value.func) is None


POSITIONS = [
    SCOPES,
    "x = 1\r\ny = 'é'  \r\nif x:\r\n\tpass\r\n",
    "def f():\r    return [\r        1,\r    ]\r",
    "a = (  # comment\n    b +\n    c\n)\n\n\n@decorator\nclass K(Base, metaclass=M):\n    '''doc'''\n    x: int = 3",
    "",
    "\n\n# only comments\n",
    "# header\n\n@a\n# between\n@b(1)\nasync def f(): pass\nx = 1; y = 2\nif x:\n    pass\nelse:  # c\n    pass\nz = \'\'\'\nmulti\n\'\'\'\n",
]


@pytest.mark.parametrize("given_tree", [True, False], ids=["engine's tree", "own tree"])
@pytest.mark.parametrize("source", POSITIONS)
def test_positions_are_those_of_libcst_position_provider(source, given_tree):
    module = cst.parse_module(source)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    tree = ast.parse(source) if given_tree else None
    positions = ScriptFacts(module, tree=tree).positions
    assert len(expected) > 0
    for node, span in expected.items():
        assert positions[node] == span, (type(node).__name__, span, positions[node])


def test_the_walk_visits_syntax_nodes_in_libcst_visiting_order():
    module = cst.parse_module(SCOPES)
    visited: list[cst.CSTNode] = []

    class Recorder(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            visited.append(node)
            return True

    module.visit(Recorder())
    facts = ScriptFacts(module)
    walked = set(facts.context)
    syntax = [node for node in visited if node in walked]
    assert [node for node in facts.context] == syntax  # same order, nothing walked twice
    skipped = {type(node).__name__ for node in visited if node not in walked}
    assert skipped <= {"SimpleWhitespace", "TrailingWhitespace", "Newline", "EmptyLine", "Comment", "LeftParen",
                       "RightParen", "LeftSquareBracket", "RightSquareBracket", "LeftCurlyBrace", "RightCurlyBrace",
                       "Comma", "Dot", "Colon", "Semicolon", "AssignEqual", "ParenthesizedWhitespace",
                       "Add", "Multiply", "Subtract", "GreaterThan", "AddAssign", "ParamStar", "ImportStar",
                       "BitOr"} , skipped
    assert {"Arg", "Param", "Decorator", "ExceptHandler", "CompFor", "MatchAs"} <= {type(n).__name__ for n in walked}


def test_child_fields_of_a_call_skip_its_punctuation():
    assert child_fields(cst.Call) == ("func", "args")


def test_nodes_keep_identity_equality_with_the_c_level_hash():
    """The analysis swaps LibCST's Python-level `__hash__`/`__eq__` for object's: nodes must still
    be equal only to themselves, deep-equal copies must stay distinct keys, and every node class
    must have been switched."""
    first, second = cst.parse_expression("model(x)"), cst.parse_expression("model(x)")
    assert first.deep_equals(second) and first != second and first == first
    assert len({first, second, first.func, second.func}) == 4
    classes, unswitched = [cst.CSTNode], []
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        if cls.__hash__ is not object.__hash__ or cls.__eq__ is not object.__eq__:
            unswitched.append(cls.__name__)
    assert unswitched == []


def test_spellings_of_attributes_are_the_source_text():
    """Dotted names are spelled without codegen; every other form still is the node's code."""
    source = "a.b.c\n(a).b\na . b\n(a.\n   b)\nf().b\na[0].b\nx = (a.b).c\nself.model.fc\n"
    module = cst.parse_module(source)
    facts = ScriptFacts(module, "t.py", ast.parse(source))
    attributes = [node for node in facts.parent if isinstance(node, cst.Attribute)]
    assert len(attributes) == 11
    for node in attributes:
        assert facts.spelling(node) == module.code_for_node(node)
