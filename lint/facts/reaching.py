"""Reaching definitions: which bindings of a name can reach a given read of it.

The bindings a read may mean are indexed once per scope they resolve to (however many scopes read
them), as a timeline once per (scope, name), then picked per read: the last binding before it,
the earlier ones where the later are conditional, the ones later in a loop around the read (from
the previous iteration), and those of outer scopes a function sees when it runs after the module's
code (as a script's functions usually do). Assignments, `def`, `class` and `import` statements are
all bindings in the timeline: in a file that defines `train` or imports `torch` again and again
(scripts pasted one after another, a long notebook) each read gets the ones that reach it, and
never more than MAX_REACHING, so the work per read stays bounded.
"""

from __future__ import annotations

import bisect
from typing import Collection, Iterator, Optional

import libcst as cst

from mlplint.lint.facts.index import DEFINITION_STATEMENTS
from mlplint.lint.facts.scopes import Definition, Scope, bindings_in

# Node types, matched by `type(node) in`: LibCST's isinstance goes through ABCMeta, which costs
# more than the rest of this walk.
_CONDITIONAL = frozenset({cst.If, cst.Else, cst.Try, cst.ExceptHandler, cst.For, cst.While, cst.Match, cst.IfExp})
_FRAMES = frozenset({cst.FunctionDef, cst.ClassDef, cst.Module, cst.Lambda})
# How many definitions one read may reach, the nearest kept: past it the file repeats itself (a
# chain of conditional bindings through scripts pasted one after another, a notebook's cells), and
# the reads of a name would together cost the square of its definitions. In the repositories
# audited for issue 24 no read reaches more than 30.
MAX_REACHING = 64


def is_main_guard(node: cst.CSTNode) -> bool:
    """`if __name__ == "__main__":` (either quote style, either operand order)."""
    if not isinstance(node, cst.If) or not isinstance(node.test, cst.Comparison) or len(node.test.comparisons) != 1:
        return False
    left, right = node.test.left, node.test.comparisons[0].comparator
    values = {getattr(side, "value", None) for side in (left, right)}
    return isinstance(node.test.comparisons[0].operator, cst.Equal) and "__name__" in values \
        and bool(values & {'"__main__"', "'__main__'"})


class ResolvedDefinitions:
    """The bindings one read of a name may mean (those of the scope it resolves to), indexed once
    however many scopes read them: `timed`, the assignment targets and def/class/import statements
    in the order they are bound, with `times`; `by_site`, the positions in `timed` of those bound
    by each scope's code; `loose`, the parameters and other bindings without a time, which always
    count; `outer`, what a read from a scope that binds none of them sees."""

    __slots__ = ("nodes", "times", "timed", "by_site", "loose", "outer")

    def __init__(self, nodes: list[cst.CSTNode], times: list[int], timed: list[cst.CSTNode],
                 by_site: dict[Scope, list[int]], loose: list[cst.CSTNode]):
        self.nodes = nodes
        self.times = times
        self.timed = timed
        self.by_site = by_site
        self.loose = loose
        self.outer: list[cst.CSTNode] = []


