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


def int64_tensor(name: str, value: int) -> bytes:
    """TensorProto: a one-element int64 tensor (dims [1]) in int64_data."""
    return vi(1, 1) + vi(2, 7) + ld(8, name) + vi(7, value)


def with_main_graph_fields(model: bytes, graph_fields: bytes) -> bytes:
    """The model with serialized GraphProto fields merged into its main graph."""
    return model + ld(7, graph_fields)


def redefined_in_main_graph(model: bytes, name: str, value: int, how: str) -> bytes:
    """The model with ``name`` defined once more in its main graph: "dense" (GraphProto.initializer), "sparse"
    (sparse_initializer: values named ``name``, one index) or "input" (a graph input of that name)."""
    if how == "dense":
        return with_main_graph_fields(model, ld(5, int64_tensor(name, value)))
    if how == "sparse":
        sparse = ld(1, int64_tensor(name, value)) + ld(2, int64_tensor(name + "_indices", 0)) + vi(3, 1)
        return with_main_graph_fields(model, ld(15, sparse))
    if how == "input":
        return with_main_graph_fields(model, ld(11, ld(1, name)))
    raise ValueError(how)


def tflite_with_repeated_condition_input(content: bytes) -> bytes:
    """A .tflite whose first WHILE's condition subgraph lists its first input tensor again in place of its last:
    the interpreter binds that tensor to the last loop variable, not the one a proof reads by position."""
    from seq2seq_edge.backends import tflite_wire as tw

    buf = tw._Buffer(content)
    model = buf.table(buf.indirect(0))
    codes = [tw.BUILTIN_NAMES.get(max(c.scalar(0, "<b", 0), c.scalar(3, "<i", 0)), "?") for c in model.tables(1)]
    tables = model.tables(2)
    main = tw._Subgraph(tables[0], codes)
    op = next(o for o in main.ops if o.name == "WHILE")
    cond = tables[tw._while_subgraphs(op, len(tables))[0]]
    start, length = buf.vector(cond._field(1), 4)  # SubGraph.inputs
    first = content[start:start + 4]
    last = start + 4 * (length - 1)
    return content[:last] + first + content[last + 4:]


# -- models built with TensorFlow and its converters, the way an attacker would build them (need the [train] extra)
def encoder_fn(manifest, loop):
    """A tf.function with the bundle's encoder signature whose state comes out of ``loop(h)``."""
    import tensorflow as tf
    from seq2seq_edge import manifest as mf

    steps, latent = manifest.encoder_time_steps, manifest.latent_dim

    @tf.function(input_signature=[tf.TensorSpec([None, steps], tf.int32, name=mf.INPUT_IDS)])
    def serve(input_ids):
        h = tf.zeros([tf.shape(input_ids)[0], latent]) + tf.cast(input_ids[:, :1], tf.float32)
        h = loop(h)
        return {mf.STATE_H: h, mf.STATE_C: h}
    return serve


def encoder_with_allocation(manifest):
    """An encoder that allocates ``reduce_max(input_ids) * 2**20`` floats: a FILL / ConstantOfShape sized by the
    input's values, no loop at all."""
    import tensorflow as tf
    from seq2seq_edge import manifest as mf

    steps, latent = manifest.encoder_time_steps, manifest.latent_dim

    @tf.function(input_signature=[tf.TensorSpec([None, steps], tf.int32, name=mf.INPUT_IDS)])
    def serve(input_ids):
        h = tf.zeros([tf.shape(input_ids)[0], latent]) + tf.cast(input_ids[:, :1], tf.float32)
        h = h + tf.reduce_sum(tf.fill(tf.reshape(tf.reduce_max(input_ids) * (2**20), [1]), 0.0))
        return {mf.STATE_H: h, mf.STATE_C: h}
    return serve


def tflite_file(fn) -> bytes:
    """``fn`` converted with the TFLite converter, bound to the ``serving_default`` signature as the exporter binds
    its models (a trackable object beside the function)."""
    import tensorflow as tf

    holder = tf.Module()
    holder.serve = fn
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], holder).convert()


def onnx_file(fn) -> bytes:
    """``fn`` converted with tf2onnx (opset 17)."""
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17)
    return proto.SerializeToString()


def unbounded(h):
    """A loop that runs until its state is huge: no maximum_iterations."""
    import tensorflow as tf

    return tf.while_loop(lambda h: tf.reduce_sum(h) < 1e30, lambda h: (h + 1.0,), (h,))[0]


