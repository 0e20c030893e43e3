"""The shape proof of a TFLite model: every tensor's shape worked out from the bytes, with the batch symbolic.

The interpreter resizes each tensor an operator writes from its inputs when it prepares the operator, whatever the
file declares; so does this proof, one rule per builtin a role may hold (``manifest.ALLOWED_OPS``), from the
contract's input shapes (bound through the model's signature) and the file's constants. A size read from values
(``FILL``, a ``RESHAPE`` target) must be one the proof computes from constants and input shapes; a ``WHILE`` body
must return each loop variable at the shape it came in with. Every tensor is then held to the bound of
``shapes.SizeCheck``. What the proof cannot work out is refused.
"""

from __future__ import annotations

import struct

from .shapes import (BATCH, MAX_RANK, MAX_VALUES, ONE, Dim, ShapeError, SizeCheck, Tensor, axis_of, broadcast, cast,
                     concatenate, count, dim, divide, exact_ints, ints_of, keeps_shape, nonneg, slice_indices,
                     slice_length, squeeze, values_of)
from .tflite_wire import TfliteGraphs, WireError, _Op, _Subgraph, model_graphs

# TensorType
_INT32, _INT64 = 2, 4
# BuiltinOptions union types, and each options table's fields (tensorflow/compiler/mlir/lite/schema/schema.fbs)
_OPTIONS = {"FULLY_CONNECTED": 8, "CONCATENATION": 10, "RESHAPE": 17, "GATHER": 23, "REDUCER": 27, "SQUEEZE": 30,
            "STRIDED_SLICE": 32, "SPLIT": 35, "PACK": 59, "UNPACK": 64, "SPLIT_V": 79, "BATCH_MATMUL": 101}
_REDUCERS = ("SUM", "REDUCE_MAX", "REDUCE_ALL", "REDUCE_ANY")


def _options(op: _Op, kind: str):
    """The operator's options table when it is of ``kind`` (None: every field takes its default, as the
    interpreter's parser does when the options are absent or of another type)."""
    if op.table.scalar(3, "<B", 0) != _OPTIONS[kind]:
        return None
    return op.table.table_field(4)


def _opt(op: _Op, kind: str, index: int, fmt: str = "<i", default: int = 0) -> int:
    options = _options(op, kind)
    return default if options is None else options.scalar(index, fmt, default)


def _opt_ints(op: _Op, kind: str, index: int) -> list[int]:
    options = _options(op, kind)
    return [] if options is None else options.ints(index)


