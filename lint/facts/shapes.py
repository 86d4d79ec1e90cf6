"""Shapes as the tensor analysis knows them: a tuple of dims, each an int or None (unknown), or
None for a tensor of unknown rank. The functions here are PyTorch's (and NumPy's) shape rules,
applied to what is known: an unknown dim stays unknown, and an unknown dim is taken not to be 1
(a batch of one sample is not what a training script feeds), so `(N, 1).squeeze()` is `(N,)`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

Dim = Optional[int]
Shape = Optional[tuple[Dim, ...]]


def numel(shape: Shape) -> Optional[int]:
    if shape is None or any(d is None for d in shape):
        return None
    return math.prod(shape)  # type: ignore[arg-type]


def broadcast(a: Shape, b: Shape) -> Shape:
    """The shape of an elementwise operation on a and b (PyTorch's broadcasting semantics)."""
    if a is None or b is None:
        return None
    rank = max(len(a), len(b))
    left, right = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    dims: list[Dim] = []
    for x, y in zip(left, right):
        if x == 1:
            dims.append(y)
        elif y == 1 or x == y:
            dims.append(x)
        elif x is None or y is None:
            dims.append(x if y is None else y)
        else:
            return None  # incompatible: the script raises here
    return tuple(dims)


def join(a: Shape, b: Shape) -> Shape:
    """What is common to two shapes an expression may have (one per reaching definition)."""
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b))


def normalise_dim(dim: object, rank: int, extra: int = 0) -> Optional[int]:
    """A literal dim argument as an index in [0, rank + extra), or None."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    size = rank + extra
    index = dim + size if dim < 0 else dim
    return index if 0 <= index < size else None


def reshape(source: Shape, dims: Sequence[object]) -> Shape:
    """`view`/`reshape` with the given literal dims (None for a dim that is not literal); one -1
    is worked out when the source's size is known."""
    if any(d is not None and (not isinstance(d, int) or isinstance(d, bool)) for d in dims):
        return None
    result: list[Dim] = [None if d is None or d < 0 else d for d in dims]  # type: ignore[operator]
    inferred = [i for i, d in enumerate(dims) if d == -1]
    total, known = numel(source), [d for d in result if d is not None]
    if len(inferred) == 1 and total is not None and len(known) == len(result) - 1 and math.prod(known):
        result[inferred[0]] = total // math.prod(known)
    return tuple(result)


def squeeze(source: Shape, dim: object = None, all_dims: bool = True) -> Shape:
    if source is None:
        return None
    if all_dims:
        return tuple(d for d in source if d != 1)
    index = normalise_dim(dim, len(source))
    if index is None:
        return None
    return source[:index] + source[index + 1:] if source[index] == 1 else source


def unsqueeze(source: Shape, dim: object) -> Shape:
    if source is None:
        return None
    index = normalise_dim(dim, len(source), extra=1)
    return source[:index] + (1,) + source[index:] if index is not None else None


def flatten(source: Shape, start: object = 0, end: object = -1) -> Shape:
    if source is None:
        return None
    if not source:
        return (1,)
    first, last = normalise_dim(start, len(source)), normalise_dim(end, len(source))
    if first is None or last is None or first > last:
        return None
    middle = source[first:last + 1]
    size = math.prod(middle) if all(d is not None for d in middle) else None  # type: ignore[arg-type]
    return source[:first] + (size,) + source[last + 1:]


def permute(source: Shape, order: Sequence[object]) -> Shape:
    if source is None or len(order) != len(source):
        return None
    indices = [normalise_dim(i, len(source)) for i in order]
    if any(i is None for i in indices) or len(set(indices)) != len(indices):
        return None
    return tuple(source[i] for i in indices)  # type: ignore[index]


def transpose(source: Shape, first: object = -2, second: object = -1) -> Shape:
    if source is None:
        return None
    if len(source) < 2:
        return source
    a, b = normalise_dim(first, len(source)), normalise_dim(second, len(source))
    if a is None or b is None:
        return None
    dims = list(source)
    dims[a], dims[b] = dims[b], dims[a]
    return tuple(dims)


def matmul(a: Shape, b: Shape) -> Shape:
    """`a @ b`, `torch.matmul`, `mm`, `bmm` (1-D operands get a dim added, then removed)."""
    if a is None or b is None or not a or not b:
        return None
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(b) == 1:
        return a[:-1]
    if len(a) == 1:
        return b[:-2] + b[-1:]
    batch = broadcast(a[:-2], b[:-2])
    return batch + (a[-2], b[-1]) if batch is not None else None


def reduce(source: Shape, dim: object = None, keepdim: bool = False, has_dim: bool = False) -> Shape:
    """A reduction (`sum`, `mean`, `argmax`...) over all dims or one (or a tuple of) dim."""
    if source is None:
        return None
    if not has_dim:
        return (1,) * len(source) if keepdim else ()
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    indices = {normalise_dim(d, len(source)) for d in dims}
    if None in indices:
        return None
    return tuple(1 if i in indices else d for i, d in enumerate(source) if keepdim or i not in indices)


def concatenate(parts: Sequence[Shape], dim: object) -> Shape:
    """`torch.cat` / `np.concatenate` along a dim."""
    if not parts or any(p is None for p in parts) or len({len(p) for p in parts}) != 1:  # type: ignore[arg-type]
        return None
    rank = len(parts[0])  # type: ignore[arg-type]
    index = normalise_dim(dim, rank)
    if index is None:
        return None
    dims: list[Dim] = []
    for i in range(rank):
        column = [p[i] for p in parts]  # type: ignore[index]
        if i == index:
            dims.append(sum(column) if all(d is not None for d in column) else None)  # type: ignore[arg-type]
        else:
            dims.append(column[0] if len(set(column)) == 1 else None)
    return tuple(dims)


def stack(parts: Sequence[Shape], dim: object) -> Shape:
    """`torch.stack` / `np.stack`: a new dim of len(parts)."""
    if not parts or any(p is None for p in parts):
        return None
    common = parts[0]
    for other in parts[1:]:
        common = join(common, other)
    if common is None:
        return None
    index = normalise_dim(dim, len(common), extra=1)
    return common[:index] + (len(parts),) + common[index:] if index is not None else None


def describe(shape: Shape) -> str:
    """`(N, 1)`, `(N,)`, `(1, N)`, `(3, 1)`: the first unknown dim reads as N (the batch), the others as ?."""
    if shape is None:
        return "(?)"
    first = next((i for i, d in enumerate(shape) if d is None), None)
    names = [str(d) if d is not None else ("N" if i == first else "?") for i, d in enumerate(shape)]
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"
