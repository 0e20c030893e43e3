// A minimal, bounds-checked reader of the TFLite flatbuffer, so the runtime can check a model before an engine sees
// it: the file identifier, the operator codes, for every operator that its opcode index exists, and the structure
// of every WHILE loop, to prove a bound on its trip count. Every offset is checked against the buffer before it is
// followed and the work is bounded by the file's size, so a malformed file ends in a WireError, never in an
// out-of-bounds read or an endless loop. The same reader as the Python runtime's (runtime/backends/tflite_wire.py),
// with the same messages: the shared crafted-model vectors (tests/make_vectors.py) hold both to them.
import schema from '../manifest.schema.json' with { type: 'json' };
import { surrogateEscape } from '../text.js';

export class WireError extends Error {}

/** Names of TFLite's builtin operator codes, from the Python runtime (the manifest schema's x-contract). */
export const BUILTIN_NAMES = new Map(Object.entries(schema['x-contract'].tflite_builtin_names).map(([k, v]) => [Number(k), v]));
const WHILE_OPTIONS = 93; // BuiltinOptions.WhileOptions
const INT32 = 2; // TensorType.INT32

export class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.size = bytes.byteLength;
    // Each table is at least 4 bytes: a well-formed file never visits more tables than this. A crafted one whose
    // vectors share the same tables (quadratic work) runs out of it.
    this.budget = Math.floor(this.size / 4) + 16;
  }

  check(pos, n) { if (pos < 0 || pos + n > this.size) throw new WireError(`offset ${pos} runs past the end of the file`); }
  spend(n) {
    this.budget -= n;
    if (this.budget < 0) throw new WireError('tables are shared or nested beyond what the file\'s size allows');
  }

  u8(pos) { this.check(pos, 1); return this.view.getUint8(pos); }
  i8(pos) { this.check(pos, 1); return this.view.getInt8(pos); }
  u16(pos) { this.check(pos, 2); return this.view.getUint16(pos, true); }
  i32(pos) { this.check(pos, 4); return this.view.getInt32(pos, true); }
  u32(pos) { this.check(pos, 4); return this.view.getUint32(pos, true); }
  indirect(pos) { return pos + this.u32(pos); }

  table(pos) {
    this.spend(1);
    const vtable = pos - this.i32(pos);
    const vsize = this.u16(vtable);
    if (vsize < 4 || vsize % 2 || vtable + vsize > this.size) throw new WireError('malformed vtable');
    return new Table(this, pos, vtable, vsize);
  }

  /** [first item position, length] of the vector at `pos`. */
  vector(pos, itemSize) {
    const start = this.indirect(pos);
    const length = this.u32(start);
    if (start + 4 + length * itemSize > this.size) throw new WireError('vector runs past the end of the file');
    return [start + 4, length];
  }
}

const SCALARS = { '<b': 'i8', '<B': 'u8', '<i': 'i32', '<I': 'u32' };

class Table {
  constructor(buf, pos, vtable, vsize) { Object.assign(this, { buf, pos, vtable, vsize }); }

  field(index) {
    const slot = 4 + 2 * index;
    if (slot + 2 > this.vsize) return null;
    const offset = this.buf.u16(this.vtable + slot);
    return offset ? this.pos + offset : null;
  }

  scalar(index, fmt, fallback) {
    const pos = this.field(index);
    return pos === null ? fallback : this.buf[SCALARS[fmt]](pos);
  }

  string(index) {
    const pos = this.field(index);
    if (pos === null) return null;
    const [start, length] = this.buf.vector(pos, 1);
    return surrogateEscape(this.buf.bytes.subarray(start, start + length));
  }

  /** A vector of int32 (operator and subgraph inputs and outputs, shapes), or [] when absent. */
  ints(index) {
    const pos = this.field(index);
    if (pos === null) return [];
    const [start, length] = this.buf.vector(pos, 4);
    this.buf.budget -= Math.floor(length / 64); // long vectors count against the work budget too (checked at the next table)
    return Array.from({ length }, (_, i) => this.buf.view.getInt32(start + 4 * i, true));
  }

