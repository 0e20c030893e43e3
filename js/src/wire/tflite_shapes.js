// The shape proof of a TFLite model: the Python runtime's runtime/backends/tflite_shapes.py, rule for rule and message
// for message (the shared crafted files hold both to it). Every tensor an operator writes is worked out from the
// contract's input shapes (bound through the serving_default signature) and the file's constants, with the batch
// symbolic; a WHILE body must return each loop variable at the shape it came in with; every tensor is then held to
// SizeCheck's bound. What the proof cannot work out is refused.
import {
  BATCH, MAX_RANK, MAX_VALUES, ONE, ShapeError, SizeCheck, add, atMost, axisOf, bmax, broadcast, ceilDiv, constOf,
  count, dim, divide, exactInts, intsOf, keepsShape, largest, name60, nonneg, of, sliceIndices, sliceLength, tensor,
  valuesOf, castTo, concatenate, squeezeAxes,
} from './shapes.js';
import { pyRepr } from '../text.js';
import { WireError, modelGraphs } from './tflite.js';

const INT32 = 2, INT64 = 4; // TensorType
// BuiltinOptions union types (tensorflow/compiler/mlir/lite/schema/schema.fbs)
const OPTIONS = { FULLY_CONNECTED: 8, CONCATENATION: 10, RESHAPE: 17, GATHER: 23, REDUCER: 27, SQUEEZE: 30, STRIDED_SLICE: 32,
  SPLIT: 35, PACK: 59, UNPACK: 64, SPLIT_V: 79, BATCH_MATMUL: 101 };

/** The operator's options table when it is of `kind` (null: every field takes its default). */
const options = (op, kind) => (op.table.scalar(3, '<B', 0) !== OPTIONS[kind] ? null : op.table.tableField(4));
const opt = (op, kind, index, fmt = '<i', fallback = 0) => { const o = options(op, kind); return o === null ? fallback : o.scalar(index, fmt, fallback); };
const optInts = (op, kind, index) => { const o = options(op, kind); return o === null ? [] : o.ints(index); };
/** The one value of a list (Python's `(x,) = values`): anything else is a malformed operator. */
const one = (values) => { if (values.length !== 1) throw new Error('not one value'); return values[0]; };

class Prover {
  constructor(model, rowLimit) {
    this.model = model;
    this.sizes = new SizeCheck(rowLimit);
    this.current = null; // the graph whose operator a rule works out
  }

  outputType(op) { return this.type(op.outputs.length ? op.outputs[0] : -1); }

  inputType(op, k) { return this.type(k < op.inputs.length ? op.inputs[k] : -1); }

  type(i) {
    const g = this.current;
    return g !== null && i >= 0 && i < g.tensors.length ? g.tensors[i].scalar(1, '<b', 0) : null;
  }

  tensorName(g, index) {
    const name = index >= 0 && index < g.tensors.length ? g.tensors[index].string(3) : null;
    return name || `tensor ${index}`;
  }

  /** A tensor no operator writes and no caller feeds: its shape from the file, its values if a small int constant. */
  fileTensor(g, index) {
    const t = g.tensors[index];
    const dims = t.ints(0); // Tensor.shape
    if (dims.some((d) => d < 0) || t.ints(7).some((d) => d < 0) || dims.length > MAX_RANK) {
      throw new ShapeError(`a tensor (${name60(this.tensorName(g, index))}) of no fixed shape that no operator writes`);
    }
    let n = 1n;
    for (const d of dims) n *= BigInt(d);
    let values = null;
    const kind = t.scalar(1, '<b', 0), b = t.scalar(2, '<I', 0); // Tensor.type, Tensor.buffer
    if (b > 0 && b < this.model.buffers.length && !t.scalar(5, '<b', 0)) { // a constant of the file
      this.sizes.constant(n);
      const width = kind === INT32 ? 4 : kind === INT64 ? 8 : 0;
      if (width && n <= BigInt(MAX_VALUES)) {
        const data = this.model.buffers[b].bytesField(0, MAX_VALUES * 8);
        if (data !== null && data.length === Number(n) * width) {
          const view = new DataView(data.buffer, data.byteOffset, data.length);
          values = Array.from({ length: Number(n) }, (_, i) => of(width === 4 ? BigInt(view.getInt32(4 * i, true)) : view.getBigInt64(8 * i, true)));
        }
      }
    } else this.sizes.add(this.tensorName(g, index), dims.map((d) => of(d)));
    return tensor(dims.map((d) => of(d)), values);
  }

