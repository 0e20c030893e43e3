// The greedy decode loop, written once against an injected session factory, so one decoder serves
// onnxruntime-node, onnxruntime-web, onnxruntime-react-native and LiteRT.js (see engines/).
//
// A model is any object with `run(feeds) -> Promise<outputs>`, both keyed by the manifest's tensor names, each
// tensor `{data: TypedArray, dims: number[]}`; it may say `maxBatch` (rows it takes per call).
import { BundleError, InputTextError, OptionError } from './errors.js';
import { NAMES } from './manifest.js';
import { END_ID, PAD_ID, START_ID, codePointLength, detokenize, pyRepr } from './text.js';

const TINY = 1e-45;

/** One decoded output. `tokenProbs` has one entry more than `tokens` when `finished` (the end marker's). */
export class DecodeResult {
  constructor(text, tokens, tokenProbs, finished) {
    this.text = text;
    this.tokens = Object.freeze(tokens);
    this.tokenProbs = Object.freeze(tokenProbs);
    this.finished = finished;
    Object.freeze(this);
  }

  /** Sequence log-probability: the sum of log(max(p, 1e-45)) over tokenProbs. */
  get score() {
    let total = 0;
    for (const p of this.tokenProbs) total += p > TINY ? Math.log(p) : Math.log(TINY);
    return total;
  }

  toJSON() {
    return { text: this.text, tokens: this.tokens, tokenProbs: this.tokenProbs, finished: this.finished, score: this.score };
  }
}

const EMPTY = new DecodeResult('', [], [], true);

/** A probability may exceed 1 by float32 rounding of a softmax, never by more (the Python runtime's PROB_SLACK). */
const PROB_SLACK = 1e-5;

/** Refuse what no honest model emits, as the Python runtime does: a reserved id other than the end marker (pad,
 * start) among a row's tokens, or a chosen token's probability that is not finite or outside [0, 1]. A row's
 * outputs after its end id are not looked at. */
export function checkOutputs(ids, probs, where) {
  ids.forEach((row, r) => {
    const end = row.indexOf(END_ID) >= 0 ? row.indexOf(END_ID) : row.length;
    for (let i = 0; i < end; i++) {
      if (row[i] === PAD_ID || row[i] === START_ID) {
        throw new BundleError(`the model chose the reserved id ${row[i]} at step ${i + 1} of item ${r + 1} (only the end id ${END_ID} may end an output)`, where);
      }
    }
    for (let i = 0; i <= Math.min(end, row.length - 1); i++) {
      const p = probs[r][i];
      if (!Number.isFinite(p) || p < 0 || p > 1 + PROB_SLACK) {
        throw new BundleError(`the model gave a probability of ${Number.isNaN(p) ? 'nan' : p === Infinity ? 'inf' : p === -Infinity ? '-inf' : p} (not a probability in [0, 1])`, where);
      }
    }
  });
}

function preview(source, limit = 40) {
  if (typeof source !== 'string') return source === null ? 'null' : typeof source;
  const n = codePointLength(source);
  return n <= limit ? pyRepr(source) : `${pyRepr(Array.from(source).slice(0, limit).join(''))}... (${n} characters)`;
}

/** The largest batch size, as in the Python runtime. */
export const MAX_BATCH_SIZE = 4096;
const DEFAULT_OPTIONS = Object.freeze({ batchSize: 32, maxOutputLen: null, skipUnknown: false });
const PYTHON_ONLY = new Set(['beamSize', 'nBest', 'lengthPenalty']);

/**
 * The decode options every method takes, checked (an OptionError names the option) and with their defaults:
 * `batchSize` (inputs per model call, 1 to 4096; default 32), `maxOutputLen` (1 to the bundle's trained maximum;
 * default that maximum) and `skipUnknown` (drop input symbols the model never saw; default false). The names of
 * Python's DecodeOptions; beam search is in the Python runtime only.
 */
export function decodeOptions(options = {}) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`options must be an object, not ${options === null ? 'null' : typeof options}`);
  }
  for (const key of Object.keys(options)) {
    if (PYTHON_ONLY.has(key)) throw new OptionError(`${key}: beam search is in the Python runtime only; this runtime decodes greedily`);
    if (!(key in DEFAULT_OPTIONS)) throw new OptionError(`unknown decode option '${key}' (the options: ${Object.keys(DEFAULT_OPTIONS).join(', ')})`);
  }
  const o = { ...DEFAULT_OPTIONS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1 || o.batchSize > MAX_BATCH_SIZE) {
    throw new OptionError(`batchSize must be between 1 and ${MAX_BATCH_SIZE}, got ${String(o.batchSize)}`);
  }
  if (o.maxOutputLen !== null && (!Number.isInteger(o.maxOutputLen) || o.maxOutputLen < 1)) {
    throw new OptionError(`maxOutputLen must be an integer of at least 1, got ${String(o.maxOutputLen)}`);
  }
  if (typeof o.skipUnknown !== 'boolean') throw new OptionError(`skipUnknown must be true or false, got ${String(o.skipUnknown)}`);
  return Object.freeze(o);
}

