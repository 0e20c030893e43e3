// Benchmark the JavaScript runtime in node (onnxruntime-node, 1 intra-op thread) on the test bundles; prints JSON
// and writes bench/results/node.json. The Python runtime is measured in the same run with the same protocol
// (bench/python_latency.py) when a Python with seq2seq_edge is found ($S2S_PYTHON or ../.venv).
//   S2S_FIXTURES=DIR node bench/node.js
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBundleFromDir } from '../src/node.js';
import { ROUNDS, timeDecodes } from './protocol.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = process.env.S2S_FIXTURES;
if (!FIXTURES) { console.error('set S2S_FIXTURES to the folder holding bundles/'); process.exit(2); }
const BUNDLES = (process.env.S2S_BENCH_BUNDLES ?? 'digits,numbers,attention').split(',');
const PYTHON = process.env.S2S_PYTHON || path.join(HERE, '..', '..', '.venv', 'bin', 'python');
const COLD_RUNS = 3;

const rows = [];
for (const name of BUNDLES) {
  const dir = path.join(FIXTURES, 'bundles', name);
  const inputs = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8')).items.map((x) => x.input);
  for (const variant of ['fp32', 'int8']) {
    // the default path (the one-call greedy model where the bundle has one), then the step loop if that differs
    for (const oneCall of ['auto', false]) {
      if (oneCall === false && rows.at(-1).path === 'step-loop') continue; // no greedy model: done
      const decoder = await loadBundleFromDir(dir, { variant, threads: 1, oneCall });
      const latency = await timeDecodes((x) => decoder.decode(x), inputs, () => performance.now());
      await decoder.release();
      const colds = [];
      for (let i = 0; i < COLD_RUNS; i++) {
        colds.push(JSON.parse(execFileSync(process.execPath, [path.join(HERE, 'cold.js'), dir, variant, inputs[0], String(oneCall)], { encoding: 'utf8' })).cold_start_ms);
      }
      colds.sort((a, b) => a - b);
      rows.push({ runtime: 'js-node', engine: 'onnxruntime-node', format: 'onnx', bundle: name, variant, path: decoder.decodePath, threads: 1, words: inputs.length, ...latency, cold_start_ms: colds[COLD_RUNS >> 1] });
      console.error(JSON.stringify(rows.at(-1)));
    }
  }
}
if (existsSync(PYTHON)) {
  const out = execFileSync(PYTHON, [path.join(HERE, 'python_latency.py'), FIXTURES, BUNDLES.join(','), String(ROUNDS)],
    { encoding: 'utf8', maxBuffer: 16 << 20, env: { ...process.env, XDG_CACHE_HOME: path.join(os.tmpdir(), 's2s-bench-cache') } });
  for (const r of JSON.parse(out)) { rows.push(r); console.error(JSON.stringify(r)); }
} else {
  console.error(`no Python runtime at ${PYTHON}: set S2S_PYTHON to measure it beside node`);
}
const result = {
  harness: 'js/bench/node.js', protocol: `each golden input decoded alone (batch 1), 1 warm-up round then ${ROUNDS} timed rounds; cold start = a fresh process to the first decoded word, median of ${COLD_RUNS}`,
  date: new Date().toISOString(), machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, node: process.version },
  packages: Object.fromEntries(['onnxruntime-node'].map((p) => [p, JSON.parse(readFileSync(path.join(HERE, '..', 'node_modules', p, 'package.json'), 'utf8')).version])),
  rows,
};
mkdirSync(path.join(HERE, 'results'), { recursive: true });
writeFileSync(path.join(HERE, 'results', 'node.json'), JSON.stringify(result, null, 1) + '\n');
process.stdout.write(JSON.stringify(result) + '\n');
