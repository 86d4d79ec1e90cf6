"""Python's name scopes, built during the single walk of the module (see `index.Indexer`).

Each scope records what it binds: assignment targets, parameters, functions, classes and imports.
A name read in a scope means every binding of it in the innermost scope that binds it, as Python
resolves names: a function's body sees the module and enclosing functions, not a class body
around it; a comprehension has a scope of its own; `global` and `nonlocal` redirect. This is the
part of LibCST's ScopeProvider the analysis needs, computed in the walk it already makes instead
of a second one (the provider and the expression-context provider it needs cost more than the
parse itself).
"""

from __future__ import annotations

import builtins
from typing import Optional

import libcst as cst

_BUILTIN_NAMES = frozenset(dir(builtins))


class Definition:
    """One binding of a name: `node` is the target Name, the Param, FunctionDef or ClassDef, or the
    Import / ImportFrom statement; `imported` is the qualified name an import (or a builtin) binds
    the name to (`from torch import nn as tnn` binds tnn to "torch.nn"); `site` is the scope whose
    code binds it (a function's, for a name it declares `global`)."""

    __slots__ = ("name", "node", "imported", "site")

    def __init__(self, name: str, node: Optional[cst.CSTNode], imported: Optional[str] = None,
                 site: Optional["Scope"] = None):
        self.name = name
        self.node = node
        self.imported = imported
        self.site = site

    @property
    def is_local(self) -> bool:
        """Bound by the script's own code (not an import, not a builtin)."""
        return self.imported is None

    def qualified_name_for(self, full_name: str) -> Optional[str]:
        """The qualified name a dotted name that starts with this binding's name refers to."""
        if self.imported is None or not (full_name == self.name or full_name.startswith(self.name + ".")):
            return None
        return self.imported + full_name[len(self.name):]


class Scope:
    """A module, class, function (or lambda) or comprehension scope."""

    __slots__ = ("kind", "parent", "bindings", "global_names", "nonlocal_names")

    def __init__(self, kind: str, parent: Optional["Scope"]):
        self.kind = kind  # "module", "class", "function" or "comprehension"
        self.parent = parent
        self.bindings: dict[str, list[Definition]] = {}
        self.global_names: set[str] = set()
        self.nonlocal_names: set[str] = set()

    @property
    def module_scope(self) -> "Scope":
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def define(self, name: str, node: Optional[cst.CSTNode], imported: Optional[str] = None,
               walrus: bool = False) -> None:
        """Bind `name` in this scope, or where `global` / `nonlocal` send it; a walrus in a
        comprehension binds in the scope around the comprehension."""
        scope = self
        while walrus and scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        if name in scope.global_names:
            scope = scope.module_scope
        elif name in scope.nonlocal_names:
            scope = scope._enclosing_function_binding(name)
        scope.bindings.setdefault(name, []).append(Definition(name, node, imported, self))

    def _enclosing_function_binding(self, name: str) -> "Scope":
        first_function, outer = None, self.parent
        while outer is not None:
            if outer.kind == "function":
                if name in outer.bindings:
                    return outer
                first_function = first_function or outer
            outer = outer.parent
        return first_function or self.module_scope

    def resolve(self, name: str) -> Optional["Scope"]:
        """The scope whose bindings a read of `name` in this scope means: the innermost scope
        that binds it (class bodies are skipped from the scopes inside them); None for a builtin
        or an unbound name."""
        scope, innermost = self, True
        while scope is not None:
            if name in scope.global_names:
                module = scope.module_scope
                return module if module.bindings.get(name) else None
            if name not in scope.nonlocal_names and (innermost or scope.kind != "class") and name in scope.bindings:
                return scope
            innermost = False
            scope = scope.parent
        return None


def bindings_in(scope: Optional[Scope], name: str) -> tuple[Definition, ...]:
    """The bindings of `name` in a scope `Scope.resolve` gave, or the builtin where it gave None."""
    if scope is not None:
        return tuple(scope.bindings[name])
    return (Definition(name, None, f"builtins.{name}"),) if name in _BUILTIN_NAMES else ()
