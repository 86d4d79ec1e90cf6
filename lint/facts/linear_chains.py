"""Linear layers applied one right after the other, with no activation between them: in
nn.Sequential calls and in forward() data flow (see `LinearChains`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from mlplint.lint.facts import names
from mlplint.lint.facts.models import Network, NetworkAnalysis, Op, shape_call_input

# Names of the inner size of a deliberate low-rank factorisation: r, rank, lora_r, bottleneck_dim, latent...
RANK_NAME = re.compile(r"(^|_)(r|rank|lora_r|low_rank|bottleneck|latent|latent_dim|code_dim|z_dim)(_dim|_size|\d|$)", re.IGNORECASE)


# Layers that pass values through unchanged as far as linearity goes (Dropout only rescales).
LINEAR_MAPS = {"torch.nn.Linear", "torch.nn.LazyLinear"}
PASS_THROUGH_LAYERS = names.DROPOUT_LAYERS | {"torch.nn.Flatten", "torch.nn.Unflatten", "torch.nn.Identity"}
DROPOUT_FUNCTIONS = {
    "torch.nn.functional.dropout", "torch.nn.functional.dropout1d", "torch.nn.functional.dropout2d",
    "torch.nn.functional.dropout3d", "torch.nn.functional.alpha_dropout", "torch.dropout",
}


@dataclass(frozen=True)
class LinearChain:
    """Two Linear layers applied one right after the other (nothing but Dropout/reshapes between)."""

    first: Op  # the first layer (its constructor)
    second: Op
    node: cst.CSTNode  # where to report: the second layer's constructor, or its call in forward()
    between: tuple[str, ...] = ()  # labels of the pass-through ops between them


class LinearChains:
    """Finds Linear -> Linear with no activation between, in nn.Sequential calls and in forward()
    data flow (the output of one Linear call is the input of the next)."""

    def __init__(self, analysis: NetworkAnalysis):
        self.analysis = analysis
        self.facts = analysis.facts

    def find(self) -> list[LinearChain]:
        chains: list[LinearChain] = []
        for call in self.facts.calls_to(names.SEQUENTIAL):
            chains.extend(self._in_sequence(call))
        for cls in self.facts.classes:
            if self.facts.is_module_class(cls):
                forward = self.facts.methods(cls).get("forward")
                if forward is not None:
                    chains.extend(self._in_forward(forward))
        return [c for c in chains if not self._bottleneck(c) and not self._across_blocks(c)]

    # ------------------------------------------------------------- nn.Sequential

    def sequence(self, call: cst.Call) -> list[Optional[Op]]:
        """The layers of an nn.Sequential call in order, nested Sequentials flattened; None for a
        module whose content is not a plain torch.nn layer (a local block, an unknown callable)."""
        items: list[Optional[Op]] = []
        for arg in call.args:
            elements = self.analysis._list_elements(arg.value) if arg.star else [arg.value]
            for element in elements:
                items.extend(self._element(element))
        return items

    def _element(self, expr: cst.BaseExpression) -> list[Optional[Op]]:
        origins = self.facts.origins(expr)
        if len(origins) != 1:
            return [None]
        origin = origins[0]
        cls = self.facts.class_of(origin)
        if cls == names.SEQUENTIAL and isinstance(origin, cst.Call):
            return self.sequence(origin)
        if isinstance(cls, str) and isinstance(origin, cst.Call) and names.is_layer_class(cls):
            return [Op(cls, origin, origin)]
        return [None]

    def _in_sequence(self, call: cst.Call) -> list[LinearChain]:
        items = self.sequence(call)
        network = self.analysis.for_sequential(call)
        chains = []
        previous: Optional[Op] = None
        between: list[str] = []
        for item in items:
            if item is None or item.api not in LINEAR_MAPS | PASS_THROUGH_LAYERS:
                previous, between = None, []
                continue
            if item.api in PASS_THROUGH_LAYERS:
                between.append(item.label)
                continue
            if previous is not None:
                chains.append(LinearChain(previous, item, item.node, tuple(between)))
            elif self._repeated_alone(item, items, network):
                chains.append(LinearChain(item, item, item.node))
            previous, between = item, []
        return chains

    def _repeated_alone(self, op: Op, items: list[Optional[Op]], network: Network) -> bool:
        """A Linear appended in a loop that adds nothing else: `for ...: layers.append(nn.Linear(...))`."""
        times = self.analysis.repeat(op.node, network)
        if times is None or times < 2:
            return False
        loop = next((a for a in self.facts.ancestors(op.node)
                     if isinstance(a, (cst.For, cst.ListComp, cst.GeneratorExp, cst.FunctionDef))), None)
        if loop is None or isinstance(loop, cst.FunctionDef):
            return False
        inside = [i for i in items if i is not None and i is not op and loop in set(self.facts.ancestors(i.node))]
        return not inside and sum(1 for i in items if i is not None and i.node is op.node) == 1

    # ------------------------------------------------------------- forward()

    def _in_forward(self, forward: cst.FunctionDef) -> list[LinearChain]:
        pairs: list[tuple[cst.Call, Op, cst.Call, Op, tuple[str, ...]]] = []
        for node in self.facts.effects.get(forward, []):
            if not isinstance(node, cst.Call) or not node.args:
                continue
            consumer = self._first_linear(node)
            if consumer is None:
                continue
            producers = self._producers(node.args[0].value, ())
            if producers and all(p is not None for p in producers):
                for producer_call, producer, between in producers:
                    pairs.append((producer_call, producer, node, consumer, between))
        consumers_of: dict[int, set[int]] = {}
        for producer_call, _, consumer_call, _, _ in pairs:
            consumers_of.setdefault(id(producer_call), set()).add(id(consumer_call))
        return [LinearChain(producer, consumer, consumer_call, between)
                for producer_call, producer, consumer_call, consumer, between in pairs
                if len(consumers_of[id(producer_call)]) == 1]  # multi-head outputs stay quiet

    def _layers_called(self, call: cst.Call) -> list[Optional[Op]]:
        """The sequence of layers a call in forward() applies (None where unknown)."""
        func = call.func.value if isinstance(call.func, cst.Attribute) and call.func.attr.value == "forward" else call.func
        origins = self.facts.origins(func)
        if len(origins) != 1 or self.facts.qualname(func) is not None:
            return [None]
        return self._element(func)

    def _first_linear(self, call: cst.Call) -> Optional[Op]:
        layers = self._layers_called(call)
        for layer in layers:
            if layer is None or layer.api not in LINEAR_MAPS | PASS_THROUGH_LAYERS:
                return None
            if layer.api in LINEAR_MAPS:
                return layer
        return None

    def _producers(self, expr: cst.BaseExpression, between: tuple[str, ...], depth: int = 0):
        """For each way expr's value is made: (call, Linear op, pass-through labels) when a Linear
        layer made it (through Dropout and reshapes), else None."""
        if depth > 8:
            return [None]
        found = []
        for origin in self.facts.origins(expr):
            found.extend(self._producer(origin, between, depth))
        return found

    def _producer(self, origin: cst.BaseExpression, between: tuple[str, ...], depth: int):
        facts = self.facts
        if not isinstance(origin, cst.Call):
            return [None]
        func = origin.func
        qualified = facts.qualname(func)
        passed = shape_call_input(facts, origin)
        if passed is None and qualified in DROPOUT_FUNCTIONS and origin.args:
            passed = origin.args[0].value
        if passed is not None:  # a reshape or functional dropout: look through it
            label = Op(qualified or f"method:{func.attr.value}", origin).label
            return self._producers(passed, (label,) + between, depth + 1)
        if qualified is not None or not origin.args:
            return [None]
        layers = self._layers_called(origin)
        tail = []
        for layer in reversed(layers):
            if layer is None or layer.api not in LINEAR_MAPS | PASS_THROUGH_LAYERS:
                return [None]
            if layer.api in LINEAR_MAPS:
                return [(origin, layer, tuple(tail) + between)]
            tail.insert(0, layer.label)
        if layers:  # only pass-through layers: look further back
            return self._producers(origin.args[0].value, tuple(tail) + between, depth + 1)
        return [None]

    def _bottleneck(self, chain: LinearChain) -> bool:
        """`nn.Linear(d, r)` then `nn.Linear(r, k)` with r < d and r < k: a deliberate low-rank
        factorisation or bottleneck (sizes known as literals)."""
        sizes = [
            self.facts.literal(self.facts.argument(op.call, index, keyword)) if op.call is not None else None
            for op, index, keyword in ((chain.first, 0, "in_features"), (chain.first, 1, "out_features"), (chain.second, 1, "out_features"))
        ]
        if not all(isinstance(size, int) for size in sizes):
            return self._factorisation_signature(chain)
        fan_in, rank, fan_out = sizes
        return rank < fan_in and rank < fan_out

    def _factorisation_signature(self, chain: LinearChain) -> bool:
        """Sizes that are not literals, written the way low-rank adapters are: a first Linear
        without bias (`nn.Linear(d, r, bias=False)`, as in LoRA) or an inner size named like a
        rank (`r`, `rank`, `bottleneck_dim`, `latent`)."""
        facts, first = self.facts, chain.first.call
        if first is None:
            return False
        if facts.literal(facts.argument(first, 2, "bias")) is False:
            return True
        inner = facts.argument(first, 1, "out_features")
        return inner is not None and RANK_NAME.search(facts.spelling(inner).rsplit(".", 1)[-1]) is not None

    def _across_blocks(self, chain: LinearChain) -> bool:
        """The two layers end and start two different nn.Sequential blocks joined by a call in
        forward() (an encoder's output handed to a decoder): the author drew a boundary there,
        e.g. a latent code. A block nested in another nn.Sequential is not such a boundary."""
        if chain.node is chain.second.node:  # found inside an nn.Sequential call, not in forward()
            return False
        first, second = (self._enclosing_sequential(op.node) for op in (chain.first, chain.second))
        return first is not None and second is not None and first is not second

    def _enclosing_sequential(self, node: cst.CSTNode) -> Optional[cst.Call]:
        return next((a for a in self.facts.ancestors(node) if isinstance(a, cst.Call) and self.facts.qualname(a.func) == names.SEQUENTIAL), None)
