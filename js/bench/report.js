// Writes bench/results/results.md from bench/results/node.json and browser.json (the harnesses' own output):
// per-word latency (p50, batch 1) and cold start of every engine, the Python runtimes measured in the node run
// beside them. Nobody types a figure.   node bench/report.js
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
const runs = ['node', 'browser'].map((name) => path.join(HERE, `${name}.json`)).filter(existsSync)
  .map((file) => JSON.parse(readFileSync(file, 'utf8')));
if (!runs.length) {
  console.error('no results: run node bench/node.js and node bench/browser.js first');
  process.exit(1);
}
const fmt = (x, digits = 3) => (x === undefined || x === null ? '–' : Number(x).toFixed(digits));
const lines = ['# JavaScript runtime: per-word latency and cold start', ''];
for (const run of runs) {
  const m = run.machine;
  lines.push(`- \`${run.harness}\` (${run.date}): ${m.cpu}, ${m.cores} cores, ${m.platform}, ` +
    `${m.node ? `node ${m.node}` : m.browser}; ${Object.entries(run.packages).map(([k, v]) => `${k} ${v}`).join(', ')}. ` +
    `${run.protocol}.`);
}
lines.push('', '| bundle | runtime | engine | variant | path | ms/word p50 | p90 | cold start ms |',
  '|---|---|---|---|---|---|---|---|');
const rows = runs.flatMap((run) => run.rows);
rows.sort((a, b) => a.bundle.localeCompare(b.bundle) || a.runtime.localeCompare(b.runtime) ||
  a.engine.localeCompare(b.engine) || a.variant.localeCompare(b.variant) || a.path.localeCompare(b.path));
for (const r of rows) {
  lines.push(`| ${r.bundle} | ${r.runtime} | ${r.engine} | ${r.variant} | ${r.path} | ${fmt(r.per_word_ms_p50)} | ` +
    `${fmt(r.per_word_ms_p90)} | ${fmt(r.cold_start_ms, 0)} |`);
}
writeFileSync(path.join(HERE, 'results.md'), lines.join('\n') + '\n');
console.log(path.join(HERE, 'results.md'));
