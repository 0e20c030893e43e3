// The demo page: pick a bundle, an engine and a variant; every line of the text box is decoded one at a time
// (the time per word is each decode's own). `window.demo` lets the browser test drive the same code.
import * as ort from 'onnxruntime-web';
import * as litert from '@litertjs/core';
import { loadBundleFromUrl, onnxRuntimeEngine, liteRtEngine } from '../src/index.js';

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
const $ = (id) => document.getElementById(id);
let liteRtReady = null;
const cache = new Map();

function status(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

async function engineFor(kind) {
  if (kind === 'onnx') return onnxRuntimeEngine(ort, { name: 'onnxruntime-web', threads: 0 });
  liteRtReady ??= litert.loadLiteRt('/node_modules/@litertjs/core/wasm/');
  await liteRtReady;
  return liteRtEngine(litert);
}

/** Load (once) a bundle on an engine; resolves to {decoder, loadMs}. `oneCall`: 'auto' uses the bundle's one-call
 * greedy model when it has one; false runs the step loop. */
async function load(bundle, engine, variant, oneCall = 'auto') {
  const key = `${bundle}/${engine}/${variant}/${oneCall}`;
  if (!cache.has(key)) {
    cache.set(key, (async () => {
      const t0 = performance.now();
      const decoder = await loadBundleFromUrl(`/bundles/${bundle}/`, { engine: await engineFor(engine), variant, oneCall });
      return { decoder, loadMs: performance.now() - t0 };
    })());
  }
  try { return await cache.get(key); } catch (e) { cache.delete(key); throw e; }
}

/** Decode lines one at a time; each row: {input, output, tokenProbs, ms} or {input, error}. */
async function decodeLines(bundle, engine, variant, lines, oneCall = 'auto') {
  const { decoder, loadMs } = await load(bundle, engine, variant, oneCall);
  const rows = [];
  for (const input of lines) {
    const t0 = performance.now();
    try {
      const r = await decoder.decodeResult(input);
      rows.push({ input, output: r.text, tokenProbs: [...r.tokenProbs], finished: r.finished, ms: performance.now() - t0 });
    } catch (e) {
      rows.push({ input, error: `${e.name}: ${e.message}` });
    }
  }
  return { rows, loadMs, engine: decoder.engine, variant, path: decoder.decodePath };
}

function show(result) {
  const body = $('results').tBodies[0];
  body.replaceChildren();
  for (const row of result.rows) {
    const tr = body.insertRow();
    tr.insertCell().textContent = row.input;
    tr.insertCell().textContent = row.error ?? row.output;
    tr.insertCell().textContent = row.error ? '' : row.tokenProbs.map((p) => p.toFixed(3)).join(' ');
    tr.cells[2].className = 'probs';
    tr.insertCell().textContent = row.error ? '' : row.ms.toFixed(2);
  }
}

async function run() {
  const lines = $('input').value.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length);
  status('decoding...');
  try {
    const result = await decodeLines($('bundle').value, $('engine').value, $('variant').value, lines);
    show(result);
    const ok = result.rows.filter((r) => !r.error);
    const mean = ok.reduce((s, r) => s + r.ms, 0) / Math.max(ok.length, 1);
    status(`${result.engine} ${result.variant} (${result.path}): ${ok.length} of ${result.rows.length} decoded, ${mean.toFixed(2)} ms per word on average (bundle loaded and checked in ${result.loadMs.toFixed(0)} ms)`);
    document.body.dataset.state = 'done';
    return result;
  } catch (e) {
    status(`${e.name}: ${e.message}`, true);
    document.body.dataset.state = 'error';
    throw e;
  }
}

const names = await (await fetch('/bundles/index.json')).json();
for (const n of names) $('bundle').add(new Option(n, n));
$('decode').addEventListener('click', () => { run().catch(() => {}); });
window.demo = { load, decodeLines, run };
status(`ready: ${names.length} bundles`);
document.body.dataset.state = 'ready';
