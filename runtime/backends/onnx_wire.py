"""A minimal reader of the ONNX protobuf wire format, so the runtime can check a model without the onnx package.

It reads only what loading needs to refuse before ONNX Runtime sees the bytes: the IR version, the opsets, and
whether any tensor (initializer, sparse initializer, or constant attribute, in the main graph or a subgraph)
points at external data, which ONNX Runtime would read from a path named inside the model file.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes):
    """Yield (field number, wire type, value) of one message; value is an int or a bytes slice."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise WireError("length-delimited field runs past the end")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise WireError("truncated field")
        yield number, wire, value


@dataclass
class OnnxSummary:
    ir_version: int | None = None
    opsets: dict[str, int] = field(default_factory=dict)
    external_tensors: list[str] = field(default_factory=list)


# Field numbers from onnx.proto3.
_MODEL_IR_VERSION, _MODEL_OPSET, _MODEL_GRAPH = 1, 8, 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2


def _tensor(buf: bytes, out: OnnxSummary) -> None:
    name, external = "", False
    for number, wire, value in fields(buf):
        if number == _TENSOR_NAME and wire == 2:
            name = value.decode("utf-8", "replace")
        elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
            external = True
        elif number == _TENSOR_DATA_LOCATION and wire == 0 and value == 1:
            external = True
    if external:
        out.external_tensors.append(name or "<unnamed>")


def _sparse(buf: bytes, out: OnnxSummary) -> None:
    for number, wire, value in fields(buf):
        if number in (_SPARSE_VALUES, _SPARSE_INDICES) and wire == 2:
            _tensor(value, out)


def _graph(buf: bytes, out: OnnxSummary, depth: int = 0) -> None:
    if depth > 32:
        raise WireError("subgraphs nested too deeply")
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _GRAPH_INITIALIZER:
            _tensor(value, out)
        elif number == _GRAPH_SPARSE_INITIALIZER:
            _sparse(value, out)
        elif number == _GRAPH_NODE:
            for n2, w2, attr in fields(value):
                if n2 != _NODE_ATTRIBUTE or w2 != 2:
                    continue
                for n3, w3, v3 in fields(attr):
                    if w3 != 2:
                        continue
                    if n3 in (_ATTR_T, _ATTR_TENSORS):
                        _tensor(v3, out)
                    elif n3 in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
                        _sparse(v3, out)
                    elif n3 in (_ATTR_G, _ATTR_GRAPHS):
                        _graph(v3, out, depth + 1)


def summarize(content: bytes) -> OnnxSummary:
    """IR version, opsets and external-data tensors of a serialized ModelProto; WireError if malformed."""
    out = OnnxSummary()
    graph_seen = False
    for number, wire, value in fields(content):
        if number == _MODEL_IR_VERSION and wire == 0:
            out.ir_version = value
        elif number == _MODEL_OPSET and wire == 2:
            domain, version = "", None
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    domain = v2.decode("utf-8", "replace")
                elif n2 == 2 and w2 == 0:
                    version = v2
            if version is not None:
                out.opsets[domain or "ai.onnx"] = version
        elif number == _MODEL_GRAPH and wire == 2:
            graph_seen = True
            _graph(value, out)
    if not graph_seen or out.ir_version is None:
        raise WireError("no graph or IR version: not an ONNX model")
    return out
