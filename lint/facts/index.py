"""The single walk over a module: parents, evaluation order, calls, loops, functions, classes,
assignments, returns, argparse defaults, imports and the name scopes (see `scopes`).

The walk follows each node's syntax children in source order, as LibCST's visitors do, but reads
them straight from the node's fields and skips the whitespace and punctuation tokens: a LibCST
visitor rebuilds every node it leaves, which costs more than the parse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import libcst as cst
from libcst.helpers import get_full_name_for_node

from mlplint.lint.facts.scopes import Scope

if TYPE_CHECKING:
    from mlplint.lint.facts.core import ScriptFacts


def _hash_nodes_by_identity() -> None:
    """LibCST nodes are equal only when they are the same object, through a `__hash__` and an
    `__eq__` written in Python; every index of the analysis is keyed by node, so those two calls
    were about 7% of a check. `object`'s own identity hash and equality (the same semantics, in
    C) replace them, on the node classes that inherit LibCST's (all of them)."""
    node_hash, node_eq = cst.CSTNode.__dict__["__hash__"], cst.CSTNode.__dict__["__eq__"]
    classes = [cst.CSTNode]
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        if cls.__dict__.get("__hash__") is node_hash:
            cls.__hash__ = object.__hash__
        if cls.__dict__.get("__eq__") is node_eq:
            cls.__eq__ = object.__eq__


_hash_nodes_by_identity()

_ASSIGNMENTS = frozenset({cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr, cst.WithItem})
# Statements that bind the names they define once they complete (see reaching).
DEFINITION_STATEMENTS = frozenset({cst.FunctionDef, cst.ClassDef, cst.Import, cst.ImportFrom})
# Fields that hold only whitespace, comments and punctuation.
_TOKEN_FIELDS = frozenset({
    "lpar", "rpar", "lbracket", "rbracket", "lbrace", "rbrace", "comma", "trailing_comma", "semicolon", "dot",
    "colon", "first_colon", "second_colon", "equal", "asynchronous", "operator", "leading_lines",
    "lines_after_decorators", "header", "footer", "empty_lines", "trailing_whitespace", "newline", "first_line",
    "last_line", "leading_whitespace", "comment", "relative", "posonly_ind", "separator",
})
# Node types whose fields are not declared in source order (LibCST visits them in source order).
_SOURCE_ORDER: dict[type, tuple[str, ...]] = {
    cst.FunctionDef: ("decorators", "name", "type_parameters", "params", "returns", "body"),
    cst.ClassDef: ("decorators", "name", "type_parameters", "bases", "keywords", "body"),
    cst.Arg: ("keyword", "value"),
    cst.ExceptHandler: ("type", "name", "body"),
    cst.IfExp: ("body", "test", "orelse"),
    cst.Parameters: ("posonly_params", "params", "star_arg", "kwonly_params", "star_kwarg"),
}
_COMPREHENSIONS = frozenset({cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp})
_CONTAINERS = frozenset({cst.FunctionDef, cst.For, cst.While})  # they open a context (see Indexer.contexts)
_child_fields: dict[type, tuple[str, ...]] = {}


def _node_types() -> frozenset:
    """Every concrete LibCST node class: the walk tests exact types (isinstance against LibCST's
    abstract base classes costs a quarter of the walk)."""
    found, todo = set(), [cst.CSTNode]
    while todo:
        for subclass in todo.pop().__subclasses__():
            found.add(subclass)
            todo.append(subclass)
    return frozenset(found)


_NODE_TYPES = _node_types()


def child_fields(node_type: type) -> tuple[str, ...]:
    """The fields of a node type that may hold syntax children, in source order."""
    found = _child_fields.get(node_type)
    if found is None:
        found = _SOURCE_ORDER.get(node_type) or tuple(
            field.name for field in dataclasses.fields(node_type)
            if field.name not in _TOKEN_FIELDS and not field.name.startswith("whitespace")
        )
        _child_fields[node_type] = found
    return found


def _leaves_block(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(small, (cst.Return, cst.Raise, cst.Break, cst.Continue)) for small in statement.body)


def syntax_children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """A node's syntax children in source order (what the walk visits below it)."""
    children = []
    for name in child_fields(type(node)):
        value = getattr(node, name)
        if type(value) in _NODE_TYPES:
            children.append(value)
        elif type(value) is tuple or type(value) is list:
            children.extend(item for item in value if type(item) in _NODE_TYPES)
    return children


@dataclass(frozen=True)
class Binding:
    """How a target name got its value: `value` is the assigned expression (the iterable, for
    `for` and comprehension targets, with `loop` set); `path` gives the element positions for
    unpacking: `a, (b, c) = value` binds c with path (1, 1)."""

    value: cst.BaseExpression
    path: tuple[int, ...] = ()
    loop: bool = False


