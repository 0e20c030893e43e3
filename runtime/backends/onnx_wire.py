"""A minimal reader of the ONNX protobuf wire format, so the runtime can check a model without the onnx package.

It reads what loading needs to refuse before ONNX Runtime sees the bytes: the IR version, the opsets, every
node's op type and domain, model-local functions, and whether any tensor (initializer, sparse initializer,
constant attribute, or an attribute's default value, in the main graph, a subgraph or a function) points at
external data, which ONNX Runtime would read from a path named inside the model file; and for every ``Loop``,
where it sits and its maximum trip count ``M`` (an initializer of the main graph), so the runtime can prove each
loop bounded. Every read is bounded by the buffer and nesting by a fixed depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


_U64 = (1 << 64) - 1


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A varint at ``pos``, kept to its low 64 bits as protobuf keeps it, and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _U64, pos
        shift += 7


def fields(buf: bytes):
    """Yield (field number, wire type, value) of one message; value is an int or a bytes slice."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if key > 0xFFFFFFFF:  # protobuf reads a key as 32 bits: a longer one would name another field there
            raise WireError("field key wider than 32 bits")
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
    #: Every Loop node: (nesting depth, its M input's name, the number of graphs among its attributes).
    loops: list[tuple[int, str, int]] = field(default_factory=list)
    #: Integer scalars (or one-element tensors) among the main graph's initializers: name -> value.
    main_constants: dict[str, int] = field(default_factory=dict)
    #: Graphs held by attributes of nodes other than Loop.
    stray_subgraphs: int = 0
    #: Names the main graph's nodes output (a constant of that name is not a constant).
    main_outputs: set[str] = field(default_factory=set)
    #: How many times each name is defined in the main graph as a dense or sparse initializer or a graph input
    #: (ONNX Runtime takes one of several definitions; a proof must know which, so a bound needs exactly one).
    main_definitions: dict[str, int] = field(default_factory=dict)
    #: Names of the main graph's dense initializers (any type and shape).
    main_constants_any: set[str] = field(default_factory=set)
    #: Names of the main graph's inputs (whose shapes the contract fixes: the batch, and constants).
    main_inputs: set[str] = field(default_factory=set)
    #: The main graph's nodes: (op type, inputs, outputs).
    main_nodes: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    #: Op types of the nodes inside subgraphs (loop bodies).
    subgraph_ops: set[str] = field(default_factory=set)


# Field numbers from onnx.proto3.
_MODEL_IR_VERSION, _MODEL_OPSET, _MODEL_GRAPH, _MODEL_TRAINING_INFO, _MODEL_FUNCTIONS = 1, 8, 7, 20, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER, _GRAPH_INPUT = 1, 5, 15, 11
_VALUE_INFO_NAME = 1
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 2, 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_INT32_DATA, _TENSOR_INT64_DATA, _TENSOR_RAW_DATA = 1, 2, 5, 7, 9
_INT32, _INT64 = 6, 7  # TensorProto.DataType
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNCTION_NAME, _FUNCTION_NODE, _FUNCTION_ATTRIBUTE_PROTO = 1, 7, 11
_MAX_DEPTH = 32


def _text(value) -> str:
    """A name as text, one string per byte sequence (invalid UTF-8 as surrogate escapes): ONNX Runtime tells names
    apart by their bytes, so must every comparison here."""
    return bytes(value).decode("utf-8", "surrogateescape")


def _last_name(buf: bytes, number: int) -> str:
    """A message's name field: the last one, as protobuf keeps a singular field given twice."""
    name = ""
    for n, w, v in fields(buf):
        if n == number and w == 2:
            name = _text(v)
    return name


