// Loading a bundle, whatever holds its files (a folder in node, a URL in a browser, app assets in React Native):
// the manifest is checked, then both model files' sizes and sha256 before any engine sees them, then each model's
// real inputs and outputs (where the engine reports them) and one test run.
import { BundleError, EngineError } from './errors.js';
import { checkModelOps } from './modelcheck.js';
import { BundleManifest, DECODER_STEP, ENCODER, GREEDY, MANIFEST_FILE } from './manifest.js';
import { Seq2SeqDecoder } from './decoder.js';

/** Hex sha256 of bytes with WebCrypto (browsers, node >= 19, React Native with a WebCrypto polyfill). */
export async function webCryptoSha256(bytes) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function checkIO(model, entry, where) {
  const problems = [];
  for (const kind of ['inputs', 'outputs']) {
    const real = model[kind];
    if (!real) continue; // the engine does not report them: the per-run shape check still applies
    const byName = new Map(real.map((t) => [t.name, t]));
    const declared = new Set(entry[kind].map((t) => t.name));
    for (const want of entry[kind]) {
      const got = byName.get(want.name);
      if (!got) { problems.push(`${kind.slice(0, -1)} '${want.name}' is declared in the manifest but the model has none (it has ${JSON.stringify([...byName.keys()].sort().slice(0, 8))})`); continue; }
      if (got.dtype && got.dtype !== want.dtype) problems.push(`${kind.slice(0, -1)} '${want.name}' is ${got.dtype} in the model, ${want.dtype} in the manifest`);
      if (got.shape && JSON.stringify(got.shape) !== JSON.stringify(want.shape)) {
        problems.push(`${kind.slice(0, -1)} '${want.name}' has shape [${got.shape.join(', ')}] in the model, [${want.shape.join(', ')}] in the manifest`);
      }
    }
    const extra = [...byName.keys()].filter((n) => !declared.has(n)).sort();
    if (extra.length) problems.push(`the model has ${kind} ${JSON.stringify(extra.slice(0, 8))} that the manifest does not declare`);
  }
  if (problems.length) throw new BundleError(problems, where);
}

/** Wrap a model so that every run's outputs must have the shapes the contract gives them at that batch. */
function checked(model, entry, where) {
  const declared = entry.outputs.map((t) => [t.name, t.shape]);
  return {
    label: where,
    maxBatch: model.maxBatch,
    release: () => model.release?.(),
    async run(feeds) {
      const out = await model.run(feeds);
      const batch = Object.values(feeds)[0].dims[0];
      for (const [name, shape] of declared) {
        const want = shape.map((d) => (d === -1 ? batch : d));
        const got = out[name];
        if (!got || got.dims.length !== want.length || got.dims.some((d, i) => d !== want[i])
            || got.data.length !== want.reduce((a, b) => a * b, 1)) {
          throw new BundleError(`output '${name}' came back with shape ${got ? `[${got.dims.join(', ')}]` : 'none'} at batch ${batch}; the manifest gives [${want.join(', ')}]`, where);
        }
      }
      return out;
    },
  };
}

function zeroFeeds(entry) {
  const feeds = {};
  for (const t of entry.inputs) {
    const dims = t.shape.map((d) => (d === -1 ? 1 : d));
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[t.name] = { data: t.dtype === 'int32' ? new Int32Array(n) : new Float32Array(n), dims };
  }
  return feeds;
}

/**
 * Load a bundle through injected I/O and an injected engine.
 * @param {object} o
 * @param {(name: string, maxBytes: number) => Promise<Uint8Array>} o.readFile reads a file of the bundle
 *   (reject with BundleError when it is missing; a reader may refuse files over maxBytes before reading them)
 * @param {(bytes: Uint8Array) => Promise<string>} [o.sha256] hex digest (default: WebCrypto)
 * @param {{format: string, name: string, createSession: (bytes: Uint8Array, entry: object) => Promise<object>}} o.engine
 * @param {string} [o.variant] fp32 (default), fp16 (tflite), int8
 * @param {string} [o.source] the bundle's folder or URL, for messages
 * @param {boolean|'auto'} [o.oneCall] use the bundle's one-call greedy model for greedy decodes: 'auto' (default)
 *   when it has one for this format and variant, true to require it, false for the step loop
 */
export async function loadBundle({ readFile, sha256 = webCryptoSha256, engine, variant = 'fp32', source = 'bundle', oneCall = 'auto' }) {
  const where = (name) => `${source.replace(/\/+$/, '')}/${name}`;
  const manifest = BundleManifest.fromJSON(await readFile(MANIFEST_FILE, 16 * 2 ** 20), where(MANIFEST_FILE));
  const entries = [ENCODER, DECODER_STEP].map((role) => manifest.find(role, engine.format, variant));
  if (!entries.every(Boolean)) {
    throw new BundleError(`the bundle has no ${engine.format} ${variant} models (it holds ${engine.format} variants ${JSON.stringify(manifest.variants(engine.format))})`, source);
  }
  const greedy = oneCall === false ? null : manifest.find(GREEDY, engine.format, variant);
  if (oneCall === true && !greedy) {
    throw new BundleError(`the bundle has no one-call greedy model for ${engine.format} ${variant} (re-export it with a seq2seq-edge that writes one, or load with oneCall: false)`, source);
  }
  if (greedy) entries.push(greedy);
  const contents = [];
  for (const entry of entries) { // every size and checksum before any engine sees a byte
    const bytes = await readFile(entry.path, entry.size_bytes);
    if (bytes.byteLength !== entry.size_bytes) {
      throw new BundleError(`model file is ${bytes.byteLength} bytes, the manifest says ${entry.size_bytes} (truncated, replaced or corrupted: copy the bundle again)`, where(entry.path));
    }
    if (await sha256(bytes) !== entry.sha256) {
      throw new BundleError("model file's sha256 does not match the manifest (modified or corrupted: copy the bundle again)", where(entry.path));
    }
    contents.push(bytes);
  }
  entries.forEach((entry, i) => checkModelOps(contents[i], entry, where(entry.path), manifest.loopLimit(entry.role), manifest.rowLimit()));
  const models = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    let model;
    try {
      model = await engine.createSession(contents[i], entry);
    } catch (e) {
      if (e instanceof BundleError || e instanceof EngineError) throw e;
      throw new BundleError(`${engine.name} cannot load this model: ${e?.message ?? e}`, where(entry.path));
    }
    checkIO(model, entry, where(entry.path));
    const wrapped = checked(model, entry, where(entry.path));
    try {
      await wrapped.run(zeroFeeds(entry));
    } catch (e) {
      if (e instanceof BundleError) throw e;
      throw new BundleError(`the model failed a test run on ${engine.name}: ${e?.message ?? e}`, where(entry.path));
    }
    models.push(wrapped);
  }
  return new Seq2SeqDecoder(manifest, models[0], models[1], { engine: engine.name, format: engine.format, variant, source,
    greedy: models[2] ?? null });
}
