// A minimal reader of the ONNX protobuf wire format, so the runtime can check a model before ONNX Runtime sees
// it: the IR version, the opsets, every node's op type and domain, model-local functions, tensors that point at
// external data, and for every Loop where it sits and its maximum trip count M (a constant of the main graph), so
// each loop can be proved bounded. Every read is bounded by the buffer and nesting by a fixed depth.
// The same reader as the Python runtime's (runtime/backends/onnx_wire.py), with the same messages: the shared
// crafted-model vectors (tests/make_vectors.py) hold both to them.
import { byCodePoint, pyRepr, surrogateEscape } from '../text.js';

export class WireError extends Error {}

const MAX_DEPTH = 32;
// Field numbers from onnx.proto3.
const MODEL = { irVersion: 1, opset: 8, graph: 7, trainingInfo: 20, functions: 25 };
const GRAPH = { node: 1, initializer: 5, sparseInitializer: 15, input: 11 };
const NODE = { input: 1, output: 2, opType: 4, attribute: 5, domain: 7 };
const ATTR = { t: 5, g: 6, tensors: 10, graphs: 11, sparseTensor: 22, sparseTensors: 23 };
const TENSOR = { dims: 1, dataType: 2, int32Data: 5, int64Data: 7, name: 8, rawData: 9, externalData: 13, dataLocation: 14 };
const INT32 = 6, INT64 = 7; // TensorProto.DataType
const SPARSE = { values: 1, indices: 2 };
const FUNCTION = { name: 1, node: 7, attributeProto: 11 };

/** [value as a Number (exact up to 2^53), value as a BigInt, next position]: kept to 64 bits, as protobuf keeps it. */
function varint(buf, pos) {
  let result = 0n;
  for (let shift = 0n; ; shift += 7n) {
    if (pos >= buf.length || shift > 63n) throw new WireError('truncated varint');
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      result = BigInt.asUintN(64, result);
      return [Number(result), result, pos];
    }
  }
}

/** [field number, wire type, value, big] of one message: value is a Number or a subarray; big the varint as a BigInt. */
function* fields(buf) {
  let pos = 0;
  const end = buf.length;
  while (pos < end) {
    let key;
    [key, , pos] = varint(buf, pos);
    const number = Math.floor(key / 8), wire = key % 8;
    if (number === 0) throw new WireError('field number 0');
    // protobuf reads a key as 32 bits: a longer one would name another field there
    if (key > 0xffffffff) throw new WireError('field key wider than 32 bits');
    let value, big = null;
    if (wire === 0) [value, big, pos] = varint(buf, pos);
    else if (wire === 1) { value = buf.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 2) {
      let length;
      [length, , pos] = varint(buf, pos);
      if (pos + length > end) throw new WireError('length-delimited field runs past the end');
      value = buf.subarray(pos, pos + length);
      pos += length;
    } else if (wire === 5) { value = buf.subarray(pos, pos + 4); pos += 4; }
    else throw new WireError(`unsupported wire type ${wire}`);
    if (pos > end) throw new WireError('truncated field');
    yield [number, wire, value, big];
  }
}

// A name is kept as one string per byte sequence (each byte one char: ONNX Runtime tells names apart by their bytes)
// and shown as UTF-8 text in messages (display()).
const text = (value) => { let s = ''; for (let i = 0; i < value.length; i += 4096) s += String.fromCharCode(...value.subarray(i, i + 4096)); return s; };
export const display = (name) => surrogateEscape(Uint8Array.from(name, (c) => c.charCodeAt(0)));
const count = (map, name) => map.set(name, (map.get(name) ?? 0) + 1);

function newSummary() {
  return {
    irVersion: null, opsets: new Map(), externalTensors: [], ops: new Set(), functions: [], subgraphs: 0,
    trainingInfo: false, loops: [], mainConstants: new Map(), strayGraphs: 0, mainOutputs: new Set(),
    mainDefinitions: new Map(), mainConstantsAny: new Set(), mainNodes: [], subgraphOps: new Set(), mainInputs: new Set(),
  };
}

