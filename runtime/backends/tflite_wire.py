"""A minimal, bounds-checked reader of the TFLite flatbuffer, so the runtime can check a model without a verifier.

It reads what loading needs to refuse before an interpreter sees the bytes: the file identifier, the operator
codes (builtin names, custom codes, versions), for every operator of every subgraph that its opcode index exists,
and the structure of every ``WHILE`` loop, to prove a bound on its trip count (``loop_bounds``). Every offset is checked against the buffer before it is followed and every loop is bounded by the
buffer's size, so a malformed file ends in a WireError, never in an out-of-bounds read or an endless loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


class WireError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer (as far as this reader looks)."""


#: BuiltinOperator values (tensorflow/compiler/mlir/lite/schema/schema.fbs) of the ops a bundle may hold, and of
#: the control-flow and escape-hatch ops that must be recognised to be refused. Anything else is reported as
#: BUILTIN_<code>, which no role allows.
BUILTIN_NAMES = {
    0: "ADD", 2: "CONCATENATION", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 18: "MUL",
    22: "RESHAPE", 25: "SOFTMAX", 28: "TANH", 31: "CALL", 32: "CUSTOM", 36: "GATHER", 39: "TRANSPOSE", 41: "SUB",
    43: "SQUEEZE", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM", 45: "STRIDED_SLICE", 49: "SPLIT", 51: "DELEGATE",
    53: "CAST", 56: "ARG_MAX", 58: "LESS", 61: "GREATER", 64: "SELECT", 65: "SLICE", 70: "EXPAND_DIMS",
    71: "EQUAL", 72: "NOT_EQUAL", 74: "SUM", 77: "SHAPE", 82: "REDUCE_MAX", 83: "PACK", 84: "LOGICAL_OR",
    86: "LOGICAL_AND", 87: "LOGICAL_NOT", 88: "UNPACK", 91: "REDUCE_ANY", 93: "ZEROS_LIKE", 94: "FILL",
    140: "REDUCE_ALL",
    102: "SPLIT_V", 114: "QUANTIZE", 118: "IF",
    119: "WHILE", 123: "SELECT_V2", 126: "BATCH_MATMUL", 129: "CALL_ONCE", 200: "STABLEHLO_WHILE",
    206: "STABLEHLO_COMPOSITE", 209: "STABLEHLO_CASE",
}


@dataclass
class TfliteSummary:
    #: Operator names, one per operator code (builtin name, or "CUSTOM:<code>").
    op_codes: list[str] = field(default_factory=list)
    #: Highest version of each operator name.
    op_versions: dict[str, int] = field(default_factory=dict)
    subgraphs: int = 0
    operators: int = 0
    #: Each WHILE operator's proven trip-count bound, in the order met (see ``loop_bounds``).
    loop_bounds: list[int] = field(default_factory=list)

    @property
    def ops(self) -> set[str]:
        return {op.split(":")[0] for op in self.op_codes}


class _Buffer:
    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)
        # Each table is at least 4 bytes: a well-formed file never visits more tables than this. A crafted one whose
        # vectors share the same tables (quadratic work) runs out of it.
        self.budget = self.size // 4 + 16

    def _unpack(self, fmt: str, pos: int):
        n = struct.calcsize(fmt)
        if pos < 0 or pos + n > self.size:
            raise WireError(f"offset {pos} runs past the end of the file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int) -> "_Table":
        self.budget -= 1
        if self.budget < 0:
            raise WireError("tables are shared or nested beyond what the file's size allows")
        vtable = pos - self._unpack("<i", pos)
        vsize = self._unpack("<H", vtable)
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size:
            raise WireError("malformed vtable")
        return _Table(self, pos, vtable, vsize)

    def indirect(self, pos: int) -> int:
        return pos + self._unpack("<I", pos)

    def vector(self, pos: int, item_size: int) -> tuple[int, int]:
        """(first item position, length) of the vector at ``pos``."""
        start = self.indirect(pos)
        length = self._unpack("<I", start)
        if start + 4 + length * item_size > self.size:
            raise WireError("vector runs past the end of the file")
        return start + 4, length


class _Table:
    def __init__(self, buf: _Buffer, pos: int, vtable: int, vsize: int):
        self.buf, self.pos, self.vtable, self.vsize = buf, pos, vtable, vsize

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vsize:
            return None
        offset = self.buf._unpack("<H", self.vtable + slot)
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int) -> int:
        pos = self._field(index)
        return default if pos is None else self.buf._unpack(fmt, pos)

    def string(self, index: int) -> str | None:
        pos = self._field(index)
        if pos is None:
            return None
        start, length = self.buf.vector(pos, 1)
        return bytes(self.buf.data[start:start + length]).decode("utf-8", "surrogateescape")

    def ints(self, index: int) -> list[int]:
        """A vector of int32 (operator inputs and outputs, subgraph inputs and outputs, shapes)."""
        pos = self._field(index)
        if pos is None:
            return []
        start, length = self.buf.vector(pos, 4)
        self.buf.budget -= length // 64  # long vectors count against the work budget too
        return list(struct.unpack_from(f"<{length}i", self.buf.data, start))

    def bytes_(self, index: int, limit: int) -> bytes | None:
        """A vector of bytes of at most ``limit`` bytes (None when absent or longer)."""
        pos = self._field(index)
        if pos is None:
            return None
        start, length = self.buf.vector(pos, 1)
        return None if length > limit else bytes(self.buf.data[start:start + length])

    def table_field(self, index: int) -> "_Table | None":
        pos = self._field(index)
        return None if pos is None else self.buf.table(self.buf.indirect(pos))

    def tables(self, index: int) -> list["_Table"]:
        pos = self._field(index)
        if pos is None:
            return []
        start, length = self.buf.vector(pos, 4)
        return [self.buf.table(self.buf.indirect(start + 4 * i)) for i in range(length)]