  graph(index, scope, where) {
    const g = this.model.graphs[index];
    const env = new Map(scope);
    for (const op of g.ops) {
      const ins = [];
      for (const i of op.inputs) {
        if (i < 0) ins.push(null); // an optional input left out
        else if (env.has(i)) ins.push(env.get(i));
        else if (g.producer.has(i) || !(i >= 0 && i < g.tensors.length)) throw new ShapeError(`${where}: a ${op.name} reads a tensor before any operator writes it`);
        else { env.set(i, this.fileTensor(g, i)); ins.push(env.get(i)); }
      }
      let outs;
      try {
        this.current = g;
        outs = this.op(op, ins);
      } catch (e) {
        if (e instanceof ShapeError) throw new ShapeError(`${where}: ${e.message}`);
        throw e;
      }
      op.outputs.forEach((i, k) => {
        const t = outs[k];
        if (t === undefined) return;
        if (t.shape !== null && t.shape.length > MAX_RANK) throw new ShapeError(`${where}: a ${op.name} whose output has ${t.shape.length} dimensions (at most ${MAX_RANK})`);
        if (i >= 0 && i < g.tensors.length) {
          env.set(i, t);
          this.sizes.add(this.tensorName(g, i), t.shape);
        }
      });
    }
    return env;
  }

  op(op, ins) {
    const rule = RULES.get(op.name);
    if (!rule) throw new ShapeError(`no shape rule for ${op.name}`);
    const needed = INPUTS_NEEDED.get(op.name) ?? 1;
    if (ins.length < needed || ins.slice(0, needed).some((t) => t === null) || !op.outputs.length) {
      throw new ShapeError(`a ${op.name} without the inputs and outputs it needs`);
    }
    let out;
    try { out = rule(this, op, ins); } catch (e) {
      if (e instanceof ShapeError) throw e;
      if (e instanceof RangeError && /call stack/.test(e.message)) throw e;
      throw new ShapeError(`a malformed ${op.name}`);
    }
    return Array.isArray(out) ? out : [out];
  }

  known(t, what, op) { return valuesOf(t, what, op.name); }

  ints(t, what, op) { return intsOf(t, what, op.name); }
}

// ---- the rules: (prover, operator, input tensors) -> tensor(s) ----------------------------------------------------------
const same = (p, op, ins) => tensor(ins[0].shape);
const inexact = (shape) => shape.map((d) => ({ c: d.c, exact: false }));
const allKnown = (ts) => ts.every(exactInts);

function cast(p, op, ins) {
  const type = p.outputType(op);
  return castTo(ins[0], type === INT32 || type === INT64);
}

const elementwise = (p, op, ins) => tensor(broadcast(...ins.filter((t) => t !== null).map((t) => t.shape)));

function fullyConnected(p, op, ins) {
  const x = ins[0].shape, w = ins[1].shape;
  if (w.length !== 2 || !x.length) throw new ShapeError('a FULLY_CONNECTED whose weights are not a matrix');
  const [units, depth] = w;
  if (opt(op, 'FULLY_CONNECTED', 2, '<B', 0)) return tensor([...x.slice(0, -1), units]); // keep_num_dims
  return tensor([divide(count(x), depth), units]);
}

function batchMatmul(p, op, ins) {
  const x = ins[0].shape, y = ins[1].shape;
  if (x.length < 2 || y.length < 2) throw new ShapeError('a BATCH_MATMUL of a tensor of rank under 2');
  const n = opt(op, 'BATCH_MATMUL', 0, '<B', 0) ? x.at(-1) : x.at(-2);
  const m = opt(op, 'BATCH_MATMUL', 1, '<B', 0) ? y.at(-2) : y.at(-1);
  return tensor([...broadcast(x.slice(0, -2), y.slice(0, -2)), n, m]);
}