def _tensor(buf: bytes, out: OnnxSummary, main: bool = False) -> None:
    name, external = "", False
    dims, data_type, values, raw = [], None, [], None
    for number, wire, value in fields(buf):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(value)
        elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
            external = True
        elif number == _TENSOR_DATA_LOCATION and wire == 0 and value == 1:
            external = True
        elif number == _TENSOR_DIMS:
            dims.append(value)
        elif number == _TENSOR_DATA_TYPE and wire == 0:
            data_type = value
        elif number in (_TENSOR_INT32_DATA, _TENSOR_INT64_DATA) and len(values) < 2:
            if wire == 0:
                values.append(value)
            else:  # packed: every varint in it (two are enough to say it is not a scalar)
                pos = 0
                while pos < len(value) and len(values) < 2:
                    v, pos = _varint(value, pos)
                    values.append(v)
        elif number == _TENSOR_RAW_DATA and wire == 2:  # the last one counts, as protobuf keeps it
            raw = bytes(value[:9])
    if main:
        out.main_definitions[name] = out.main_definitions.get(name, 0) + 1
        out.main_constants_any.add(name)
    if external:
        out.external_tensors.append(name or "<unnamed>")
    elif main and data_type in (_INT32, _INT64) and all(d == 1 for d in dims if isinstance(d, int)) \
            and not any(isinstance(d, (bytes, memoryview)) and bytes(d) not in (b"", b"\x01") for d in dims):
        width = 4 if data_type == _INT32 else 8
        if raw is not None and len(raw) == width:
            out.main_constants[name] = int.from_bytes(raw, "little", signed=True)
        elif raw is None and len(values) == 1:
            v = values[0]
            out.main_constants[name] = v - (1 << 64) if v >= 1 << 63 else v


def _sparse(buf: bytes, out: OnnxSummary, main: bool = False) -> None:
    for number, wire, value in fields(buf):
        if number in (_SPARSE_VALUES, _SPARSE_INDICES) and wire == 2:
            _tensor(value, out)
            if main and number == _SPARSE_VALUES:  # a sparse initializer is named by its values tensor
                name = _last_name(value, _TENSOR_NAME)
                out.main_definitions[name] = out.main_definitions.get(name, 0) + 1


def _attribute(buf: bytes, out: OnnxSummary, depth: int) -> int:
    """Reads one attribute; returns how many graphs it holds."""
    graphs = 0
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number in (_ATTR_T, _ATTR_TENSORS):
            _tensor(value, out)
        elif number in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
            _sparse(value, out)
        elif number in (_ATTR_G, _ATTR_GRAPHS):
            out.subgraphs += 1
            graphs += 1
            _graph(value, out, depth + 1)
    return graphs


def _node(buf: bytes, out: OnnxSummary, depth: int) -> None:
    op_type, domain, graphs = "", "", 0
    inputs, outputs = [], []
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _NODE_OP_TYPE:
            op_type = _text(value)
        elif number == _NODE_DOMAIN:
            domain = _text(value)
        elif number == _NODE_INPUT:
            inputs.append(_text(value))
        elif number == _NODE_OUTPUT:
            outputs.append(_text(value))
            if depth == 0:
                out.main_outputs.add(outputs[-1])
        elif number == _NODE_ATTRIBUTE:
            graphs += _attribute(value, out, depth)
    first_input = inputs[0] if inputs else None
    domain = domain if domain != "ai.onnx" else ""
    out.ops.add((domain, op_type))
    if depth == 0:
        out.main_nodes.append((op_type if not domain else f"{domain}:{op_type}", inputs, outputs))
    else:
        out.subgraph_ops.add(op_type if not domain else f"{domain}:{op_type}")
    if op_type == "Loop" and not domain:
        out.loops.append((depth, first_input or "", graphs))
    elif graphs:
        out.stray_subgraphs += graphs