_WHILE_OPTIONS = 93  # BuiltinOptions.WhileOptions
_INT32 = 2            # TensorType.INT32


def summarize(content: bytes) -> TfliteSummary:
    """Operator codes, subgraph and operator counts, and loop bounds of a .tflite file; WireError if malformed,
    or if a subgraph is not the condition or body of a loop whose bound it can prove."""
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise WireError("no TFL3 identifier")
    buf = _Buffer(content)
    model = buf.table(buf.indirect(0))
    out = TfliteSummary()
    for code in model.tables(1):  # Model.operator_codes
        builtin = max(code.scalar(0, "<b", 0), code.scalar(3, "<i", 0))  # deprecated_builtin_code, builtin_code
        version = code.scalar(2, "<i", 1)
        name = BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{code.string(1) or ''}"
        out.op_codes.append(name)
        base = name.split(":")[0]
        out.op_versions[base] = max(out.op_versions.get(base, 0), version)
    subgraphs = model.tables(2)  # Model.subgraphs
    out.subgraphs = len(subgraphs)
    if not out.subgraphs:
        raise WireError("no subgraph")
    graphs = [_Subgraph(g, out.op_codes) for g in subgraphs]
    out.operators = sum(len(g.ops) for g in graphs)
    for g in graphs[1:]:
        if any(op.name in ("WHILE", "IF", "CALL", "CALL_ONCE") or op.name.startswith("STABLEHLO") for op in g.ops):
            raise WireError("a loop's condition or body holds control flow (nested loops are refused)")
    buffers = model.tables(4)  # Model.buffers
    claimed: set[int] = set()
    for op in graphs[0].ops:
        if op.name == "WHILE":
            cond, body = _while_subgraphs(op, len(graphs))
            if {cond, body} & claimed or cond == body:
                raise WireError("two loops share a condition or body subgraph")
            claimed |= {cond, body}
            out.loop_bounds.append(_prove_bound(graphs[0], op, graphs[cond], graphs[body], buffers))
    _check_value_sized(graphs, buffers)
    if claimed != set(range(1, len(graphs))):
        raise WireError(f"has {out.subgraphs} subgraphs, of which {sorted(set(range(1, len(graphs))) - claimed)} are "
                        "not the condition or body of a loop in the main graph")
    return out


#: Operators whose output size is read from a tensor's values, and which input holds it: a crafted model could
#: compute it from the input ids (``reduce_max(ids) * 2**28``) and allocate without bound. The exporter's FILLs
#: (zero states) take their size from the input's shape and constants only, in the main graph: that is all the
#: runtime accepts. The other builtins a bundle may hold give outputs no larger than their inputs.
VALUE_SIZED = {"FILL": 0}
#: Operators through which a size stays a function of shapes and constants (a size's provenance may pass them).
_SIZE_PASSTHROUGH = {"STRIDED_SLICE", "SLICE", "PACK", "CONCATENATION", "RESHAPE", "CAST", "GATHER", "SQUEEZE",
                     "EXPAND_DIMS"}