function gather(p, op, ins) {
  const [params, idx] = ins;
  if (!params.shape.length) throw new ShapeError('a GATHER from a scalar');
  const axis = axisOf(BigInt(opt(op, 'GATHER', 0)), params.shape.length, 'GATHER');
  const batchDims = opt(op, 'GATHER', 1);
  if (!(batchDims >= 0 && batchDims <= Math.min(axis, idx.shape.length))) throw new ShapeError('a GATHER with batch dimensions it does not have');
  const shape = [...params.shape.slice(0, axis), ...idx.shape.slice(batchDims), ...params.shape.slice(axis + 1)];
  let values = null;
  if (params.shape.length === 1 && params.values !== null && idx.values !== null) {
    const n = BigInt(params.values.length);
    const picks = idx.values.map((v) => (v.exact ? constOf(v) : null));
    if (picks.every((i) => i !== null && i >= 0n && i < n)) values = picks.map((i) => params.values[Number(i)]);
  }
  return tensor(shape, values);
}

function equalParts(d, n) {
  const bn = BigInt(n);
  return dim(d.c.map((c) => ceilDiv(c, bn)), d.exact && d.c.every((c) => c % bn === 0n));
}

function split(p, op, ins) {
  const axisT = ins[0], x = ins[1];
  const shape = x.shape;
  const axis = axisOf(one(p.ints(axisT, 'axis', op)), shape.length, 'SPLIT');
  const part = equalParts(shape[axis], op.outputs.length);
  return op.outputs.map(() => tensor([...shape.slice(0, axis), part, ...shape.slice(axis + 1)]));
}

function splitV(p, op, ins) {
  const x = ins[0];
  const sizes = p.ints(ins[1], 'sizes', op);
  const axis = axisOf(one(p.ints(ins[2], 'axis', op)), x.shape.length, 'SPLIT_V');
  if (sizes.length !== op.outputs.length || sizes.filter((s) => s === -1n).length > 1 || sizes.some((s) => s < -1n)) {
    throw new ShapeError('a SPLIT_V whose sizes do not match its outputs');
  }
  const d = x.shape[axis], c = constOf(d);
  const rest = c === null ? { c: d.c, exact: false } : of(bmax(0n, c - sizes.filter((s) => s >= 0n).reduce((a, b) => a + b, 0n)), d.exact);
  return sizes.map((s) => tensor([...x.shape.slice(0, axis), s >= 0n ? of(s) : rest, ...x.shape.slice(axis + 1)]));
}

function reshape(p, op, ins) {
  const x = ins[0];
  let target;
  if (ins.length > 1 && ins[1] !== null && ins[1].shape.length === 1 && p.inputType(op, 1) === INT32) {
    target = p.known(ins[1], 'target shape', op); // the interpreter reads a shape input only as an int32 vector
  } else {
    const newShape = optInts(op, 'RESHAPE', 0);
    target = newShape.length === 1 && newShape[0] === 0 ? [] : newShape.map((v) => of(v)); // [0]: a scalar (legacy files)
  }
  const dims = [];
  let infer = null;
  target.forEach((v, i) => {
    const c = constOf(v);
    if (c === -1n) {
      if (infer !== null) throw new ShapeError('a RESHAPE with two -1s');
      infer = i;
      dims.push(null);
    } else if (c !== null && c < 0n) throw new ShapeError(`a RESHAPE to a negative dimension ${c}`);
    else dims.push(v);
  });
  if (infer !== null) dims[infer] = divide(count(x.shape), count(dims.filter((d) => d !== null)));
  return tensor(dims, dims.length <= 1 ? x.values : null);
}

function concatenation(p, op, ins) {
  return concatenate(ins, () => opt(op, 'CONCATENATION', 0), 'CONCATENATION');
}