export class Seq2SeqDecoder {
  /**
   * @param {import('./manifest.js').BundleManifest} manifest
   * @param {{run: Function}} encoder @param {{run: Function}} step
   * @param {{engine?: string, format?: string, variant?: string, source?: string, greedy?: object}} [info]
   *   `greedy`: the bundle's one-call greedy model (run({input_ids}) -> {output_ids, output_probs}); it then
   *   decodes everything but stream(), whose results are the step loop's (the export's parity gate checks it).
   */
  constructor(manifest, encoder, step, info = {}) {
    this.manifest = manifest;
    this.encoder = encoder;
    this.step = step;
    this.engine = info.engine ?? 'custom';
    this.format = info.format ?? null;
    this.variant = info.variant ?? null;
    this.source = info.source ?? null;
    this.greedy = info.greedy ?? null;
    this.stepInputs = manifest.io('decoder_step').inputs.map((t) => t.name);
    this.maxBatch = Math.min(encoder.maxBatch ?? Infinity, step.maxBatch ?? Infinity, this.greedy?.maxBatch ?? Infinity);
  }

  /** How decode() runs: "one-call" (the greedy model) or "step-loop" (the encoder, then one step per token). */
  get decodePath() { return this.greedy ? 'one-call' : 'step-loop'; }

  /** The longest output, in tokens, the model was trained to produce. */
  get maxOutputLen() { return this.manifest.maxOutputTokens; }

  toString() {
    return `Seq2SeqDecoder(${this.source ?? 'bundle'}, engine=${this.engine}, ${this.format} ${this.variant}, ${this.decodePath})`;
  }

  // Every method takes one options object (see decodeOptions): { batchSize, maxOutputLen, skipUnknown }.
  /** Decode one text; resolves to the output string. */
  async decode(source, options = {}) { return (await this.decodeResult(source, options)).text; }

  /** Decode one text, with per-token probabilities and the score. */
  async decodeResult(source, options = {}) {
    const o = decodeOptions(options);
    const limit = this.#limit(o.maxOutputLen);
    const ids = this.manifest.encodeInput(source, { skipUnknown: o.skipUnknown });
    return (await this.#decode([ids], 1, limit))[0];
  }

  /** decodeBatchResults, the texts only. */
  async decodeBatch(sources, options = {}) { return (await this.decodeBatchResults(sources, options)).map((r) => r.text); }

  /** Decode many texts, `batchSize` rows at a time through the models: a DecodeResult per input, in input order.
   * An input that cannot be encoded throws before any decoding, naming its position (from 1) and text. */
  async decodeBatchResults(sources, options = {}) {
    if (typeof sources === 'string' || !sources || typeof sources[Symbol.iterator] !== 'function') {
      throw new TypeError('decodeBatch takes an array of strings, not one string; use decode()');
    }
    const o = decodeOptions(options);
    const limit = this.#limit(o.maxOutputLen);
    const texts = [...sources];
    const encoded = texts.map((s, i) => {
      try { return this.manifest.encodeInput(s, { skipUnknown: o.skipUnknown }); } catch (e) {
        // counted from 1, as the CLI counts lines
        if (e instanceof InputTextError) throw new InputTextError(`item ${i + 1} of ${texts.length} (${preview(s)}): ${e.message}`);
        if (e instanceof TypeError) throw new TypeError(`item ${i + 1} of ${texts.length} (${preview(s)}): ${e.message}`);
        throw e;
      }
    });
    return this.#decode(encoded, o.batchSize, limit);
  }

  /** Decode inputs that are already token ids (manifest.encodeInput): decodeBatchResults without the text. */
  async decodeIds(idLists, options = {}) {
    const o = decodeOptions(options);
    const limit = this.#limit(o.maxOutputLen);
    return this.#decode(idLists.map((ids) => [...ids]), o.batchSize, limit);
  }

  /** The output text piece by piece as it is decoded (an async iterator): the pieces joined equal decode().
   * Each piece is a token with the separator before it (" " before every word but the first of `space` targets). */
  async *stream(source, options = {}) {
    const o = decodeOptions(options);
    const limit = this.#limit(o.maxOutputLen);
    const ids = this.manifest.encodeInput(source, { skipUnknown: o.skipUnknown });
    if (!ids.length) return;
    const vocab = this.manifest.targetVocab;
    const separator = detokenize(['', ''], vocab.tokenization);
    let emitted = 0;
    for await (const { chosen } of this.steps(this.#pad([ids]), 1, limit)) {
      if (chosen[0] === END_ID || emitted === limit) return;
      yield (emitted ? separator : '') + vocab.tokens[chosen[0]];
      emitted++;
    }
  }

  /** Release the engines' sessions. */
  async release() {
    await this.encoder.release?.();
    await this.step.release?.();
  }

  // -- the loop --------------------------------------------------------------------------------------------
  #limit(maxOutputLen) {
    if (maxOutputLen === null) return this.maxOutputLen;
    if (maxOutputLen > this.maxOutputLen) {
      throw new OptionError(`maxOutputLen must be between 1 and the trained maximum ${this.maxOutputLen}, got ${maxOutputLen}`);
    }
    return maxOutputLen;
  }

  #pad(idLists) {
    const T = this.manifest.encoderTimeSteps;
    const data = new Int32Array(idLists.length * T).fill(PAD_ID);
    idLists.forEach((ids, r) => data.set(ids, r * T));
    return { data, dims: [idLists.length, T] };
  }

