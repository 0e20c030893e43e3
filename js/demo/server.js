// The demo's static server: a few lines of node, no build step, no CDN. Serves this package (src/, demo/, and the
// engines' JavaScript and wasm files from node_modules/) and the bundle folders found in BUNDLES_DIR at
// /bundles/<name>/ (with /bundles/index.json listing them).
//   node demo/server.js [BUNDLES_DIR] [PORT]      (default: $S2S_FIXTURES/bundles, port 8315)
import { createServer } from 'node:http';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.css': 'text/css' };

// Cross-origin isolation: gives the page performance.now() at microsecond resolution (the benchmark's timer).
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/** Start the server; resolves to {url, close()}. */
export function serve({ bundlesDir, port = 0, host = '127.0.0.1' } = {}) {
  const bundles = path.resolve(bundlesDir);
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    let rel = decodeURIComponent(url.pathname);
    if (rel === '/') { res.writeHead(302, { location: '/demo/', ...ISOLATION }); res.end(); return; }
    if (rel.endsWith('/')) rel += 'index.html';
    let file;
    if (rel === '/bundles/index.json') {
      const names = readdirSync(bundles).filter((n) => existsSync(path.join(bundles, n, 'manifest.json'))).sort();
      res.writeHead(200, { 'content-type': TYPES['.json'], ...ISOLATION });
      res.end(JSON.stringify(names));
      return;
    }
    if (rel.startsWith('/bundles/')) file = path.join(bundles, rel.slice('/bundles/'.length));
    else if (/^\/(src|demo|bench|node_modules)\//.test(rel)) file = path.join(ROOT, rel);
    const inside = file && (file.startsWith(bundles + path.sep) || file.startsWith(ROOT + path.sep));
    if (!inside || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404); res.end('not found'); return; }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': statSync(file).size, 'cache-control': 'no-store', ...ISOLATION });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, host, () => {
    resolve({ url: `http://${host}:${server.address().port}`, close: () => new Promise((r) => server.close(r)) });
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? (process.env.S2S_FIXTURES && path.join(process.env.S2S_FIXTURES, 'bundles'));
  if (!dir || !existsSync(dir)) {
    console.error('usage: node demo/server.js BUNDLES_DIR [PORT]  (a folder holding bundle folders)');
    process.exit(2);
  }
  const { url } = await serve({ bundlesDir: dir, port: Number(process.argv[3] ?? 8315) });
  console.log(`demo at ${url}/demo/ (Ctrl-C stops it)`);
}
