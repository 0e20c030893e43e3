// Node entry: read a bundle folder with node:fs, check sha256 with node:crypto, run it on onnxruntime-node.
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { BundleError, EngineError } from './errors.js';
import { loadBundle } from './bundle.js';
import { onnxRuntimeEngine } from './engines/onnxruntime.js';

export * from './index.js';

/** A readFile for loadBundle(): a regular file inside `dir`, refused unread when over maxBytes. */
export function folderReader(dir) {
  return async (name, maxBytes) => {
    const file = path.join(dir, name);
    let info;
    try { info = await stat(file); } catch {
      throw new BundleError(name === 'manifest.json' ? 'no manifest.json here: is this a bundle written by `s2s export`?' : 'file listed in the manifest is missing: copy the bundle again', file);
    }
    if (!info.isFile()) throw new BundleError('not a regular file', file);
    if (info.size > maxBytes) throw new BundleError(`file is ${info.size} bytes, more than the ${maxBytes} expected (replaced or corrupted: copy the bundle again)`, file);
    const handle = await open(file, 'r');
    try {
      const bytes = new Uint8Array(info.size);
      const { bytesRead } = await handle.read(bytes, 0, info.size, 0);
      return bytes.subarray(0, bytesRead);
    } finally { await handle.close(); }
  };
}

export async function nodeSha256(bytes) { return createHash('sha256').update(bytes).digest('hex'); }

/**
 * Load a bundle folder in node. `engine`: an engine object, or omitted for onnxruntime-node.
 * @param {string} dir @param {{variant?: string, threads?: number, engine?: object, oneCall?: boolean|'auto'}} [options]
 */
export async function loadBundleFromDir(dir, { variant = 'fp32', threads = 1, engine, oneCall = 'auto' } = {}) {
  if (!engine) {
    let ort;
    try { ort = await import('onnxruntime-node'); } catch (e) {
      throw new EngineError(`onnxruntime-node is not installed (npm install onnxruntime-node): ${e.message}`);
    }
    engine = onnxRuntimeEngine(ort.default ?? ort, { name: 'onnxruntime-node', threads });
  }
  return loadBundle({ readFile: folderReader(dir), sha256: nodeSha256, engine, variant, source: dir, oneCall });
}