function stridedSlice(p, op, ins) {
  const x = ins[0];
  const params = ins.slice(1, 4).filter((t) => t !== null);
  if (params.length !== 3 || !allKnown(params)) return tensor(inexact(x.shape)); // bounds read from values: never larger
  const [begin, end, strides] = [['begin', 1], ['end', 2], ['strides', 3]].map(([what, k]) => p.ints(ins[k], what, op));
  const [beginMask, endMask, ellipsisMask, newAxisMask, shrinkMask] = [0, 1, 2, 3, 4].map((i) => opt(op, 'STRIDED_SLICE', i));
  const offset = opt(op, 'STRIDED_SLICE', 5, '<B', 0);
  if (ellipsisMask || newAxisMask) throw new ShapeError('a STRIDED_SLICE with an ellipsis or new-axis mask');
  if (!(begin.length === end.length && end.length === strides.length && strides.length <= x.shape.length)) {
    throw new ShapeError('a STRIDED_SLICE whose begin, end and strides differ in length');
  }
  const dims = [];
  let values = x.values;
  const bit = (mask, i) => (mask >> i) & 1;
  x.shape.forEach((d, i) => {
    if (i >= begin.length) { dims.push(d); return; }
    let b = begin[i], e = end[i], s = strides[i];
    if (s === 0n) throw new ShapeError('a STRIDED_SLICE with stride 0');
    if (offset) e = b + e;
    const shrink = bit(shrinkMask, i) === 1;
    const n = constOf(d);
    if (n !== null) {
      let start, stop;
      if (shrink) {
        const k = b < 0n ? b + n : b;
        if (!(k >= 0n && k < n)) throw new ShapeError('a STRIDED_SLICE that takes an element past the end');
        [start, stop, s] = [k, k + 1n, 1n];
      } else {
        start = bit(beginMask, i) ? (s > 0n ? 0n : n - 1n) : b;
        stop = bit(endMask, i) ? (s > 0n ? n : -n - 1n) : e;
      }
      if (x.shape.length === 1 && values !== null && d.exact && BigInt(values.length) === n) {
        values = sliceIndices(n, start, stop, s).map((k) => values[Number(k)]);
      } else values = null;
      if (!shrink) dims.push(of(sliceLength(n, start, stop, s), d.exact));
      return;
    }
    const wholeStart = bit(beginMask, i) || b === 0n;
    const wholeEnd = bit(endMask, i) || e >= largest(d);
    if (shrink) return; // one element, the axis removed
    if (s === 1n && wholeStart && wholeEnd) dims.push(d);
    else if (s === 1n && !bit(beginMask, i) && b >= 0n && !bit(endMask, i) && e > b) dims.push(of(e - b, false));
    else dims.push({ c: d.c, exact: false });
  });
  if (dims.length > 1 || dims.some((d) => !d.exact) || x.shape.length !== 1) values = null;
  return tensor(dims, values);
}

function slice(p, op, ins) {
  const x = ins[0];
  if (!allKnown(ins.slice(1, 3))) return tensor(inexact(x.shape));
  const begin = p.ints(ins[1], 'begin', op), size = p.ints(ins[2], 'size', op);
  if (begin.length !== size.length || begin.length > x.shape.length) throw new ShapeError('a SLICE whose begin and size differ in length');
  const dims = [...x.shape];
  let values = x.values;
  begin.forEach((b, i) => {
    const n = size[i], d = dims[i], c = constOf(d);
    if (b < 0n || n < -1n) throw new ShapeError('a SLICE with a negative begin or size');
    if (n >= 0n) dims[i] = of(n);
    else if (c !== null) dims[i] = of(bmax(0n, c - b), d.exact);
    else dims[i] = b === 0n ? d : { c: d.c, exact: false };
    const stop = n >= 0n ? b + n : c;
    if (x.shape.length === 1 && values !== null && stop !== null && d.exact && stop <= BigInt(values.length)) values = values.slice(Number(b), Number(stop));
    else values = null;
  });
  if (x.shape.length !== 1 || dims.some((d) => !d.exact)) values = null;
  return tensor(dims, values);
}