  /** The encoder's outputs that the first step takes, and prev_token = the start id. */
  async firstFeeds(inputIds) {
    const encoded = await this.encoder.run({ [NAMES.input_ids]: inputIds });
    const feeds = {};
    for (const name of this.stepInputs) if (name in encoded) feeds[name] = encoded[name];
    const batch = inputIds.dims[0];
    feeds[NAMES.prev_token] = { data: new Int32Array(batch).fill(START_ID), dims: [batch] };
    return feeds;
  }

  /** The greedy loop, one step at a time: yields {chosen: Int32Array, probs: Float32Array [batch*vocab]}.
   * Runs at most limit + 1 steps, until every row chose the end id. */
  async *steps(inputIds, batch, limit) {
    const feeds = await this.firstFeeds(inputIds);
    const vocab = this.manifest.targetVocab.size;
    const ended = new Uint8Array(batch);
    for (let s = 0; s <= limit; s++) {
      const out = await this.step.run(feeds);
      const probs = out[NAMES.probs].data;
      const chosen = new Int32Array(batch);
      let allEnded = true;
      for (let r = 0; r < batch; r++) {
        let best = 0;
        let bestP = -Infinity;
        const base = r * vocab;
        for (let v = 0; v < vocab; v++) {
          const p = probs[base + v];
          if (p !== p) { best = v; break; } // NaN: numpy's argmax takes the first NaN, and so does this loop
          if (p > bestP) { bestP = p; best = v; } // the first maximum, as numpy's argmax
        }
        chosen[r] = best;
        if (best === END_ID) ended[r] = 1;
        if (!ended[r]) allEnded = false;
      }
      yield { chosen, probs };
      if (allEnded) return;
      feeds[NAMES.prev_token] = { data: chosen, dims: [batch] };
      for (const [from, to] of [[NAMES.next_state_h, NAMES.state_h], [NAMES.next_state_c, NAMES.state_c]]) feeds[to] = out[from];
    }
  }

  async #decode(encoded, batchSize, limit) {
    const results = new Array(encoded.length).fill(EMPTY);
    const pending = [];
    encoded.forEach((ids, i) => { if (ids.length) pending.push(i); });
    const rows = Math.min(batchSize, this.maxBatch);
    for (let start = 0; start < pending.length; start += rows) {
      const chunk = pending.slice(start, start + rows);
      const inputIds = this.#pad(chunk.map((i) => encoded[i]));
      const found = this.greedy ? await this.#oneCallResults(inputIds, chunk.length, limit)
        : await this.#results(inputIds, chunk.length, limit);
      chunk.forEach((i, k) => { results[i] = found[k]; });
    }
    return results;
  }

  async #results(inputIds, batch, limit) {
    const vocab = this.manifest.targetVocab;
    const ids = Array.from({ length: batch }, () => []);
    const probs = Array.from({ length: batch }, () => []);
    for await (const step of this.steps(inputIds, batch, limit)) {
      for (let r = 0; r < batch; r++) {
        ids[r].push(step.chosen[r]);
        probs[r].push(step.probs[r * vocab.size + step.chosen[r]]);
      }
    }
    checkOutputs(ids, probs, this.step.label ?? 'decoder step');
    return this.#rows(ids, probs, limit);
  }

  /** The greedy model: every row's ids and probabilities in one call, [batch, maxOutputTokens + 1]. */
  async #oneCallResults(inputIds, batch, limit) {
    const out = await this.greedy.run({ [NAMES.input_ids]: inputIds });
    const width = this.maxOutputLen + 1;
    const allIds = out[NAMES.output_ids].data;
    const allProbs = out[NAMES.output_probs].data;
    const vocabSize = this.manifest.targetVocab.size;
    const ids = [];
    const probs = [];
    for (let r = 0; r < batch; r++) {
      const row = Array.from(allIds.subarray(r * width, r * width + limit + 1));
      if (row.some((i) => i < 0 || i >= vocabSize)) throw new BundleError('the greedy model returned ids outside the target vocabulary', 'greedy model');
      ids.push(row);
      probs.push(Array.from(allProbs.subarray(r * width, r * width + limit + 1)));
    }
    checkOutputs(ids, probs, this.greedy.label ?? 'greedy model');
    return this.#rows(ids, probs, limit);
  }

  /** Results from the ids chosen at each step and their probabilities, per row: a row ends at its first end id;
   * without one it was cut at `limit` tokens. */
  #rows(ids, probs, limit) {
    const vocab = this.manifest.targetVocab;
    return ids.map((row, r) => {
      const n = row.indexOf(END_ID);
      const finished = n >= 0;
      const count = finished ? n : limit;
      const tokens = row.slice(0, count).map((t) => vocab.tokens[t]);
      return new DecodeResult(detokenize(tokens, vocab.tokenization), tokens, probs[r].slice(0, finished ? n + 1 : count), finished);
    });
  }
}
