// Benchmark the JavaScript runtime in headless Chromium (/usr/bin/chromium): onnxruntime-web (wasm, 1 thread) and
// LiteRT.js (wasm), on the demo page, with the same protocol as bench/node.js; prints JSON and writes
// bench/results/browser.json.   S2S_FIXTURES=DIR node bench/browser.js
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../demo/server.js';
import { ROUNDS } from './protocol.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = process.env.S2S_FIXTURES;
if (!FIXTURES) { console.error('set S2S_FIXTURES to the folder holding bundles/'); process.exit(2); }
const CHROMIUM = process.env.S2S_CHROMIUM || '/usr/bin/chromium';
const BUNDLES = (process.env.S2S_BENCH_BUNDLES ?? 'digits,numbers,attention').split(',');
const RUNS = [['onnx', 'fp32'], ['onnx', 'int8'], ['tflite', 'fp32'], ['tflite', 'fp16'], ['tflite', 'int8']];
const COLD_RUNS = 3;

const server = await serve({ bundlesDir: path.join(FIXTURES, 'bundles') });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const open = async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/demo/`);
  await page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
  return { context, page };
};
const rows = [];
try {
  for (const name of BUNDLES) {
    const inputs = JSON.parse(readFileSync(path.join(FIXTURES, 'bundles', name, 'golden.json'), 'utf8')).items.map((x) => x.input);
    for (const [engine, variant] of RUNS) {
      // the default path (the one-call greedy model where the bundle has one), then the step loop if that differs
      for (const oneCall of ['auto', false]) {
        if (oneCall === false && rows.at(-1).path === 'step-loop') continue; // no greedy model: done
        const colds = [];
        for (let i = 0; i < COLD_RUNS; i++) { // a fresh context each time: no module, wasm or HTTP cache
          const { context, page } = await open();
          colds.push(await page.evaluate(async ([b, e, v, x, o]) => {
            await window.demo.decodeLines(b, e, v, [x], o);
            return performance.now(); // since the navigation started: page, engine wasm, bundle checks, sessions, one decode
          }, [name, engine, variant, inputs[0], oneCall]));
          await context.close();
        }
        colds.sort((a, b) => a - b);
        const { context, page } = await open();
        const timing = await page.evaluate(async ([b, e, v, xs, rounds, o]) => {
          const { timeDecodes } = await import('/bench/protocol.js');
          const { decoder } = await window.demo.load(b, e, v, o);
          const stats = await timeDecodes((x) => decoder.decode(x), xs, () => performance.now(), rounds);
          return { ...stats, engine: decoder.engine, path: decoder.decodePath, isolated: globalThis.crossOriginIsolated };
        }, [name, engine, variant, inputs, ROUNDS, oneCall]);
        await context.close();
        const { engine: engineName, isolated, path: decodePath, ...stats } = timing;
        if (!isolated) throw new Error('the page is not cross-origin isolated: its timer is too coarse to measure');
        rows.push({ runtime: 'js-browser', engine: engineName, format: engine, bundle: name, variant, path: decodePath,
          threads: 1, words: inputs.length, ...stats, cold_start_ms: Math.round(colds[COLD_RUNS >> 1] * 10) / 10 });
        console.error(JSON.stringify(rows.at(-1)));
      }
    }
  }
} finally {
  await browser.close();
  await server.close();
}
const version = (p) => JSON.parse(readFileSync(path.join(HERE, '..', 'node_modules', p, 'package.json'), 'utf8')).version;
const result = {
  harness: 'js/bench/browser.js', protocol: `headless Chromium, the demo page; each golden input decoded alone (batch 1), 1 warm-up round then ${ROUNDS} timed rounds; cold start = a fresh browser context from navigation to the first decoded word (page, engine wasm, bundle fetch and sha256, sessions, one decode), median of ${COLD_RUNS}`,
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, platform: `${os.platform()} ${os.arch()}`,
    browser: execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim() },
  packages: { 'onnxruntime-web': version('onnxruntime-web'), '@litertjs/core': version('@litertjs/core') },
  rows,
};
mkdirSync(path.join(HERE, 'results'), { recursive: true });
writeFileSync(path.join(HERE, 'results', 'browser.json'), JSON.stringify(result, null, 1) + '\n');
process.stdout.write(JSON.stringify(result) + '\n');