class Prover:
    """Works out every tensor of a model's subgraphs; ``sizes`` holds what it worked out."""

    def __init__(self, model: TfliteGraphs, row_limit: int):
        self.model = model
        self.sizes = SizeCheck(row_limit)
        self.current: _Subgraph | None = None  # the graph whose operator a rule works out

    def output_type(self, op: _Op) -> int | None:
        """The TensorType of the operator's first output (CAST's target type)."""
        return self._type(op.outputs[0] if op.outputs else -1)

    def input_type(self, op: _Op, k: int) -> int | None:
        """The TensorType of the operator's input ``k``."""
        return self._type(op.inputs[k] if k < len(op.inputs) else -1)

    def _type(self, i: int) -> int | None:
        g = self.current
        return g.tensors[i].scalar(1, "<b", 0) if g is not None and 0 <= i < len(g.tensors) else None

    def tensor_name(self, g: _Subgraph, index: int) -> str:
        name = g.tensors[index].string(3) if 0 <= index < len(g.tensors) else None
        return name or f"tensor {index}"

    def file_tensor(self, g: _Subgraph, index: int) -> Tensor:
        """A tensor no operator writes and no caller feeds: its shape from the file, its values if it is a small
        integer constant."""
        t = g.tensors[index]
        dims = t.ints(0)  # Tensor.shape
        if any(d < 0 for d in dims) or any(d < 0 for d in t.ints(7)) or len(dims) > MAX_RANK:
            raise ShapeError(f"a tensor ({self.tensor_name(g, index)[:60]!r}) of no fixed shape that no operator "
                             "writes")
        n = 1
        for d in dims:
            n *= d
        values = None
        kind, b = t.scalar(1, "<b", 0), t.scalar(2, "<I", 0)  # Tensor.type, Tensor.buffer
        if 0 < b < len(self.model.buffers) and not t.scalar(5, "<b", 0):  # a constant of the file
            self.sizes.constant(n)
            width = {_INT32: 4, _INT64: 8}.get(kind)
            if width and n <= MAX_VALUES:
                data = self.model.buffers[b].bytes_(0, MAX_VALUES * 8)
                if data is not None and len(data) == n * width:
                    values = tuple(Dim.of(v) for v in struct.unpack(f"<{n}{'i' if width == 4 else 'q'}", data))
        else:
            self.sizes.add(self.tensor_name(g, index), tuple(Dim.of(d) for d in dims))
        return Tensor(tuple(Dim.of(d) for d in dims), values)

    def graph(self, index: int, scope: dict[int, Tensor], where: str) -> dict[int, Tensor]:
        g = self.model.graphs[index]
        env = dict(scope)
        for op in g.ops:
            ins = []
            for i in op.inputs:
                if i < 0:
                    ins.append(None)  # an optional input left out
                elif i in env:
                    ins.append(env[i])
                elif i in g.producer or not 0 <= i < len(g.tensors):
                    raise ShapeError(f"{where}: a {op.name} reads a tensor before any operator writes it")
                else:
                    env[i] = self.file_tensor(g, i)
                    ins.append(env[i])
            try:
                self.current = g
                outs = self.op(op, ins)
            except ShapeError as e:
                raise ShapeError(f"{where}: {e}") from None
            for i, t in zip(op.outputs, outs):
                if t.shape is not None and len(t.shape) > MAX_RANK:
                    raise ShapeError(f"{where}: a {op.name} whose output has {len(t.shape)} dimensions (at most "
                                     f"{MAX_RANK})")
                if 0 <= i < len(g.tensors):
                    env[i] = t
                    self.sizes.add(self.tensor_name(g, i), t.shape)
        return env

    def op(self, op: _Op, ins: list[Tensor | None]) -> list[Tensor]:
        rule = _RULES.get(op.name)
        if rule is None:
            raise ShapeError(f"no shape rule for {op.name}")
        needed = _INPUTS_NEEDED.get(op.name, 1)
        if len(ins) < needed or any(t is None for t in ins[:needed]) or not op.outputs:
            raise ShapeError(f"a {op.name} without the inputs and outputs it needs")
        try:
            out = rule(self, op, ins)
        except ShapeError:
            raise
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, ZeroDivisionError, struct.error,
                WireError):
            raise ShapeError(f"a malformed {op.name}") from None
        return out if isinstance(out, list) else [out]

    def known(self, t: Tensor | None, what: str, op: _Op) -> tuple[Dim, ...]:
        return values_of(t, what, op.name)

    def ints(self, t: Tensor | None, what: str, op: _Op) -> list[int]:
        return ints_of(t, what, op.name)


# ---- the rules: (prover, operator, input tensors) -> output tensor(s) ----------------------------------------------------
def _same(p, op, ins):
    return Tensor(ins[0].shape)


def _cast(p, op, ins):
    return cast(ins[0], p.output_type(op) in (_INT32, _INT64))


def _elementwise(p, op, ins):
    return Tensor(broadcast(*(t.shape for t in ins if t is not None)))


def _fully_connected(p, op, ins):
    x, w = ins[0].shape, ins[1].shape
    if len(w) != 2 or not x:
        raise ShapeError("a FULLY_CONNECTED whose weights are not a matrix")
    units, depth = w
    if _opt(op, "FULLY_CONNECTED", 2, "<B", 0):  # keep_num_dims
        return Tensor(x[:-1] + (units,))
    return Tensor((divide(count(x), depth), units))


def _batch_matmul(p, op, ins):
    x, y = ins[0].shape, ins[1].shape
    if len(x) < 2 or len(y) < 2:
        raise ShapeError("a BATCH_MATMUL of a tensor of rank under 2")
    n = x[-1] if _opt(op, "BATCH_MATMUL", 0, "<B", 0) else x[-2]
    m = y[-2] if _opt(op, "BATCH_MATMUL", 1, "<B", 0) else y[-1]
    return Tensor(broadcast(x[:-2], y[:-2]) + (n, m))


def _gather(p, op, ins):
    params, idx = ins[0], ins[1]
    if not params.shape:
        raise ShapeError("a GATHER from a scalar")
    axis = axis_of(_opt(op, "GATHER", 0), len(params.shape), "GATHER")
    batch_dims = _opt(op, "GATHER", 1)
    if not 0 <= batch_dims <= min(axis, len(idx.shape)):
        raise ShapeError("a GATHER with batch dimensions it does not have")
    shape = params.shape[:axis] + idx.shape[batch_dims:] + params.shape[axis + 1:]
    values = None
    if len(params.shape) == 1 and params.values is not None and idx.values is not None:
        n = len(params.values)
        picks = [v.const if v.exact else None for v in idx.values]
        if all(i is not None and 0 <= i < n for i in picks):
            values = tuple(params.values[i] for i in picks)
    return Tensor(shape, values)