function squeeze(p, op, ins) {
  const axes = optInts(op, 'SQUEEZE', 0);
  return squeezeAxes(ins[0], axes.length ? axes.map((a) => BigInt(a)) : null, 'SQUEEZE');
}

function expandDims(p, op, ins) {
  const shape = ins[0].shape;
  const at = axisOf(one(p.ints(ins[1], 'axis', op)), shape.length + 1, 'EXPAND_DIMS');
  const out = [...shape.slice(0, at), ONE, ...shape.slice(at)];
  return tensor(out, out.length <= 1 ? ins[0].values : null);
}

function pack(p, op, ins) {
  const parts = ins.filter((t) => t !== null);
  const rank = parts[0].shape.length;
  if (parts.some((t) => t.shape.length !== rank)) throw new ShapeError('a PACK of tensors of different ranks');
  const at = axisOf(BigInt(opt(op, 'PACK', 1)), rank + 1, 'PACK');
  let shape = parts[0].shape;
  for (const t of parts.slice(1)) shape = shape.map((a, i) => atMost(a, t.shape[i]));
  const values = rank === 0 && parts.every((t) => t.values !== null && t.values.length === 1) ? parts.map((t) => t.values[0]) : null;
  return tensor([...shape.slice(0, at), of(parts.length), ...shape.slice(at)], values);
}

function unpack(p, op, ins) {
  const shape = ins[0].shape;
  const axis = axisOf(BigInt(opt(op, 'UNPACK', 1)), shape.length, 'UNPACK');
  return op.outputs.map(() => tensor([...shape.slice(0, axis), ...shape.slice(axis + 1)]));
}

function transpose(p, op, ins) {
  const shape = ins[0].shape;
  const perm = p.ints(ins[1], 'permutation', op);
  const ordered = [...perm].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (ordered.length !== shape.length || ordered.some((v, i) => v !== BigInt(i))) throw new ShapeError('a TRANSPOSE whose permutation is not one of the axes');
  return tensor(perm.map((i) => shape[Number(i)]));
}

const shapeOf = (p, op, ins) => tensor([of(ins[0].shape.length)], ins[0].shape);
const fill = (p, op, ins) => tensor(p.known(ins[0], 'size', op).map(nonneg));

function reduce(p, op, ins) {
  const shape = ins[0].shape;
  const axes = p.ints(ins[1], 'axes', op);
  const keep = opt(op, 'REDUCER', 0, '<B', 0);
  const drop = new Set(axes.map((a) => axisOf(a, shape.length, op.name)));
  return tensor(shape.map((d, i) => (drop.has(i) ? ONE : d)).filter((_, i) => keep || !drop.has(i)));
}

function argMax(p, op, ins) {
  const shape = ins[0].shape;
  const axis = axisOf(one(p.ints(ins[1], 'axis', op)), shape.length, 'ARG_MAX');
  return tensor([...shape.slice(0, axis), ...shape.slice(axis + 1)]);
}

function whileLoop(p, op, ins) {
  const o = op.table.tableField(4);
  const cond = o.scalar(0, '<i', -1), body = o.scalar(1, '<i', -1);
  const graphs = p.model.graphs;
  if (!(cond > 0 && cond < graphs.length && body > 0 && body < graphs.length)) throw new ShapeError('a WHILE whose subgraphs are not in the file');
  if (ins.some((t) => t === null)) throw new ShapeError('a WHILE with a loop variable left out');
  for (const [index, kind] of [[cond, 'condition'], [body, 'body']]) {
    const g = graphs[index];
    if (g.inputs.length !== ins.length) throw new ShapeError(`a WHILE whose ${kind} does not take its loop variables`);
    const scope = new Map(g.inputs.map((i, k) => [i, tensor(ins[k].shape)])); // values change from step to step
    const inner = p.graph(index, scope, `its WHILE ${kind}`);
    if (kind === 'body') {
      ins.forEach((first, k) => {
        if (k >= g.outputs.length) return;
        const after = inner.get(g.outputs[k]);
        if (!keepsShape(first.shape, after === undefined ? null : after.shape)) {
          throw new ShapeError(`a WHILE whose body changes the shape of its loop variable ${k} (a loop may not grow what it carries)`);
        }
      });
    }
  }
  return ins.map((t) => tensor(t.shape));
}

