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

/** Decode lines one at a time; each row: {input, output, tokens, tokenProbs, ms} or {input, error}. */
async function decodeLines(bundle, engine, variant, lines, oneCall = 'auto') {
  const { decoder, loadMs } = await load(bundle, engine, variant, oneCall);
  const rows = [];
  for (const input of lines) {
    const t0 = performance.now();
    try {
      const r = await decoder.decodeResult(input);
      rows.push({ input, output: r.text, tokens: [...r.tokens], tokenProbs: [...r.tokenProbs], finished: r.finished,
        ms: performance.now() - t0 });
    } catch (e) {
      rows.push({ input, error: `${e.name}: ${e.message}` });
    }
  }
  return { rows, loadMs, engine: decoder.engine, variant, path: decoder.decodePath };
}

/** Each output token with its probability ("t 0.998"), the end marker as "end". */
function labelledProbs(row) {
  return row.tokenProbs.map((p, i) => {
    const token = i < row.tokens.length ? row.tokens[i] : 'end';
    return `${token === ' ' ? '␠' : token}\u00a0${p.toFixed(3)}`;
  }).join('  ');
}

function show(result) {
  const body = $('results').tBodies[0];
  body.replaceChildren();
  for (const row of result?.rows ?? []) {
    const tr = body.insertRow();
    tr.insertCell().textContent = row.input;
    tr.insertCell().textContent = row.error ?? row.output;
    tr.insertCell().textContent = row.error ? '' : labelledProbs(row);
    tr.cells[2].className = 'probs';
    tr.insertCell().textContent = row.error ? '' : row.ms.toFixed(2);
  }
}

let latest = 0; // the newest request: an older one that ends later shows nothing

async function run() {
  const mine = ++latest;
  document.body.dataset.state = 'busy';
  const lines = $('input').value.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.length);
  status('decoding...');
  try {
    const result = await decodeLines($('bundle').value, $('engine').value, $('variant').value, lines);
    if (mine !== latest) return result;
    show(result);
    const ok = result.rows.filter((r) => !r.error);
    const mean = ok.reduce((s, r) => s + r.ms, 0) / Math.max(ok.length, 1);
    status(`${result.engine} ${result.variant} (${result.path}): ${ok.length} of ${result.rows.length} decoded, ${mean.toFixed(2)} ms per word on average (bundle loaded and checked in ${result.loadMs.toFixed(0)} ms)`);
    document.body.dataset.state = 'done';
    return result;
  } catch (e) {
    if (mine !== latest) throw e;
    show(null); // the previous results are not this request's: they go
    status(`${e.name}: ${e.message}`, true);
    document.body.dataset.state = 'error';
    throw e;
  }
}

const FORMAT = { onnx: 'onnx', tflite: 'tflite' };
const manifests = new Map();

async function manifestOf(bundle) {
  if (!manifests.has(bundle)) manifests.set(bundle, fetch(`/bundles/${bundle}/manifest.json`).then((r) => r.json()));
  return manifests.get(bundle);
}

/** The variant menu: the variants the bundle holds for the chosen engine's format (fp16 is TFLite only). */
async function fillVariants() {
  const m = await manifestOf($('bundle').value);
  const format = FORMAT[$('engine').value];
  const held = ['fp32', 'fp16', 'int8'].filter((v) => ['encoder', 'decoder_step'].every(
    (role) => m.models.some((x) => x.role === role && x.format === format && x.variant === v)));
  const before = $('variant').value;
  $('variant').replaceChildren(...held.map((v) => new Option(v, v)));
  $('variant').value = held.includes(before) ? before : held[0];
}

/** A few of the bundle's own test inputs (golden.json) as the example, unless the user has typed their own. */
async function fillExample() {
  if ($('input').dataset.edited) return;
  const g = await fetch(`/bundles/${$('bundle').value}/golden.json`).then((r) => (r.ok ? r.json() : { items: [] }));
  if (!$('input').dataset.edited) $('input').value = g.items.slice(0, 5).map((x) => x.input).join('\n');
}

const names = await (await fetch('/bundles/index.json')).json();
for (const n of names) $('bundle').add(new Option(n, n));
$('decode').addEventListener('click', () => { run().catch(() => {}); });
$('input').addEventListener('input', () => { $('input').dataset.edited = '1'; });
$('bundle').addEventListener('change', async () => { await fillVariants(); await fillExample(); run().catch(() => {}); });
$('engine').addEventListener('change', () => { fillVariants().catch(() => {}); });
window.demo = { load, decodeLines, run };
if (names.length) {
  await fillVariants();
  await fillExample();
  status(`${names.length} bundles; decoding the first one's examples...`);
  await run().catch(() => {}); // useful on load: the examples decoded, or the error that stopped them
} else {
  status('no bundles: start the server with a folder that holds bundle folders', true);
}
document.body.dataset.state = document.body.dataset.state === 'error' ? 'error' : 'ready';