function tensor(buf, out, main = false) {
  let name = '', external = false, dataType = null, raw = null;
  const dims = [], values = [];
  for (const [number, wire, value, big] of fields(buf)) {
    if (number === TENSOR.name && wire === 2) name = text(value);
    else if (number === TENSOR.externalData && wire === 2) external = true;
    else if (number === TENSOR.dataLocation && wire === 0 && value === 1) external = true;
    else if (number === TENSOR.dims) dims.push(value);
    else if (number === TENSOR.dataType && wire === 0) dataType = value;
    else if ((number === TENSOR.int32Data || number === TENSOR.int64Data) && values.length < 2) {
      if (wire === 0) values.push(big);
      else { // packed: every varint in it (two are enough to say it is not a scalar)
        for (let p = 0; p < value.length && values.length < 2;) { let v; [, v, p] = varint(value, p); values.push(v); }
      }
    } else if (number === TENSOR.rawData && wire === 2) raw = value; // the last one counts, as protobuf keeps it
  }
  if (main) { count(out.mainDefinitions, name); out.mainConstantsAny.add(name); }
  if (external) { out.externalTensors.push(name || '<unnamed>'); return; }
  const scalarShape = dims.every((d) => (typeof d === 'number' ? d === 1 : d.length === 0 || (d.length === 1 && d[0] === 1)));
  if (!main || (dataType !== INT32 && dataType !== INT64) || !scalarShape) return;
  const width = dataType === INT32 ? 4 : 8;
  if (raw !== null && raw.length === width) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
    out.mainConstants.set(name, width === 4 ? BigInt(view.getInt32(0, true)) : view.getBigInt64(0, true));
  } else if (raw === null && values.length === 1) {
    out.mainConstants.set(name, BigInt.asIntN(64, values[0]));
  }
}

/** A message's name field: the last one, as protobuf keeps a singular field given twice. */
function lastName(buf, number) {
  let name = '';
  for (const [n, w, v] of fields(buf)) if (n === number && w === 2) name = text(v);
  return name;
}

function sparse(buf, out, main = false) {
  for (const [number, wire, value] of fields(buf)) {
    if ((number === SPARSE.values || number === SPARSE.indices) && wire === 2) {
      tensor(value, out);
      if (main && number === SPARSE.values) { // a sparse initializer is named by its values tensor
        count(out.mainDefinitions, lastName(value, TENSOR.name));
      }
    }
  }
}

/** Reads one attribute; returns how many graphs it holds. */
function attribute(buf, out, depth) {
  let graphs = 0;
  for (const [number, wire, value] of fields(buf)) {
    if (wire !== 2) continue;
    if (number === ATTR.t || number === ATTR.tensors) tensor(value, out);
    else if (number === ATTR.sparseTensor || number === ATTR.sparseTensors) sparse(value, out);
    else if (number === ATTR.g || number === ATTR.graphs) { out.subgraphs++; graphs++; graph(value, out, depth + 1); }
  }
  return graphs;
}

function node(buf, out, depth) {
  let opType = '', domain = '', graphs = 0;
  const inputs = [], outputs = [];
  for (const [number, wire, value] of fields(buf)) {
    if (wire !== 2) continue;
    if (number === NODE.opType) opType = text(value);
    else if (number === NODE.domain) domain = text(value);
    else if (number === NODE.input) inputs.push(text(value));
    else if (number === NODE.output) { outputs.push(text(value)); if (depth === 0) out.mainOutputs.add(outputs.at(-1)); }
    else if (number === NODE.attribute) graphs += attribute(value, out, depth);
  }
  if (domain === 'ai.onnx') domain = ''; // (as bytes: a name is one char per byte)
  out.ops.add(JSON.stringify([domain, opType]));
  const qualified = domain ? `${domain}:${opType}` : opType;
  if (depth === 0) out.mainNodes.push([qualified, inputs, outputs]);
  else out.subgraphOps.add(qualified);
  if (opType === 'Loop' && !domain) out.loops.push([depth, inputs[0] ?? '', graphs]);
  else if (graphs) out.strayGraphs += graphs;
}