const INPUTS_NEEDED = new Map(Object.entries({ ADD: 2, SUB: 2, MUL: 2, NOT_EQUAL: 2, EQUAL: 2, LESS: 2, GREATER: 2, LOGICAL_AND: 2,
  LOGICAL_OR: 2, SELECT: 3, SELECT_V2: 3, FULLY_CONNECTED: 2, BATCH_MATMUL: 2, GATHER: 2, SPLIT: 2, SPLIT_V: 3, STRIDED_SLICE: 4,
  SLICE: 3, EXPAND_DIMS: 2, TRANSPOSE: 2, FILL: 2, SUM: 2, REDUCE_MAX: 2, REDUCE_ALL: 2, REDUCE_ANY: 2, ARG_MAX: 2, WHILE: 0 }));

const RULES = new Map(Object.entries({
  LOGISTIC: same, TANH: same, DEQUANTIZE: same, QUANTIZE: same, LOGICAL_NOT: same, ZEROS_LIKE: same, SOFTMAX: same, CAST: cast,
  ADD: elementwise, SUB: elementwise, MUL: elementwise, NOT_EQUAL: elementwise, EQUAL: elementwise, LESS: elementwise,
  GREATER: elementwise, LOGICAL_AND: elementwise, LOGICAL_OR: elementwise, SELECT: elementwise, SELECT_V2: elementwise,
  FULLY_CONNECTED: fullyConnected, BATCH_MATMUL: batchMatmul, GATHER: gather, SPLIT: split, SPLIT_V: splitV, RESHAPE: reshape,
  CONCATENATION: concatenation, STRIDED_SLICE: stridedSlice, SLICE: slice, SQUEEZE: squeeze, EXPAND_DIMS: expandDims,
  PACK: pack, UNPACK: unpack, TRANSPOSE: transpose, SHAPE: shapeOf, FILL: fill, SUM: reduce, REDUCE_MAX: reduce,
  REDUCE_ALL: reduce, REDUCE_ANY: reduce, ARG_MAX: argMax, WHILE: whileLoop,
}));

/** Problems with a .tflite model's shapes (empty: every tensor proved within bounds): `inputs` maps each contract
 * input's name to its shape (-1: the batch), bound to the main graph through `signature`. */
export function proveTfliteShapes(bytes, inputs, signature, rowLimit) {
  let model;
  try { model = modelGraphs(bytes); } catch (e) {
    if (e instanceof WireError) return [`not a valid TFLite model (${e.message})`];
    throw e;
  }
  const sig = model.signatures.get(signature);
  if (sig === undefined || sig[0] !== 0) return [`has no signature ${pyRepr(signature)} of its main graph (its inputs' shapes cannot be proved)`];
  const bound = new Map();
  for (const [name, index] of sig[1]) bound.set(index, name);
  const main = model.graphs[0];
  const p = new Prover(model, rowLimit);
  const scope = new Map();
  for (const index of main.inputs) {
    const name = bound.get(index);
    if (name === undefined || !inputs.has(name)) return [`has an input (tensor ${index}) the contract does not name (its shape cannot be proved)`];
    scope.set(index, tensor(inputs.get(name).map((d) => (d === -1 ? BATCH : of(d)))));
  }
  try { p.graph(0, scope, 'the main graph'); } catch (e) {
    if (e instanceof ShapeError) return [`cannot prove its shapes: ${e.message} (refused: the runtime runs what it can bound)`];
    if (e instanceof WireError) return ['cannot prove its shapes: a malformed tensor (refused: the runtime runs what it can bound)'];
    throw e;
  }
  return p.sizes.problems();
}