class ReachingDefinitions:
    """Mixed into ScriptFacts, whose indexes (scope_of, bindings, order, parent) it reads."""

    def resolution(self, scope: Scope, name: str) -> tuple[Optional[Scope], str]:
        """The scope whose bindings a read of `name` in `scope` means, with the name: one key for
        every scope that reads the same bindings (a module-level name read in many functions),
        worked out once per (scope, name)."""
        key = (scope, name)
        found = self._resolutions.get(key)
        if found is None:
            found = self._resolutions[key] = (scope.resolve(name), name)
        return found

    def bindings_of(self, resolution: tuple[Optional[Scope], str]) -> tuple[Definition, ...]:
        """Every binding a read with this resolution may mean, listed once per resolution."""
        found = self._bindings_cache.get(resolution)
        if found is None:
            found = self._bindings_cache[resolution] = bindings_in(*resolution)
        return found

    def _definitions(self, name: cst.Name) -> tuple[list[cst.CSTNode], list[int], list[cst.CSTNode], list[cst.CSTNode]]:
        """Every definition a name may refer to from its scope, the ones bound in that same scope
        as a timeline sorted by when they are bound, and the definitions from an outer scope that
        can reach a read here: computed once per (scope, name), from an index of the bindings
        computed once per scope they resolve to; `reaching_nodes` picks the ones that reach a
        given read."""
        scope = self.scope_of.get(name)
        if scope is None:
            return [], [], [], []
        key = (scope, name.value)
        cached = self._definitions_cache.get(key)
        if cached is None:
            cached = self._definitions_cache[key] = self._definitions_from(scope, name.value)
        return cached

    def _definitions_from(self, scope: Scope, name: str) -> tuple[list[cst.CSTNode], list[int], list[cst.CSTNode], list[cst.CSTNode]]:
        resolved = self._resolved_definitions(self.resolution(scope, name))
        home = scope  # a comprehension runs where it stands: its free names read the scope around it then
        while home.kind == "comprehension" and name not in home.bindings and home.parent is not None:
            home = home.parent
        own = resolved.by_site.get(home)
        if own is None:  # the usual read of an outer scope's name: shared by every scope reading it
            return resolved.nodes, [], [], resolved.outer
        return (resolved.nodes, [resolved.times[index] for index in own], [resolved.timed[index] for index in own],
                self._outer_reaching(resolved, set(own)))

    def _resolved_definitions(self, resolution: tuple[Optional[Scope], str]) -> ResolvedDefinitions:
        found = self._resolved_cache.get(resolution)
        if found is not None:
            return found
        definitions = [definition for definition in self.bindings_of(resolution) if definition.node is not None]
        timed = sorted(
            ((bound, definition) for definition in definitions
             if definition.node in self.bindings or type(definition.node) in DEFINITION_STATEMENTS
             for bound in [self._bound_at(definition.node)] if bound is not None),
            key=lambda entry: entry[0],
        )
        by_site: dict[Scope, list[int]] = {}
        for index, (_, definition) in enumerate(timed):
            by_site.setdefault(definition.site, []).append(index)
        in_timeline = {definition.node for _, definition in timed}
        found = self._resolved_cache[resolution] = ResolvedDefinitions(
            [definition.node for definition in definitions], [bound for bound, _ in timed],
            [definition.node for _, definition in timed], by_site,
            [definition.node for definition in definitions if definition.node not in in_timeline])
        found.outer = self._outer_reaching(found, ())
        return found

    def _outer_reaching(self, resolved: ResolvedDefinitions, excluded: Collection[int]) -> list[cst.CSTNode]:
        """Of the bindings of an outer scope (a module-level name a function reads; `excluded`
        gives those the reading scope binds itself), those the read sees when the function runs
        after the outer scope's code, as a script's functions usually do (`main()` at the end):
        the last unconditional binding and any after it. Parameters always count."""
        kept: list[cst.CSTNode] = []
        for index in range(len(resolved.timed) - 1, -1, -1):
            if index in excluded:
                continue
            node = resolved.timed[index]
            kept.append(node)
            if self._always_runs(node) or len(kept) == MAX_REACHING:
                break
        room = MAX_REACHING - len(kept)
        return kept + resolved.loose[max(len(resolved.loose) - room, 0):]

    def _always_runs(self, target: cst.CSTNode) -> bool:
        """Whether an assignment runs whenever its scope's code does: inside no if/try/loop, the
        script's `if __name__ == "__main__":` block excepted (it runs whenever the script does)."""
        return all(is_main_guard(condition) for condition in self._conditions(target))

    def _conditions(self, target: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
        """The if/try/loop statements around a binding, up to its function, class or module (once
        per binding: the reads after it walk back through it)."""
        found = self._conditions_cache.get(target)
        if found is None:
            found = self._conditions_cache[target] = tuple(self._enclosing_conditions(target))
        return found

    def _enclosing_conditions(self, target: cst.CSTNode) -> Iterator[cst.CSTNode]:
        for ancestor in self.ancestors(target):
            kind = type(ancestor)
            if kind in _FRAMES:
                return
            if kind in _CONDITIONAL:
                yield ancestor

    def timeline(self, name: cst.Name) -> list[tuple[int, cst.CSTNode]]:
        """The bindings of a name in the scope of this read (assignment targets, def, class and
        import statements), with when each is bound."""
        _, times, targets, _ = self._definitions(name)
        return list(zip(times, targets))

    def reaching_nodes(self, name: cst.Name) -> list[cst.CSTNode]:
        """The definitions of a name that can reach this read: the last binding (assignment,
        def, class or import) before it in the same scope, and the ones before that when the
        later ones are conditional (inside an if/try/loop that does not also hold the read); in a
        loop, also the bindings later in the same loop (from the previous iteration) unless one
        before the read in that loop always runs; those of outer scopes as `_outer_reaching`
        picks them. Parameters always count. Computed once per read (callers read the list,
        never change it)."""
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
        read_context: set[cst.CSTNode] = set()  # the read's ancestors, listed when first needed
        for index in range(split - 1, max(split - 1 - MAX_REACHING, -1), -1):
            node = targets[index]
            kept.append(node)
            conditions = self._conditions(node)
            if conditions and not read_context:
                read_context.update(self.ancestors(name))
            if all(condition in read_context for condition in conditions):  # it runs whenever the read does
                killed_in = node
                break
        read_loops = self.enclosing_loops(name)
        if read_loops:
            # a definition before the read inside the innermost shared loop hides the later ones;
            # the loops that do not hide them are the innermost ones, so the bindings they carry
            # are those after the read up to the end of the outermost of them
            kill_loops = set(self.enclosing_loops(killed_in)) if killed_in is not None else set()
            carried = [loop for loop in read_loops if loop not in kill_loops]
            if carried:
                kept += targets[split:bisect.bisect_right(times, self.loop_ends[carried[-1]])]
        if killed_in is None:
            kept += outer
        return kept[:MAX_REACHING]

    def _bound_at(self, target: cst.CSTNode) -> Optional[int]:
        if type(target) in DEFINITION_STATEMENTS:
            return self.order.get(target)
        if target in self._bound_cache:
            return self._bound_cache[target]
        found = None
        for ancestor in self.ancestors(target):
            if ancestor in self.order and not isinstance(ancestor, cst.Name):
                found = self.order[ancestor]
                break
        self._bound_cache[target] = found
        return found
