// What the shape proofs of both formats share (onnx_shapes.js, tflite_shapes.js; Python: runtime/backends/shapes.py):
// dimensions as polynomials in the batch B (BigInt coefficients), exact or upper bounds; the broadcast, slice and
// reshape arithmetic; and the bound every tensor is held to (SizeCheck).
import { pyRepr } from '../text.js';

export const INT32_MAX = 2n ** 31n - 1n;
/** The batch the proof assumes at most (the runtime's batch limit, options.MAX_BATCH_SIZE in Python). */
const MAX_BATCH = 4096n;
/** Dimensions of any tensor (the exporter's have at most 3): a bound on the proof's own work per tensor. */
export const MAX_RANK = 16;
/** Elements of an integer tensor whose values a proof follows (shape vectors, axes, indices, slice bounds). */
export const MAX_VALUES = 1024;

export class ShapeError extends Error {}

/** A name as Python's {name[:60]!r} shows it. */
export const name60 = (name) => pyRepr(Array.from(name).slice(0, 60).join(''));
export const bmax = (a, b) => (a > b ? a : b);
export const floorDiv = (a, b) => { const q = a / b; return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q; };
export const ceilDiv = (a, b) => -floorDiv(-a, b);

// ---- dimensions: polynomials in the batch ----------------------------------------------------------------------
export function dim(coefficients, exact = true) {
  const c = [...coefficients];
  while (c.length > 1 && c.at(-1) === 0n) c.pop();
  return { c, exact };
}
export const of = (n, exact = true) => ({ c: [BigInt(n)], exact });
export const constOf = (d) => (d.c.length === 1 ? d.c[0] : null);
export const sameC = (x, y) => x.c.length === y.c.length && x.c.every((v, i) => v === y.c[i]);
export const BATCH = Object.freeze({ c: [0n, 1n], exact: true });
export const ONE = Object.freeze({ c: [1n], exact: true });

export function mul(x, y) {
  const out = new Array(x.c.length + y.c.length - 1).fill(0n);
  x.c.forEach((a, i) => y.c.forEach((b, j) => { out[i + j] += a * b; }));
  return dim(out, x.exact && y.exact);
}
export function add(x, y) {
  const n = Math.max(x.c.length, y.c.length);
  return dim(Array.from({ length: n }, (_, i) => (x.c[i] ?? 0n) + (y.c[i] ?? 0n)), x.exact && y.exact);
}
/** An upper bound of both; an exact constant other than 1 is what a broadcast or a concatenation gives (or fails). */
export function atMost(x, y) {
  if (x.exact && constOf(x) !== null && constOf(x) !== 1n) return x;
  if (y.exact && constOf(y) !== null && constOf(y) !== 1n) return y;
  if (sameC(x, y)) return { c: x.c, exact: x.exact && y.exact };
  const n = Math.max(x.c.length, y.c.length);
  return dim(Array.from({ length: n }, (_, i) => bmax(x.c[i] ?? 0n, y.c[i] ?? 0n)), false);
}
export const largest = (d) => d.c.reduce((sum, c, i) => sum + c * MAX_BATCH ** BigInt(i), 0n);

export function show(d) {
  const terms = [];
  d.c.forEach((c, i) => {
    if (!c) return;
    const power = i === 0 ? '' : i === 1 ? 'B' : `B^${i}`;
    terms.push(!power ? `${c}` : c === 1n ? power : `${c}·${power}`);
  });
  return terms.reverse().join(' + ') || '0';
}

export function count(shape) { let n = ONE; for (const d of shape) n = mul(n, d); return n; }
export const nonneg = (d) => (constOf(d) !== null && constOf(d) < 0n ? of(0n, d.exact) : d);
export const tensor = (shape, values = null) => ({ shape, values });


// ---- arithmetic ------------------------------------------------------------------------------------------------
export function axisOf(axis, rank, op) {
  const r = BigInt(rank);
  if (!(-r <= axis && axis < r)) throw new ShapeError(`a ${op} with axis ${axis} of a rank-${rank} tensor`);
  return Number(((axis % r) + r) % r);
}

export function broadcast(...shapes) {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = [];
  for (let i = 0; i < rank; i++) {
    let d = null;
    for (const s of shapes) {
      const j = s.length - rank + i;
      if (j < 0) continue;
      const x = s[j];
      if (sameC(x, ONE) && x.exact) continue;
      d = d === null ? x : atMost(d, x);
    }
    out.push(d ?? ONE);
  }
  return out;
}

export function sliceLength(length, start, end, step) {
  if (step === 0n) throw new ShapeError('a Slice with step 0');
  if (start < 0n) start += length;
  if (end < 0n) end += length;
  const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);
  if (step > 0n) {
    start = clamp(start, 0n, length); end = clamp(end, 0n, length);
    return bmax(0n, ceilDiv(end - start, step));
  }
  start = clamp(start, 0n, length - 1n); end = clamp(end, -1n, length - 1n);
  return bmax(0n, ceilDiv(start - end, -step));
}

export function sliceIndices(length, start, end, step) {
  const n = sliceLength(length, start, end, step);
  if (start < 0n) start += length;
  const first = step > 0n ? (start < 0n ? 0n : start > length ? length : start) : (start < 0n ? 0n : start > length - 1n ? length - 1n : start);
  return Array.from({ length: Number(n) }, (_, i) => first + BigInt(i) * step);
}

