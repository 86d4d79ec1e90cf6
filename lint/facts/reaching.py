"""Reaching definitions: which assignments of a name can reach a given read of it.

Computed once per (scope, name) as a timeline of the scope's bindings, then picked per read: the
last assignment before it, the earlier ones where the later are conditional, the ones later in a
loop around the read (from the previous iteration), and those of outer scopes a function sees when
it runs after the module's code (as a script's functions usually do).
"""

from __future__ import annotations

import bisect
from typing import Iterator, Optional

import libcst as cst

_CONDITIONAL = (cst.If, cst.Else, cst.Try, cst.ExceptHandler, cst.For, cst.While, cst.Match, cst.IfExp)


def is_main_guard(node: cst.CSTNode) -> bool:
    """`if __name__ == "__main__":` (either quote style, either operand order)."""
    if not isinstance(node, cst.If) or not isinstance(node.test, cst.Comparison) or len(node.test.comparisons) != 1:
        return False
    left, right = node.test.left, node.test.comparisons[0].comparator
    values = {getattr(side, "value", None) for side in (left, right)}
    return isinstance(node.test.comparisons[0].operator, cst.Equal) and "__name__" in values \
        and bool(values & {'"__main__"', "'__main__'"})


class ReachingDefinitions:
    """Mixed into ScriptFacts, whose indexes (scope_of, bindings, order, parent) it reads."""

    def _definitions(self, name: cst.Name) -> tuple[list[cst.CSTNode], list[int], list[cst.Name], list[cst.CSTNode]]:
        """Every definition a name may refer to from its scope, the targets among them bound in
        that same scope as a timeline sorted by when they are bound, and the definitions from an
        outer scope that can reach a read here: computed once per (scope, name);
        `reaching_nodes` picks the ones that reach a given read."""
        scope = self.scope_of.get(name)
        if scope is None:
            return [], [], [], []
        key = (scope, name.value)
        cached = self._definitions_cache.get(key)
        if cached is not None:
            return cached
        nodes = [definition.node for definition in self._assignments(scope, name.value) if definition.node is not None]
        home = scope  # a comprehension runs where it stands: its free names read the scope around it then
        while home.kind == "comprehension" and name.value not in home.bindings and home.parent is not None:
            home = home.parent
        timeline = sorted(
            ((bound, node) for node in nodes if node in self.bindings and self.scope_of.get(node) is home
             for bound in [self._bound_at(node)] if bound is not None),
            key=lambda entry: entry[0],
        )
        in_timeline = {node for _, node in timeline}
        found = self._definitions_cache[key] = (nodes, [bound for bound, _ in timeline], [node for _, node in timeline],
                                                self._outer_reaching([node for node in nodes if node not in in_timeline]))
        return found

    def _outer_reaching(self, nodes: list[cst.CSTNode]) -> list[cst.CSTNode]:
        """Of definitions bound in an outer scope (a module-level name a function reads), those
        the read sees when the function runs after the outer scope's code, as a script's functions
        usually do (`main()` at the end): the last unconditional assignment and any after it.
        Parameters, imports, functions and classes always count."""
        targets = sorted((bound, node) for node in nodes if node in self.bindings
                         for bound in [self._bound_at(node)] if bound is not None)
        kept: list[cst.CSTNode] = []
        for _, node in reversed(targets):
            kept.append(node)
            if self._always_runs(node):
                break
        assigned = {node for _, node in targets}
        return kept + [node for node in nodes if node not in assigned]

    def _always_runs(self, target: cst.CSTNode) -> bool:
        """Whether an assignment runs whenever its scope's code does: inside no if/try/loop, the
        script's `if __name__ == "__main__":` block excepted (it runs whenever the script does)."""
        return all(is_main_guard(condition) for condition in self._conditions(target))

    def _conditions(self, target: cst.CSTNode) -> Iterator[cst.CSTNode]:
        """The if/try/loop statements around a node, up to its function, class or module."""
        for ancestor in self.ancestors(target):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Module, cst.Lambda)):
                return
            if isinstance(ancestor, _CONDITIONAL):
                yield ancestor

    def timeline(self, name: cst.Name) -> list[tuple[int, cst.Name]]:
        """The assignment targets of a name in the scope of this read, with when each is bound."""
        _, times, targets, _ = self._definitions(name)
        return list(zip(times, targets))

    def reaching_nodes(self, name: cst.Name) -> list[cst.CSTNode]:
        """The definitions of a name that can reach this read: the last assignment before it in
        the same scope, and the ones before that when the later ones are conditional (inside an
        if/try/loop that does not also hold the read); in a loop, also the assignments later in
        the same loop (from the previous iteration) unless one before the read in that loop
        always runs. Definitions from other scopes, imports and parameters always count.
        Computed once per read (callers read the list, never change it)."""
        found = self._reaching_cache.get(name)
        if found is None:
            found = self._reaching_cache[name] = self._reaching(name)
        return found

    def _reaching(self, name: cst.Name) -> list[cst.CSTNode]:
        nodes, times, targets, outer = self._definitions(name)
        read_at = self.order.get(name)
        if read_at is None or not targets:
            return outer if read_at is not None else nodes
        split = bisect.bisect_left(times, read_at)
        kept: list[cst.CSTNode] = []
        killed_in: Optional[cst.CSTNode] = None
        for node in reversed(targets[:split]):
            kept.append(node)
            if self._unconditional_before(node, name):
                killed_in = node
                break
        read_loops = self.enclosing_loops(name)
        if read_loops:
            # a definition before the read inside the innermost shared loop hides the later ones
            kill_loops = set(self.enclosing_loops(killed_in)) if killed_in is not None else set()
            carried = [loop for loop in read_loops if loop not in kill_loops]
            kept += [node for node in targets[split:] if any(loop in carried for loop in self.enclosing_loops(node))]
        if killed_in is None:
            kept += outer
        return kept

    def _bound_at(self, target: cst.Name) -> Optional[int]:
        if target in self._bound_cache:
            return self._bound_cache[target]
        found = None
        for ancestor in self.ancestors(target):
            if ancestor in self.order and not isinstance(ancestor, cst.Name):
                found = self.order[ancestor]
                break
        self._bound_cache[target] = found
        return found

    def _unconditional_before(self, target: cst.Name, read: cst.Name) -> bool:
        read_context: Optional[set] = None
        for condition in self._conditions(target):
            read_context = set(self.ancestors(read)) if read_context is None else read_context
            if condition not in read_context:
                return False
        return True
