"""ScriptFacts: one analysis of a script, computed once and queried by every rule.

The analysis walks the module once (recording parents, calls, assignments, loops, functions,
classes and argparse options) and then answers questions lazily, with memoisation:
what does this expression hold (`origins`), which API or local class built it (`class_of`,
`kind_of`, in `objects`), what literal value does it have (`literal`, in `literals`), who calls
this function (`call_sites`).
Names are resolved through the scopes the walk builds (`scopes`), once per scope and name;
qualified names come from the import bindings as LibCST's QualifiedNameProvider derives them, so
aliases and `from ... import ... as ...` are the same object to every rule.
"""

from __future__ import annotations

import ast
import functools
from typing import Any, Iterator, Optional, Union

import libcst as cst
from libcst.helpers import get_full_name_for_node
from mlplint.lint.facts import names
from mlplint.lint.facts.index import Binding, Indexer, first_param, syntax_children
from mlplint.lint.facts.literals import MISSING, LiteralValues
from mlplint.lint.facts.objects import ObjectKinds
from mlplint.lint.facts.positions import Positions
from mlplint.lint.facts.reaching import ReachingDefinitions, ResolvedDefinitions
from mlplint.lint.facts.scopes import Definition, Scope
from mlplint.lint.source import split_lines

# How many expressions one question may follow through each other (a chain of 2,000
# `x = x.to(device)` needs 2,000); past it the value is unknown. See engine.run_deep for the stack.
MAX_RESOLUTION_DEPTH = 5000


Container = Union[cst.FunctionDef, cst.For, cst.While, cst.Module]


def nodes_within(node: cst.CSTNode, kinds: Union[type, tuple[type, ...]]) -> list:
    """The syntax nodes of the given concrete types in a subtree (whitespace, comments and
    punctuation are not walked), the root included, in source order. Matched by exact type: a
    LibCST isinstance goes through ABCMeta, the costliest step of this walk."""
    wanted = kinds if isinstance(kinds, tuple) else (kinds,)
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        if type(current) in wanted:
            found.append(current)
        stack.extend(reversed(syntax_children(current)))
    return found


def _plain_dot(attribute: cst.Attribute) -> bool:
    """An attribute written `value.attr`: no parentheses, no space around the dot."""
    dot = attribute.dot
    return not attribute.lpar and getattr(dot.whitespace_before, "value", None) == "" \
        and getattr(dot.whitespace_after, "value", None) == ""


def _is_dotted_name(expr: cst.CSTNode) -> bool:
    while type(expr) is cst.Attribute:
        expr = expr.value
    return type(expr) is cst.Name


