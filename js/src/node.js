// Node entry: read a bundle folder with node:fs, check sha256 with node:crypto, run it on onnxruntime-node.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import path from 'node:path';
import { BundleError, EngineError } from './errors.js';
import { loadBundle } from './bundle.js';
import { onnxRuntimeEngine } from './engines/onnxruntime.js';

export * from './index.js';

/** A readFile for loadBundle(): a regular file inside `dir`, refused unread when over maxBytes. As the Python
 * runtime's reader: a symbolic link (to /etc/passwd, to a model outside the bundle), a FIFO (which would block the
 * load), a device or a folder is refused before a byte is read; the size is taken from the opened file itself,
 * and the read stops there. */
export function folderReader(dir) {
  const flags = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
  return async (name, maxBytes) => {
    const file = path.join(dir, name);
    let link;
    try { link = await lstat(file); } catch {
      throw new BundleError(name === 'manifest.json' ? 'no manifest.json here: is this a bundle written by `s2s export`?' : 'file listed in the manifest is missing: copy the bundle again', file);
    }
    if (link.isSymbolicLink()) throw new BundleError('is a symbolic link; bundle files must be regular files inside the bundle folder', file);
    let handle;
    try { handle = await open(file, flags); } catch (e) {
      throw new BundleError(e.code === 'ELOOP' ? 'is a symbolic link; bundle files must be regular files inside the bundle folder' : `cannot read it (${e.code ?? e.message})`, file);
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new BundleError(`is ${kind(info)}, not a regular file`, file);
      if (info.size > maxBytes) throw new BundleError(`file is ${info.size} bytes, more than the ${maxBytes} expected (replaced or corrupted: copy the bundle again)`, file);
      const bytes = new Uint8Array(info.size);
      let got = 0;
      while (got < info.size) {
        const { bytesRead } = await handle.read(bytes, got, info.size - got, got);
        if (!bytesRead) break;
        got += bytesRead;
      }
      return bytes.subarray(0, got);
    } finally { await handle.close(); }
  };
}

function kind(info) {
  if (info.isDirectory()) return 'a folder';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
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