class Indexer:
    """Walks the module once and fills the facts' indexes."""

    def __init__(self, facts: "ScriptFacts"):
        self.facts = facts
        self.stack: list[cst.CSTNode] = []
        self.containers: list[cst.CSTNode] = []
        # (enclosing function, loops around the node within it, innermost first), one per container
        self.contexts: list[tuple[Optional[cst.FunctionDef], tuple]] = [(None, ())]
        self.clock = 0
        self.unreachable = 0  # > 0 inside statements that follow a return/raise/break/continue in their block

    def run(self, module: cst.Module) -> Scope:
        scope = Scope("module", None)
        self._walk(module, scope)
        return scope

    # ------------------------------------------------------------- traversal

    def _walk(self, node: cst.CSTNode, scope: Scope) -> None:
        self._enter(node, scope)
        node_type = type(node)
        if node_type is cst.FunctionDef or node_type is cst.Lambda:
            self._function(node, scope)
        elif node_type is cst.ClassDef:
            self._class(node, scope)
        elif node_type in _COMPREHENSIONS:
            self._comprehension(node, scope)
        elif node_type is cst.IndentedBlock:
            self._block(node, scope)
        else:
            for child in syntax_children(node):
                self._walk(child, scope)
        self._leave(node)

    def _block(self, block: cst.IndentedBlock, scope: Scope) -> None:
        """A block's statements; those after one that leaves the block ("old code below" after a
        `return`) are indexed but never run, so they record no effects."""
        left = False
        for statement in syntax_children(block):
            self.unreachable += left
            self._walk(statement, scope)
            self.unreachable -= left
            left = left or _leaves_block(statement)

    def _function(self, node: Union[cst.FunctionDef, cst.Lambda], scope: Scope) -> None:
        """Decorators, defaults, annotations and the name belong to the scope around the
        function; parameters and body to its own."""
        inner = Scope("function", scope)
        if isinstance(node, cst.FunctionDef):
            for decorator in node.decorators:
                self._walk(decorator, scope)
            self._define(scope, node.name.value, node)
            self._walk(node.name, scope)
            if node.type_parameters is not None:
                self._walk(node.type_parameters, scope)
        self._parameters(node.params, scope, inner)
        if isinstance(node, cst.FunctionDef) and node.returns is not None:
            self._walk(node.returns, scope)
        self._walk(node.body, inner)

    def _parameters(self, parameters: cst.Parameters, outer: Scope, inner: Scope) -> None:
        self._enter(parameters, outer)
        for name in child_fields(cst.Parameters):
            value = getattr(parameters, name)
            for param in value if isinstance(value, (tuple, list)) else (value,):
                if not isinstance(param, cst.Param):
                    continue  # a bare `*`, or no *args / **kwargs
                self._enter(param, inner)
                self._define(inner, param.name.value, param)
                self._walk(param.name, inner)
                for part in (param.annotation, param.default):
                    if part is not None:
                        self._walk(part, outer)
                self._leave(param)
        self._leave(parameters)

    def _class(self, node: cst.ClassDef, scope: Scope) -> None:
        for decorator in node.decorators:
            self._walk(decorator, scope)
        self._define(scope, node.name.value, node)
        self._walk(node.name, scope)
        if node.type_parameters is not None:
            self._walk(node.type_parameters, scope)
        for arg in (*node.bases, *node.keywords):
            self._walk(arg, scope)
        self._walk(node.body, Scope("class", scope))

    def _comprehension(self, node: cst.BaseComp, scope: Scope) -> None:
        """The first iterable is evaluated in the scope around; the rest in the comprehension's.
        The targets count as bound before the element is read (as it runs), although the element
        comes first in the source and in the walk."""
        inner = Scope("comprehension", scope)
        start = self.clock
        for part in (node.key, node.value) if isinstance(node, cst.DictComp) else (node.elt,):
            self._walk(part, inner)
        self._comp_for(node.for_in, scope, inner)
        comp: Optional[cst.CompFor] = node.for_in
        while comp is not None:
            self.facts.order[comp] = start
            comp = comp.inner_for_in

    def _comp_for(self, comp: cst.CompFor, iter_scope: Scope, inner: Scope) -> None:
        self._enter(comp, inner)
        self._walk(comp.target, inner)
        self._walk(comp.iter, iter_scope)
        for condition in comp.ifs:
            self._walk(condition, inner)
        if comp.inner_for_in is not None:
            self._comp_for(comp.inner_for_in, inner, inner)
        self._leave(comp)

    # ------------------------------------------------------------- what each node adds

    def _enter(self, node: cst.CSTNode, scope: Scope) -> None:
        facts = self.facts
        if self.stack:
            facts.parent[node] = self.stack[-1]
        self.stack.append(node)
        facts.context[node] = self.contexts[-1]
        self.clock += 1
        node_type = type(node)
        if node_type is cst.Name:
            facts.scope_of[node] = scope
            facts.order[node] = self.clock
        elif node_type is cst.Attribute:
            facts.scope_of[node] = scope
        else:
            handler = _ON_ENTER.get(node_type)
            if handler is not None:
                handler(self, node, scope)

    def _leave(self, node: cst.CSTNode) -> None:
        self.stack.pop()
        self.clock += 1
        node_type = type(node)
        if node_type is cst.Call:
            self.facts.calls.append(node)
            self._record_effect(node)
            self._record_argparse(node)
        elif node_type in _ASSIGNMENTS or node_type in DEFINITION_STATEMENTS:
            self.facts.order[node] = self.clock  # what a statement binds is bound once it completes
        if node_type in _CONTAINERS:
            self.contexts.pop()
            self.containers.pop()
            if node_type is not cst.FunctionDef:
                self.facts.loop_ends[node] = self.clock

    def _enter_function(self, node: cst.FunctionDef, scope: Scope) -> None:
        self.contexts.append((node, ()))
        self.facts.functions.append(node)
        self.containers.append(node)

    def _enter_loop(self, node: Union[cst.For, cst.While], scope: Scope) -> None:
        function, loops = self.contexts[-1]
        self.contexts.append((function, (node,) + loops))
        self.facts.loops.append(node)
        self.containers.append(node)
        if isinstance(node, cst.For):
            self.facts.order[node] = self.clock
            self._bind_target(node.target, Binding(node.iter, loop=True))
            self._define_targets(node.target, scope)

    def _enter_class(self, node: cst.ClassDef, scope: Scope) -> None:
        self.facts.classes.append(node)

    def _enter_assign(self, node: cst.Assign, scope: Scope) -> None:
        for target in node.targets:
            self._bind_target(target.target, Binding(node.value))
            self._define_targets(target.target, scope)
        self._record_effect(node)

    def _enter_annotated_assign(self, node: cst.AnnAssign, scope: Scope) -> None:
        self._define_targets(node.target, scope)
        if node.value is not None:
            self._bind_target(node.target, Binding(node.value))
            self._record_effect(node)

    def _enter_augmented_assign(self, node: cst.AugAssign, scope: Scope) -> None:
        self._define_targets(node.target, scope)
        self._record_effect(node)

    def _enter_walrus(self, node: cst.NamedExpr, scope: Scope) -> None:
        self._bind_target(node.target, Binding(node.value))
        self._define_targets(node.target, scope, walrus=True)

    def _enter_with_item(self, node: cst.WithItem, scope: Scope) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name, Binding(node.item))
            self._define_targets(node.asname.name, scope)

    def _enter_comp_for(self, node: cst.CompFor, scope: Scope) -> None:
        self.facts.order[node] = self.clock
        self._bind_target(node.target, Binding(node.iter, loop=True))
        self._define_targets(node.target, scope)

    def _enter_except_handler(self, node: cst.ExceptHandler, scope: Scope) -> None:
        if node.name is not None:
            self._define_targets(node.name.name, scope)

    def _enter_declaration(self, node: Union[cst.Global, cst.Nonlocal], scope: Scope) -> None:
        declared = scope.global_names if isinstance(node, cst.Global) else scope.nonlocal_names
        declared.update(item.name.value for item in node.names)

    def _enter_match_capture(self, node: Union[cst.MatchAs, cst.MatchStar, cst.MatchMapping], scope: Scope) -> None:
        name = node.rest if isinstance(node, cst.MatchMapping) else node.name
        if name is not None:
            self._define_targets(name, scope)

    def _enter_return(self, node: cst.Return, scope: Scope) -> None:
        function = self._enclosing_function()
        if function is not None and node.value is not None:
            self.facts.returns.setdefault(function, []).append(node.value)

    def _define(self, scope: Scope, name: str, node: Optional[cst.CSTNode], imported: Optional[str] = None,
                walrus: bool = False) -> None:
        self.facts.bound_names.add(name)
        scope.define(name, node, imported, walrus)

    def _define_targets(self, target: cst.BaseExpression, scope: Scope, walrus: bool = False) -> None:
        """The names an assignment target binds (attributes and subscripts bind none)."""
        if isinstance(target, cst.Name):
            self._define(scope, target.value, target, walrus=walrus)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._define_targets(element.value, scope, walrus)
        elif isinstance(target, cst.StarredElement):
            self._define_targets(target.value, scope, walrus)

    def _import(self, node: Union[cst.Import, cst.ImportFrom], scope: Scope) -> None:
        """`import a.b` binds `a.b` and `a`; `import a.b as c` binds c to "a.b"; `from .m import x`
        binds x to ".m.x"."""
        facts = self.facts
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = get_full_name_for_node(alias.name)
                facts.imported_roots.add(full.split(".")[0])
                if alias.asname is not None:
                    self._define(scope, alias.asname.name.value, node, full)
                    continue
                parts = full.split(".")
                for end in range(len(parts), 0, -1):
                    prefix = ".".join(parts[:end])
                    self._define(scope, prefix, node, prefix)
            return
        module = get_full_name_for_node(node.module) if node.module is not None else ""
        if module and not node.relative:
            facts.imported_roots.add(module.split(".")[0])
        if isinstance(node.names, cst.ImportStar):
            return
        module = "." * len(node.relative) + module
        for alias in node.names:
            name = get_full_name_for_node(alias.name)
            bound = alias.asname.name.value if alias.asname is not None else name
            self._define(scope, bound, node, f"{module}.{name}" if module and not module.endswith(".") else module + name)

    def _enclosing_function(self) -> Optional[cst.FunctionDef]:
        for container in reversed(self.containers):
            if isinstance(container, cst.FunctionDef):
                return container
        return None

    def _record_effect(self, node: cst.CSTNode) -> None:
        if self.unreachable:
            return
        facts = self.facts
        facts.effects.setdefault(facts.module, []).append(node)
        for container in self.containers:
            facts.effects.setdefault(container, []).append(node)

    def _bind_target(self, target: cst.BaseExpression, binding: Binding) -> None:
        facts = self.facts
        if isinstance(target, cst.Name):
            facts.bindings[target] = binding
        elif isinstance(target, (cst.Tuple, cst.List)):
            for index, element in enumerate(target.elements):
                if not isinstance(element, cst.StarredElement):
                    self._bind_target(element.value, Binding(binding.value, binding.path + (index,), binding.loop))
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            function = self._enclosing_function()
            if function is not None and first_param(function) == target.value.value:
                owner = facts.enclosing_class(function)
                if owner is not None:
                    facts.self_attributes.setdefault((owner, target.attr.value), []).append(_unpacked_value(binding, target))

    def _record_argparse(self, call: cst.Call) -> None:
        func = call.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "add_argument"):
            return
        dest: Optional[str] = None
        default: Optional[cst.BaseExpression] = None
        for arg in call.args:
            if arg.keyword is None and isinstance(arg.value, cst.SimpleString):
                option = arg.value.evaluated_value
                if isinstance(option, str) and (dest is None or option.startswith("--")):
                    dest = option.lstrip("-").replace("-", "_")
            elif arg.keyword is not None and arg.keyword.value == "dest":
                if isinstance(arg.value, cst.SimpleString):
                    dest = str(arg.value.evaluated_value)
            elif arg.keyword is not None and arg.keyword.value == "default":
                default = arg.value
        if dest and default is not None:
            self.facts.argparse_defaults[dest] = default


