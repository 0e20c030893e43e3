"""The shape proof of an ONNX model: every tensor's shape worked out from the bytes, with the batch symbolic.

A model's inputs have the contract's shapes (the batch, then constants). From them, each node's output shape
follows from its op's rule; a size read from tensor values (``Expand``, ``ConstantOfShape``) must be a value the
proof can compute: made of constants and input shapes. A dimension is a polynomial in the batch ``B`` with
non-negative coefficients, exact or an upper bound (a slice of the batch axis is at most the slice's length). A
Loop's body is worked out with its carried tensors' first shapes, and each carried tensor must leave the body with
the shape it came in with: a loop cannot grow what it carries.

The proof then bounds every tensor: its element count may grow at most linearly in the batch, by at most
``row_limit`` elements per batch row, plus at most ``max(row_limit, the largest tensor of the file)`` elements that
do not depend on the batch. Anything the proof cannot work out (an op it has no rule for, a size whose value it
cannot compute, a carried tensor that changes shape) is refused: the runtime accepts what it can prove.
"""

from __future__ import annotations

from .onnx_wire import Const, Graph, Node
from .shapes import (BATCH, MAX_RANK, MAX_VALUES, ONE, Dim, ShapeError, SizeCheck, Tensor, axis_of, broadcast, cast,
                     concatenate, count, dim, divide, exact_ints, ints_of, keeps_shape, nonneg, slice_indices,
                     slice_length, squeeze, values_of)

_INT32, _INT64 = 6, 7  # TensorProto.DataType


# ---- the rules --------------------------------------------------------------------------------------------------------
def _int(a: dict, name: str, default: int) -> int:
    """An int attribute (``default`` when absent); ShapeError when it is of another kind."""
    v = a.get(name, default)
    if type(v) is not int:
        raise ShapeError(f"an attribute {name!r} that is not an integer")
    return v


def _ints(a: dict, name: str, default=None):
    """A list-of-ints attribute (``default`` when absent); ShapeError when it is of another kind."""
    if name not in a:
        return default
    v = a[name]
    if not isinstance(v, list) or any(type(x) is not int for x in v):
        raise ShapeError(f"an attribute {name!r} that is not a list of integers")
    return list(v)


class Prover:
    """Works out every tensor of one model; ``problems`` lists what it refuses."""

    def __init__(self, row_limit: int):
        self.sizes = SizeCheck(row_limit)

    # -- constants and values
    def const_tensor(self, c: Const) -> Tensor:
        if c.dims is None or any(d < 0 for d in c.dims) or len(c.dims) > MAX_RANK:
            return Tensor(None)
        shape = tuple(Dim.of(d) for d in c.dims)
        n = 1
        for d in c.dims:
            n *= d
        self.sizes.constant(n)
        values = tuple(Dim.of(v) for v in c.ints) if c.ints is not None else None
        return Tensor(shape, values)

    def known(self, t: Tensor | None, what: str, node: Node) -> tuple[Dim, ...]:
        return values_of(t, what, node.op)

    def ints(self, t: Tensor | None, what: str, node: Node) -> list[int]:
        return ints_of(t, what, node.op)

    # -- one graph
    def graph(self, g: Graph, scope: dict[str, Tensor], where: str) -> dict[str, Tensor]:
        """Works out ``g``'s nodes in order; ``scope`` holds what the graph sees (its inputs, outer names)."""
        env = dict(scope)
        for name, c in g.initializers.items():
            env[name] = self.const_tensor(c)
        for node in g.nodes:
            try:
                outputs = self.node(node, [env.get(i) if i else None for i in node.inputs], env)
            except ShapeError as e:
                raise ShapeError(f"{where}: {e}") from None
            for name, t in zip(node.outputs, outputs):
                if t.shape is not None and len(t.shape) > MAX_RANK:
                    raise ShapeError(f"{where}: a {node.op} whose output has {len(t.shape)} dimensions (at most "
                                     f"{MAX_RANK})")
                if name:
                    env[name] = t
                    if t.shape is not None:
                        self.sizes.add(name, t.shape)
        return env

    def node(self, node: Node, ins: list[Tensor | None], env: dict[str, Tensor]) -> list[Tensor]:
        op, a = node.op, node.attrs
        for i, t in enumerate(ins):
            if node.inputs[i] and (t is None or t.shape is None):
                raise ShapeError(f"a {op} reads {node.inputs[i][:60]!r}, whose shape the proof does not know")
        rule = _RULES.get(op)
        if rule is None:
            raise ShapeError(f"no shape rule for {op}")
        needed = _INPUTS_NEEDED.get(op, 1)
        if len(ins) < needed or any(t is None for t in ins[:needed]) or not node.outputs:
            raise ShapeError(f"a {op} without the inputs and outputs it needs")
        try:
            out = rule(self, node, ins, a, env)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            if isinstance(e, ShapeError):
                raise
            raise ShapeError(f"a malformed {op}") from None
        return out if isinstance(out, list) else [out]


