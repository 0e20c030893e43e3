// The shape proof of an ONNX model: every tensor's shape worked out from the bytes, with the batch symbolic. The
// Python runtime's runtime/backends/onnx_shapes.py, rule for rule and message for message (the shared crafted
// files hold both to it): a dimension is a polynomial in the batch B (BigInt coefficients), exact or an upper
// bound; a Loop must leave what it carries at the shape it came in with; every tensor must grow at most linearly
// in the batch, within rowLimit elements per batch row, and within max(rowLimit, the file's largest constant)
// elements without it. What the proof cannot work out is refused.
import { pyRepr } from '../text.js';
import { display } from './onnx.js';
import {
  BATCH, MAX_RANK, MAX_VALUES, ONE, ShapeError, SizeCheck, add, axisOf, bmax, broadcast, ceilDiv, constOf, count, dim,
  divide, exactInts, intsOf, keepsShape, largest, name60 as shown60, nonneg, of, pySlice, sliceIndices, sliceLength,
  tensor, valuesOf, castTo, concatenate, squeezeAxes,
} from './shapes.js';

export { ShapeError };
const INT32 = 6n, INT64 = 7n;
const name60 = (name) => shown60(display(name));


// ---- attributes -----------------------------------------------------------------------------------------------
function intAttr(a, name, fallback) {
  const v = a.has(name) ? a.get(name) : BigInt(fallback);
  if (typeof v !== 'bigint') throw new ShapeError(`an attribute ${pyRepr(name)} that is not an integer`);
  return v;
}
function intsAttr(a, name, fallback = null) {
  if (!a.has(name)) return fallback;
  const v = a.get(name);
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'bigint')) throw new ShapeError(`an attribute ${pyRepr(name)} that is not a list of integers`);
  return [...v];
}

// ---- the prover ---------------------------------------------------------------------------------------------------
class Prover {
  constructor(rowLimit) { this.sizes = new SizeCheck(rowLimit); }

  constTensor(c) {
    if (c.dims === null || c.dims.some((d) => d < 0n) || c.dims.length > MAX_RANK) return tensor(null);
    let n = 1n;
    for (const d of c.dims) n *= d;
    this.sizes.constant(n);
    return tensor(c.dims.map((d) => of(d)), c.ints === null ? null : c.ints.map((v) => of(v)));
  }

  known(t, what, node) { return valuesOf(t, what, display(node.op)); }

  ints(t, what, node) { return intsOf(t, what, display(node.op)); }

  graph(g, scope, where) {
    const env = new Map(scope);
    for (const [name, c] of g.initializers) env.set(name, this.constTensor(c));
    for (const node of g.nodes) {
      let outputs;
      try {
        outputs = this.node(node, node.inputs.map((i) => (i ? env.get(i) ?? null : null)), env);
      } catch (e) {
        if (e instanceof ShapeError) throw new ShapeError(`${where}: ${e.message}`);
        throw e;
      }
      node.outputs.forEach((name, i) => {
        const t = outputs[i];
        if (t === undefined) return;
        if (t.shape !== null && t.shape.length > MAX_RANK) {
          throw new ShapeError(`${where}: a ${display(node.op)} whose output has ${t.shape.length} dimensions (at most ${MAX_RANK})`);
        }
        if (name) {
          env.set(name, t);
          if (t.shape !== null) this.sizes.add(display(name), t.shape);
        }
      });
    }
    return env;
  }

  node(node, ins, env) {
    const op = node.op;
    ins.forEach((t, i) => {
      if (node.inputs[i] && (t === null || t.shape === null)) throw new ShapeError(`a ${display(op)} reads ${name60(node.inputs[i])}, whose shape the proof does not know`);
    });
    const rule = RULES.get(op);
    if (!rule) throw new ShapeError(`no shape rule for ${display(op)}`);
    const needed = INPUTS_NEEDED.get(op) ?? 1;
    if (ins.length < needed || ins.slice(0, needed).some((t) => t === null) || !node.outputs.length) {
      throw new ShapeError(`a ${display(op)} without the inputs and outputs it needs`);
    }
    let out;
    try { out = rule(this, node, ins, node.attrs, env); } catch (e) {
      if (e instanceof ShapeError) throw e;
      if (e instanceof RangeError && /call stack/.test(e.message)) throw e;
      throw new ShapeError(`a malformed ${display(op)}`);
    }
    return Array.isArray(out) ? out : [out];
  }
}

// ---- the rules: (prover, node, inputs, attributes, environment) -> tensor(s) -----------------------------------------
const same = (p, node, ins) => tensor(ins[0].shape);