def _check_value_sized(graphs: list["_Subgraph"], buffers) -> None:
    """WireError unless every value-sized operator is in the main graph with a size made of shapes and constants.
    One memo per graph: each tensor's provenance is worked out once, however many operators ask."""
    for i, g in enumerate(graphs):
        memo: dict = {}
        for op in g.ops:
            if op.name not in VALUE_SIZED:
                continue
            if i:
                raise WireError(f"a {op.name} inside a loop (its size would be read from a loop variable; refused)")
            index = VALUE_SIZED[op.name]
            if index >= len(op.inputs) or not _shape_derived(g, op.inputs[index], buffers, memo):
                raise WireError(f"a {op.name} whose size is computed from tensor values, not from shapes and "
                                "constants (it could allocate without bound; refused)")


def _shape_derived(g: "_Subgraph", tensor: int, buffers, memo: dict, depth: int = 0) -> bool:
    """Whether ``tensor``'s value is made only of constants and the SHAPEs of the graph's inputs, through
    _SIZE_PASSTHROUGH ops."""
    if tensor in memo:
        return memo[tensor]
    memo[tensor] = False  # a cycle proves nothing
    producer = g.producer.get(tensor)
    if depth > 32:
        ok = False
    elif producer is None:
        ok = g.is_constant(tensor, buffers)
    elif producer.name == "SHAPE":
        # only of an input of the graph, whose shape the contract fixes: a computed tensor's shape may come from values
        ok = bool(producer.inputs) and producer.inputs[0] in g.input_set and producer.inputs[0] not in g.producer
    else:
        ok = producer.name in _SIZE_PASSTHROUGH and all(
            _shape_derived(g, t, buffers, memo, depth + 1) for t in producer.inputs if t >= 0)
    memo[tensor] = ok
    return ok


class _Op:
    def __init__(self, table: _Table, op_codes: list[str]):
        index = table.scalar(0, "<I", 0)  # Operator.opcode_index
        if index >= len(op_codes):
            raise WireError(f"an operator uses opcode {index}, but the model has {len(op_codes)}")
        self.name = op_codes[index].split(":")[0]
        self.table = table
        self.inputs, self.outputs = table.ints(1), table.ints(2)


class _Subgraph:
    def __init__(self, table: _Table, op_codes: list[str]):
        self.tensors = table.tables(0)
        self.inputs, self.outputs = table.ints(1), table.ints(2)
        self.input_set = set(self.inputs)
        self.ops = [_Op(t, op_codes) for t in table.tables(3)]
        self.producer = {o: op for op in self.ops for o in op.outputs}

    def is_int32(self, tensor: int) -> bool:
        return 0 <= tensor < len(self.tensors) and self.tensors[tensor].scalar(1, "<b", 0) == _INT32

    def is_constant(self, tensor: int, buffers: list[_Table]) -> bool:
        """Whether ``tensor`` holds data of the file: not an input, not produced by an operator, not a variable."""
        if not 0 <= tensor < len(self.tensors) or tensor in self.producer or tensor in self.input_set:
            return False
        t = self.tensors[tensor]
        b = t.scalar(2, "<I", 0)  # Tensor.buffer
        return not t.scalar(5, "<b", 0) and 0 < b < len(buffers)  # is_variable; a buffer of the file

    def constant_int(self, tensor: int, buffers: list[_Table]) -> int | None:
        """The value of an int32 scalar (or one-element) constant tensor, or None if it is not one."""
        if not 0 <= tensor < len(self.tensors) or tensor in self.producer or tensor in self.input_set:
            return None
        t = self.tensors[tensor]
        if t.scalar(1, "<b", 0) != _INT32 or t.scalar(5, "<b", 0):  # type, is_variable
            return None
        b = t.scalar(2, "<I", 0)  # Tensor.buffer
        if not 0 < b < len(buffers):
            return None
        data = buffers[b].bytes_(0, 4)
        return struct.unpack("<i", data)[0] if data is not None and len(data) == 4 else None


def _while_subgraphs(op: _Op, count: int) -> tuple[int, int]:
    options = op.table.table_field(4)  # Operator.builtin_options
    if op.table.scalar(3, "<B", 0) != _WHILE_OPTIONS or options is None:
        raise WireError("a WHILE operator without WhileOptions")
    cond, body = options.scalar(0, "<i", -1), options.scalar(1, "<i", -1)
    if not (0 < cond < count and 0 < body < count):
        raise WireError(f"a WHILE operator names subgraphs {cond} and {body} of {count}")
    return cond, body


