"""A minimal reader of the ONNX protobuf wire format, so the runtime can check a model without the onnx package.

It reads what loading needs to refuse before ONNX Runtime sees the bytes: the IR version, the opsets, every
node's op type and domain, model-local functions, and whether any tensor (initializer, sparse initializer,
constant attribute, or an attribute's default value, in the main graph, a subgraph or a function) points at
external data, which ONNX Runtime would read from a path named inside the model file. Every read is bounded by
the buffer and nesting by a fixed depth.
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
    #: Tensors (anywhere: initializers, attributes, subgraphs, functions) that point at external data.
    external_tensors: list[str] = field(default_factory=list)
    #: (domain, op type) of every node, in the main graph, its subgraphs and model-local functions.
    ops: set[tuple[str, str]] = field(default_factory=set)
    #: Names of model-local functions (ModelProto.functions).
    functions: list[str] = field(default_factory=list)
    #: Graphs nested in node attributes (the bodies of Loop, If, Scan).
    subgraphs: int = 0
    #: ModelProto.training_info is present (initialization and training graphs).
    training_info: bool = False


# Field numbers from onnx.proto3.
_MODEL_IR_VERSION, _MODEL_OPSET, _MODEL_GRAPH, _MODEL_TRAINING_INFO, _MODEL_FUNCTIONS = 1, 8, 7, 20, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNCTION_NAME, _FUNCTION_NODE, _FUNCTION_ATTRIBUTE_PROTO = 1, 7, 11
_MAX_DEPTH = 32


def _text(value) -> str:
    return bytes(value).decode("utf-8", "replace")


def _tensor(buf: bytes, out: OnnxSummary) -> None:
    name, external = "", False
    for number, wire, value in fields(buf):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(value)
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


def _attribute(buf: bytes, out: OnnxSummary, depth: int) -> None:
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number in (_ATTR_T, _ATTR_TENSORS):
            _tensor(value, out)
        elif number in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
            _sparse(value, out)
        elif number in (_ATTR_G, _ATTR_GRAPHS):
            out.subgraphs += 1
            _graph(value, out, depth + 1)


def _node(buf: bytes, out: OnnxSummary, depth: int) -> None:
    op_type, domain = "", ""
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _NODE_OP_TYPE:
            op_type = _text(value)
        elif number == _NODE_DOMAIN:
            domain = _text(value)
        elif number == _NODE_ATTRIBUTE:
            _attribute(value, out, depth)
    out.ops.add((domain if domain != "ai.onnx" else "", op_type))


def _graph(buf: bytes, out: OnnxSummary, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise WireError("subgraphs nested too deeply")
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _GRAPH_INITIALIZER:
            _tensor(value, out)
        elif number == _GRAPH_SPARSE_INITIALIZER:
            _sparse(value, out)
        elif number == _GRAPH_NODE:
            _node(value, out, depth)


def _function(buf: bytes, out: OnnxSummary) -> None:
    name = "<unnamed>"
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _FUNCTION_NAME:
            name = _text(value)
        elif number == _FUNCTION_NODE:
            _node(value, out, 1)
        elif number == _FUNCTION_ATTRIBUTE_PROTO:  # an attribute's default value, which may hold a tensor
            _attribute(value, out, 1)
    out.functions.append(name)


def summarize(content: bytes) -> OnnxSummary:
    """IR version, opsets, ops, functions and external-data tensors of a serialized ModelProto; WireError if
    malformed."""
    out = OnnxSummary()
    graph_seen = False
    for number, wire, value in fields(memoryview(content)):  # slices of a memoryview copy nothing
        if number == _MODEL_IR_VERSION and wire == 0:
            out.ir_version = value
        elif number == _MODEL_OPSET and wire == 2:
            domain, version = "", None
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    domain = _text(v2)
                elif n2 == 2 and w2 == 0:
                    version = v2
            if version is not None:
                out.opsets[domain or "ai.onnx"] = version
        elif number == _MODEL_GRAPH and wire == 2:
            graph_seen = True
            _graph(value, out)
        elif number == _MODEL_FUNCTIONS and wire == 2:
            _function(value, out)
        elif number == _MODEL_TRAINING_INFO:
            out.training_info = True
    if not graph_seen or out.ir_version is None:
        raise WireError("no graph or IR version: not an ONNX model")
    return out