def first_param(function: cst.FunctionDef) -> Optional[str]:
    params = function.params.posonly_params or function.params.params
    return params[0].name.value if params else None


def terminal_name(expr: cst.BaseExpression) -> str:
    """`x` for `x` and for `a.b.x`; "" for anything else."""
    if type(expr) is cst.Name:
        return expr.value
    if type(expr) is cst.Attribute:
        return expr.attr.value
    return ""


def _unpacked_value(binding: Binding, target: cst.BaseExpression) -> cst.BaseExpression:
    """The expression a target receives: the element of a literal tuple or list for unpacking
    (`self.a, self.b = x, y`), else, when the unpacked value is opaque (`self.stem, info =
    make_stem()`), the target itself, which resolves to nothing."""
    value = binding.value
    for index in binding.path:
        if binding.loop or not isinstance(value, (cst.Tuple, cst.List)) or index >= len(value.elements) \
                or isinstance(value.elements[index], cst.StarredElement):
            return target
        value = value.elements[index].value
    return value


_ON_ENTER = {
    cst.FunctionDef: Indexer._enter_function, cst.For: Indexer._enter_loop, cst.While: Indexer._enter_loop,
    cst.ClassDef: Indexer._enter_class, cst.Assign: Indexer._enter_assign, cst.AnnAssign: Indexer._enter_annotated_assign,
    cst.AugAssign: Indexer._enter_augmented_assign, cst.NamedExpr: Indexer._enter_walrus,
    cst.WithItem: Indexer._enter_with_item, cst.CompFor: Indexer._enter_comp_for,
    cst.ExceptHandler: Indexer._enter_except_handler, cst.Import: Indexer._import, cst.ImportFrom: Indexer._import,
    cst.Global: Indexer._enter_declaration, cst.Nonlocal: Indexer._enter_declaration,
    cst.MatchAs: Indexer._enter_match_capture, cst.MatchStar: Indexer._enter_match_capture,
    cst.MatchMapping: Indexer._enter_match_capture, cst.Return: Indexer._enter_return,
}