function graph(buf, out, depth = 0) {
  if (depth > MAX_DEPTH) throw new WireError('subgraphs nested too deeply');
  for (const [number, wire, value] of fields(buf)) {
    if (wire !== 2) continue;
    if (number === GRAPH.initializer) tensor(value, out, depth === 0);
    else if (number === GRAPH.sparseInitializer) sparse(value, out, depth === 0);
    else if (number === GRAPH.input && depth === 0) {
      const name = lastName(value, 1);
      count(out.mainDefinitions, name);
      out.mainInputs.add(name);
    } else if (number === GRAPH.node) node(value, out, depth);
  }
}

function func(buf, out) {
  let name = '<unnamed>';
  for (const [number, wire, value] of fields(buf)) {
    if (wire !== 2) continue;
    if (number === FUNCTION.name) name = text(value);
    else if (number === FUNCTION.node) node(value, out, 1);
    else if (number === FUNCTION.attributeProto) out.strayGraphs += attribute(value, out, 1); // a default value
  }
  out.functions.push(name);
}

/** What loading checks of a serialized ModelProto; WireError when malformed. */
export function summarize(bytes) {
  const out = newSummary();
  let graphSeen = false;
  for (const [number, wire, value] of fields(bytes)) {
    if (number === MODEL.irVersion && wire === 0) out.irVersion = value;
    else if (number === MODEL.opset && wire === 2) {
      let domain = '', version = null;
      for (const [n, w, v] of fields(value)) {
        if (n === 1 && w === 2) domain = text(v);
        else if (n === 2 && w === 0) version = v;
      }
      if (version !== null) out.opsets.set(domain || 'ai.onnx', version);
    } else if (number === MODEL.graph && wire === 2) { graphSeen = true; graph(value, out); }
    else if (number === MODEL.functions && wire === 2) func(value, out);
    else if (number === MODEL.trainingInfo) out.trainingInfo = true;
  }
  if (!graphSeen || out.irVersion === null) throw new WireError('no graph or IR version: not an ONNX model');
  return out;
}

/** Each Loop's maximum trip count (a BigInt), or WireError when a loop is not one the runtime can bound. */
export function loopBounds(s) {
  if (s.strayGraphs) throw new WireError(`holds ${s.strayGraphs} subgraph(s) outside a Loop (control flow is refused)`);
  const bounds = [];
  for (const [depth, m, graphs] of s.loops) {
    if (depth) throw new WireError('holds a Loop inside a loop body (nested loops are refused)');
    if (graphs !== 1) throw new WireError(`holds a Loop with ${graphs} body graphs`);
    if (!s.mainConstants.has(m) || s.mainOutputs.has(m)) {
      throw new WireError('holds a Loop whose trip count M is not a constant of the main graph (the runtime accepts only loops with a constant maximum trip count)');
    }
    if ((s.mainDefinitions.get(m) ?? 0) !== 1) {
      throw new WireError(`holds a Loop whose trip count M (${pyRepr(Array.from(display(m)).slice(0, 60).join(''))}) is defined ${s.mainDefinitions.get(m)} times in the main graph (initializers, sparse initializers, inputs): refused, as the bound cannot be known`);
    }
    const value = s.mainConstants.get(m);
    bounds.push(value > 0n ? value : 0n);
  }
  return bounds;
}

// Operators whose output size is read from tensor values, and which inputs hold it (see the Python reader).
const VALUE_SIZED = new Map(Object.entries({ Expand: [1], ConstantOfShape: [0], Tile: [1], Range: [0, 1, 2],
  Resize: [2, 3], Upsample: [1], Pad: [1], OneHot: [1], CenterCropPad: [1] }));