  /** [first item position, length] of a vector of int32, or null when absent (to write into it). */
  intSpan(index) {
    const pos = this.field(index);
    if (pos === null) return null;
    const span = this.buf.vector(pos, 4);
    this.buf.budget -= Math.floor(span[1] / 64);
    return span;
  }

  /** A vector of bytes of at most `limit` bytes (null when absent or longer). */
  bytesField(index, limit) {
    const pos = this.field(index);
    if (pos === null) return null;
    const [start, length] = this.buf.vector(pos, 1);
    return length > limit ? null : this.buf.bytes.subarray(start, start + length);
  }

  tableField(index) {
    const pos = this.field(index);
    return pos === null ? null : this.buf.table(this.buf.indirect(pos));
  }

  tables(index) {
    const pos = this.field(index);
    if (pos === null) return [];
    const [start, length] = this.buf.vector(pos, 4);
    return Array.from({ length }, (_, i) => this.buf.table(this.buf.indirect(start + 4 * i)));
  }
}

/** The root table (Model) of a .tflite file's bytes; WireError without the TFL3 identifier. */
export function modelTable(bytes) {
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(4, 8)) !== 'TFL3') throw new WireError('no TFL3 identifier');
  const buf = new Reader(bytes);
  return buf.table(buf.indirect(0));
}

class Op {
  constructor(table, opCodes) {
    const index = table.scalar(0, '<I', 0); // Operator.opcode_index
    if (index >= opCodes.length) throw new WireError(`an operator uses opcode ${index}, but the model has ${opCodes.length}`);
    this.name = opCodes[index].split(':')[0];
    this.table = table;
    this.inputs = table.ints(1);
    this.outputs = table.ints(2);
  }
}

class Subgraph {
  constructor(table, opCodes) {
    this.tensors = table.tables(0);
    this.inputs = table.ints(1);
    this.inputSet = new Set(this.inputs);
    this.outputs = table.ints(2);
    this.ops = table.tables(3).map((t) => new Op(t, opCodes));
    this.producer = new Map();
    for (const op of this.ops) for (const o of op.outputs) this.producer.set(o, op);
  }

  isInt32(tensor) { return tensor >= 0 && tensor < this.tensors.length && this.tensors[tensor].scalar(1, '<b', 0) === INT32; }

  /** Whether `tensor` holds data of the file: not an input, not produced by an operator, not a variable. */
  isConstant(tensor, buffers) {
    if (!(tensor >= 0 && tensor < this.tensors.length) || this.producer.has(tensor) || this.inputSet.has(tensor)) return false;
    const t = this.tensors[tensor];
    const b = t.scalar(2, '<I', 0); // Tensor.buffer
    return !t.scalar(5, '<b', 0) && b > 0 && b < buffers.length;
  }

  /** The value of an int32 scalar (or one-element) constant tensor, or null. */
  constantInt(tensor, buffers) {
    if (!(tensor >= 0 && tensor < this.tensors.length) || this.producer.has(tensor) || this.inputSet.has(tensor)) return null;
    const t = this.tensors[tensor];
    if (t.scalar(1, '<b', 0) !== INT32 || t.scalar(5, '<b', 0)) return null;
    const b = t.scalar(2, '<I', 0);
    if (!(b > 0 && b < buffers.length)) return null;
    const data = buffers[b].bytesField(0, 4);
    return data !== null && data.length === 4 ? new DataView(data.buffer, data.byteOffset, 4).getInt32(0, true) : null;
  }
}

/** Operator codes, counts and proven loop bounds of a .tflite file; WireError if malformed, or if a subgraph is not
 * the condition or body of a loop whose bound it can prove. */