def _prove_bound(main: _Subgraph, op: _Op, cond: _Subgraph, body: _Subgraph, buffers: list[_Table]) -> int:
    """The most times this WHILE can run its body, proven from its structure, or WireError.

    The proof the exporter's loops allow (TensorFlow's ``maximum_iterations``): the condition's output is
    ``LESS(counter, C)``, alone or ANDed (LOGICAL_AND) with anything; the body's output for that loop variable
    is ``ADD(counter, 1)``; the WHILE's input for it is a constant ``c0``. Then the body runs at most C - c0 times.
    """
    n = len(op.inputs)
    if not (len(op.outputs) == n == len(cond.inputs) == len(body.inputs) == len(body.outputs)
            and len(cond.outputs) == 1):
        raise WireError("a WHILE operator whose condition and body do not match its inputs")
    # The interpreter binds loop variables to these tensors by position: a tensor listed twice would take the value
    # of whichever position is bound last, and the proof below would reason about another one.
    for label, tensors in (("outputs", op.outputs), ("condition's inputs", cond.inputs),
                           ("body's inputs", body.inputs), ("body's outputs", body.outputs)):
        if len(set(tensors)) != len(tensors):
            raise WireError(f"a WHILE loop whose {label} list a tensor twice (refused: the loop variables must be "
                            "distinct tensors)")
    for label, g in (("condition", cond), ("body", body)):
        written = sorted(set(g.inputs) & set(g.producer))
        if written:
            raise WireError(f"an operator in a WHILE loop's {label} writes its input tensor {written[0]} (refused)")
    candidates = []  # (position of the counter among the loop variables, C)
    pending, seen = [cond.outputs[0]], set()
    while pending and len(seen) < 64:  # the exporter's conditions are one LOGICAL_AND deep
        tensor = pending.pop()
        producer = cond.producer.get(tensor)
        if producer is None or tensor in seen:
            continue
        seen.add(tensor)
        if producer.name == "LOGICAL_AND":
            pending += producer.inputs[:2]
        elif producer.name == "LESS" and len(producer.inputs) == 2:
            left, right = producer.inputs
            limit = cond.constant_int(right, buffers)
            if left in cond.inputs and limit is not None:
                candidates.append((cond.inputs.index(left), limit))
    for k, limit in candidates:
        if not all(g.is_int32(g.inputs[k]) for g in (cond, body)):
            continue
        step = body.producer.get(body.outputs[k])
        if step is None or step.name != "ADD" or len(step.inputs) != 2 or body.inputs[k] not in step.inputs:
            continue
        other = step.inputs[1] if step.inputs[0] == body.inputs[k] else step.inputs[0]
        if body.constant_int(other, buffers) != 1 or step.table.scalar(3, "<B", 0) and _fused(step):
            continue
        start = main.constant_int(op.inputs[k], buffers)
        if start is not None:
            return max(0, limit - start)
    raise WireError("a WHILE loop whose trip count has no provable bound (the runtime accepts only loops that "
                    "count a constant up to a constant limit)")


def _fused(op: _Op) -> bool:
    """Whether an ADD carries a fused activation (which would change ``counter + 1``)."""
    options = op.table.table_field(4)
    return options is not None and options.scalar(0, "<b", 0) != 0  # AddOptions.fused_activation_function


# ---- the graphs, for the shape proof (tflite_shapes) -------------------------------------------------------------------
@dataclass
class TfliteGraphs:
    """A model's subgraphs (0 is the main graph), buffers and signatures: name -> (subgraph, {input name: tensor})."""

    graphs: list["_Subgraph"]
    buffers: list[_Table]
    signatures: dict[str, tuple[int, dict[str, int]]]


def model_graphs(content: bytes) -> TfliteGraphs:
    """The subgraphs, buffers and signatures of a .tflite file ``summarize`` accepted; WireError if malformed."""
    buf = _Buffer(content)
    model = buf.table(buf.indirect(0))
    op_codes = []
    for code in model.tables(1):
        builtin = max(code.scalar(0, "<b", 0), code.scalar(3, "<i", 0))
        op_codes.append(BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    graphs = [_Subgraph(g, op_codes) for g in model.tables(2)]
    signatures = {}
    for sig in model.tables(7):  # Model.signature_defs
        inputs = {}
        for m in sig.tables(0):  # SignatureDef.inputs: TensorMap(name, tensor_index)
            inputs[m.string(0) or ""] = m.scalar(1, "<I", 0)
        signatures[sig.string(2) or ""] = (sig.scalar(4, "<I", 0), inputs)  # signature_key, subgraph_index
    return TfliteGraphs(graphs, model.tables(4), signatures)