def _graph(buf: bytes, out: OnnxSummary, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise WireError("subgraphs nested too deeply")
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _GRAPH_INITIALIZER:
            _tensor(value, out, main=depth == 0)
        elif number == _GRAPH_SPARSE_INITIALIZER:
            _sparse(value, out, main=depth == 0)
        elif number == _GRAPH_INPUT and depth == 0:
            name = _last_name(value, _VALUE_INFO_NAME)
            out.main_definitions[name] = out.main_definitions.get(name, 0) + 1
            out.main_inputs.add(name)
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
            out.stray_subgraphs += _attribute(value, out, 1)
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


def loop_bounds(s: OnnxSummary) -> list[int]:
    """Each Loop's maximum trip count, or WireError when a loop is not one the runtime can bound: a Loop only in
    the main graph (none nested), with exactly one body, and ``M`` an integer initializer of the main graph."""
    if s.stray_subgraphs:
        raise WireError(f"holds {s.stray_subgraphs} subgraph(s) outside a Loop (control flow is refused)")
    bounds = []
    for depth, m_name, graphs in s.loops:
        if depth:
            raise WireError("holds a Loop inside a loop body (nested loops are refused)")
        if graphs != 1:
            raise WireError(f"holds a Loop with {graphs} body graphs")
        if m_name not in s.main_constants or m_name in s.main_outputs:
            raise WireError("holds a Loop whose trip count M is not a constant of the main graph (the runtime "
                            "accepts only loops with a constant maximum trip count)")
        if s.main_definitions.get(m_name, 0) != 1:
            raise WireError(f"holds a Loop whose trip count M ({m_name[:60]!r}) is defined {s.main_definitions[m_name]} "
                            "times in the main graph (initializers, sparse initializers, inputs): refused, as the "
                            "bound cannot be known")
        bounds.append(max(0, s.main_constants[m_name]))
    return bounds


#: Operators whose output size is read from tensor values, and which inputs hold it: a crafted model could compute
#: it from the input ids and allocate without bound. The exporter's Expands (zero states) take their size from the
#: input's shape and constants only, in the main graph: that is all the runtime accepts.
VALUE_SIZED = {"Expand": (1,), "ConstantOfShape": (0,), "Tile": (1,), "Range": (0, 1, 2), "Resize": (2, 3),
               "Upsample": (1,), "Pad": (1,), "OneHot": (1,), "CenterCropPad": (1,)}
#: Operators through which a size stays a function of shapes and constants.
_SIZE_PASSTHROUGH = {"Cast", "Slice", "Concat", "Gather", "Unsqueeze", "Squeeze", "Reshape", "Identity"}


def _shape_of_an_input(s: OnnxSummary, ins: list[str]) -> bool:
    """A Shape counts as a size made of shapes only when it reads an input of the main graph defined once: the
    contract fixes its shape (the batch, at most the runtime's batch limit, and constants). The shape of a tensor
    computed inside the model may itself come from tensor values (a Slice whose end is max(ids))."""
    return bool(ins) and ins[0] in s.main_inputs and s.main_definitions.get(ins[0], 0) == 1 \
        and ins[0] not in s.main_outputs


def value_sized_problems(s: OnnxSummary) -> list[str]:
    """Every value-sized operator that is inside a loop, or whose size is not made of shapes and constants."""
    problems = [f"holds a {op} inside a loop (its size would be read from a loop variable; refused)"
                for op in sorted(s.subgraph_ops & set(VALUE_SIZED))]
    producer = {o: (op, ins) for op, ins, outs in s.main_nodes for o in outs}
    memo: dict[str, bool] = {}

    def derived(name: str, depth: int = 0) -> bool:
        if name in memo:
            return memo[name]
        memo[name] = False  # a cycle proves nothing
        if depth > 32:
            return False
        if name in producer:
            op, ins = producer[name]
            ok = op == "Constant" or (op == "Shape" and _shape_of_an_input(s, ins)) or (
                op in _SIZE_PASSTHROUGH and all(derived(i, depth + 1) for i in ins if i))
        else:  # a constant of the file, defined once; not a graph input (whose value the caller gives)
            ok = name in s.main_constants_any and s.main_definitions.get(name, 0) == 1
        memo[name] = ok
        return ok

    for op, ins, _ in s.main_nodes:
        for i in VALUE_SIZED.get(op, ()):
            if i < len(ins) and ins[i] and not derived(ins[i]):
                problems.append(f"holds a {op} whose size is computed from tensor values, not from shapes and "
                                "constants (it could allocate without bound; refused)")
                break
    return problems


# ---- the graphs as trees, for the shape proof (onnx_shapes) ----------------------------------------------------------
#: Integer tensors up to this many elements keep their values (shape vectors, axes, indices, slice bounds).
MAX_KEPT_INTS = 1024
_ATTR_NAME, _ATTR_I, _ATTR_INTS = 1, 3, 8
_NODE_NAME = 3
_GRAPH_OUTPUT = 12
_CONST_VALUE_INT, _CONST_VALUE_INTS = "value_int", "value_ints"


@dataclass
class Const:
    """A tensor of the file: its dims, data type, and its values when it is a small integer tensor (else None)."""

    dims: tuple[int, ...] | None   # None: not known (a sparse initializer)
    data_type: int | None
    ints: list[int] | None


@dataclass
class Node:
    op: str                    # "domain:op" outside the default domain
    inputs: list[str]
    outputs: list[str]
    #: Attributes by name: an int, a list of ints, a Const (t), a Graph (g), or None for any other kind.
    attrs: dict


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, Const] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _const(buf: bytes) -> tuple[str, Const]:
    name, dims, data_type, values, raw = "", [], None, [], None
    for number, wire, value in fields(buf):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(value)
        elif number == _TENSOR_DIMS:
            if wire == 0:
                dims.append(_signed64(value))
            elif wire == 2:
                pos = 0
                while pos < len(value):
                    v, pos = _varint(value, pos)
                    dims.append(_signed64(v))
        elif number == _TENSOR_DATA_TYPE and wire == 0:
            data_type = value
        elif number in (_TENSOR_INT32_DATA, _TENSOR_INT64_DATA) and len(values) <= MAX_KEPT_INTS:
            if wire == 0:
                values.append(_signed64(value))
            elif wire == 2:
                pos = 0
                while pos < len(value) and len(values) <= MAX_KEPT_INTS:
                    v, pos = _varint(value, pos)
                    values.append(_signed64(v))
        elif number == _TENSOR_RAW_DATA and wire == 2:
            raw = value
    count = 1
    for d in dims:
        count *= max(d, 0)
    ints = None
    if data_type in (_INT32, _INT64) and count <= MAX_KEPT_INTS:
        width = 4 if data_type == _INT32 else 8
        if raw is not None and len(raw) == count * width:
            ints = [int.from_bytes(raw[i:i + width], "little", signed=True) for i in range(0, len(raw), width)]
        elif raw is None and len(values) == count:
            ints = [v if data_type == _INT64 else (v & 0xFFFFFFFF) - ((v & 0x80000000) << 1) for v in values]
    return name, Const(tuple(dims), data_type, ints)