const SIZE_PASSTHROUGH = new Set(['Cast', 'Slice', 'Concat', 'Gather', 'Unsqueeze', 'Squeeze', 'Reshape', 'Identity']);

/** Every value-sized operator that is inside a loop, or whose size is not made of shapes and constants. */
export function valueSizedProblems(s) {
  const problems = [...s.subgraphOps].filter((op) => VALUE_SIZED.has(op)).sort(byCodePoint)
    .map((op) => `holds a ${op} inside a loop (its size would be read from a loop variable; refused)`);
  const producer = new Map();
  for (const [op, ins, outs] of s.mainNodes) for (const o of outs) producer.set(o, [op, ins]);
  const memo = new Map();
  const derived = (name, depth = 0) => {
    if (memo.has(name)) return memo.get(name);
    memo.set(name, false); // a cycle proves nothing
    if (depth > 32) return false;
    let ok;
    if (producer.has(name)) {
      const [op, ins] = producer.get(name);
      // a Shape only of an input of the main graph, whose shape the contract fixes (a computed tensor's shape may
      // come from values: a Slice whose end is max(ids))
      ok = op === 'Constant' || (op === 'Shape' && ins.length > 0 && s.mainInputs.has(ins[0]) && s.mainDefinitions.get(ins[0]) === 1 && !s.mainOutputs.has(ins[0]))
        || (SIZE_PASSTHROUGH.has(op) && ins.every((i) => !i || derived(i, depth + 1)));
    } else ok = s.mainConstantsAny.has(name) && s.mainDefinitions.get(name) === 1;
    memo.set(name, ok);
    return ok;
  };
  for (const [op, ins] of s.mainNodes) {
    for (const i of VALUE_SIZED.get(op) ?? []) {
      if (i < ins.length && ins[i] && !derived(ins[i])) {
        problems.push(`holds a ${op} whose size is computed from tensor values, not from shapes and constants (it could allocate without bound; refused)`);
        break;
      }
    }
  }
  return problems;
}

// ---- the graphs as trees, for the shape proof (onnx_shapes.js; Python: onnx_wire.graph_tree) ----------------------
/** Integer tensors up to this many elements keep their values (shape vectors, axes, indices, slice bounds). */
export const MAX_KEPT_INTS = 1024;
const ATTR_FIELD = { name: 1, i: 3, ints: 8 };
const GRAPH_OUTPUT = 12;
const signed64 = (v) => BigInt.asIntN(64, v);

/** Every varint of a packed field, as signed 64-bit BigInts, stopping after `limit` of them (Infinity: all). */
function packed(value, limit = Infinity) {
  const out = [];
  for (let p = 0; p < value.length && out.length < limit;) { let v; [, v, p] = varint(value, p); out.push(signed64(v)); }
  return out;
}

/** [name, {dims: BigInt[] | null, dataType, ints: BigInt[] | null}] of a TensorProto. */
function constTensor(buf) {
  let name = '', dataType = null, raw = null;
  const dims = [], values = [];
  for (const [number, wire, value, big] of fields(buf)) {
    if (number === TENSOR.name && wire === 2) name = text(value);
    else if (number === TENSOR.dims) {
      if (wire === 0) dims.push(signed64(big));
      else if (wire === 2) dims.push(...packed(value));
    } else if (number === TENSOR.dataType && wire === 0) dataType = value;
    else if ((number === TENSOR.int32Data || number === TENSOR.int64Data) && values.length <= MAX_KEPT_INTS) {
      if (wire === 0) values.push(signed64(big));
      else if (wire === 2) values.push(...packed(value, MAX_KEPT_INTS + 1 - values.length));
    } else if (number === TENSOR.rawData && wire === 2) raw = value;
  }
  let n = 1n;
  for (const d of dims) n *= d > 0n ? d : 0n;
  let ints = null;
  if ((dataType === INT32 || dataType === INT64) && n <= BigInt(MAX_KEPT_INTS)) {
    const width = dataType === INT32 ? 4 : 8;
    if (raw !== null && raw.length === Number(n) * width) {
      const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
      ints = [];
      for (let i = 0; i < raw.length; i += width) ints.push(width === 4 ? BigInt(view.getInt32(i, true)) : view.getBigInt64(i, true));
    } else if (raw === null && BigInt(values.length) === n) {
      ints = values.map((v) => (dataType === INT64 ? v : BigInt.asIntN(32, v)));
    }
  }
  return [name, { dims, dataType, ints }];
}

