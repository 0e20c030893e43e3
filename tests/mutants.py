"""Seeded mutants of the fixture bundles' models, for holding every runtime's model-byte readers to the Python
runtime's verdicts on files nobody wrote by hand (``tests/make_crafted.py`` writes them beside the crafted files).

ONNX: random bytes changed, and (with the onnx package) random changes of structure: an integer attribute, a node
input rewired to another tensor, a small integer constant. TFLite: the int32 data of small constant buffers and the
bytes of operator options, operator inputs and outputs shifted. Most mutants are refused, many for a reason met only
in one reader's corner (a slice bound, an axis, a rank), and a few are accepted: the runtimes must say the same,
word for word.
"""

from __future__ import annotations

import random
import struct


def _bytes_changed(content: bytes, rng: random.Random) -> bytes:
    out = bytearray(content)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def _onnx_structure_changed(content: bytes, rng: random.Random) -> bytes:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(content)
    graphs = [proto.graph] + [a.g for n in proto.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    g = rng.choice(graphs)
    names = [o for n in g.node for o in n.output] + [x.name for x in g.initializer]
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(3)
        if kind == 0 and g.node:
            node = rng.choice(g.node)
            ints = [a for a in node.attribute if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS)]
            if ints:
                a = rng.choice(ints)
                if a.type == onnx.AttributeProto.INT:
                    a.i = rng.randint(-3, 5)
                else:
                    a.ints[:] = [rng.randint(-3, 5) for _ in range(rng.randint(0, 3))]
        elif kind == 1 and g.node:
            node = rng.choice(g.node)
            if node.input:
                node.input[rng.randrange(len(node.input))] = rng.choice(names)
        else:
            small = [x for x in g.initializer if x.data_type in (6, 7) and np.prod(x.dims) <= 8]
            if small:
                x = rng.choice(small)
                values = numpy_helper.to_array(x).copy()
                if values.size:
                    values.flat[rng.randrange(values.size)] = rng.choice([-1, 0, 1, 2, 3, 2**31 - 1, 10**6, -10**9])
                x.CopyFrom(numpy_helper.from_array(values, x.name))
    return proto.SerializeToString()


def _tflite_places(content: bytes) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(small int32 constant buffers as (start, length), option field positions, operator input/output slots)."""
    from seq2seq_edge.backends import tflite_wire as tw

    buf = tw._Buffer(content)
    model = buf.table(buf.indirect(0))
    spans, options, slots = [], [], []
    for b in model.tables(4):
        pos = b._field(0)
        if pos is not None:
            start, length = buf.vector(pos, 1)
            if 0 < length <= 64 and length % 4 == 0:
                spans.append((start, length))
    for g in model.tables(2):
        for op in g.tables(3):
            o = op.table_field(4)
            if o is not None:
                options += [p for p in (o._field(k) for k in range(6)) if p is not None]
            for k in (1, 2):
                p = op._field(k)
                if p is not None:
                    start, n = buf.vector(p, 4)
                    slots += [start + 4 * j for j in range(n)]
    return spans, options, slots


def _tflite_structure_changed(content: bytes, places, rng: random.Random) -> bytes:
    spans, options, slots = places
    out = bytearray(content)
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.5 and spans:
            start, length = rng.choice(spans)
            struct.pack_into("<i", out, start + 4 * rng.randrange(length // 4),
                             rng.choice([-1, 0, 1, 2, 3, 5, 7, -2, 2**20, 2**31 - 1, -2**31]))
        elif r < 0.75 and slots:
            at = rng.choice(slots)
            struct.pack_into("<i", out, at, struct.unpack_from("<i", out, at)[0] + rng.choice([-3, -2, -1, 1, 2, 3]))
        elif options:
            out[rng.choice(options)] = rng.choice([0, 1, 2, 3, 255, 7])
    return bytes(out)


def mutants(models: list[tuple[str, str, bytes]], per_model: int, seed: int = 0) -> list[tuple[str, str, bytes]]:
    """(name, model label, bytes) of ``per_model`` mutants of each (label, format, bytes) model, half of them by
    structure, half by bytes; the same every run for the same models and seed."""
    rng = random.Random(seed)
    out = []
    for label, fmt, content in models:
        places = _tflite_places(content) if fmt == "tflite" else None
        for i in range(per_model):
            by_structure = i % 2 == 0
            if fmt == "onnx":
                mutated = _onnx_structure_changed(content, rng) if by_structure else _bytes_changed(content, rng)
            else:
                mutated = _tflite_structure_changed(content, places, rng) if by_structure else _bytes_changed(content, rng)
            out.append((f"{label}-{'structure' if by_structure else 'bytes'}-{i}", label, mutated))
    return out