def counted(limit):
    """A loop counted up to ``limit``, as tf.while_loop's maximum_iterations writes it (the exporter's form)."""
    def loop(h):
        import tensorflow as tf

        return tf.while_loop(lambda h: tf.reduce_sum(h) < 1e30, lambda h: (h * 1.0001,), (h,),
                             maximum_iterations=limit)[0]
    return loop


def nested(h):
    """A counted loop inside a counted loop."""
    import tensorflow as tf

    inner = counted(3)
    return tf.while_loop(lambda h: tf.reduce_sum(h) < 1e30, lambda h: (inner(h),), (h,), maximum_iterations=1)[0]


# ---- shapes that grow faster than the batch, or inside a loop (the shape proof refuses them) ----------------------
def encoder_growing(manifest, grow):
    """``encoder_fn`` whose state comes out of ``grow(h, input_ids)``."""
    import tensorflow as tf
    from seq2seq_edge import manifest as mf

    steps, latent = manifest.encoder_time_steps, manifest.latent_dim

    @tf.function(input_signature=[tf.TensorSpec([None, steps], tf.int32, name=mf.INPUT_IDS)])
    def serve(input_ids):
        h = tf.zeros([tf.shape(input_ids)[0], latent]) + tf.cast(input_ids[:, :1], tf.float32)
        h = grow(h, input_ids)
        return {mf.STATE_H: h, mf.STATE_C: h}
    return serve


def batch_squared(h, input_ids):
    """A zero tensor of [batch, batch], summed back into the state: a size made of the input's shape only, but of
    the batch twice (at the runtime's batch limit, 4096 x 4096 floats per call)."""
    import tensorflow as tf

    batch = tf.shape(input_ids)[0]
    return h + tf.reduce_sum(tf.zeros(tf.stack([batch, batch])), axis=1, keepdims=True)


def outer_product(h, input_ids):
    """[batch, 1, units] x [1, batch, units]: a broadcast, no size read from any value, of batch x batch x units."""
    import tensorflow as tf

    return h + tf.reduce_sum(h[:, None, :] * h[None, :, :], axis=1)


def growing_loop(h, input_ids):
    """A loop bounded by the limit that doubles the tensor it carries at every step (a Concat with itself): the
    bound on its steps says nothing about its size, which grows as 2^steps (here up to the digits encoder's 1)."""
    import tensorflow as tf

    _, grown = tf.while_loop(lambda i, x: i < 1, lambda i, x: (i + 1, tf.concat([x, x], 0)), (0, h),
                             shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, h.shape[1]])),
                             maximum_iterations=1)
    return h + tf.reduce_sum(grown)


def rewired(model: bytes, output: str, inits: list, nodes: list) -> bytes:
    """``model`` (an .onnx) whose ``output`` is computed by ``nodes`` from what its producer wrote, renamed
    ``output + "_inner"``; ``inits`` are added to the main graph."""
    import onnx

    proto = onnx.load_from_string(model)
    graph = proto.graph
    producer = next(n for n in graph.node if output in n.output)
    producer.output[list(producer.output).index(output)] = output + "_inner"
    graph.initializer.extend(inits)
    graph.node.extend(nodes)
    return proto.SerializeToString()


def with_constant_bomb(model: bytes, output: str, elements: tuple[int, int]) -> bytes:
    """``model`` (an encoder .onnx) whose ``output`` also adds a slice of a ConstantOfShape of a constant size
    ``elements``: nothing read from the input, but 4 bytes x the product of ``elements`` allocated per call."""
    from onnx import TensorProto, helper

    return rewired(model, output, [helper.make_tensor("bomb_shape", TensorProto.INT64, [2], list(elements)),
                                   helper.make_tensor("zero_starts", TensorProto.INT64, [2], [0, 0]),
                                   helper.make_tensor("one_ends", TensorProto.INT64, [2], [1, 1])],
                   [helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"]),
                    helper.make_node("Slice", ["bomb", "zero_starts", "one_ends"], ["bomb_1"]),
                    helper.make_node("Add", [output + "_inner", "bomb_1"], [output])])