def _attr(buf: bytes, depth: int):
    name, ints, kind = "", [], None
    value = None
    for number, wire, v in fields(buf):
        if number == _ATTR_NAME and wire == 2:
            name = _text(v)
        elif number == _ATTR_I and wire == 0:
            value, kind = _signed64(v), "i"
        elif number == _ATTR_INTS:
            kind = "ints"
            if wire == 0:
                ints.append(_signed64(v))
            elif wire == 2:
                pos = 0
                while pos < len(v):
                    x, pos = _varint(v, pos)
                    ints.append(_signed64(x))
        elif number == _ATTR_T and wire == 2:
            value, kind = _const(v)[1], "t"
        elif number == _ATTR_G and wire == 2:
            value, kind = _tree(v, depth + 1), "g"
    return name, (ints if kind == "ints" else value)


def _tree_node(buf: bytes, depth: int) -> Node:
    op, domain, inputs, outputs, attrs = "", "", [], [], {}
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _NODE_OP_TYPE:
            op = _text(value)
        elif number == _NODE_DOMAIN:
            domain = _text(value)
        elif number == _NODE_INPUT:
            inputs.append(_text(value))
        elif number == _NODE_OUTPUT:
            outputs.append(_text(value))
        elif number == _NODE_ATTRIBUTE:
            name, v = _attr(value, depth)
            attrs[name] = v  # the last attribute of a name counts, as ONNX Runtime's map keeps it
    domain = "" if domain == "ai.onnx" else domain
    return Node(f"{domain}:{op}" if domain else op, inputs, outputs, attrs)


def _tree(buf: bytes, depth: int = 0) -> Graph:
    if depth > _MAX_DEPTH:
        raise WireError("subgraphs nested too deeply")
    g = Graph()
    for number, wire, value in fields(buf):
        if wire != 2:
            continue
        if number == _GRAPH_NODE:
            g.nodes.append(_tree_node(value, depth))
        elif number == _GRAPH_INITIALIZER:
            name, c = _const(value)
            # a name defined twice has no one shape a proof can take (ONNX Runtime keeps one of them)
            g.initializers[name] = c if name not in g.initializers else Const(None, None, None)
        elif number == _GRAPH_SPARSE_INITIALIZER:
            for n2, w2, v2 in fields(value):
                if n2 == _SPARSE_VALUES and w2 == 2:
                    g.initializers[_last_name(v2, _TENSOR_NAME)] = Const(None, None, None)
        elif number == _GRAPH_INPUT:
            g.inputs.append(_last_name(value, _VALUE_INFO_NAME))
        elif number == _GRAPH_OUTPUT:
            g.outputs.append(_last_name(value, _VALUE_INFO_NAME))
    return g


def graph_tree(content: bytes) -> Graph:
    """The main graph as a tree of nodes, attributes and subgraphs (read after ``summarize`` accepted the file).
    A graph field given twice is merged, as protobuf merges a singular message field."""
    merged = Graph()
    for number, wire, value in fields(memoryview(content)):
        if number == _MODEL_GRAPH and wire == 2:
            g = _tree(value)
            merged.nodes += g.nodes
            merged.inputs += g.inputs
            merged.outputs += g.outputs
            for name, c in g.initializers.items():
                merged.initializers[name] = c if name not in merged.initializers else Const(None, None, None)
    return merged