class ScriptFacts(ReachingDefinitions, ObjectKinds, LiteralValues):
    """What is in one script: computed once per file, shared by every rule."""

    def __init__(self, module: cst.Module, path: str = "<source>", tree: Optional[ast.Module] = None,
                 generated_positions: Optional[dict] = None):
        """`tree` is CPython's tree of the same source, when the caller has it (see `positions`);
        `generated_positions` keeps the positions generated for top-level statements from one
        check to the next (statements that did not change are the same objects: see incremental)."""
        self.path = path
        self.module = module
        self._tree = tree
        self._generated_positions = generated_positions
        self.scope_of: dict[cst.CSTNode, Scope] = {}  # the scope of every Name and Attribute
        self.bound_names: set[str] = set()  # every name some scope binds
        self._resolutions: dict[tuple[Scope, str], tuple[Optional[Scope], str]] = {}
        self._bindings_cache: dict[tuple[Optional[Scope], str], tuple[Definition, ...]] = {}
        self._qualname_cache: dict[tuple[Scope, str], Optional[str]] = {}
        self._imported_cache: dict[tuple[tuple[Optional[Scope], str], str], tuple[list[str], bool]] = {}
        self._rebound_cache: dict[tuple[Optional[Scope], str], bool] = {}
        self._node_qualnames: dict[cst.CSTNode, Optional[str]] = {}
        self._methods_cache: dict[cst.ClassDef, dict[str, cst.FunctionDef]] = {}
        self._lineage_cache: dict[cst.ClassDef, tuple[cst.ClassDef, ...]] = {}
        self.parent: dict[cst.CSTNode, cst.CSTNode] = {}
        self.calls: list[cst.Call] = []  # in evaluation order
        self.loops: list[Union[cst.For, cst.While]] = []
        self.functions: list[cst.FunctionDef] = []
        self.classes: list[cst.ClassDef] = []
        self.bindings: dict[cst.Name, Binding] = {}
        self.self_attributes: dict[tuple[cst.ClassDef, str], list[cst.BaseExpression]] = {}
        self.returns: dict[cst.FunctionDef, list[cst.BaseExpression]] = {}
        self.effects: dict[cst.CSTNode, list[cst.CSTNode]] = {}
        self.argparse_defaults: dict[str, cst.BaseExpression] = {}
        self.imported_roots: set[str] = set()  # top-level packages the file imports
        self.order: dict[cst.CSTNode, int] = {}  # when Names are read and assignments and definitions complete
        self.loop_ends: dict[cst.CSTNode, int] = {}  # when each loop's code ends, on the same clock
        self.context: dict[cst.CSTNode, tuple[Optional[cst.FunctionDef], tuple]] = {}  # see index.Indexer
        self._bound_cache: dict[cst.Name, Optional[int]] = {}
        self._conditions_cache: dict[cst.CSTNode, tuple[cst.CSTNode, ...]] = {}
        self._reaching_cache: dict[cst.Name, list[cst.CSTNode]] = {}
        self._definitions_cache: dict[tuple[Any, str], tuple[list[cst.CSTNode], list[int], list[cst.CSTNode], list[cst.CSTNode]]] = {}
        self._resolved_cache: dict[tuple[Optional[Scope], str], ResolvedDefinitions] = {}
        self._origins_cache: dict[cst.CSTNode, tuple[cst.BaseExpression, ...]] = {}
        self._spellings: dict[cst.CSTNode, str] = {}
        self._origin_sets_cache: dict[cst.CSTNode, tuple[frozenset, frozenset]] = {}
        self._in_progress: dict[cst.CSTNode, int] = {}  # expressions being resolved -> stack depth
        self._lowest_cycle = 1 << 30
        self.module_scope = Indexer(self).run(module)

    # ----------------------------------------------------------------- structure

    @functools.cached_property
    def positions(self) -> Positions:
        """Source ranges of every node; worked out only when something needs a position."""
        return Positions(self.module, self.parent, self._tree, self._generated_positions)

    @functools.cached_property
    def source_lines(self) -> list[str]:
        """The file's lines, generated once from the tree (codegen walks the whole module)."""
        return split_lines(self.module.code)

    def line_of(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    @functools.cached_property
    def _call_order(self) -> dict[cst.Call, int]:
        return {call: index for index, call in enumerate(self.calls)}

    def order_of(self, node: cst.CSTNode) -> int:
        """When a call (or the last call inside a statement or loop) runs, in evaluation order
        within straight-line code; cheap, unlike source positions."""
        if isinstance(node, cst.Call):
            return self._call_order[node]
        inside = [self._call_order[n] for n in self.effects.get(node, []) if isinstance(n, cst.Call)]
        return max(inside, default=-1)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        while node in self.parent:
            node = self.parent[node]
            yield node

    def enclosing_class(self, function: cst.FunctionDef) -> Optional[cst.ClassDef]:
        """The class a function is defined in as a method (None for plain functions)."""
        owner = self.parent.get(self.parent.get(function))  # FunctionDef -> IndentedBlock -> ClassDef
        return owner if isinstance(owner, cst.ClassDef) else None

    def enclosing_function(self, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
        return self.context[node][0] if node in self.context else None

    def enclosing_loops(self, node: cst.CSTNode) -> list[Union[cst.For, cst.While]]:
        """Loops around node within its function, innermost first."""
        return list(self.context[node][1]) if node in self.context else []

    def methods(self, owner: cst.ClassDef) -> dict[str, cst.FunctionDef]:
        """The functions a class body defines, by name (once per class: read, never change it)."""
        found = self._methods_cache.get(owner)
        if found is None:
            found = self._methods_cache[owner] = {
                stmt.name.value: stmt
                for stmt in owner.body.body
                if isinstance(stmt, cst.FunctionDef)
            }
        return found

    def method(self, owner: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
        """A method of a local class, looked up through local base classes."""
        for cls in self.class_lineage(owner):
            found = self.methods(cls).get(name)
            if found is not None:
                return found
        return None

    def forward_of(self, owner: cst.ClassDef) -> Optional[cst.FunctionDef]:
        """What calling an instance of a local module class runs: its `forward`, or a `__call__`
        it defines instead (which skips nn.Module's hooks, but computes the output all the same)."""
        return self.method(owner, "forward") or self.method(owner, "__call__")

    def class_lineage(self, owner: cst.ClassDef) -> tuple[cst.ClassDef, ...]:
        """The class, then its local base classes breadth first (once per class)."""
        found = self._lineage_cache.get(owner)
        if found is None:
            lineage, todo = [], [owner]
            while todo:
                cls = todo.pop(0)
                if cls in lineage:
                    continue
                lineage.append(cls)
                for base in cls.bases:
                    todo.extend(self.local_definitions(base.value, cst.ClassDef))
            found = self._lineage_cache[owner] = tuple(lineage)
        return found

    def class_bases(self, owner: cst.ClassDef) -> set[str]:
        """Qualified names of the imported classes anywhere in a local class's lineage."""
        return {
            qualified
            for cls in self.class_lineage(owner)
            for base in cls.bases
            for qualified in [self.qualname(base.value)]
            if qualified
        }

    def is_module_class(self, owner: cst.ClassDef) -> bool:
        """An nn.Module subclass, directly or through a torch.nn layer (`class Layer(nn.Linear)`)."""
        bases = self.class_bases(owner)
        return bool(bases & names.MODULE_BASES) or any(names.is_layer_class(base) for base in bases)

    @property
    def uses_other_framework(self) -> bool:
        """Imports another deep-learning framework and not torch: its `nn`, `trainer` and `model`
        are not PyTorch's, so no rule applies (a pasted snippet that imports nothing is checked)."""
        return not self.imported_roots & names.TORCH_PACKAGES and bool(self.imported_roots & names.OTHER_FRAMEWORKS)

    @functools.cached_property
    def is_test_module(self) -> bool:
        """A pytest/unittest module: named as pytest collects it (test_*.py, *_test.py,
        conftest.py, or under a tests/ folder) and holding tests (a top-level `test*` function or
        `Test*` class, or an import of pytest/unittest). Test code checks shapes and behaviour on
        toy inputs; it is not a training script."""
        parts = self.path.replace("\\", "/").split("/")
        stem = parts[-1].rsplit(".", 1)[0]
        named = stem.startswith("test_") or stem.endswith("_test") or stem == "conftest" \
            or any(part in ("tests", "test", "testing") for part in parts[:-1])
        if not named:
            return False
        for statement in self.module.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value.startswith("test") or \
                    isinstance(statement, cst.ClassDef) and statement.name.value.startswith("Test"):
                return True
            for small in statement.body if isinstance(statement, cst.SimpleStatementLine) else ():
                imported = small.names if isinstance(small, cst.Import) else [] if not isinstance(small, cst.ImportFrom) \
                    else [cst.ImportAlias(small.module)] if small.module is not None else []
                if any(get_full_name_for_node(alias.name).split(".")[0] in ("pytest", "unittest") for alias in imported):
                    return True
        return False

    # ----------------------------------------------------------------- names

    def qualname(self, expr: cst.CSTNode) -> Optional[str]:
        """Canonical qualified name of an imported or builtin object (`torch.nn.Linear`)."""
        found = self._node_qualnames.get(expr, MISSING)
        if found is MISSING:
            found = self._node_qualnames[expr] = self._qualname(expr)
        return found

    def _qualname(self, expr: cst.CSTNode) -> Optional[str]:
        scope = self.scope_of.get(expr)  # only Names and Attributes have one
        if scope is None or not _is_dotted_name(expr):
            return None  # `torch.tensor(x).float` is a method of a value, not `torch.tensor.float`
        full_name = get_full_name_for_node(expr)
        if full_name is None:
            return None
        key = (scope, full_name)  # every spelling of a dotted name in one scope names the same thing
        if key not in self._qualname_cache:
            self._qualname_cache[key] = self._resolve_qualname(expr, scope, full_name)
        return self._qualname_cache[key]

    def _resolve_qualname(self, expr: cst.CSTNode, scope: Scope, full_name: str) -> Optional[str]:
        # as LibCST's QualifiedNameProvider does: the bindings of the longest bound prefix
        prefix = full_name
        while prefix and not self.bindings_of(self.resolution(scope, prefix)):
            cut = prefix.rfind(".")
            prefix = prefix[:cut] if cut != -1 else ""
        candidates, local = self._imported_names(self.resolution(scope, prefix), full_name) if prefix else ([], False)
        if candidates and local and self._rebound_to_object(expr):
            return None  # `import model` then `model = model.RNNModel(...)`: the name now holds a value
        return names.canonical(candidates[0]) if candidates else self._conventional_alias(expr)

    def _imported_names(self, resolution: tuple[Optional[Scope], str], full_name: str) -> tuple[list[str], bool]:
        """The qualified names the bindings behind a resolution give a dotted name that starts
        with the bound name, sorted, and whether the script's own code binds it too: once per
        (resolution, dotted name), however many scopes spell it."""
        key = (resolution, full_name)
        found = self._imported_cache.get(key)
        if found is None:
            assignments = self.bindings_of(resolution)
            found = self._imported_cache[key] = (
                sorted(qualified for definition in assignments for qualified in [definition.qualified_name_for(full_name)] if qualified),
                any(definition.is_local for definition in assignments))
        return found

    def _conventional_alias(self, expr: cst.CSTNode) -> Optional[str]:
        """`optim.SGD` in a snippet that never imports `optim` (pasted from a forum answer, a
        notebook cell continued from another): the conventional PyTorch alias, when nothing in the
        file binds the name."""
        attributes = []
        while isinstance(expr, cst.Attribute):
            attributes.append(expr.attr.value)
            expr = expr.value
        prefix = names.CONVENTIONAL_ALIASES.get(expr.value) if isinstance(expr, cst.Name) else None
        if prefix is None or expr.value in self.bound_names or self._star_imports:
            return None  # a star import may bind the name to anything
        return names.canonical(".".join([prefix, *reversed(attributes)]))

    @functools.cached_property
    def _star_imports(self) -> bool:
        return any(isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar)
                   for statement in self.module.body if isinstance(statement, cst.SimpleStatementLine)
                   for small in statement.body)

    def _rebound_to_object(self, expr: cst.CSTNode) -> bool:
        """Whether the imported name at the base of a dotted name is also assigned a constructed
        object (a call result) in the script: then reads of it are that object, not the import
        (a fallback such as `except ImportError: nn = None` keeps the import)."""
        while isinstance(expr, cst.Attribute):
            expr = expr.value
        scope = self.scope_of.get(expr)
        if scope is None:
            return False
        resolution = self.resolution(scope, expr.value)
        found = self._rebound_cache.get(resolution)
        if found is None:  # once per resolution: the answer is the same in every scope reading it
            found = self._rebound_cache[resolution] = any(
                isinstance(self.bindings[definition.node].value, cst.Call) and not self.bindings[definition.node].loop
                for definition in self.bindings_of(resolution) if definition.node in self.bindings
            )
        return found

    def local_definitions(self, expr: cst.CSTNode, kind: type) -> list:
        """Local FunctionDef/ClassDef nodes a Name (those that reach it) or `self.method` refers to."""
        if type(expr) is cst.Name:  # exact types, here and in the other per-read look-ups: see nodes_within
            return [node for node in self.reaching_nodes(expr) if type(node) is kind]
        if type(expr) is cst.Attribute and kind is cst.FunctionDef:
            owners = self.receiver_classes(expr.value)
            return [m for owner in owners for m in [self.method(owner, expr.attr.value)] if m is not None]
        return []

    def referent_nodes(self, name: cst.Name) -> list[cst.CSTNode]:
        """What defines a name as read here (its scope's bindings): assignment targets (keys of
        `bindings`), Params, imports, function and class definitions."""
        return self._definitions(name)[0]

    def receiver_classes(self, receiver: cst.BaseExpression) -> list[cst.ClassDef]:
        """Local classes an object may be an instance of (`self` inside a method included)."""
        if isinstance(receiver, cst.Name):
            function = self.enclosing_function(receiver)
            if function is not None and first_param(function) == receiver.value:
                owner = self.enclosing_class(function)
                if owner is not None and self._is_unbound_param(receiver):
                    return [owner]
        return [cls for cls in map(self.class_of, self.origins(receiver)) if type(cls) is cst.ClassDef]

    def _is_unbound_param(self, name: cst.Name) -> bool:
        return all(isinstance(node, cst.Param) for node in self.referent_nodes(name))

    # ----------------------------------------------------------------- values

    def origins(self, expr: cst.BaseExpression) -> tuple[cst.BaseExpression, ...]:
        """The expressions that may have produced expr's value, following variables, function
        parameters (through the file's call sites), `self.attr`, local function returns, model
        wrappers and pass-through methods (`.to(device)`, `.cuda()`, `.train()`...)."""
        cached = self._origins_cache.get(expr)
        if cached is not None:
            return cached
        depth = self._in_progress.get(expr)
        if depth is not None:  # a cycle: this answer is partial until `expr` completes
            self._lowest_cycle = min(self._lowest_cycle, depth)
            return (expr,)
        if len(self._in_progress) >= MAX_RESOLUTION_DEPTH:  # unresolved: rules stay quiet on it
            self._lowest_cycle = -1  # nothing above is complete either
            return (expr,)
        depth = self._in_progress[expr] = len(self._in_progress)
        outer_lowest, self._lowest_cycle = self._lowest_cycle, depth
        try:
            found = tuple(dict.fromkeys(self._origins(expr)))
        finally:
            del self._in_progress[expr]
        if self._lowest_cycle >= depth:  # every cycle met closed at expr: the answer is complete
            self._origins_cache[expr] = found
        self._lowest_cycle = min(outer_lowest, self._lowest_cycle)
        return found

    def same_object(self, first: cst.BaseExpression, second: cst.BaseExpression) -> bool:
        """Whether two expressions may hold the same object: a shared origin, or the same
        spelling of an origin that cannot be resolved (a parameter nobody passes, a global defined
        elsewhere)."""
        origins_a, spellings_a = self.origin_sets(first)
        origins_b, spellings_b = self.origin_sets(second)
        return not origins_a.isdisjoint(origins_b) or not spellings_a.isdisjoint(spellings_b)

    def origin_sets(self, expr: cst.BaseExpression) -> tuple[frozenset, frozenset]:
        """expr's origins and the spellings of those that cannot be resolved, as sets, kept once
        the origins are complete: what `same_object` compares (it compares many pairs, and an
        index of objects keys on them)."""
        cached = self._origin_sets_cache.get(expr)
        if cached is not None:
            return cached
        origins = self.origins(expr)
        found = (frozenset(origins), frozenset(self.spelling(o) for o in origins if isinstance(o, (cst.Name, cst.Attribute))))
        if expr in self._origins_cache:
            self._origin_sets_cache[expr] = found
        return found

    @functools.cached_property
    def import_spellings(self) -> dict[str, str]:
        """Qualified module or object name -> the name the module's top-level imports bind it to:
        `import torch.nn as nn` gives {"torch.nn": "nn"}, `import torch.nn` {"torch": "torch"}."""
        found: dict[str, str] = {}
        for statement in self.module.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        dotted = self.spelling(alias.name)
                        if alias.asname is not None:
                            found[dotted] = self.spelling(alias.asname.name)
                        else:
                            found[dotted.split(".")[0]] = dotted.split(".")[0]
                elif isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative \
                        and not isinstance(small.names, cst.ImportStar):
                    module = self.spelling(small.module)
                    for alias in small.names:
                        name = self.spelling(alias.name)
                        bound = self.spelling(alias.asname.name) if alias.asname is not None else name
                        found[f"{module}.{name}"] = bound
        return found

    def spelling(self, node: cst.CSTNode) -> str:
        """The node's source text, generated once per node (codegen walks the whole subtree)."""
        kind = type(node)
        if kind is cst.Name and not node.lpar:
            return node.value
        spelled = self._spellings.get(node)
        if spelled is None:
            if kind is cst.Attribute and _plain_dot(node) and type(node.value) in (cst.Name, cst.Attribute):
                spelled = f"{self.spelling(node.value)}.{node.attr.value}"  # `a.b.c`, as codegen writes it
            else:
                spelled = self.module.code_for_node(node)
            self._spellings[node] = spelled
        return spelled

    def _origins(self, expr: cst.BaseExpression) -> list[cst.BaseExpression]:
        kind = type(expr)
        if kind is cst.Name:
            return self._name_origins(expr)
        if kind is cst.Attribute and type(expr.value) is cst.Name:
            owners = self._self_classes(expr.value)
            values = [v for owner in owners for cls in self.class_lineage(owner)
                      for v in self.self_attributes.get((cls, expr.attr.value), [])]
            if values:
                return [o for value in values for o in self.origins(value)]
        if kind is cst.Call:
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value in names.PASS_THROUGH_METHODS \
                    and self.qualname(func) is None:
                return list(self.origins(func.value))
            if self.qualname(func) in names.MODEL_WRAPPERS and expr.args:
                return list(self.origins(expr.args[0].value))
            functions = self.local_definitions(func, cst.FunctionDef)
            if functions:
                returned = [v for f in functions for v in self.returns.get(f, [])]
                if returned:
                    return [o for value in returned for o in self.origins(value)]
            lambdas = self.bound_lambdas(func)
            if lambdas:  # `make = lambda: nn.Linear(3, 1)`, then `make()`
                return [o for function in lambdas for o in self.origins(function.body)]
        return [expr]

    def bound_lambdas(self, func: cst.BaseExpression) -> list[cst.Lambda]:
        """The lambdas a called name is assigned (`f = lambda a: torch.tensor(a)`)."""
        if not isinstance(func, cst.Name):
            return []
        bound = [self.bindings.get(node) for node in self.reaching_nodes(func)]
        return [b.value for b in bound if b is not None and isinstance(b.value, cst.Lambda) and not b.path and not b.loop]

    def _self_classes(self, name: cst.Name) -> list[cst.ClassDef]:
        function = self.enclosing_function(name)
        if function is None or first_param(function) != name.value or not self._is_unbound_param(name):
            return []
        owner = self.enclosing_class(function)
        return [owner] if owner is not None else []

    def _name_origins(self, name: cst.Name) -> list[cst.BaseExpression]:
        out: list[cst.BaseExpression] = []
        for node in self.reaching_nodes(name):
            binding = self.bindings.get(node)
            if binding is not None and not binding.path and not binding.loop:
                out.extend(self.origins(binding.value))
            elif binding is not None and len(binding.path) == 1 and not binding.loop:
                out.extend(self._unpacked_origins(binding, name))
            elif binding is not None and binding.loop and not binding.path:
                out.extend(self._iterated_origins(binding.value, name))
            elif isinstance(node, cst.Param):
                out.extend(self._param_origins(node, name))
            else:
                out.append(name)
        return out or [name]

    def _unpacked_origins(self, binding: Binding, name: cst.Name) -> list[cst.BaseExpression]:
        found = []
        index = binding.path[0]
        for value in self.origins(binding.value):
            for produced in self._forward_returns(value) or [value]:
                if isinstance(produced, (cst.Tuple, cst.List)) and index < len(produced.elements):
                    found.extend(self.origins(produced.elements[index].value))
                else:
                    found.append(name)
        return found

    def _iterated_origins(self, iterable: cst.BaseExpression, name: cst.Name) -> list[cst.BaseExpression]:
        """`for layer in (self.fc1, self.fc2)`: the elements of a literal list or tuple."""
        found = []
        for value in self.origins(iterable):
            if isinstance(value, (cst.Tuple, cst.List, cst.Set)) and value.elements:
                found.extend(o for element in value.elements if not isinstance(element, cst.StarredElement)
                             for o in self.origins(element.value))
            else:
                found.append(name)
        return found

    def _forward_returns(self, call: cst.BaseExpression) -> list[cst.BaseExpression]:
        """What `forward()` returns when `call` calls an instance of a local nn.Module class."""
        if not isinstance(call, cst.Call):
            return []
        returned = []
        for cls in self.classes_of(call.func):
            forward = self.forward_of(cls) if isinstance(cls, cst.ClassDef) else None
            returned.extend(self.returns.get(forward, []) if forward else [])
        return returned

    def _param_origins(self, param: cst.Param, name: cst.Name) -> list[cst.BaseExpression]:
        function = self.parent.get(self.parent.get(param))  # Param -> Parameters -> FunctionDef
        if not isinstance(function, cst.FunctionDef):
            return [name]
        arguments = [self.argument_for(call, function, param) for call in self.call_sites(function)]
        found = [o for arg in arguments if arg is not None for o in self.origins(arg)]
        if param.default is not None and (not arguments or None in arguments):
            found.extend(self.origins(param.default))
        return found or [name]

    def argument_for(self, call: cst.Call, function: cst.FunctionDef, param: cst.Param) -> Optional[cst.BaseExpression]:
        """The expression a call passes for one parameter of a local function (None if not passed)."""
        positional = list(function.params.posonly_params) + list(function.params.params)
        if self._binds_self(call, function) and positional:
            positional = positional[1:]
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == param.name.value:
                return arg.value
        plain = [arg for arg in call.args if arg.keyword is None and not arg.star]
        for index, candidate in enumerate(positional):
            if candidate is param:
                return plain[index].value if index < len(plain) else None
        return None

    def _binds_self(self, call: cst.Call, function: cst.FunctionDef) -> bool:
        """True when `function` is a method called through an instance or a class constructor."""
        if self.enclosing_class(function) is None:
            return False
        return isinstance(call.func, cst.Attribute) or function.name.value == "__init__"

    @functools.cached_property
    def _call_sites(self) -> dict[cst.FunctionDef, list[cst.Call]]:
        """Built from what each callee is directly (a def, a class, `self.method`, a method of an
        object built from a local class), without `origins`, which itself needs call sites."""
        sites: dict[cst.FunctionDef, list[cst.Call]] = {}
        for call in self.calls:
            for function in self._direct_callees(call.func):
                sites.setdefault(function, []).append(call)
        return sites

    def _direct_callees(self, func: cst.BaseExpression) -> list[cst.FunctionDef]:
        if type(func) is cst.Name:
            callees = []
            for node in self.reaching_nodes(func):
                if type(node) is cst.FunctionDef:
                    callees.append(node)
                elif type(node) is cst.ClassDef and self.method(node, "__init__") is not None:
                    callees.append(self.method(node, "__init__"))
            return callees
        if type(func) is cst.Attribute and type(func.value) is cst.Name:
            owners = self._self_classes(func.value) or self._constructed_classes(func.value)
            return [m for owner in owners for m in [self.method(owner, func.attr.value)] if m is not None]
        return []

    def _constructed_classes(self, name: cst.Name) -> list[cst.ClassDef]:
        """Local classes whose constructor call some definition of the name that reaches this
        read holds (`net = Net()`)."""
        found = []
        for node in self.reaching_nodes(name):
            binding = self.bindings.get(node) if isinstance(node, cst.Name) else None
            if binding is not None and not binding.path and isinstance(binding.value, cst.Call) \
                    and isinstance(binding.value.func, cst.Name):
                found += self.local_definitions(binding.value.func, cst.ClassDef)
        return list(dict.fromkeys(found))  # each class once, however many bindings build it

    def call_sites(self, function: cst.FunctionDef) -> list[cst.Call]:
        return self._call_sites.get(function, [])

    def called_functions(self, call: cst.Call) -> list[cst.FunctionDef]:
        """Local functions or methods a call runs (constructors run __init__)."""
        found = self.local_definitions(call.func, cst.FunctionDef)
        if isinstance(call.func, cst.Attribute) and not found:
            for owner in self.receiver_classes(call.func.value):
                method = self.method(owner, call.func.attr.value)
                if method is not None:
                    found.append(method)
        return found