export function summarize(bytes) {
  const model = modelTable(bytes);
  const out = { opCodes: [], subgraphs: 0, operators: 0, loopBounds: [] };
  for (const code of model.tables(1)) { // Model.operator_codes
    const builtin = Math.max(code.scalar(0, '<b', 0), code.scalar(3, '<i', 0)); // deprecated_builtin_code, builtin_code
    code.scalar(2, '<i', 1); // version: read (bounds-checked) as the Python reader reads it
    let name = BUILTIN_NAMES.get(builtin) ?? `BUILTIN_${builtin}`;
    if (name === 'CUSTOM') name = `CUSTOM:${code.string(1) ?? ''}`;
    out.opCodes.push(name);
  }
  const subgraphs = model.tables(2);
  out.subgraphs = subgraphs.length;
  if (!out.subgraphs) throw new WireError('no subgraph');
  const graphs = subgraphs.map((g) => new Subgraph(g, out.opCodes));
  out.operators = graphs.reduce((n, g) => n + g.ops.length, 0);
  for (const g of graphs.slice(1)) {
    if (g.ops.some((op) => ['WHILE', 'IF', 'CALL', 'CALL_ONCE'].includes(op.name) || op.name.startsWith('STABLEHLO'))) {
      throw new WireError('a loop\'s condition or body holds control flow (nested loops are refused)');
    }
  }
  const buffers = model.tables(4); // Model.buffers
  const claimed = new Set();
  for (const op of graphs[0].ops) {
    if (op.name !== 'WHILE') continue;
    const [cond, body] = whileSubgraphs(op, graphs.length);
    if (claimed.has(cond) || claimed.has(body) || cond === body) throw new WireError('two loops share a condition or body subgraph');
    claimed.add(cond).add(body);
    out.loopBounds.push(proveBound(graphs[0], op, graphs[cond], graphs[body], buffers));
  }
  checkValueSized(graphs, buffers);
  const unclaimed = graphs.map((_, i) => i).filter((i) => i > 0 && !claimed.has(i));
  if (unclaimed.length) {
    throw new WireError(`has ${out.subgraphs} subgraphs, of which [${unclaimed.join(', ')}] are not the condition or body of a loop in the main graph`);
  }
  out.ops = new Set(out.opCodes.map((op) => op.split(':')[0]));
  return out;
}

// Operators whose output size is read from a tensor's values, and which input holds it (see the Python reader).
const VALUE_SIZED = new Map([['FILL', 0]]);
const SIZE_PASSTHROUGH = new Set(['STRIDED_SLICE', 'SLICE', 'PACK', 'CONCATENATION', 'RESHAPE', 'CAST', 'GATHER', 'SQUEEZE', 'EXPAND_DIMS']);

function checkValueSized(graphs, buffers) {
  graphs.forEach((g, i) => {
    const memo = new Map(); // one per graph: each tensor worked out once, however many operators ask
    for (const op of g.ops) {
      if (!VALUE_SIZED.has(op.name)) continue;
      if (i) throw new WireError(`a ${op.name} inside a loop (its size would be read from a loop variable; refused)`);
      const index = VALUE_SIZED.get(op.name);
      if (index >= op.inputs.length || !shapeDerived(g, op.inputs[index], buffers, memo)) {
        throw new WireError(`a ${op.name} whose size is computed from tensor values, not from shapes and constants (it could allocate without bound; refused)`);
      }
    }
  });
}

function shapeDerived(g, tensor, buffers, memo, depth = 0) {
  if (memo.has(tensor)) return memo.get(tensor);
  memo.set(tensor, false); // a cycle proves nothing
  const producer = g.producer.get(tensor);
  let ok;
  if (depth > 32) ok = false;
  else if (producer === undefined) ok = g.isConstant(tensor, buffers);
  // a SHAPE only of an input of the graph, whose shape the contract fixes (a computed tensor's may come from values)
  else if (producer.name === 'SHAPE') ok = producer.inputs.length > 0 && g.inputSet.has(producer.inputs[0]) && !g.producer.has(producer.inputs[0]);
  else ok = SIZE_PASSTHROUGH.has(producer.name) && producer.inputs.every((t) => t < 0 || shapeDerived(g, t, buffers, memo, depth + 1));
  memo.set(tensor, ok);
  return ok;
}

function whileSubgraphs(op, count) {
  const options = op.table.tableField(4); // Operator.builtin_options
  if (op.table.scalar(3, '<B', 0) !== WHILE_OPTIONS || options === null) throw new WireError('a WHILE operator without WhileOptions');
  const cond = options.scalar(0, '<i', -1), body = options.scalar(1, '<i', -1);
  if (!(cond > 0 && cond < count && body > 0 && body < count)) throw new WireError(`a WHILE operator names subgraphs ${cond} and ${body} of ${count}`);
  return [cond, body];
}

