// The demo page in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; nothing
// downloads a browser): decode every golden input of every test bundle with onnxruntime-web (wasm, 1 thread) and
// with LiteRT.js, compare with the exporter's strings (fp32) or the Python runtime's (fp16, int8: either output of a
// near tie), then drive the page's own controls and save a screenshot (test-artifacts/demo.png).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { serve } from '../demo/server.js';
import { BUNDLES, FIXTURES, JS_DIR, golden, pythonReference } from './helpers.js';

export const CHROMIUM = process.env.S2S_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(JS_DIR, 'test-artifacts');
// engine in the page, variant, and the Python backend whose outputs the non-fp32 variants must equal
const RUNS = [['onnx', 'fp32'], ['onnx', 'int8', 'onnx'], ['tflite', 'fp32'], ['tflite', 'fp16', 'litert'],
  ['tflite', 'int8', 'litert']];

/** Launch Chromium on the demo server; resolves to {browser, page, server}. */
export async function openDemo() {
  const server = await serve({ bundlesDir: path.join(FIXTURES, 'bundles') });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/demo/`);
  await page.waitForSelector('body[data-state=ready]', { timeout: 60_000 });
  assert.deepEqual(errors, []);
  return { browser, page, server };
}

describe('the demo page in Chromium', { timeout: 170_000 }, () => {
  let demo;
  const agreement = [];
  before(async () => { demo = await openDemo(); });
  after(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(path.join(ARTIFACTS, 'browser-agreement.json'), JSON.stringify(agreement, null, 1) + '\n');
    await demo?.browser.close();
    await demo?.server.close();
  });

  for (const name of BUNDLES) {
    for (const [engine, variant, pythonBackend] of RUNS) {
      test(`${name}: ${engine === 'onnx' ? 'onnxruntime-web' : 'LiteRT.js'} ${variant}`, async () => {
        const items = golden(name);
        const ref = pythonBackend ? pythonReference(name, pythonBackend, variant) : null;
        const want = ref ? ref.single : items.map((x) => x.output);
        // the one-call greedy model where the bundle has one, and the step loop
        for (const oneCall of ['auto', false]) {
          const result = await demo.page.evaluate(([b, e, v, lines, o]) => window.demo.decodeLines(b, e, v, lines, o),
            [name, engine, variant, items.map((x) => x.input), oneCall]);
          const got = result.rows.map((r) => r.error ?? r.output);
          // fp16 and int8 in the browser's kernels: where the Python runtime's two best outputs are a near tie,
          // either may come out (python_reference.py); anywhere else, exactly its output
          const tiesTaken = got.map((o, i) => o !== want[i] && ref?.near_ties?.[i] != null && o === ref.near_ties[i]);
          if (oneCall === 'auto' || result.path !== agreement.at(-1)?.path) {
            agreement.push({ bundle: name, engine: result.engine, variant, path: result.path, items: items.length,
              equal_to_golden: got.filter((o, i) => o === items[i].output).length,
              equal_to_python: pythonBackend ? got.filter((o, i) => o === want[i]).length : null,
              near_ties_taken: tiesTaken.filter(Boolean).length, python_backend: pythonBackend ?? null });
          }
          assert.deepEqual(got.map((o, i) => (tiesTaken[i] ? want[i] : o)), want);
        }
      });
    }
  }

  test('the page is useful on load: the first bundle\'s own examples, decoded; variants the engine has', async () => {
    const { page } = demo;
    const first = [...BUNDLES].sort()[0];
    const examples = golden(first).slice(0, 5);
    assert.equal(await page.inputValue('#input'), examples.map((x) => x.input).join('\n'));
    const rows = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => tr.cells[1].textContent));
    assert.deepEqual(rows, examples.map((x) => x.output));
    assert.equal(await page.inputValue('#engine'), 'onnx');
    assert.deepEqual(await page.$$eval('#variant option', (os) => os.map((o) => o.value)), ['fp32', 'int8']);
  });

  test('the page\'s own controls: pick a bundle and engine, type, decode, see outputs and probabilities', async () => {
    const { page } = demo;
    const items = golden('attention').slice(0, 6);
    await page.selectOption('#bundle', 'attention');
    await page.selectOption('#engine', 'tflite');
    await page.selectOption('#variant', 'fp32');
    await page.fill('#input', [...items.map((x) => x.input), '12a'].join('\n'));
    await page.click('#decode');
    await page.waitForSelector('body[data-state=done]', { timeout: 60_000 });
    const rows = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.deepEqual(rows.map((r) => r[1]), [...items.map((x) => x.output), "InputTextError: input has 1 symbol(s) the model never saw: 'a'"]);
    for (const [i, r] of rows.slice(0, -1).entries()) { // each output word with its probability, then the end marker
      const labels = r[2].split('  ').map((cell) => cell.split('\u00a0')[0]);
      const words = items[i].output.split(' ').filter((w) => w);
      assert.deepEqual(labels.slice(0, words.length), words);
      assert.ok(labels.length === words.length || (labels.length === words.length + 1 && labels.at(-1) === 'end'));
      assert.match(r[2], /^(\S+\u00a0(0\.\d{3}|1\.000))( {2}\S+\u00a0(0\.\d{3}|1\.000))*$/);
      assert.ok(Number(r[3]) >= 0);
    }
    assert.deepEqual(await page.$$eval('#variant option', (os) => os.map((o) => o.value)), ['fp32', 'fp16', 'int8']);
    assert.match(await page.textContent('#status'), /^litert\.js fp32 \((one-call|step-loop)\): 6 of 7 decoded, \d+\.\d\d ms per word on average/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png'), fullPage: true });
  });

  test('an error replaces the results it makes stale', async () => {
    const { page } = demo;
    assert.ok((await page.$$('#results tbody tr')).length > 0);
    await page.selectOption('#engine', 'onnx');
    await page.evaluate(() => { // a variant this bundle does not hold for ONNX (the menu never offers it)
      document.getElementById('variant').add(new Option('fp16', 'fp16'));
      document.getElementById('variant').value = 'fp16';
    });
    await page.click('#decode');
    await page.waitForSelector('body[data-state=error]', { timeout: 60_000 });
    assert.equal((await page.$$('#results tbody tr')).length, 0);
    assert.match(await page.textContent('#status'), /fp16/);
  });
});