# Each rule: (prover, node, input tensors, attributes, environment) -> output tensor(s).
def _same(p, node, ins, a, env):
    return Tensor(ins[0].shape)


def _cast(p, node, ins, a, env):
    return cast(ins[0], _int(a, "to", 0) in (_INT32, _INT64))


def _elementwise(p, node, ins, a, env):
    return Tensor(broadcast(*(t.shape for t in ins if t is not None)))


def _matmul(p, node, ins, a, env):
    x, y = ins[0].shape, ins[1].shape
    if not x or not y:
        raise ShapeError(f"a {node.op} of a scalar")
    x2 = (ONE,) + x if len(x) == 1 else x
    y2 = y + (ONE,) if len(y) == 1 else y
    out = broadcast(x2[:-2], y2[:-2]) + (x2[-2], y2[-1])
    if len(x) == 1:
        out = out[:-2] + out[-1:]
    if len(y) == 1:
        out = out[:-1]
    return Tensor(out)


def _gemm(p, node, ins, a, env):
    x, y = ins[0].shape, ins[1].shape
    if len(x) != 2 or len(y) != 2:
        raise ShapeError("a Gemm of a tensor that is not a matrix")
    m = x[1] if _int(a, "transA", 0) else x[0]
    n = y[0] if _int(a, "transB", 0) else y[1]
    return Tensor((m, n))


def _gather(p, node, ins, a, env):
    data, idx = ins[0], ins[1]
    if not data.shape:
        raise ShapeError("a Gather from a scalar")
    axis = axis_of(_int(a, "axis", 0), len(data.shape), "Gather")
    shape = data.shape[:axis] + idx.shape + data.shape[axis + 1:]
    values = None
    if len(data.shape) == 1 and data.values is not None and idx.values is not None:
        n = len(data.values)
        picks = [v.const if v.exact else None for v in idx.values]
        if all(i is not None and -n <= i < n for i in picks):
            values = tuple(data.values[i] for i in picks)
    return Tensor(shape, values)