def with_zeros_per_row(model: bytes, output: str, inputs: str, width: int) -> bytes:
    """``output`` plus the row sums of a zero tensor of [batch, ``width``] (an Expand sized by the batch of
    ``inputs`` and a constant): ``width`` elements per batch row, which the shape proof holds to the row limit."""
    from onnx import TensorProto, helper

    return rewired(model, output, [helper.make_tensor("w_zero", TensorProto.FLOAT, [], [0.0]),
                                   helper.make_tensor("w_width", TensorProto.INT64, [1], [width]),
                                   helper.make_tensor("w_0", TensorProto.INT64, [1], [0]),
                                   helper.make_tensor("w_1", TensorProto.INT64, [1], [1])],
                   [helper.make_node("Shape", [inputs], ["w_shape"]),
                    helper.make_node("Slice", ["w_shape", "w_0", "w_1"], ["w_batch"]),
                    helper.make_node("Concat", ["w_batch", "w_width"], ["w_size"], axis=0),
                    helper.make_node("Expand", ["w_zero", "w_size"], ["wide"]),
                    helper.make_node("ReduceSum", ["wide", "w_1"], ["wide_sum"], keepdims=1),
                    helper.make_node("Add", [output + "_inner", "wide_sum"], [output])])


def with_slice_bounded_by_values(model: bytes, output: str, inputs: str) -> bytes:
    """``output`` plus the row sums of its own first ``max(inputs)`` columns: a Slice whose end is read from the
    input's values, which is never larger than what it slices (the proof takes that bound)."""
    from onnx import TensorProto, helper

    return rewired(model, output, [helper.make_tensor("v_0", TensorProto.INT64, [1], [0]),
                                   helper.make_tensor("v_1", TensorProto.INT64, [1], [1]),
                                   helper.make_tensor("v_shape1", TensorProto.INT64, [1], [1])],
                   [helper.make_node("ReduceMax", [inputs], ["v_max"], keepdims=0),
                    helper.make_node("Cast", ["v_max"], ["v_max64"], to=TensorProto.INT64),
                    helper.make_node("Reshape", ["v_max64", "v_shape1"], ["v_end"]),
                    helper.make_node("Slice", [output + "_inner", "v_0", "v_end", "v_1"], ["v_cols"]),
                    helper.make_node("ReduceSum", ["v_cols", "v_1"], ["v_sum"], keepdims=1),
                    helper.make_node("Add", [output + "_inner", "v_sum"], [output])])


def with_rank(model: bytes, output: str, rank: int) -> bytes:
    """``output`` through an Unsqueeze to ``rank`` dimensions and a Reshape back: a tensor of more dimensions
    than the shape proof follows (16)."""
    from onnx import TensorProto, helper

    extra = rank - 2
    return rewired(model, output, [helper.make_tensor("r_axes", TensorProto.INT64, [extra], list(range(2, rank))),
                                   helper.make_tensor("r_back", TensorProto.INT64, [2], [0, -1])],
                   [helper.make_node("Unsqueeze", [output + "_inner", "r_axes"], ["r_high"]),
                    helper.make_node("Reshape", ["r_high", "r_back"], [output])])


def patched_loop_limit(content: bytes, old: int, new: int) -> bytes:
    """``content`` (a .tflite) with the constant limit of a loop raised from ``old`` to ``new``: the int32 ``old``
    in the file whose change moves a proven loop bound (found by trying each occurrence)."""
    from seq2seq_edge.backends import tflite_wire

    before = tflite_wire.summarize(content).loop_bounds
    needle = old.to_bytes(4, "little", signed=True)
    at = content.find(needle)
    while at != -1:
        patched = content[:at] + new.to_bytes(4, "little", signed=True) + content[at + 4:]
        try:
            if tflite_wire.summarize(patched).loop_bounds != before:
                return patched
        except tflite_wire.WireError:
            pass
        at = content.find(needle, at + 1)
    raise AssertionError(f"no loop limit {old} found")


# -- small ONNX models that test what a reader makes of the protobuf itself (need the onnx package) ---------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _onnx_model(nodes, inits=(), inputs=(), outputs=("y",)) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", list(inputs), [helper.make_tensor_value_info(o, TensorProto.INT64, None)
                                                        for o in outputs], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _counting_body():
    from onnx import TensorProto as T, helper as h

    return h.make_graph([h.make_node("Identity", ["c_in"], ["c_out"]), h.make_node("Identity", ["i"], ["scan"])],
                        "body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("c_in", T.BOOL, [])],
                        [h.make_tensor_value_info("c_out", T.BOOL, []), h.make_tensor_value_info("scan", T.INT64, [])])