def _equal_parts(d: Dim, n: int) -> Dim:
    return dim([-(-c // n) for c in d.c], d.exact and all(c % n == 0 for c in d.c))


def _split(p, op, ins):
    axis_t, x = ins[0], ins[1]
    (axis,) = p.ints(axis_t, "axis", op)
    shape = x.shape
    axis = axis_of(axis, len(shape), "SPLIT")
    n = len(op.outputs)
    part = _equal_parts(shape[axis], n)
    return [Tensor(shape[:axis] + (part,) + shape[axis + 1:]) for _ in range(n)]


def _split_v(p, op, ins):
    x = ins[0]
    sizes = p.ints(ins[1], "sizes", op)
    (axis,) = p.ints(ins[2], "axis", op)
    shape = x.shape
    axis = axis_of(axis, len(shape), "SPLIT_V")
    if len(sizes) != len(op.outputs) or sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        raise ShapeError("a SPLIT_V whose sizes do not match its outputs")
    d = shape[axis]
    rest = Dim(d.c, False) if d.const is None else Dim.of(max(0, d.const - sum(s for s in sizes if s >= 0)), d.exact)
    return [Tensor(shape[:axis] + ((Dim.of(s) if s >= 0 else rest),) + shape[axis + 1:]) for s in sizes]


def _reshape(p, op, ins):
    x = ins[0]
    if len(ins) > 1 and ins[1] is not None and len(ins[1].shape) == 1 and p.input_type(op, 1) == _INT32:
        target = p.known(ins[1], "target shape", op)  # the interpreter reads a shape input only as an int32 vector
    else:
        new_shape = _opt_ints(op, "RESHAPE", 0)
        target = () if new_shape == [0] else tuple(Dim.of(v) for v in new_shape)  # [0]: a scalar (legacy files)
    dims, infer = [], None
    for i, v in enumerate(target):
        if v.const == -1:
            if infer is not None:
                raise ShapeError("a RESHAPE with two -1s")
            infer = i
            dims.append(None)
        elif v.const is not None and v.const < 0:
            raise ShapeError(f"a RESHAPE to a negative dimension {v.const}")
        else:
            dims.append(v)
    if infer is not None:
        dims[infer] = divide(count(x.shape), count([d for d in dims if d is not None]))
    return Tensor(tuple(dims), x.values if len(dims) <= 1 else None)


def _concatenation(p, op, ins):
    return concatenate(ins, lambda: _opt(op, "CONCATENATION", 0), "CONCATENATION")


def _strided_slice(p, op, ins):
    x = ins[0]
    params = [t for t in ins[1:4] if t is not None]
    if len(params) != 3 or not all(exact_ints(t) for t in params):
        return Tensor(tuple(Dim(d.c, False) for d in x.shape))  # bounds read from values: never larger
    begin, end, strides = (p.ints(t, what, op) for t, what in zip(ins[1:4], ("begin", "end", "strides")))
    masks = [_opt(op, "STRIDED_SLICE", i) for i in range(5)]
    begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_mask = masks
    offset = _opt(op, "STRIDED_SLICE", 5, "<B", 0)
    if ellipsis_mask or new_axis_mask:
        raise ShapeError("a STRIDED_SLICE with an ellipsis or new-axis mask")
    if not len(begin) == len(end) == len(strides) <= len(x.shape):
        raise ShapeError("a STRIDED_SLICE whose begin, end and strides differ in length")
    dims, values = [], x.values
    for i, d in enumerate(x.shape):
        if i >= len(begin):
            dims.append(d)
            continue
        b, e, s = begin[i], end[i], strides[i]
        if s == 0:
            raise ShapeError("a STRIDED_SLICE with stride 0")
        if offset:
            e = b + e
        shrink = bool(shrink_mask >> i & 1)
        if d.const is not None:
            n = d.const
            if shrink:
                k = b + n if b < 0 else b
                if not 0 <= k < n:
                    raise ShapeError("a STRIDED_SLICE that takes an element past the end")
                start, stop, s = k, k + 1, 1
            else:
                start = (0 if s > 0 else n - 1) if begin_mask >> i & 1 else b
                stop = (n if s > 0 else -n - 1) if end_mask >> i & 1 else e
            if len(x.shape) == 1 and values is not None and d.exact and len(values) == n:
                values = tuple(values[k] for k in slice_indices(n, start, stop, s))
            else:
                values = None
            if not shrink:
                dims.append(Dim.of(slice_length(n, start, stop, s), d.exact))
            continue
        whole_start = begin_mask >> i & 1 or b == 0
        whole_end = end_mask >> i & 1 or e >= d.largest()
        if shrink:
            pass  # one element, the axis removed
        elif s == 1 and whole_start and whole_end:
            dims.append(d)
        elif s == 1 and not begin_mask >> i & 1 and b >= 0 and not end_mask >> i & 1 and e > b:
            dims.append(Dim.of(e - b, False))
        else:
            dims.append(Dim(d.c, False))
    if len(dims) > 1 or any(not d.exact for d in dims) or (len(x.shape) != 1):
        values = None
    return Tensor(tuple(dims), values)


def _slice(p, op, ins):
    x = ins[0]
    if not all(exact_ints(t) for t in ins[1:3]):
        return Tensor(tuple(Dim(d.c, False) for d in x.shape))
    begin, size = p.ints(ins[1], "begin", op), p.ints(ins[2], "size", op)
    if len(begin) != len(size) or len(begin) > len(x.shape):
        raise ShapeError("a SLICE whose begin and size differ in length")
    dims, values = list(x.shape), x.values
    for i, (b, n) in enumerate(zip(begin, size)):
        d = dims[i]
        if b < 0 or n < -1:
            raise ShapeError("a SLICE with a negative begin or size")
        if n >= 0:
            dims[i] = Dim.of(n)
        elif d.const is not None:
            dims[i] = Dim.of(max(0, d.const - b), d.exact)
        else:
            dims[i] = d if b == 0 else Dim(d.c, False)
        stop = b + n if n >= 0 else d.const
        if len(x.shape) == 1 and values is not None and stop is not None and d.exact and stop <= len(values):
            values = values[b:stop]
        else:
            values = None
    if len(x.shape) != 1 or any(not d.exact for d in dims):
        values = None
    return Tensor(tuple(dims), values)


def _squeeze(p, op, ins):
    return squeeze(ins[0], _opt_ints(op, "SQUEEZE", 0) or None, "SQUEEZE")


def _expand_dims(p, op, ins):
    shape = ins[0].shape
    (axis,) = p.ints(ins[1], "axis", op)
    at = axis_of(axis, len(shape) + 1, "EXPAND_DIMS")
    out = shape[:at] + (ONE,) + shape[at:]
    return Tensor(out, ins[0].values if len(out) <= 1 else None)


def _pack(p, op, ins):
    parts = [t for t in ins if t is not None]
    rank = len(parts[0].shape)
    if any(len(t.shape) != rank for t in parts):
        raise ShapeError("a PACK of tensors of different ranks")
    at = axis_of(_opt(op, "PACK", 1), rank + 1, "PACK")
    shape = parts[0].shape
    for t in parts[1:]:
        shape = tuple(a.at_most(b) for a, b in zip(shape, t.shape))
    values = None
    if rank == 0 and all(t.values is not None and len(t.values) == 1 for t in parts):
        values = tuple(t.values[0] for t in parts)
    return Tensor(shape[:at] + (Dim.of(len(parts)),) + shape[at:], values)


def _unpack(p, op, ins):
    shape = ins[0].shape
    axis = axis_of(_opt(op, "UNPACK", 1), len(shape), "UNPACK")
    return [Tensor(shape[:axis] + shape[axis + 1:]) for _ in op.outputs]


def _transpose(p, op, ins):
    shape = ins[0].shape
    perm = p.ints(ins[1], "permutation", op)
    if sorted(perm) != list(range(len(shape))):
        raise ShapeError("a TRANSPOSE whose permutation is not one of the axes")
    return Tensor(tuple(shape[i] for i in perm))


def _shape(p, op, ins):
    dims = ins[0].shape
    return Tensor((Dim.of(len(dims)),), dims)


def _fill(p, op, ins):
    return Tensor(tuple(nonneg(v) for v in p.known(ins[0], "size", op)))


def _reduce(p, op, ins):
    shape = ins[0].shape
    axes = p.ints(ins[1], "axes", op)
    keep = _opt(op, "REDUCER", 0, "<B", 0)
    drop = {axis_of(a, len(shape), op.name) for a in axes}
    return Tensor(tuple(ONE if i in drop else d for i, d in enumerate(shape) if keep or i not in drop))


def _arg_max(p, op, ins):
    shape = ins[0].shape
    (axis,) = p.ints(ins[1], "axis", op)
    axis = axis_of(axis, len(shape), "ARG_MAX")
    return Tensor(shape[:axis] + shape[axis + 1:])


def _while(p, op, ins):
    options = op.table.table_field(4)
    cond, body = options.scalar(0, "<i", -1), options.scalar(1, "<i", -1)
    graphs = p.model.graphs
    if not (0 < cond < len(graphs) and 0 < body < len(graphs)):
        raise ShapeError("a WHILE whose subgraphs are not in the file")
    if any(t is None for t in ins):
        raise ShapeError("a WHILE with a loop variable left out")
    for index, kind in ((cond, "condition"), (body, "body")):
        g = graphs[index]
        if len(g.inputs) != len(ins):
            raise ShapeError(f"a WHILE whose {kind} does not take its loop variables")
        scope = {i: Tensor(t.shape) for i, t in zip(g.inputs, ins)}  # values change from step to step
        inner = p.graph(index, scope, f"its WHILE {kind}")
        if kind == "body":
            for k, (first, out) in enumerate(zip(ins, g.outputs)):
                after = inner.get(out)
                if not keeps_shape(first.shape, after.shape if after is not None else None):
                    raise ShapeError(f"a WHILE whose body changes the shape of its loop variable {k} (a loop may not "
                                     "grow what it carries)")
    return [Tensor(t.shape) for t in ins]


_INPUTS_NEEDED = {"ADD": 2, "SUB": 2, "MUL": 2, "NOT_EQUAL": 2, "EQUAL": 2, "LESS": 2, "GREATER": 2,
                  "LOGICAL_AND": 2, "LOGICAL_OR": 2, "SELECT": 3, "SELECT_V2": 3, "FULLY_CONNECTED": 2,
                  "BATCH_MATMUL": 2, "GATHER": 2, "SPLIT": 2, "SPLIT_V": 3, "STRIDED_SLICE": 4, "SLICE": 3,
                  "EXPAND_DIMS": 2, "TRANSPOSE": 2, "FILL": 2, "SUM": 2, "REDUCE_MAX": 2, "REDUCE_ALL": 2,
                  "REDUCE_ANY": 2, "ARG_MAX": 2, "WHILE": 0}

_RULES = {
    "LOGISTIC": _same, "TANH": _same, "DEQUANTIZE": _same, "QUANTIZE": _same, "LOGICAL_NOT": _same,
    "ZEROS_LIKE": _same, "SOFTMAX": _same, "CAST": _cast,
    "ADD": _elementwise, "SUB": _elementwise, "MUL": _elementwise, "NOT_EQUAL": _elementwise, "EQUAL": _elementwise,
    "LESS": _elementwise, "GREATER": _elementwise, "LOGICAL_AND": _elementwise, "LOGICAL_OR": _elementwise,
    "SELECT": _elementwise, "SELECT_V2": _elementwise,
    "FULLY_CONNECTED": _fully_connected, "BATCH_MATMUL": _batch_matmul, "GATHER": _gather, "SPLIT": _split,
    "SPLIT_V": _split_v, "RESHAPE": _reshape, "CONCATENATION": _concatenation, "STRIDED_SLICE": _strided_slice,
    "SLICE": _slice, "SQUEEZE": _squeeze, "EXPAND_DIMS": _expand_dims, "PACK": _pack, "UNPACK": _unpack,
    "TRANSPOSE": _transpose, "SHAPE": _shape, "FILL": _fill, "SUM": _reduce, "REDUCE_MAX": _reduce,
    "REDUCE_ALL": _reduce, "REDUCE_ANY": _reduce, "ARG_MAX": _arg_max, "WHILE": _while,
}


def prove(content: bytes, inputs: dict[str, tuple[int, ...]], signature: str, row_limit: int) -> list[str]:
    """Problems with a .tflite model's shapes (empty: every tensor is proved within bounds); ``inputs`` maps each
    contract input to its shape (-1: the batch), bound to the main graph through ``signature``."""
    try:
        model = model_graphs(content)
    except WireError as e:
        return [f"not a valid TFLite model ({e})"]
    if signature not in model.signatures or model.signatures[signature][0] != 0:
        return [f"has no signature {signature!r} of its main graph (its inputs' shapes cannot be proved)"]
    bound = {index: name for name, index in model.signatures[signature][1].items()}
    main = model.graphs[0]
    p = Prover(model, row_limit)
    scope = {}
    for index in main.inputs:
        name = bound.get(index)
        if name not in inputs:
            return [f"has an input (tensor {index}) the contract does not name (its shape cannot be proved)"]
        scope[index] = Tensor(tuple(BATCH if d == -1 else Dim.of(d) for d in inputs[name]))
    try:
        p.graph(0, scope, "the main graph")
    except ShapeError as e:
        return [f"cannot prove its shapes: {e} (refused: the runtime runs what it can bound)"]
    except (WireError, struct.error):
        return ["cannot prove its shapes: a malformed tensor (refused: the runtime runs what it can bound)"]
    return p.sizes.problems()