def _split(p, node, ins, a, env):
    shape = ins[0].shape
    axis = axis_of(_int(a, "axis", 0), len(shape), "Split")
    n = len(node.outputs)
    if len(ins) > 1 and ins[1] is not None:
        sizes = p.ints(ins[1], "split sizes", node)
    elif "split" in a:
        sizes = _ints(a, "split")
    else:
        d = shape[axis]
        sizes = None
        part = dim([-(-c // n) for c in d.c], d.exact and all(c % n == 0 for c in d.c))
    if sizes is not None and len(sizes) != n:
        raise ShapeError(f"a Split into {n} outputs with {len(sizes)} sizes")
    return [Tensor(shape[:axis] + ((Dim.of(max(sizes[i], 0)) if sizes is not None else part),) + shape[axis + 1:])
            for i in range(n)]


def _concat(p, node, ins, a, env):
    return concatenate(ins, lambda: _int(a, "axis", 0), "Concat")


def _slice(p, node, ins, a, env):
    data = ins[0]
    rank = len(data.shape)
    params = [t for t in ins[1:] if t is not None]
    if not all(exact_ints(t) for t in params):
        # bounds read from tensor values: a slice is never larger than what it slices
        return Tensor(tuple(Dim(d.c, False) for d in data.shape))
    starts = p.ints(ins[1], "starts", node) if len(ins) > 1 else _ints(a, "starts", [])
    ends = p.ints(ins[2], "ends", node) if len(ins) > 2 else _ints(a, "ends", [])
    axes = p.ints(ins[3], "axes", node) if len(ins) > 3 and ins[3] is not None else list(
        _ints(a, "axes", list(range(len(starts)))))
    steps = p.ints(ins[4], "steps", node) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("a Slice whose starts, ends, axes and steps differ in length")
    dims = list(data.shape)
    values = data.values
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis_of(axis, rank, "Slice")
        d = dims[axis]
        if d.const is not None:
            dims[axis] = Dim.of(slice_length(d.const, start, end, step), d.exact)
            if rank == 1 and values is not None and d.exact and len(values) == d.const:
                values = tuple(values[i] for i in slice_indices(d.const, start, end, step))
            else:
                values = None
        elif step == 1 and start == 0 and end >= d.largest():
            pass  # the whole axis, at any batch the runtime runs
        elif step == 1 and 0 <= start < end:
            dims[axis] = Dim.of(end - start, False)  # at most the slice's length
        elif step == 1 and start < 0 and end >= d.largest():
            dims[axis] = Dim.of(-start, False)  # the last -start elements at most
        else:
            dims[axis] = Dim(d.c, False)
    if rank != 1 or any(not d.exact for d in dims):
        values = None
    return Tensor(tuple(dims), values)


def _axes(p, node, ins, a, what="axes"):
    if len(ins) > 1 and ins[1] is not None:
        return p.ints(ins[1], what, node)
    return _ints(a, "axes", None)


def _squeeze(p, node, ins, a, env):
    return squeeze(ins[0], _axes(p, node, ins, a), "Squeeze")


def _unsqueeze(p, node, ins, a, env):
    shape = ins[0].shape
    axes = _axes(p, node, ins, a)
    if axes is None:
        raise ShapeError("an Unsqueeze without axes")
    rank = len(shape) + len(axes)
    at = sorted({axis_of(x, rank, "Unsqueeze") for x in axes})
    if len(at) != len(axes):
        raise ShapeError("an Unsqueeze with an axis given twice")
    out, rest = [], iter(shape)
    for i in range(rank):
        out.append(ONE if i in at else next(rest))
    values = ins[0].values if rank <= 1 else None
    return Tensor(tuple(out), values)


def _transpose(p, node, ins, a, env):
    shape = ins[0].shape
    perm = _ints(a, "perm", None) or list(range(len(shape)))[::-1]
    if sorted(perm) != list(range(len(shape))):
        raise ShapeError("a Transpose whose perm is not a permutation of the axes")
    return Tensor(tuple(shape[i] for i in perm))


def _reshape(p, node, ins, a, env):
    data = ins[0]
    target = p.known(ins[1], "target shape", node)
    total = count(data.shape)
    dims, infer = [], None
    for i, v in enumerate(target):
        if v.const == -1:
            if infer is not None:
                raise ShapeError("a Reshape with two -1s")
            infer = i
            dims.append(None)
        elif v.const == 0 and not _int(a, "allowzero", 0):
            if i >= len(data.shape):
                raise ShapeError("a Reshape that copies an axis its input does not have")
            dims.append(data.shape[i])
        elif v.const is not None and v.const < 0:
            raise ShapeError(f"a Reshape to a negative dimension {v.const}")
        else:
            dims.append(v)
    if infer is not None:
        known = count([d for d in dims if d is not None])
        dims[infer] = divide(total, known)
    values = data.values if len(dims) <= 1 else None
    return Tensor(tuple(dims), values)


def _shape(p, node, ins, a, env):
    dims = ins[0].shape
    start, end = _int(a, "start", 0), _int(a, "end", len(dims))
    picked = dims[slice(start, end)]
    return Tensor((Dim.of(len(picked)),), tuple(picked))


def _constant_of_shape(p, node, ins, a, env):
    return Tensor(tuple(nonneg(v) for v in p.known(ins[0], "size", node)))


def _expand(p, node, ins, a, env):
    size = tuple(nonneg(v) for v in p.known(ins[1], "size", node))
    return Tensor(broadcast(ins[0].shape, size))


def _reduce(p, node, ins, a, env):
    shape = ins[0].shape
    axes = _axes(p, node, ins, a)
    keep = _int(a, "keepdims", 1)
    if not axes:
        if _int(a, "noop_with_empty_axes", 0):  # no axes, given empty or not given: the input as it is
            return Tensor(shape)
        axes = range(len(shape))
    drop = {axis_of(x, len(shape), node.op) for x in axes}
    out = tuple(ONE if i in drop else d for i, d in enumerate(shape) if keep or i not in drop)
    return Tensor(out)


def _argmax(p, node, ins, a, env):
    shape = ins[0].shape
    axis = axis_of(_int(a, "axis", 0), len(shape), node.op)
    keep = _int(a, "keepdims", 1)
    return Tensor(tuple(ONE if i == axis else d for i, d in enumerate(shape) if keep or i != axis))


def _dynamic_quantize(p, node, ins, a, env):
    return [Tensor(ins[0].shape), Tensor(()), Tensor(())]


def _constant(p, node, ins, a, env):
    if isinstance(a.get("value"), Const):
        return p.const_tensor(a["value"])
    if "value_int" in a:
        return Tensor((), (Dim.of(_int(a, "value_int", 0)),))
    if "value_ints" in a:
        values = _ints(a, "value_ints")
        return Tensor((Dim.of(len(values)),), tuple(Dim.of(v) for v in values) if len(values) <= MAX_VALUES else None)
    raise ShapeError("a Constant of a kind the proof does not read (value, value_int, value_ints)")


def _loop(p, node, ins, a, env):
    body = a.get("body")
    if not isinstance(body, Graph):
        raise ShapeError("a Loop without a body graph")
    carried = ins[2:]
    if len(body.inputs) != 2 + len(carried) or len(body.outputs) < 1 + len(carried):
        raise ShapeError("a Loop whose body's inputs and outputs do not match its carried tensors")
    scope = dict(env)
    scope[body.inputs[0]] = Tensor(())                      # the iteration number
    scope[body.inputs[1]] = Tensor(())                      # the condition
    for name, t in zip(body.inputs[2:], carried):
        scope[name] = Tensor(t.shape)                       # values change from step to step
    inner = p.graph(body, scope, "its Loop body")
    for name, first, out_name in zip(body.inputs[2:], carried, body.outputs[1:]):
        after = inner.get(out_name)
        if not keeps_shape(first.shape, after.shape if after is not None else None):
            raise ShapeError(f"a Loop whose body changes the shape of the tensor it carries as {name[:60]!r} (a loop "
                             "may not grow what it carries)")
    trips = ins[0].values[0] if ins[0] is not None and ins[0].values else None
    outs = [Tensor(t.shape) for t in carried]
    for out_name in body.outputs[1 + len(carried):]:          # scan outputs: one slice per iteration
        step = inner.get(out_name)
        if trips is None or trips.const is None or step is None or step.shape is None:
            raise ShapeError("a Loop with a scan output whose size the proof cannot bound")
        outs.append(Tensor((Dim.of(max(trips.const, 0), False),) + step.shape))
    return outs


#: Inputs each op needs present (the others are optional); an op not listed needs one.
_INPUTS_NEEDED = {"Add": 2, "Sub": 2, "Mul": 2, "Equal": 2, "Less": 2, "Greater": 2, "And": 2, "Or": 2, "Where": 3,
                  "MatMul": 2, "MatMulInteger": 2, "Gemm": 2, "Gather": 2, "Reshape": 2, "Expand": 2,
                  "Constant": 0, "Loop": 0}

_RULES = {
    "Identity": _same, "Sigmoid": _same, "Tanh": _same, "Not": _same, "Softmax": _same,
    "QuantizeLinear": _same, "DequantizeLinear": _same,
    "Cast": _cast,
    "Add": _elementwise, "Sub": _elementwise, "Mul": _elementwise, "Equal": _elementwise, "Less": _elementwise,
    "Greater": _elementwise, "And": _elementwise, "Or": _elementwise, "Where": _elementwise,
    "MatMul": _matmul, "MatMulInteger": _matmul, "Gemm": _gemm, "Gather": _gather, "Split": _split,
    "Concat": _concat, "Slice": _slice, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Transpose": _transpose,
    "Reshape": _reshape, "Shape": _shape, "ConstantOfShape": _constant_of_shape, "Expand": _expand,
    "ReduceSum": _reduce, "ReduceMax": _reduce, "ArgMax": _argmax, "DynamicQuantizeLinear": _dynamic_quantize,
    "Constant": _constant, "Loop": _loop,
}


def prove(g: Graph, inputs: dict[str, tuple[int, ...]], row_limit: int) -> list[str]:
    """Problems with ``g``'s shapes (empty: every tensor is proved within bounds). ``inputs`` maps each contract
    input to its shape (-1: the batch); ``row_limit`` bounds the elements of any tensor per batch row."""
    p = Prover(row_limit)
    scope = {}
    for name in g.inputs:
        if name in g.initializers and name in inputs:
            return [f"has an initializer {name[:60]!r} of the name of a contract input (ONNX Runtime would take "
                    "the caller's value in its place: its shape cannot be proved)"]
        if name in g.initializers:
            continue  # an input with a default value the runtime never feeds: the initializer
        if name not in inputs:
            return [f"has an input {name[:60]!r} the contract does not name (its shape cannot be proved)"]
        scope[name] = Tensor(tuple(BATCH if d == -1 else Dim.of(d) for d in inputs[name]))
    try:
        p.graph(g, scope, "the main graph")
    except ShapeError as e:
        return [f"cannot prove its shapes: {e} (refused: the runtime runs what it can bound)"]
    return p.sizes.problems()