def protobuf_attacks() -> list[tuple[str, bytes, list[str]]]:
    """(name, bytes, the operator list a manifest would give) of ONNX files that fool a reader that compares names
    as decoded text, keeps the first of a field given twice, reads keys wider than protobuf does, or sorts by
    UTF-16 unit; each checked as a greedy model (Expand, ReduceMax, Shape and Loop are allowed there)."""
    from onnx import TensorProto as T, helper as h

    ids = h.make_tensor_value_info("ids", T.INT64, [None])
    zero = h.make_tensor("zero", T.FLOAT, [], [0.0])
    expand_ops = ["ReduceMax", "Expand", "Shape"]

    def expand_sized_by(values_name: str, shape_name: str) -> bytes:
        """Expand's size is ReduceMax(ids) (named ``values_name``); a Shape writes ``shape_name`` later."""
        return _onnx_model([h.make_node("ReduceMax", ["ids"], [values_name], keepdims=1),
                            h.make_node("Expand", ["zero", values_name], ["y"]),
                            h.make_node("Shape", ["ids"], [shape_name])], [zero], [ids], ["y", shape_name])

    cases = [("onnx-names-that-differ-by-a-bom", expand_sized_by("\ufeffS", "S"), expand_ops),
             ("onnx-names-that-differ-in-invalid-utf8",
              expand_sized_by("@S", "#S").replace(b"@S", b"\xffS").replace(b"#S", b"\xfeS"), expand_ops)]
    loop = _onnx_model([h.make_node("Loop", ["M", ""], ["y"], body=_counting_body())],
                       [h.make_tensor("M", T.INT64, [], [-1])])
    # M's int64 value as a 10-byte varint of 2**65 + 3: protobuf keeps its low 64 bits, 3
    cases.append(("onnx-loop-bound-over-64-bits", loop.replace(_varint((1 << 64) - 1), _varint((1 << 65) + 3)),
                  ["Loop", "Identity"]))
    # a second sparse initializer named M by the last of two name fields (protobuf keeps the last)
    values = ld(8, "junk") + vi(1, 1) + vi(2, 7) + vi(7, 50) + ld(8, "M")
    sparse = ld(1, values) + ld(2, vi(1, 1) + vi(2, 7) + vi(7, 0) + ld(8, "idx"))
    cases.append(("onnx-sparse-name-given-twice", with_main_graph_fields(
        _onnx_model([h.make_node("Loop", ["M", ""], ["y"], body=_counting_body())],
                    [h.make_tensor("M", T.INT64, [], [3])]), ld(15, sparse)), ["Loop", "Identity"]))
    # a node under a 5-byte key whose 33rd bit is set: field 1 (a node) to protobuf, an unknown field to a wider read
    hidden = h.make_node("Loop", ["n", ""], ["trace"], body=_counting_body()).SerializeToString()
    key = bytes([0x8A, 0x80, 0x80, 0x80, 0x10])
    cases.append(("onnx-node-under-a-key-wider-than-32-bits", with_main_graph_fields(
        _onnx_model([h.make_node("Identity", ["ids"], ["y"])], inputs=[ids]),
        key + _varint(len(hidden)) + hidden), ["Identity"]))
    cases += [
        ("onnx-operators-sorted-by-code-point", _onnx_model(
            [h.make_node("\uff41", ["ids"], ["t"]), h.make_node("\U0001F600", ["t"], ["y"])], inputs=[ids]),
         ["\uff41", "\U0001F600"]),
        ("onnx-nul-in-a-domain", _onnx_model([h.make_node("Anything", ["ids"], ["y"], domain="\0Identity")],
                                             inputs=[ids]), ["Identity"]),
        ("onnx-bom-before-an-operator", _onnx_model([h.make_node("\ufeffIdentity", ["ids"], ["y"])], inputs=[ids]),
         ["Identity"]),
    ]
    # Expand's shape is Shape(Slice(a constant, 0, max(ids))) five times over: a Shape of a computed tensor is no
    # size made of shapes (max(ids) ** 5 elements)
    ints = lambda name, v: h.make_tensor(name, T.INT64, [1], [v])  # noqa: E731
    cases.append(("onnx-shape-of-a-slice-sized-by-the-input", _onnx_model([
        h.make_node("ReduceMax", ["ids"], ["mx"], keepdims=1),
        h.make_node("Slice", ["big", "zero", "mx"], ["s"]), h.make_node("Shape", ["s"], ["sh"]),
        h.make_node("Concat", ["sh"] * 5, ["shape"], axis=0), h.make_node("Expand", ["one", "shape"], ["y"])],
        [h.make_tensor("big", T.FLOAT, [1000], [0.0] * 1000), ints("zero", 0), h.make_tensor("one", T.FLOAT, [1], [1.0])],
        [ids]), ["ReduceMax", "Slice", "Shape", "Concat", "Expand"]))
    # a size through 33 Identities from a constant (deeper than any proof goes), and one node's two outputs reached
    # at depth 33 and at depth 0
    chain = [h.make_node("Identity", ["c" if k == 0 else f"t{k - 1}"], [f"t{k}"]) for k in range(33)]
    cases.append(("onnx-size-through-33-identities", _onnx_model(
        chain + [h.make_node("Expand", ["one", "t32"], ["y"])], [ints("c", 4), h.make_tensor("one", T.FLOAT, [1], [1.0])],
        [ids]), ["Identity", "Expand"]))
    chain = [h.make_node("Identity", ["a" if k == 0 else f"t{k - 1}"], [f"t{k}"]) for k in range(33)]
    cases.append(("onnx-one-node-two-outputs-two-depths", _onnx_model(
        [h.make_node("Identity", ["c"], ["a", "b"])] + chain + [
            h.make_node("Expand", ["one", "t32"], ["y"]), h.make_node("Expand", ["one", "b"], ["z"])],
        [ints("c", 4), h.make_tensor("one", T.FLOAT, [1], [1.0])], [ids], ["y", "z"]), ["Identity", "Expand"]))
    return cases