function cast(p, node, ins, a) {
  const to = intAttr(a, 'to', 0);
  return castTo(ins[0], to === INT32 || to === INT64);
}

const elementwise = (p, node, ins) => tensor(broadcast(...ins.filter((t) => t !== null).map((t) => t.shape)));

function matmul(p, node, ins) {
  const x = ins[0].shape, y = ins[1].shape;
  if (!x.length || !y.length) throw new ShapeError(`a ${display(node.op)} of a scalar`);
  const x2 = x.length === 1 ? [ONE, ...x] : x;
  const y2 = y.length === 1 ? [...y, ONE] : y;
  let out = [...broadcast(x2.slice(0, -2), y2.slice(0, -2)), x2.at(-2), y2.at(-1)];
  if (x.length === 1) out = [...out.slice(0, -2), ...out.slice(-1)];
  if (y.length === 1) out = out.slice(0, -1);
  return tensor(out);
}

function gemm(p, node, ins, a) {
  const x = ins[0].shape, y = ins[1].shape;
  if (x.length !== 2 || y.length !== 2) throw new ShapeError('a Gemm of a tensor that is not a matrix');
  const m = intAttr(a, 'transA', 0) ? x[1] : x[0];
  const n = intAttr(a, 'transB', 0) ? y[0] : y[1];
  return tensor([m, n]);
}

function gather(p, node, ins, a) {
  const [data, idx] = ins;
  if (!data.shape.length) throw new ShapeError('a Gather from a scalar');
  const axis = axisOf(intAttr(a, 'axis', 0), data.shape.length, 'Gather');
  const shape = [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)];
  let values = null;
  if (data.shape.length === 1 && data.values !== null && idx.values !== null) {
    const n = BigInt(data.values.length);
    const picks = idx.values.map((v) => (v.exact ? constOf(v) : null));
    if (picks.every((i) => i !== null && -n <= i && i < n)) values = picks.map((i) => data.values[Number(i < 0n ? i + n : i)]);
  }
  return tensor(shape, values);
}

function split(p, node, ins, a) {
  const shape = ins[0].shape;
  const axis = axisOf(intAttr(a, 'axis', 0), shape.length, 'Split');
  const n = node.outputs.length;
  let sizes = null, part = null;
  if (ins.length > 1 && ins[1] !== null) sizes = p.ints(ins[1], 'split sizes', node);
  else if (a.has('split')) sizes = intsAttr(a, 'split');
  else {
    const d = shape[axis], bn = BigInt(n);
    part = dim(d.c.map((c) => ceilDiv(c, bn)), d.exact && d.c.every((c) => c % bn === 0n));
  }
  if (sizes !== null && sizes.length !== n) throw new ShapeError(`a Split into ${n} outputs with ${sizes.length} sizes`);
  return Array.from({ length: n }, (_, i) => tensor([...shape.slice(0, axis), sizes !== null ? of(bmax(sizes[i], 0n)) : part, ...shape.slice(axis + 1)]));
}

function concat(p, node, ins, a) {
  return concatenate(ins, () => intAttr(a, 'axis', 0), 'Concat');
}

function slice(p, node, ins, a) {
  const data = ins[0];
  const rank = data.shape.length;
  const params = ins.slice(1).filter((t) => t !== null);
  if (!params.every(exactInts)) {
    return tensor(data.shape.map((d) => ({ c: d.c, exact: false }))); // bounds read from values: never larger
  }
  const starts = ins.length > 1 ? p.ints(ins[1], 'starts', node) : intsAttr(a, 'starts', []);
  const ends = ins.length > 2 ? p.ints(ins[2], 'ends', node) : intsAttr(a, 'ends', []);
  const axes = ins.length > 3 && ins[3] !== null ? p.ints(ins[3], 'axes', node) : intsAttr(a, 'axes', starts.map((_, i) => BigInt(i)));
  const steps = ins.length > 4 && ins[4] !== null ? p.ints(ins[4], 'steps', node) : starts.map(() => 1n);
  if (!(starts.length === ends.length && ends.length === axes.length && axes.length === steps.length)) {
    throw new ShapeError('a Slice whose starts, ends, axes and steps differ in length');
  }
  const dims = [...data.shape];
  let values = data.values;
  starts.forEach((start, k) => {
    const end = ends[k], step = steps[k];
    const axis = axisOf(axes[k], rank, 'Slice');
    const d = dims[axis];
    const c = constOf(d);
    if (c !== null) {
      dims[axis] = of(sliceLength(c, start, end, step), d.exact);
      if (rank === 1 && values !== null && d.exact) {
        values = sliceIndices(c, start, end, step).map((i) => {
          if (i >= BigInt(values.length)) throw new Error('index');
          return values[Number(i)];
        });
      }
    } else if (step === 1n && start === 0n && end >= largest(d)) {
      // the whole axis, at any batch the runtime runs
    } else if (step === 1n && start >= 0n && start < end) dims[axis] = of(end - start, false);
    else if (step === 1n && start < 0n && end >= largest(d)) dims[axis] = of(-start, false);
    else dims[axis] = { c: d.c, exact: false };
  });
  if (rank !== 1 || dims.some((d) => !d.exact)) values = null;
  return tensor(dims, values);
}

