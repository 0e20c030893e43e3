"""Floor models: trivial TFLite and ONNX files with the decoder step's inputs and outputs, written without TensorFlow.

A floor model is what a runtime costs per call when the model does (almost) nothing: bind the step's inputs,
invoke, hand back outputs of the step's shapes. The benchmark times it beside the real step, on every backend, so
"how much of a step is the interpreter's own overhead" is measured, not guessed.

The files are made here, per bundle, from the step's declared inputs and outputs (so the latent size, the
vocabulary and an attention step's extra inputs are the bundle's): a TFLite flatbuffer and an ONNX protobuf
written byte by byte, with only numpy and the standard library. So the same floor is measured in a training
install, in a runtime-only venv and on a device, and results from different machines compare the same thing.

The graph, in both formats (operators every decoder step may hold, so the files pass the runtime's own checks):

    probs        = Reshape(Cast(prev_token, float32), [-1, 1]) + zeros[1, V]     # [batch, V]
    next_state_h = state_h + 1
    next_state_c = state_c + 1

Any further step input (an attention step's ``encoder_outputs`` and ``encoder_mask``) is an input that the graph
does not read: it is still bound and copied in on every call, as in the real step.

    python -m seq2seq_edge.bench.floor BUNDLE OUT_DIR    # write floor.tflite and floor.onnx for BUNDLE
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from seq2seq_edge import manifest as mf

_INTERNAL = "prev_token_as_column"  # Reshape(Cast(prev_token)): [batch, 1]


# ---- the step's contract --------------------------------------------------------------------------------------
def step_io(manifest: mf.BundleManifest) -> tuple[list[mf.TensorSpec], list[mf.TensorSpec]]:
    """The decoder step's inputs and outputs, as the bundle's manifest declares them (any of its step entries:
    every variant has the same contract)."""
    entry = next(m for m in manifest.models if m.role == mf.DECODER_STEP)
    return list(entry.inputs), list(entry.outputs)


def _check(inputs: list[mf.TensorSpec], outputs: list[mf.TensorSpec]) -> tuple[int, int]:
    by_name = {t.name: t for t in inputs + outputs}
    for name in (mf.PREV_TOKEN, mf.STATE_H, mf.STATE_C, mf.PROBS, mf.NEXT_STATE_H, mf.NEXT_STATE_C):
        if name not in by_name:
            raise ValueError(f"the decoder step has no {name!r}")
    latent, vocab = by_name[mf.STATE_H].shape[-1], by_name[mf.PROBS].shape[-1]
    if latent < 1 or vocab < 1:
        raise ValueError("the decoder step's state and probs need fixed widths")
    return latent, vocab


# ---- ONNX: protobuf by hand -------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """A protobuf varint (negative: int64 two's complement)."""
    if n < 0:
        n += 1 << 64  # int64 fields: two's complement, ten bytes
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def vi(number: int, value: int) -> bytes:
    """A varint field."""
    return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (bytes, a string, or a message)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


_ONNX_TYPES = {"float32": 1, "int32": 6, "int64": 7}


def _onnx_value_info(t: mf.TensorSpec) -> bytes:
    dims = b"".join(ld(1, ld(2, "batch") if d == -1 else vi(1, d)) for d in t.shape)
    tensor_type = vi(1, _ONNX_TYPES[t.dtype]) + ld(2, dims)
    return ld(1, t.name) + ld(2, ld(1, tensor_type))


def _onnx_initializer(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(vi(1, d) for d in array.shape)
    return dims + vi(2, _ONNX_TYPES[array.dtype.name]) + ld(8, name) + ld(9, array.astype(array.dtype.newbyteorder("<")).tobytes())


def _onnx_node(op: str, inputs: list[str], outputs: list[str], attributes: bytes = b"") -> bytes:
    return (b"".join(ld(1, i) for i in inputs) + b"".join(ld(2, o) for o in outputs)
            + ld(3, f"floor_{outputs[0]}") + ld(4, op) + attributes)


def onnx_floor(inputs: list[mf.TensorSpec], outputs: list[mf.TensorSpec]) -> bytes:
    """A serialized ONNX ModelProto (IR 8, opset 13) of the floor graph."""
    _, vocab = _check(inputs, outputs)
    to_float = ld(5, ld(1, "to") + vi(3, 1) + vi(20, 2))  # AttributeProto: to = FLOAT, type = INT
    nodes = [
        _onnx_node("Cast", [mf.PREV_TOKEN], ["prev_token_float"], to_float),
        _onnx_node("Reshape", ["prev_token_float", "column_shape"], [_INTERNAL]),
        _onnx_node("Add", [_INTERNAL, "zero_probs"], [mf.PROBS]),
        _onnx_node("Add", [mf.STATE_H, "one"], [mf.NEXT_STATE_H]),
        _onnx_node("Add", [mf.STATE_C, "one"], [mf.NEXT_STATE_C]),
    ]
    initializers = [_onnx_initializer("column_shape", np.array([-1, 1], np.int64)),
                    _onnx_initializer("zero_probs", np.zeros((1, vocab), np.float32)),
                    _onnx_initializer("one", np.ones(1, np.float32))]
    graph = (b"".join(ld(1, n) for n in nodes) + ld(2, "floor")
             + b"".join(ld(5, t) for t in initializers)
             + b"".join(ld(11, _onnx_value_info(t)) for t in inputs)
             + b"".join(ld(12, _onnx_value_info(t)) for t in outputs))
    return vi(1, 8) + ld(2, "seq2seq-edge floor") + ld(7, graph) + ld(8, ld(1, "") + vi(2, 13))


# ---- TFLite: a flatbuffer by hand ---------------------------------------------------------------------------------
class _Table:
    """A flatbuffer table: field index -> value (a _Scalar, str, bytes-like _Data, list of _Table, _IntVector or a
    _Table)."""

    def __init__(self, **fields):
        self.fields = fields  # name "f<index>" -> value


class _Scalar:
    def __init__(self, fmt: str, value):
        self.fmt, self.value = fmt, value


class _IntVector:
    def __init__(self, values):
        self.values = [int(v) for v in values]


class _Data:
    """A [ubyte] vector whose first byte is 16-aligned (TFLite's Buffer.data has force_align: 16)."""

    def __init__(self, data: bytes):
        self.data = data


class _Writer:
    """Writes front to back: a table first, the things it refers to after it, so every offset is forward (as
    flatbuffers' unsigned offsets require); vtables sit right before their tables. Scalars are aligned to their
    size, vectors' lengths to 4, from the start of the buffer."""

    def __init__(self):
        self.buf = bytearray()

    def _pad_to(self, alignment: int, extra: int = 0) -> None:
        while (len(self.buf) + extra) % alignment:
            self.buf.append(0)

    def _patch(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.buf, at, target - at)

    def write(self, value) -> int:
        """Write ``value`` (not a scalar); return its position."""
        if isinstance(value, _Table):
            return self._table(value)
        if isinstance(value, str):
            self._pad_to(4)
            at = len(self.buf)
            data = value.encode()
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
            return at
        if isinstance(value, _Data):
            self._pad_to(16, 4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(value.data)) + value.data
            return at
        if isinstance(value, _IntVector):
            self._pad_to(4)
            at = len(self.buf)
            self.buf += struct.pack(f"<I{len(value.values)}i", len(value.values), *value.values)
            return at
        if isinstance(value, list):  # a vector of tables
            self._pad_to(4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(value)) + bytes(4 * len(value))
            for i, item in enumerate(value):
                self._patch(at + 4 + 4 * i, self.write(item))
            return at
        raise TypeError(type(value))

    def _table(self, table: _Table) -> int:
        items = sorted((int(k[1:]), v) for k, v in table.fields.items())
        # Inline layout after the table's soffset: largest first, each aligned to its size.
        inline = sorted(items, key=lambda kv: -(struct.calcsize(kv[1].fmt) if isinstance(kv[1], _Scalar) else 4))
        layout, size = {}, 4
        for index, v in inline:
            width = struct.calcsize(v.fmt) if isinstance(v, _Scalar) else 4
            size += -size % width
            layout[index] = (size, width)
            size += width
        size += -size % 4
        slots = max((index for index, _ in items), default=-1) + 1
        vtable = struct.pack(f"<HH{slots}H", 4 + 2 * slots, size, *(layout.get(i, (0, 0))[0] for i in range(slots)))
        self._pad_to(4, len(vtable))
        vt_at = len(self.buf)
        self.buf += vtable
        at = len(self.buf)
        self.buf += bytes(size)
        struct.pack_into("<i", self.buf, at, at - vt_at)
        refs = []
        for index, v in items:
            offset, _ = layout[index]
            if isinstance(v, _Scalar):
                struct.pack_into("<" + v.fmt, self.buf, at + offset, v.value)
            else:
                refs.append((at + offset, v))
        for field_at, v in refs:
            self._patch(field_at, self.write(v))
        return at


_TFLITE_TYPES = {"float32": 0, "int32": 2, "int64": 4}
_ADD, _RESHAPE, _CAST = 0, 22, 53  # BuiltinOperator


def tflite_floor(inputs: list[mf.TensorSpec], outputs: list[mf.TensorSpec]) -> bytes:
    """A .tflite flatbuffer (schema version 3, one subgraph, a ``serving_default`` signature) of the floor graph."""
    _, vocab = _check(inputs, outputs)
    buffers = [b""]  # buffer 0: the empty buffer of every non-constant tensor
    tensors: list[tuple[str, str, tuple[int, ...], int]] = []  # name, dtype, shape signature, buffer

    def tensor(name: str, dtype: str, shape, data: np.ndarray | None = None) -> int:
        buffer = 0
        if data is not None:
            buffers.append(data.astype(data.dtype.newbyteorder("<")).tobytes())
            buffer = len(buffers) - 1
        tensors.append((name, dtype, tuple(shape), buffer))
        return len(tensors) - 1

    index = {t.name: tensor(t.name, t.dtype, t.shape) for t in inputs}
    as_float = tensor("prev_token_float", "float32", (-1,))
    column_shape = tensor("column_shape", "int32", (2,), np.array([-1, 1], np.int32))
    column = tensor(_INTERNAL, "float32", (-1, 1))
    zero_probs = tensor("zero_probs", "float32", (1, vocab), np.zeros((1, vocab), np.float32))
    one = tensor("one", "float32", (1,), np.ones(1, np.float32))
    by_output = {t.name: tensor(t.name, t.dtype, t.shape) for t in outputs}
    op_codes = [_CAST, _RESHAPE, _ADD]
    operators = [(0, [index[mf.PREV_TOKEN]], [as_float]), (1, [as_float, column_shape], [column]),
                 (2, [column, zero_probs], [by_output[mf.PROBS]]),
                 (2, [index[mf.STATE_H], one], [by_output[mf.NEXT_STATE_H]]),
                 (2, [index[mf.STATE_C], one], [by_output[mf.NEXT_STATE_C]])]

    def tensor_table(name, dtype, shape, buffer):
        fields = {"f0": _IntVector(1 if d == -1 else d for d in shape), "f1": _Scalar("b", _TFLITE_TYPES[dtype]),
                  "f2": _Scalar("I", buffer), "f3": name}
        if -1 in shape:
            fields["f7"] = _IntVector(shape)  # shape_signature: -1 = sized at run time
        return _Table(**fields)

    def tensor_map(name: str, i: int) -> _Table:
        return _Table(f0=name, f1=_Scalar("I", i))

    subgraph = _Table(
        f0=[tensor_table(*t) for t in tensors],
        f1=_IntVector(index[t.name] for t in inputs),
        f2=_IntVector(by_output[t.name] for t in outputs),
        f3=[_Table(f0=_Scalar("I", op), f1=_IntVector(ins), f2=_IntVector(outs)) for op, ins, outs in operators],
        f4="main")
    signature = _Table(f0=[tensor_map(t.name, index[t.name]) for t in inputs],
                       f1=[tensor_map(t.name, by_output[t.name]) for t in outputs],
                       f2=mf.SIGNATURE_KEY, f4=_Scalar("I", 0))
    model = _Table(
        f0=_Scalar("I", 3),
        f1=[_Table(f0=_Scalar("b", code), f2=_Scalar("i", 1), f3=_Scalar("i", code)) for code in op_codes],
        f2=[subgraph], f3="seq2seq-edge floor", f4=[_Table(f0=_Data(b)) if b else _Table() for b in buffers],
        f7=[signature])
    w = _Writer()
    w.buf += bytes(8)  # root offset, then the file identifier
    w.buf[4:8] = b"TFL3"
    struct.pack_into("<I", w.buf, 0, w.write(model))
    w._pad_to(16)
    return bytes(w.buf)


# ---- both, for a bundle --------------------------------------------------------------------------------------------
def floor_models(manifest: mf.BundleManifest) -> dict[str, bytes]:
    """{"tflite": bytes, "onnx": bytes}: the floor of this bundle's decoder step in each format."""
    inputs, outputs = step_io(manifest)
    return {"tflite": tflite_floor(inputs, outputs), "onnx": onnx_floor(inputs, outputs)}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out = Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    for fmt, content in floor_models(mf.BundleManifest.load(args[0])).items():
        (out / f"floor.{fmt}").write_bytes(content)
        print(out / f"floor.{fmt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
