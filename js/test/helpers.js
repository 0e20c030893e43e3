// Shared by the node and browser tests: where the fixtures are, and the Python runtime's reference outputs.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const JS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(JS_DIR, '..');
export const FIXTURES = process.env.S2S_FIXTURES;
if (!FIXTURES || !existsSync(path.join(FIXTURES, 'bundles', 'digits', 'manifest.json'))) {
  throw new Error('set S2S_FIXTURES to the test fixtures folder (with bundles/digits, numbers, attention, embeddings, ensemble); '
    + 'make it with `python tests/make_fixtures.py DIR`');
}
/** The fixture bundles (tests/make_vectors.py BUNDLES); embeddings: the architecture `s2s train --data` trains;
 * ensemble: attention and embeddings exported as one bundle (`s2s export --ensemble`). */
export const BUNDLES = ['digits', 'numbers', 'attention', 'embeddings', 'ensemble'];
export const bundleDir = (name) => path.join(FIXTURES, 'bundles', name);
export const golden = (name) => JSON.parse(readFileSync(path.join(bundleDir(name), 'golden.json'), 'utf8')).items;

/** The Python interpreter with seq2seq_edge and its backends: $S2S_PYTHON, else the repository's .venv. */
export const PYTHON = process.env.S2S_PYTHON || path.join(REPO, '.venv', 'bin', 'python');

/** The shared test vectors (tests/make_vectors.py): the Python runtime's ONNX decodes, also read by the Python, C
 * and Kotlin tests. */
export function vectors() {
  const file = path.join(FIXTURES, 'vectors.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: python tests/make_vectors.py ${FIXTURES}`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The Python runtime's outputs for a bundle's golden inputs: {batch: [...], single: [...]} (texts). ONNX: from the
 * shared vectors (the step loop, as the Python runtime decodes ONNX by default); other backends: run it here. */
/** The crafted model files and the seeded mutants, and the Python runtime's verdict on each (tests/make_crafted.py). */
export function crafted() {
  const file = path.join(FIXTURES, 'crafted', 'crafted.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: python tests/make_crafted.py ${FIXTURES}`);
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  return { dir: path.dirname(file), cases: doc.cases, mutants: doc.mutants ?? [] };
}

export function pythonReference(name, backend, variant) {
  if (backend === 'onnx') {
    const v = vectors().decodes[name].find((x) => x.variant === variant && x.decode_path === 'step-loop');
    if (!v) throw new Error(`vectors.json has no ${name} onnx ${variant} step-loop decodes`);
    return { batch: v.batch.map((r) => r.text), single: v.single.map((r) => r.text) };
  }
  return JSON.parse(execFileSync(PYTHON, [path.join(JS_DIR, 'test', 'python_reference.py'), bundleDir(name), backend, variant],
    { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, XDG_CACHE_HOME: mkdtempSync(path.join(tmpdir(), 's2s-js-cache-')) } }));
}

/** A fresh copy of a fixture bundle, to tamper with. */
export function copyBundle(name) {
  const dir = mkdtempSync(path.join(tmpdir(), `s2s-js-${name}-`));
  cpSync(bundleDir(name), dir, { recursive: true });
  return dir;
}