const axesOf = (p, node, ins, a) => (ins.length > 1 && ins[1] !== null ? p.ints(ins[1], 'axes', node) : intsAttr(a, 'axes', null));

function squeeze(p, node, ins, a) {
  return squeezeAxes(ins[0], axesOf(p, node, ins, a), 'Squeeze');
}

function unsqueeze(p, node, ins, a) {
  const shape = ins[0].shape;
  const axes = axesOf(p, node, ins, a);
  if (axes === null) throw new ShapeError('an Unsqueeze without axes');
  const rank = shape.length + axes.length;
  const at = new Set(axes.map((x) => axisOf(x, rank, 'Unsqueeze')));
  if (at.size !== axes.length) throw new ShapeError('an Unsqueeze with an axis given twice');
  const out = [];
  let next = 0;
  for (let i = 0; i < rank; i++) out.push(at.has(i) ? ONE : shape[next++]);
  return tensor(out, rank <= 1 ? ins[0].values : null);
}

function transpose(p, node, ins, a) {
  const shape = ins[0].shape;
  let perm = intsAttr(a, 'perm', null);
  if (!perm || !perm.length) perm = shape.map((_, i) => BigInt(shape.length - 1 - i));
  const ordered = [...perm].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  if (ordered.length !== shape.length || ordered.some((v, i) => v !== BigInt(i))) {
    throw new ShapeError('a Transpose whose perm is not a permutation of the axes');
  }
  return tensor(perm.map((i) => shape[Number(i)]));
}

function reshape(p, node, ins, a) {
  const data = ins[0];
  const target = p.known(ins[1], 'target shape', node);
  const total = count(data.shape);
  const dims = [];
  let infer = null;
  target.forEach((v, i) => {
    const c = constOf(v);
    if (c === -1n) {
      if (infer !== null) throw new ShapeError('a Reshape with two -1s');
      infer = i;
      dims.push(null);
    } else if (c === 0n && !intAttr(a, 'allowzero', 0)) {
      if (i >= data.shape.length) throw new ShapeError('a Reshape that copies an axis its input does not have');
      dims.push(data.shape[i]);
    } else if (c !== null && c < 0n) throw new ShapeError(`a Reshape to a negative dimension ${c}`);
    else dims.push(v);
  });
  if (infer !== null) dims[infer] = divide(total, count(dims.filter((d) => d !== null)));
  return tensor(dims, dims.length <= 1 ? data.values : null);
}

function shapeOf(p, node, ins, a) {
  const dims = ins[0].shape;
  const picked = pySlice(dims, intAttr(a, 'start', 0), intAttr(a, 'end', dims.length));
  return tensor([of(picked.length)], picked);
}

const constantOfShape = (p, node, ins) => tensor(p.known(ins[0], 'size', node).map(nonneg));
const expand = (p, node, ins) => tensor(broadcast(ins[0].shape, p.known(ins[1], 'size', node).map(nonneg)));

function reduce(p, node, ins, a) {
  const shape = ins[0].shape;
  let axes = axesOf(p, node, ins, a);
  const keep = intAttr(a, 'keepdims', 1);
  if (!axes || !axes.length) {
    if (intAttr(a, 'noop_with_empty_axes', 0)) return tensor(shape); // no axes, given empty or not given: the input
    axes = shape.map((_, i) => BigInt(i));
  }
  const drop = new Set(axes.map((x) => axisOf(x, shape.length, display(node.op))));
  return tensor(shape.map((d, i) => (drop.has(i) ? ONE : d)).filter((_, i) => keep || !drop.has(i)));
}

function argmax(p, node, ins, a) {
  const shape = ins[0].shape;
  const axis = axisOf(intAttr(a, 'axis', 0), shape.length, display(node.op));
  const keep = intAttr(a, 'keepdims', 1);
  return tensor(shape.map((d, i) => (i === axis ? ONE : d)).filter((_, i) => keep || i !== axis));
}

const dynamicQuantize = (p, node, ins) => [tensor(ins[0].shape), tensor([]), tensor([])];