# -- a TFLite flatbuffer written field by field (needs the flatbuffers package, a TensorFlow dependency) ------------
def tflite_fills_of_one_shared_size(fills: int, parts: int) -> bytes:
    """A .tflite whose main graph lists one FILL table ``fills`` times, each sized by one CONCATENATION of
    ``parts`` copies of one int32 constant: a reader that works out the size's provenance afresh for each FILL
    does fills x parts steps (a 200 KB file asked for minutes); with one memo per graph it is linear."""
    import flatbuffers

    b = flatbuffers.Builder(1024)

    def ints(xs):
        b.StartVector(4, len(xs), 4)
        for x in reversed(xs):
            b.PrependInt32(x)
        return b.EndVector()

    def offsets(xs):
        b.StartVector(4, len(xs), 4)
        for x in reversed(xs):
            b.PrependUOffsetTRelative(x)
        return b.EndVector()

    def table(fields):  # (slot, kind, value): kind "off", "i8" or "u32"
        b.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
        for slot, kind, value in fields:
            {"off": b.PrependUOffsetTRelativeSlot, "i8": b.PrependInt8Slot,
             "u32": b.PrependUint32Slot}[kind](slot, value, {"off": 0, "i8": -128, "u32": 2**32 - 1}[kind])
        return b.EndObject()

    one = b.CreateByteVector(bytes([1, 0, 0, 0]))
    empty = table([])
    buffers = offsets([empty, table([(0, "off", one)])])
    shape = ints([])
    tensors = offsets([table([(0, "off", shape), (1, "i8", 2), (2, "u32", 1)]),   # the int32 constant
                       table([(0, "off", shape), (1, "i8", 2), (2, "u32", 0)]),   # the CONCATENATION's output
                       table([(0, "off", shape), (1, "i8", 0), (2, "u32", 0)])])  # the FILLs' output
    concat = table([(0, "u32", 1), (1, "off", ints([0] * parts)), (2, "off", ints([1]))])
    fill = table([(0, "u32", 0), (1, "off", ints([1, 0])), (2, "off", ints([2]))])
    graph = table([(0, "off", tensors), (1, "off", ints([])), (2, "off", ints([2])),
                   (3, "off", offsets([concat] + [fill] * fills))])
    codes = offsets([table([(0, "i8", 94), (2, "u32", 1), (3, "u32", 94)]),   # FILL
                     table([(0, "i8", 2), (2, "u32", 1), (3, "u32", 2)])])    # CONCATENATION
    b.Finish(table([(0, "u32", 3), (1, "off", codes), (2, "off", offsets([graph])), (4, "off", buffers)]),
             file_identifier=b"TFL3")
    return bytes(b.Output())


