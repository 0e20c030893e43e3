// What a model file may be, proved from its bytes before an engine sees them: the Python runtime's
// backends.inspect_model and loader.check_model_ops, with the same messages (docs/trust.md, step 4). The operators
// each role may hold come from the manifest schema's x-contract, written by the Python runtime.
import schema from './manifest.schema.json' with { type: 'json' };
import { BundleError } from './errors.js';
import { byCodePoint, pyRepr } from './text.js';
import * as onnx from './wire/onnx.js';
import { proveShapes } from './wire/onnx_shapes.js';
import { proveTfliteShapes } from './wire/tflite_shapes.js';
import * as tflite from './wire/tflite.js';

const ALLOWED_OPS = schema['x-contract'].allowed_ops;
/** The signature a TFLite engine runs, whatever a manifest entry says (Python's manifest.SIGNATURE_KEY): the shape
 * proof binds the contract's inputs through it. */
export const TFLITE_SIGNATURE = 'serving_default';
const pyList = (items) => `[${items.map((x) => (typeof x === 'string' ? pyRepr(x) : String(x))).join(', ')}]`;
const sorted = (items) => [...items].sort(byCodePoint);
const own = (o, k) => (o !== null && typeof o === 'object' && Object.hasOwn(o, k) ? o[k] : undefined);

/** {ops: Set of operator names, bounds: each loop's proven trip-count bound (BigInt)} of a model file, read without
 * an engine; BundleError (no place) for anything a bundle model may never be. */
export function inspectModel(format, bytes) {
  if (format === 'onnx') {
    let s;
    try { s = onnx.summarize(bytes); } catch (e) {
      if (e instanceof onnx.WireError) throw new BundleError(`not a valid ONNX model (${e.message})`);
      throw e;
    }
    const problems = [];
    if (s.externalTensors.length) problems.push(`refers to external data for ${pyList(s.externalTensors.slice(0, 3).map(onnx.display))}; bundle models must embed their weights (external data is refused)`);
    if (s.functions.length) problems.push(`defines model-local functions ${pyList(s.functions.slice(0, 3).map(onnx.display))} (refused: the contract has none)`);
    if (s.trainingInfo) problems.push('holds training graphs (training_info is refused)');
    let bounds = [];
    try { bounds = onnx.loopBounds(s); } catch (e) {
      if (!(e instanceof onnx.WireError)) throw e;
      problems.push(e.message);
    }
    problems.push(...onnx.valueSizedProblems(s));
    const pairs = [...s.ops].map((o) => JSON.parse(o).map(onnx.display));
    const foreign = sorted(new Set(pairs.filter(([d]) => d).map(([d, o]) => `${d}:${o}`)));
    if (foreign.length) problems.push(`uses operators outside the default ONNX domain: ${pyList(foreign.slice(0, 5))}`);
    if (problems.length) throw new BundleError(problems);
    return { ops: new Set(pairs.map(([, o]) => o)), bounds };
  }
  if (format === 'tflite') {
    let s;
    try { s = tflite.summarize(bytes); } catch (e) {
      if (e instanceof tflite.WireError) throw new BundleError(`not a valid TFLite model (${e.message})`);
      throw e;
    }
    const custom = sorted(s.opCodes.filter((op) => op.startsWith('CUSTOM')));
    if (custom.length) throw new BundleError(`uses custom operators ${pyList(custom.slice(0, 5))} (refused: bundle models use builtins only)`);
    return { ops: s.ops, bounds: s.loopBounds };
  }
  throw new BundleError(`unknown model format ${pyRepr(String(format))}`);
}

/** A model's real operators, read from its bytes, must be ones its role allows and the manifest's list, and each
 * of its loops (proved bounded from the bytes) may run at most `loopLimit` times; with `rowLimit`
 * (BundleManifest.rowLimit), an ONNX model's shapes are also proved from the entry's input shapes, every tensor
 * within that many elements per batch row (wire/onnx_shapes.js). BundleError naming `where`. */
export function checkModelOps(bytes, entry, where, loopLimit, rowLimit = null) {
  let real, bounds;
  try { ({ ops: real, bounds } = inspectModel(entry.format, bytes)); } catch (e) {
    if (e instanceof BundleError) throw new BundleError(e.problems, where);
    throw e;
  }
  const problems = [];
  const longest = bounds.reduce((a, b) => (b > a ? b : a), 0n);
  if (bounds.length && longest > BigInt(loopLimit)) {
    problems.push(`has a loop of up to ${longest} steps; a ${entry.role} of this bundle may loop at most ${loopLimit} times`);
  }
  const allowed = new Set(own(own(ALLOWED_OPS, entry.format), entry.role) ?? []);
  const outside = sorted([...real].filter((op) => !allowed.has(op)));
  if (outside.length) problems.push(`uses operators a ${entry.role} may not have: ${pyList(outside.slice(0, 8))} (allowed: ${pyList(sorted(allowed))})`);
  const declared = new Set(entry.ops ?? []);
  if (real.size !== declared.size || [...real].some((op) => !declared.has(op))) {
    problems.push(`its operators ${pyList(sorted(real).slice(0, 20))} differ from the manifest's list ${pyList(sorted(entry.ops ?? []).slice(0, 20))}`);
  }
  if (problems.length) throw new BundleError(problems, where);
  if (rowLimit === null || rowLimit === undefined) return;
  // only operators the role allows reach the proof: each has a shape rule
  const inputs = new Map((entry.inputs ?? []).map((t) => [t.name, t.shape]));
  let shapeProblems;
  if (entry.format === 'onnx') {
    let tree;
    try { tree = onnx.graphTree(bytes); } catch (e) {
      if (e instanceof onnx.WireError) throw new BundleError(`not a valid ONNX model (${e.message})`, where);
      throw e;
    }
    shapeProblems = proveShapes(tree, inputs, rowLimit);
  } else shapeProblems = proveTfliteShapes(bytes, inputs, TFLITE_SIGNATURE, rowLimit);
  if (shapeProblems.length) throw new BundleError(shapeProblems, where);
}