const hasDuplicates = (list) => new Set(list).size !== list.length;

/** The most times this WHILE can run its body, proven from its structure (LESS(counter, C), counter + 1, a constant
 * start), or WireError. */
function proveBound(main, op, cond, body, buffers) {
  const n = op.inputs.length;
  if (!(op.outputs.length === n && cond.inputs.length === n && body.inputs.length === n && body.outputs.length === n && cond.outputs.length === 1)) {
    throw new WireError('a WHILE operator whose condition and body do not match its inputs');
  }
  for (const [label, tensors] of [['outputs', op.outputs], ["condition's inputs", cond.inputs], ["body's inputs", body.inputs], ["body's outputs", body.outputs]]) {
    if (hasDuplicates(tensors)) throw new WireError(`a WHILE loop whose ${label} list a tensor twice (refused: the loop variables must be distinct tensors)`);
  }
  for (const [label, g] of [['condition', cond], ['body', body]]) {
    const written = g.inputs.filter((t) => g.producer.has(t)).sort((a, b) => a - b);
    if (written.length) throw new WireError(`an operator in a WHILE loop's ${label} writes its input tensor ${written[0]} (refused)`);
  }
  const candidates = [];
  const pending = [cond.outputs[0]], seen = new Set();
  while (pending.length && seen.size < 64) {
    const tensor = pending.pop();
    const producer = cond.producer.get(tensor);
    if (producer === undefined || seen.has(tensor)) continue;
    seen.add(tensor);
    if (producer.name === 'LOGICAL_AND') pending.push(...producer.inputs.slice(0, 2));
    else if (producer.name === 'LESS' && producer.inputs.length === 2) {
      const [left, right] = producer.inputs;
      const limit = cond.constantInt(right, buffers);
      if (cond.inputs.includes(left) && limit !== null) candidates.push([cond.inputs.indexOf(left), limit]);
    }
  }
  for (const [k, limit] of candidates) {
    if (![cond, body].every((g) => g.isInt32(g.inputs[k]))) continue;
    const step = body.producer.get(body.outputs[k]);
    if (step === undefined || step.name !== 'ADD' || step.inputs.length !== 2 || !step.inputs.includes(body.inputs[k])) continue;
    const other = step.inputs[0] === body.inputs[k] ? step.inputs[1] : step.inputs[0];
    if (body.constantInt(other, buffers) !== 1 || (step.table.scalar(3, '<B', 0) && fused(step))) continue;
    const start = main.constantInt(op.inputs[k], buffers);
    if (start !== null) return BigInt(Math.max(0, limit - start));
  }
  throw new WireError('a WHILE loop whose trip count has no provable bound (the runtime accepts only loops that count a constant up to a constant limit)');
}

/** Whether an ADD carries a fused activation (which would change counter + 1). */
function fused(op) {
  const options = op.table.tableField(4);
  return options !== null && options.scalar(0, '<b', 0) !== 0;
}

/** A model's subgraphs (0 is the main graph), buffers and signatures (key -> [subgraph, Map input name -> tensor]),
 * for the shape proof (tflite_shapes.js; Python: tflite_wire.model_graphs). */
export function modelGraphs(bytes) {
  const model = modelTable(bytes);
  const opCodes = model.tables(1).map((code) => {
    const builtin = Math.max(code.scalar(0, '<b', 0), code.scalar(3, '<i', 0));
    return BUILTIN_NAMES.get(builtin) ?? `BUILTIN_${builtin}`;
  });
  const graphs = model.tables(2).map((g) => new Subgraph(g, opCodes));
  const signatures = new Map();
  for (const sig of model.tables(7)) { // Model.signature_defs
    const inputs = new Map();
    for (const m of sig.tables(0)) inputs.set(m.string(0) ?? '', m.scalar(1, '<I', 0)); // TensorMap(name, tensor_index)
    signatures.set(sig.string(2) ?? '', [sig.scalar(4, '<I', 0), inputs]); // signature_key, subgraph_index
  }
  return { graphs, buffers: model.tables(4), signatures };
}