/** Python's list[start:end] for ints. */
export function pySlice(items, start, end) {
  const n = BigInt(items.length);
  const norm = (v) => { if (v < 0n) v += n; return Number(v < 0n ? 0n : v > n ? n : v); };
  return items.slice(norm(start), norm(end));
}

export function divide(total, by) {
  if (total.exact && by.exact) {
    const k = by.c.findIndex((c) => c !== 0n);
    if (k >= 0 && by.c.slice(k + 1).every((c) => c === 0n) && total.c.slice(0, k).every((c) => c === 0n)
        && total.c.slice(k).every((c) => c % by.c[k] === 0n)) {
      return dim(total.c.slice(k).map((c) => c / by.c[k]), true);
    }
  }
  return { c: total.c, exact: false };
}


// ---- rules both formats share (their op name in messages) -----------------------------------------------------
/** A cast: the same shape, and the values it follows kept only through a cast to int32/int64 that holds them. */
export function castTo(t, toInteger) {
  const keep = toInteger && t.values !== null
    && t.values.every((v) => largest(v) <= INT32_MAX && (constOf(v) === null || -INT32_MAX <= constOf(v)));
  return tensor(t.shape, keep ? t.values : null);
}

/** The inputs side by side along the axis readAxis() gives (read once the ranks are known to agree). */
export function concatenate(ins, readAxis, op) {
  const parts = ins.filter((t) => t !== null);
  const rank = parts[0].shape.length;
  if (parts.some((t) => t.shape.length !== rank)) throw new ShapeError(`a ${op} of tensors of different ranks`);
  const axis = axisOf(BigInt(readAxis()), rank, op);
  const dims = [];
  for (let i = 0; i < rank; i++) {
    let d = parts[0].shape[i];
    for (const t of parts.slice(1)) d = i === axis ? add(d, t.shape[i]) : atMost(d, t.shape[i]);
    dims.push(d);
  }
  let values = null;
  if (rank === 1 && parts.every((t) => t.values !== null) && parts.reduce((s, t) => s + t.values.length, 0) <= MAX_VALUES) {
    values = parts.flatMap((t) => t.values);
  }
  return tensor(dims, values);
}

/** `t` without the `axes` (BigInts; null: without every dimension that is exactly 1). */
export function squeezeAxes(t, axes, op) {
  const shape = t.shape;
  let keep;
  if (axes === null) {
    if (shape.some((d) => constOf(d) === null || !d.exact)) throw new ShapeError(`a ${op} without axes of a tensor whose dimensions depend on the batch`);
    keep = shape.map((d, i) => (constOf(d) !== 1n ? i : -1)).filter((i) => i >= 0);
  } else {
    const drop = new Set(axes.map((x) => axisOf(x, shape.length, op)));
    keep = shape.map((_, i) => i).filter((i) => !drop.has(i));
  }
  const v = t.values;
  return tensor(keep.map((i) => shape[i]), shape.length <= 1 && v !== null && v.length === 1 ? v : null);
}

/** The values of an operator's input the proof follows (a size, axes, slice bounds), or ShapeError. */
export function valuesOf(t, what, op) {
  if (t === null || t.values === null) throw new ShapeError(`a ${op} whose ${what} the proof cannot compute from constants and input shapes`);
  return t.values;
}

/** valuesOf as exact BigInts (an upper bound will not do for axes, bounds, sizes, indices): ShapeError when one
 * depends on the batch or is known only as a bound. */
export function intsOf(t, what, op) {
  const values = valuesOf(t, what, op);
  if (values.some((v) => constOf(v) === null)) throw new ShapeError(`a ${op} whose ${what} depends on the batch`);
  if (!values.every((v) => v.exact)) throw new ShapeError(`a ${op} whose ${what} the proof knows only as a bound`);
  return values.map(constOf);
}

/** Whether all of a tensor's values are followed, constant and exact. */
export const exactInts = (t) => t.values !== null && t.values.every((v) => constOf(v) !== null && v.exact);

/** The bound on every tensor a proof worked out: add() each one (its name as it is shown), then problems(). */
export class SizeCheck {
  constructor(rowLimit) { this.rowLimit = BigInt(rowLimit); this.largestConstant = 0n; this.checked = []; }
  constant(elements) { this.largestConstant = bmax(this.largestConstant, BigInt(elements)); }
  add(name, shape) { this.checked.push([name, shape]); }
  problems(limit = 3) {
    const constLimit = bmax(this.rowLimit, this.largestConstant);
    const problems = [];
    for (const [name, shape] of this.checked) {
      const n = count(shape);
      if (n.c.length > 2) {
        problems.push(`holds a tensor (${name60(name)}) of ${show(n)} elements: it grows with a power of the batch (the contract's tensors grow linearly; refused)`);
      } else if ((n.c.length === 2 && n.c[1] > this.rowLimit) || n.c[0] > constLimit) {
        problems.push(`holds a tensor (${name60(name)}) of ${show(n)} elements, more than the bundle's shapes allow (${this.rowLimit} per batch row, ${constLimit} in all without the batch; refused)`);
      }
      if (problems.length >= limit) break;
    }
    return problems;
  }
}

/** Whether a loop variable leaves the body with exactly the shape it entered with (both exact). */
export const keepsShape = (first, after) => first !== null && after !== null && after !== undefined && first.length === after.length
  && first.every((x, j) => sameC(x, after[j]) && x.exact && after[j].exact);
