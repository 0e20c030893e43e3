"""What the shape proofs of both formats share (``onnx_shapes``, ``tflite_shapes``): dimensions as polynomials in the
batch ``B``, exact or upper bounds; the broadcast, slice and reshape arithmetic; and the bound every tensor is held
to (``SizeCheck``): at most linear in the batch, within ``row_limit`` elements per batch row, and within
``max(row_limit, the file's largest constant)`` elements without the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import MAX_BATCH_SIZE as MAX_BATCH

#: Dimensions of any tensor (the exporter's have at most 3): a bound on the proof's own work per tensor.
MAX_RANK = 16
#: Elements of an integer tensor whose values a proof follows (shape vectors, axes, indices, slice bounds).
MAX_VALUES = 1024
_INT32_MAX = 2**31 - 1


class ShapeError(ValueError):
    """The proof cannot work out a shape, or a shape is larger than the contract allows."""


# ---- dimensions: polynomials in the batch ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dim:
    """c[0] + c[1]·B + c[2]·B² + …; ``exact`` False when the real dimension is at most this. A constant may be
    negative as a value (a slice bound, -1 in a reshape target), never as a dimension."""

    c: tuple[int, ...]
    exact: bool = True

    @staticmethod
    def of(n: int, exact: bool = True) -> "Dim":
        return Dim((n,), exact)

    @property
    def const(self) -> int | None:
        return self.c[0] if len(self.c) == 1 else None

    def __mul__(self, other: "Dim") -> "Dim":
        out = [0] * (len(self.c) + len(other.c) - 1)
        for i, a in enumerate(self.c):
            for j, b in enumerate(other.c):
                out[i + j] += a * b
        return dim(out, self.exact and other.exact)

    def __add__(self, other: "Dim") -> "Dim":
        n = max(len(self.c), len(other.c))
        return dim([(self.c[i] if i < len(self.c) else 0) + (other.c[i] if i < len(other.c) else 0)
                     for i in range(n)], self.exact and other.exact)

    def at_most(self, other: "Dim") -> "Dim":
        """An upper bound of both (coefficient by coefficient), exact only when both are the same exact dim."""
        if self.exact and self.const is not None and self.const != 1:
            return self  # broadcast with an exact dim other than 1: that dim, or the interpreter refuses
        if other.exact and other.const is not None and other.const != 1:
            return other
        if self.c == other.c:
            return Dim(self.c, self.exact and other.exact)
        n = max(len(self.c), len(other.c))
        return dim([max(self.c[i] if i < len(self.c) else 0, other.c[i] if i < len(other.c) else 0)
                     for i in range(n)], False)

    def largest(self) -> int:
        """The value at the largest batch the runtime runs."""
        return sum(c * MAX_BATCH ** i for i, c in enumerate(self.c))

    def __str__(self) -> str:
        def term(i: int, c: int) -> str:
            power = "" if i == 0 else "B" if i == 1 else f"B^{i}"
            return f"{c}" if not power else power if c == 1 else f"{c}·{power}"
        terms = [term(i, c) for i, c in enumerate(self.c) if c]
        return " + ".join(reversed(terms)) or "0"


def dim(coefficients, exact: bool) -> Dim:
    c = list(coefficients)
    while len(c) > 1 and c[-1] == 0:
        c.pop()
    return Dim(tuple(c), exact)


BATCH = Dim((0, 1))
ONE = Dim.of(1)


@dataclass
class Tensor:
    """A tensor's shape (None: not worked out), and its values when the proof can compute them (small integer
    tensors made of constants and shapes: the sizes of Expand and ConstantOfShape)."""

    shape: tuple[Dim, ...] | None
    values: tuple[Dim, ...] | None = None


def count(shape: tuple[Dim, ...]) -> Dim:
    n = ONE
    for d in shape:
        n = n * d
    return n


def nonneg(d: Dim) -> Dim:
    """A dimension from a value: a negative constant is no allocation (the interpreter refuses it)."""
    return Dim.of(0, d.exact) if d.const is not None and d.const < 0 else d


def axis_of(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"a {op} with axis {axis} of a rank-{rank} tensor")
    return axis % rank


def broadcast(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        d = None
        for x in dims:
            if x.c == (1,) and x.exact:
                continue
            d = x if d is None else d.at_most(x)
        out.append(d or ONE)
    return tuple(out)


def slice_length(length: int, start: int, end: int, step: int) -> int:
    """How many elements ONNX's Slice takes from an axis of ``length`` (the operator's clamping rules)."""
    if step == 0:
        raise ShapeError("a Slice with step 0")
    start = start + length if start < 0 else start
    end = end + length if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), length), min(max(end, 0), length)
        return max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), length - 1), min(max(end, -1), length - 1)
    return max(0, -(-(start - end) // -step))


def slice_indices(length: int, start: int, end: int, step: int) -> list[int]:
    n = slice_length(length, start, end, step)
    start = start + length if start < 0 else start
    first = min(max(start, 0), length) if step > 0 else min(max(start, 0), length - 1)
    return [first + i * step for i in range(n)]


def divide(total: Dim, by: Dim) -> Dim:
    """total / by for Reshape's -1: exact when both are exact and it divides; otherwise the total bounds it."""
    if total.exact and by.exact:
        k = next((i for i, c in enumerate(by.c) if c), None)
        if k is not None and by.c[k + 1:] == tuple(0 for _ in by.c[k + 1:]) and all(c == 0 for c in total.c[:k]) \
                and all(c % by.c[k] == 0 for c in total.c[k:]):
            return dim([c // by.c[k] for c in total.c[k:]], True)
    return Dim(total.c, False)




# ---- rules both formats share (their op name in messages) ------------------------------------------------------
def cast(t: Tensor, to_integer: bool) -> Tensor:
    """A cast: the same shape, and the values it follows kept only through a cast to int32/int64 that holds them."""
    keep = to_integer and t.values is not None and all(
        v.largest() <= _INT32_MAX and (v.const is None or -_INT32_MAX <= v.const) for v in t.values)
    return Tensor(t.shape, t.values if keep else None)


def concatenate(ins: list[Tensor | None], read_axis, op: str) -> Tensor:
    """The inputs side by side along the axis ``read_axis()`` gives (read once the ranks are known to agree)."""
    parts = [t for t in ins if t is not None]
    rank = len(parts[0].shape)
    if any(len(t.shape) != rank for t in parts):
        raise ShapeError(f"a {op} of tensors of different ranks")
    axis = axis_of(read_axis(), rank, op)
    dims = []
    for i in range(rank):
        d = parts[0].shape[i]
        for t in parts[1:]:
            d = d + t.shape[i] if i == axis else d.at_most(t.shape[i])
        dims.append(d)
    values = None
    if rank == 1 and all(t.values is not None for t in parts) and sum(len(t.values) for t in parts) <= MAX_VALUES:
        values = tuple(v for t in parts for v in t.values)
    return Tensor(tuple(dims), values)


def squeeze(t: Tensor, axes: list[int] | None, op: str) -> Tensor:
    """``t`` without the ``axes`` (None: without every dimension that is exactly 1)."""
    shape = t.shape
    if axes is None:
        if any(d.const is None or not d.exact for d in shape):
            raise ShapeError(f"a {op} without axes of a tensor whose dimensions depend on the batch")
        keep = [i for i, d in enumerate(shape) if d.const != 1]
    else:
        drop = {axis_of(x, len(shape), op) for x in axes}
        keep = [i for i in range(len(shape)) if i not in drop]
    values = t.values if len(shape) <= 1 and t.values is not None and len(t.values) == 1 else None
    return Tensor(tuple(shape[i] for i in keep), values)


def values_of(t: Tensor | None, what: str, op: str) -> tuple[Dim, ...]:
    """The values of an operator's input the proof follows (a size, axes, slice bounds), or ShapeError."""
    if t is None or t.values is None:
        raise ShapeError(f"a {op} whose {what} the proof cannot compute from constants and input shapes")
    return t.values


def ints_of(t: Tensor | None, what: str, op: str) -> list[int]:
    """``values_of`` as exact integers (axes, bounds, split sizes, indices are used as they are, so an upper
    bound will not do): ShapeError when one depends on the batch or is known only as a bound."""
    values = values_of(t, what, op)
    if any(v.const is None for v in values):
        raise ShapeError(f"a {op} whose {what} depends on the batch")
    if not all(v.exact for v in values):
        raise ShapeError(f"a {op} whose {what} the proof knows only as a bound")
    return [v.const for v in values]


def exact_ints(t: Tensor) -> bool:
    """Whether all of a tensor's values are followed, constant and exact (else a slice reads its bounds from
    values, and is bounded by what it slices)."""
    return t.values is not None and all(v.const is not None and v.exact for v in t.values)


class SizeCheck:
    """The bound on every tensor a proof worked out: ``add`` each one, then ``problems``."""

    def __init__(self, row_limit: int):
        self.row_limit = row_limit
        self.largest_constant = 0
        self.checked: list[tuple[str, tuple[Dim, ...]]] = []

    def constant(self, elements: int) -> None:
        self.largest_constant = max(self.largest_constant, elements)

    def add(self, name: str, shape: tuple[Dim, ...]) -> None:
        self.checked.append((name, shape))

    def problems(self, limit: int = 3) -> list[str]:
        const_limit = max(self.row_limit, self.largest_constant)
        problems = []
        for name, shape in self.checked:
            n = count(shape)
            if len(n.c) > 2:
                problems.append(f"holds a tensor ({name[:60]!r}) of {n} elements: it grows with a power of the batch "
                                "(the contract's tensors grow linearly; refused)")
            elif (len(n.c) == 2 and n.c[1] > self.row_limit) or n.c[0] > const_limit:
                problems.append(f"holds a tensor ({name[:60]!r}) of {n} elements, more than the bundle's shapes allow "
                                f"({self.row_limit} per batch row, {const_limit} in all without the batch; refused)")
            if len(problems) >= limit:
                break
        return problems


def keeps_shape(first: tuple[Dim, ...] | None, after: tuple[Dim, ...] | None) -> bool:
    """Whether a loop variable leaves the body with exactly the shape it entered with (both exact)."""
    return first is not None and after is not None and len(first) == len(after) and all(
        x.c == y.c and x.exact and y.exact for x, y in zip(first, after))
