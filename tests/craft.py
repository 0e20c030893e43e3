"""Hand-made protobuf pieces for crafting hostile ONNX files without the onnx package (so the attacks also run in
the runtime-only venvs). Protobuf merges a repeated singular message field, and concatenates repeated fields, so
appending bytes to a serialized ModelProto adds functions, nodes or tensors to it."""

from __future__ import annotations

from seq2seq_edge.bench.floor import ld, vi  # the one protobuf writer


def external_tensor(name: str, location: str) -> bytes:
    """TensorProto: one float whose data lives in the file ``location`` (data_location = EXTERNAL)."""
    entry = ld(1, "location") + ld(2, location)
    return vi(1, 1) + vi(2, 1) + ld(8, name) + ld(13, entry) + vi(14, 1)


def constant_node(output: str, tensor: bytes) -> bytes:
    """NodeProto: Constant with a tensor attribute."""
    attribute = ld(1, "value") + ld(5, tensor) + vi(20, 4)
    return ld(2, output) + ld(4, "Constant") + ld(5, attribute)


def function(name: str, nodes: list[bytes], attribute_defaults: list[bytes] = ()) -> bytes:
    """FunctionProto with ``nodes``, and AttributeProto defaults (attribute_proto, field 11)."""
    body = ld(1, name) + ld(5, "out") + ld(10, "local") + ld(9, ld(1, "") + vi(2, 17))
    body += b"".join(ld(7, n) for n in nodes) + b"".join(ld(11, a) for a in attribute_defaults)
    return body


def with_function(model: bytes, fn: bytes) -> bytes:
    """The model with a model-local function appended (ModelProto.functions, field 25)."""
    return model + ld(25, fn)


def with_graph_nodes(model: bytes, nodes: list[bytes]) -> bytes:
    """The model with ``nodes`` merged into its main graph (a second ModelProto.graph field merges into the first)."""
    return model + ld(7, b"".join(ld(1, n) for n in nodes))


def loop_node() -> bytes:
    """NodeProto: a Loop with an empty body graph."""
    body = ld(6, ld(2, "body")) + ld(1, "body") + vi(20, 5)
    return ld(1, "") + ld(1, "") + ld(2, "loop_out") + ld(4, "Loop") + ld(5, body)