function constant(p, node, ins, a) {
  const v = a.get('value');
  if (v && typeof v === 'object' && !Array.isArray(v) && 'dims' in v) return p.constTensor(v);
  if (a.has('value_int')) return tensor([], [of(intAttr(a, 'value_int', 0))]);
  if (a.has('value_ints')) {
    const values = intsAttr(a, 'value_ints');
    return tensor([of(values.length)], values.length <= MAX_VALUES ? values.map((x) => of(x)) : null);
  }
  throw new ShapeError('a Constant of a kind the proof does not read (value, value_int, value_ints)');
}

function loop(p, node, ins, a, env) {
  const body = a.get('body');
  if (!body || typeof body !== 'object' || !Array.isArray(body.nodes)) throw new ShapeError('a Loop without a body graph');
  const carried = ins.slice(2);
  if (body.inputs.length !== 2 + carried.length || body.outputs.length < 1 + carried.length) {
    throw new ShapeError("a Loop whose body's inputs and outputs do not match its carried tensors");
  }
  const scope = new Map(env);
  scope.set(body.inputs[0], tensor([])); // the iteration number
  scope.set(body.inputs[1], tensor([])); // the condition
  body.inputs.slice(2).forEach((name, i) => scope.set(name, tensor(carried[i].shape))); // values change per step
  const inner = p.graph(body, scope, 'its Loop body');
  body.inputs.slice(2).forEach((name, i) => {
    const first = carried[i], after = inner.get(body.outputs[1 + i]);
    if (!keepsShape(first.shape, after === undefined ? null : after.shape)) {
      throw new ShapeError(`a Loop whose body changes the shape of the tensor it carries as ${name60(name)} (a loop may not grow what it carries)`);
    }
  });
  const trips = ins[0] !== null && ins[0].values !== null && ins[0].values.length ? ins[0].values[0] : null;
  const outs = carried.map((t) => tensor(t.shape));
  for (const outName of body.outputs.slice(1 + carried.length)) { // scan outputs: one slice per iteration
    const step = inner.get(outName);
    if (trips === null || constOf(trips) === null || step === undefined || step.shape === null) {
      throw new ShapeError('a Loop with a scan output whose size the proof cannot bound');
    }
    outs.push(tensor([of(bmax(constOf(trips), 0n), false), ...step.shape]));
  }
  return outs;
}

const INPUTS_NEEDED = new Map(Object.entries({ Add: 2, Sub: 2, Mul: 2, Equal: 2, Less: 2, Greater: 2, And: 2, Or: 2,
  Where: 3, MatMul: 2, MatMulInteger: 2, Gemm: 2, Gather: 2, Reshape: 2, Expand: 2, Constant: 0, Loop: 0 }));

const RULES = new Map(Object.entries({
  Identity: same, Sigmoid: same, Tanh: same, Not: same, Softmax: same, QuantizeLinear: same, DequantizeLinear: same,
  Cast: cast,
  Add: elementwise, Sub: elementwise, Mul: elementwise, Equal: elementwise, Less: elementwise, Greater: elementwise,
  And: elementwise, Or: elementwise, Where: elementwise,
  MatMul: matmul, MatMulInteger: matmul, Gemm: gemm, Gather: gather, Split: split, Concat: concat, Slice: slice,
  Squeeze: squeeze, Unsqueeze: unsqueeze, Transpose: transpose, Reshape: reshape, Shape: shapeOf,
  ConstantOfShape: constantOfShape, Expand: expand, ReduceSum: reduce, ReduceMax: reduce, ArgMax: argmax,
  DynamicQuantizeLinear: dynamicQuantize, Constant: constant, Loop: loop,
}));

/** Problems with a graph tree's shapes (onnx.graphTree; empty: every tensor proved within bounds). `inputs` maps each
 * contract input's name to its shape (-1: the batch); `rowLimit` bounds any tensor's elements per batch row. */
export function proveShapes(g, inputs, rowLimit) {
  const p = new Prover(rowLimit);
  const scope = new Map();
  for (const name of g.inputs) {
    if (g.initializers.has(name) && inputs.has(name)) {
      return [`has an initializer ${name60(name)} of the name of a contract input (ONNX Runtime would take the caller's value in its place: its shape cannot be proved)`];
    }
    if (g.initializers.has(name)) continue; // an input with a default value the runtime never feeds: the initializer
    if (!inputs.has(name)) return [`has an input ${name60(name)} the contract does not name (its shape cannot be proved)`];
    scope.set(name, tensor(inputs.get(name).map((d) => (d === -1 ? BATCH : of(d)))));
  }
  try { p.graph(g, scope, 'the main graph'); } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    return [`cannot prove its shapes: ${e.message} (refused: the runtime runs what it can bound)`];
  }
  return p.sizes.problems();
}