# ---- ways past a weaker shape proof (found by an attack on the first version; all refused now) --------------------
def _encoder_model(nodes: list, inits: list, extra_inputs: bool = False) -> bytes:
    """A digits-shaped encoder (input_ids [B, 1] -> state_h, state_c [B, 32]) whose state is ``nodes``' "rs" added to
    zeros."""
    import numpy as np
    from onnx import TensorProto as T, helper as h, numpy_helper as nh

    nodes = nodes + [h.make_node("ReduceSum", ["rs_in"], ["rs"], keepdims=0),
                     h.make_node("Cast", ["input_ids"], ["xf_out"], to=T.FLOAT),
                     h.make_node("Mul", ["xf_out", "z32"], ["z"]),
                     h.make_node("Add", ["z", "rs"], ["state_h"]), h.make_node("Identity", ["state_h"], ["state_c"])]
    inits = inits + [nh.from_array(np.zeros((1, 32), np.float32), "z32")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("input_ids", T.INT32, [None, 1])],
                     [h.make_tensor_value_info("state_h", T.FLOAT, [None, 32]),
                      h.make_tensor_value_info("state_c", T.FLOAT, [None, 32])], initializer=inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _i64(name: str, values: list):
    import numpy as np
    from onnx import numpy_helper as nh

    return nh.from_array(np.array(values, dtype=np.int64), name)


def reduce_without_axes_kept_whole() -> bytes:
    """A ReduceSum with no axes and noop_with_empty_axes=1 (ONNX Runtime returns its input as it is) taken for a
    reduction to [1, 1]: then [n, 1] + [n] broadcast to [n, n] twice over, B^4 elements, where a proof that
    reduced saw [1, 1]."""
    from onnx import TensorProto as T, helper as h

    nodes = [h.make_node("Cast", ["input_ids"], ["xf"], to=T.FLOAT), h.make_node("Reshape", ["xf", "minus1"], ["x1"]),
             h.make_node("Unsqueeze", ["x1", "ax0"], ["U"]),
             h.make_node("ReduceSum", ["U"], ["Q"], noop_with_empty_axes=1),
             h.make_node("Squeeze", ["Q", "ax0"], ["R0"])]
    for r in range(2):
        nodes += [h.make_node("Unsqueeze", [f"R{r}", "ax1"], [f"C{r}"]), h.make_node("Add", [f"C{r}", f"R{r}"], [f"A{r}"]),
                  h.make_node("Reshape", [f"A{r}", "minus1"], [f"R{r + 1}"])]
    nodes.append(h.make_node("Identity", ["R2"], ["rs_in"]))
    return _encoder_model(nodes, [_i64("ax0", [0]), _i64("ax1", [1]), _i64("minus1", [-1])])


def bound_taken_for_a_value(n: int = 64) -> bytes:
    """A slice start known only as a bound (the shape of a slice whose start was read from values) used as if it
    were the value: the proof would see an empty slice where ONNX Runtime takes all n, then n x n, then n^3."""
    import numpy as np
    from onnx import helper as h, numpy_helper as nh

    nodes = [h.make_node("Add", ["cN", "c0"], ["st_dyn"]), h.make_node("Slice", ["K", "st_dyn", "cN"], ["S1"]),
             h.make_node("Shape", ["S1"], ["sh"]), h.make_node("Slice", ["K", "sh", "cN"], ["R0"])]
    for r in range(2):
        nodes += [h.make_node("Unsqueeze", [f"R{r}", "ax1"], [f"U{r}"]), h.make_node("Add", [f"U{r}", "K"], [f"A{r}"]),
                  h.make_node("Reshape", [f"A{r}", "minus1"], [f"R{r + 1}"])]
    nodes.append(h.make_node("Identity", ["R2"], ["rs_in"]))
    return _encoder_model(nodes, [nh.from_array(np.zeros(n, np.float32), "K"), _i64("cN", [n]), _i64("c0", [0]),
                                  _i64("ax1", [1]), _i64("minus1", [-1])])


def contract_input_also_an_initializer() -> bytes:
    """input_ids also a [1, 1] initializer: ONNX Runtime takes the caller's [B, 1] in its place, and [B, 1] + [1, B]
    is [B, B] where the initializer's shape gives [1, 1]."""
    import numpy as np
    from onnx import TensorProto as T, helper as h, numpy_helper as nh

    nodes = [h.make_node("Cast", ["input_ids"], ["xf"], to=T.FLOAT), h.make_node("Reshape", ["xf", "m1_1"], ["col"]),
             h.make_node("Reshape", ["xf", "one_m1"], ["row"]), h.make_node("Add", ["col", "row"], ["rs_in"])]
    return _encoder_model(nodes, [nh.from_array(np.zeros((1, 1), np.int32), "input_ids"), _i64("m1_1", [-1, 1]),
                                  _i64("one_m1", [1, -1])])