const UNKNOWN = Object.freeze({ dims: null, dataType: null, ints: null });

/** [name, value] of an AttributeProto: a BigInt (i), BigInt[] (ints), a tensor (t), a graph (g), or null. */
function treeAttribute(buf, depth) {
  let name = '', kind = null, value = null;
  const ints = [];
  for (const [number, wire, v, big] of fields(buf)) {
    if (number === ATTR_FIELD.name && wire === 2) name = text(v);
    else if (number === ATTR_FIELD.i && wire === 0) { value = signed64(big); kind = 'i'; }
    else if (number === ATTR_FIELD.ints) {
      kind = 'ints';
      if (wire === 0) ints.push(signed64(big));
      else if (wire === 2) ints.push(...packed(v));
    } else if (number === ATTR.t && wire === 2) { value = constTensor(v)[1]; kind = 't'; }
    else if (number === ATTR.g && wire === 2) { value = tree(v, depth + 1); kind = 'g'; }
  }
  return [name, kind === 'ints' ? ints : value];
}

function treeNode(buf, depth) {
  let op = '', domain = '';
  const inputs = [], outputs = [], attrs = new Map();
  for (const [number, wire, value] of fields(buf)) {
    if (wire !== 2) continue;
    if (number === NODE.opType) op = text(value);
    else if (number === NODE.domain) domain = text(value);
    else if (number === NODE.input) inputs.push(text(value));
    else if (number === NODE.output) outputs.push(text(value));
    else if (number === NODE.attribute) { const [name, v] = treeAttribute(value, depth); attrs.set(name, v); }
  }
  if (domain === 'ai.onnx') domain = '';
  return { op: domain ? `${domain}:${op}` : op, inputs, outputs, attrs };
}

function newTree() { return { nodes: [], initializers: new Map(), inputs: [], outputs: [] }; }

function tree(buf, depth = 0) {
  if (depth > MAX_DEPTH) throw new WireError('subgraphs nested too deeply');
  const g = newTree();
  for (const [number, wire, value] of fields(buf)) {
    if (wire !== 2) continue;
    if (number === GRAPH.node) g.nodes.push(treeNode(value, depth));
    else if (number === GRAPH.initializer) {
      const [name, c] = constTensor(value);
      // a name defined twice has no one shape a proof can take (ONNX Runtime keeps one of them)
      g.initializers.set(name, g.initializers.has(name) ? UNKNOWN : c);
    } else if (number === GRAPH.sparseInitializer) {
      for (const [n2, w2, v2] of fields(value)) if (n2 === SPARSE.values && w2 === 2) g.initializers.set(lastName(v2, TENSOR.name), UNKNOWN);
    } else if (number === GRAPH.input) g.inputs.push(lastName(value, 1));
    else if (number === GRAPH_OUTPUT) g.outputs.push(lastName(value, 1));
  }
  return g;
}

/** The main graph as a tree of nodes, attributes and subgraphs (read after summarize() accepted the file); a graph
 * field given twice is merged, as protobuf merges a singular message field. */
export function graphTree(bytes) {
  const merged = newTree();
  for (const [number, wire, value] of fields(bytes)) {
    if (number !== MODEL.graph || wire !== 2) continue;
    const g = tree(value);
    merged.nodes.push(...g.nodes);
    merged.inputs.push(...g.inputs);
    merged.outputs.push(...g.outputs);
    for (const [name, c] of g.initializers) merged.initializers.set(name, merged.initializers.has(name) ? UNKNOWN : c);
  }
  return merged;
}
