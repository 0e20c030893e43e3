"""A minimal, bounds-checked reader of the TFLite flatbuffer, so the runtime can check a model without a verifier.

It reads what loading needs to refuse before an interpreter sees the bytes: the file identifier, the operator
codes (builtin names, custom codes, versions), and for every operator of every subgraph that its opcode index
exists. Every offset is checked against the buffer before it is followed and every loop is bounded by the
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
    53: "CAST", 56: "ARG_MAX", 64: "SELECT", 65: "SLICE", 70: "EXPAND_DIMS", 71: "EQUAL", 72: "NOT_EQUAL",
    83: "PACK", 88: "UNPACK", 93: "ZEROS_LIKE", 94: "FILL", 102: "SPLIT_V", 114: "QUANTIZE", 118: "IF",
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
        return self.buf.data[start:start + length].decode("utf-8", "replace")

    def tables(self, index: int) -> list["_Table"]:
        pos = self._field(index)
        if pos is None:
            return []
        start, length = self.buf.vector(pos, 4)
        return [self.buf.table(self.buf.indirect(start + 4 * i)) for i in range(length)]


def summarize(content: bytes) -> TfliteSummary:
    """Operator codes, subgraph and operator counts of a .tflite file; WireError if malformed."""
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
    for subgraph in subgraphs:
        for operator in subgraph.tables(3):  # SubGraph.operators
            index = operator.scalar(0, "<I", 0)  # Operator.opcode_index
            if index >= len(out.op_codes):
                raise WireError(f"an operator uses opcode {index}, but the model has {len(out.op_codes)}")
            out.operators += 1
    if not out.subgraphs:
        raise WireError("no subgraph")
    return out
