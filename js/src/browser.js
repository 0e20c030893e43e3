// Browser (and React Native) I/O: a bundle served over HTTP(S), read with fetch, checked with WebCrypto.
import { BundleError } from './errors.js';
import { loadBundle, webCryptoSha256 } from './bundle.js';

/** A readFile for loadBundle() over fetch: `base` is the bundle folder's URL. */
export function urlReader(base, fetchImpl = globalThis.fetch) {
  const root = String(base).endsWith('/') ? String(base) : `${base}/`;
  return async (name, maxBytes) => {
    const url = new URL(name, new URL(root, globalThis.location?.href ?? undefined)).href;
    let response;
    try { response = await fetchImpl(url); } catch (e) { throw new BundleError(`cannot fetch (${e.message})`, url); }
    if (!response.ok) throw new BundleError(`HTTP ${response.status}: ${name === 'manifest.json' ? 'no bundle at this URL' : 'file listed in the manifest is missing'}`, url);
    const length = Number(response.headers.get('content-length'));
    if (length > maxBytes) throw new BundleError(`file is ${length} bytes, more than the ${maxBytes} expected`, url);
    return new Uint8Array(await response.arrayBuffer());
  };
}

/** Load a bundle served at `base` with an engine (onnxRuntimeEngine(ort) or liteRtEngine(litert)). */
export async function loadBundleFromUrl(base, { engine, variant = 'fp32', oneCall = 'auto' }) {
  return loadBundle({ readFile: urlReader(base), sha256: webCryptoSha256, engine, variant, source: String(base), oneCall });
}
