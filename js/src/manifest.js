// manifest.json: checked against the JSON Schema the Python side writes (manifest.schema.json), then against the
// rules that relate its fields (the same as runtime/manifest.py), then parsed into a frozen, typed object.
import schema from './manifest.schema.json' with { type: 'json' };
import { compileSchema } from './schema.js';
import { BundleError, InputTextError } from './errors.js';
import { Vocabulary, codePointLength, normalize, pyRepr } from './text.js';

export const SCHEMA = schema;
export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = schema.properties.format.const;
export const MANIFEST_VERSION = schema.properties.version.const;
/** The bundle contract's tensor names and special ids, from the schema's x-contract. */
export const NAMES = Object.freeze({ ...schema['x-contract'].names });
export const RECURRENT = Object.freeze(schema['x-contract'].recurrent.map((p) => Object.freeze([...p])));
export const ENCODER = 'encoder';
export const DECODER_STEP = 'decoder_step';
/** Optional: the encoder and the whole greedy loop in one model (input_ids -> output_ids, output_probs). */
export const GREEDY = 'greedy';
export const ATTENTION_ARCHITECTURE = 'lstm-attention';
export const SEED_ARCHITECTURE = 'lstm-encoder-decoder';
/** The manifest is read only up to this size (runtime/manifest.py MAX_MANIFEST_BYTES). */
export const MAX_MANIFEST_BYTES = 16 * 2 ** 20;

const validate = compileSchema(schema);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The inputs and outputs every model of `role` must have (runtime/manifest.py expected_io). */
export function expectedIO(role, latent, steps, targetVocab, encoderOutputDim = null, maxOutputTokens = 1) {
  const state = [-1, latent];
  const t = (name, dtype, shape) => ({ name, dtype, shape });
  if (role === GREEDY) {
    return { inputs: [t(NAMES.input_ids, 'int32', [-1, steps])],
      outputs: [t(NAMES.output_ids, 'int32', [-1, maxOutputTokens + 1]), t(NAMES.output_probs, 'float32', [-1, maxOutputTokens + 1])] };
  }
  const attention = encoderOutputDim == null ? [] : [
    t(NAMES.encoder_outputs, 'float32', [-1, steps, encoderOutputDim]),
    t(NAMES.encoder_mask, 'float32', [-1, steps])];
  if (role === ENCODER) {
    return { inputs: [t(NAMES.input_ids, 'int32', [-1, steps])],
      outputs: [t(NAMES.state_h, 'float32', state), t(NAMES.state_c, 'float32', state), ...attention] };
  }
  return {
    inputs: [t(NAMES.prev_token, 'int32', [-1]), t(NAMES.state_h, 'float32', state), t(NAMES.state_c, 'float32', state),
      ...attention],
    outputs: [t(NAMES.probs, 'float32', [-1, targetVocab]), t(NAMES.next_state_h, 'float32', state),
      t(NAMES.next_state_c, 'float32', state)],
  };
}

export function formatSpecs(specs) {
  return '[' + [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((s) => `${s.name}:${s.dtype}[${s.shape.join(', ')}]`).join(', ') + ']';
}

/** Every problem of a parsed manifest.json (an empty list when it is valid). Never throws. */
export function manifestProblems(d) {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) return ['manifest must be a JSON object'];
  if ('version' in d && d.version !== MANIFEST_VERSION && d.format === MANIFEST_FORMAT) {
    return [`manifest format version ${JSON.stringify(d.version)} is not supported by this runtime (it reads version `
      + `${MANIFEST_VERSION}); upgrade @seq2seq-edge/runtime or re-export the bundle`];
  }
  const problems = validate(d);
  if (problems.length) return problems;
  const prep = d.preprocessing;
  for (const side of ['input', 'target']) {
    const vocab = prep[side].vocabulary;
    const seen = new Set();
    const dupes = new Set();
    for (const t of vocab) (seen.has(t) ? dupes : seen).add(t);
    if (dupes.size) problems.push(`${side}.vocabulary has duplicate entries: ${[...dupes].sort().slice(0, 5).map(pyRepr).join(', ')}`);
    const bad = vocab.filter((t) => LONE_SURROGATE.test(t)).length;
    if (bad) problems.push(`${side}.vocabulary has ${bad} entries that are not valid Unicode (lone surrogates)`);
  }
  const unknown = prep.input.unknown_token;
  if (unknown !== undefined && !prep.input.vocabulary.includes(unknown)) {
    problems.push(`input.unknown_token ${pyRepr(unknown)} is not an entry of input.vocabulary`);
  }
  const m = d.model;
  if (m.encoder_time_steps < prep.input.max_tokens) {
    problems.push(`model.encoder_time_steps (${m.encoder_time_steps}) is below input.max_tokens (${prep.input.max_tokens})`);
  }
  const attention = m.architecture === ATTENTION_ARCHITECTURE;
  const contract = {};
  for (const role of [ENCODER, DECODER_STEP, GREEDY]) {
    contract[role] = expectedIO(role, m.latent_dim, m.encoder_time_steps, prep.target.vocabulary.length,
      attention ? m.encoder_output_dim : null, prep.target.max_tokens);
  }
  const seen = new Set();
  d.models.forEach((e, i) => {
    const where = `models[${i}] ('${e.path}')`;
    const key = `${e.role}/${e.format}/${e.variant}`;
    if (seen.has(key)) problems.push(`${where}: a second ${key} model`);
    seen.add(key);
    const want = contract[e.role];
    if (!want) return; // a role this runtime does not use (e.g. a one-call greedy model): ignored, not refused
    for (const kind of ['inputs', 'outputs']) {
      const got = formatSpecs(e[kind]);
      if (got !== formatSpecs(want[kind])) problems.push(`${where}: ${kind} ${got} contradict the contract ${formatSpecs(want[kind])}`);
    }
  });
  return problems;
}

/** A checked manifest: the fields a decode loop needs, frozen. */
export class BundleManifest {
  constructor(d) {
    const prep = d.preprocessing;
    this.raw = d;
    this.architecture = d.model.architecture ?? SEED_ARCHITECTURE;
    this.latentDim = d.model.latent_dim;
    this.encoderTimeSteps = d.model.encoder_time_steps;
    this.encoderOutputDim = d.model.encoder_output_dim ?? null;
    this.inputVocab = new Vocabulary(prep.input.vocabulary, prep.input.tokenization, prep.input.unknown_token ?? null);
    this.targetVocab = new Vocabulary(prep.target.vocabulary, prep.target.tokenization);
    this.maxInputTokens = prep.input.max_tokens;
    this.maxOutputTokens = prep.target.max_tokens;
    this.models = Object.freeze(d.models.map((e) => Object.freeze({ ...e })));
    this.runtimesTested = Object.freeze({ ...(d.runtimes_tested ?? {}) });
    Object.freeze(this);
  }

  /** Parse and check; throws BundleError listing every problem. */
  static fromObject(d, where) {
    const problems = manifestProblems(d);
    if (problems.length) throw new BundleError(problems, where);
    return new BundleManifest(d);
  }

  /** Parse manifest.json's bytes (UTF-8) or text. */
  static fromJSON(bytesOrText, where) {
    const size = typeof bytesOrText === 'string' ? bytesOrText.length : bytesOrText.byteLength;
    if (size > MAX_MANIFEST_BYTES) throw new BundleError(`manifest is ${size} bytes, more than the ${MAX_MANIFEST_BYTES} allowed`, where);
    let text = bytesOrText;
    if (typeof text !== 'string') {
      try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytesOrText); } catch {
        throw new BundleError('manifest is not valid UTF-8', where);
      }
    }
    let d;
    try { d = JSON.parse(text); } catch (e) { throw new BundleError(`manifest is not valid JSON (${e.message})`, where); }
    return BundleManifest.fromObject(d, where);
  }

  /** Characters an input may have before it is refused unread (preprocessing.py max_input_chars). */
  get maxInputChars() { return this.maxInputTokens * 64 + 1024; }

  find(role, format, variant) {
    return this.models.find((m) => m.role === role && m.format === format && m.variant === variant) ?? null;
  }

  /** The most times any one loop of a `role` model may run (Python's BundleManifest.loop_limit): the encoder's
   * loops run over input positions, the greedy model's over output steps; the decoder step has no loop. */
  loopLimit(role) {
    if (role === ENCODER) return this.encoderTimeSteps;
    if (role === GREEDY) return Math.max(this.encoderTimeSteps, this.maxOutputTokens + 1);
    return 0;
  }

  /** The most elements any tensor of this bundle's models may hold per batch row (Python's BundleManifest.row_limit,
   * the shape proof's bound): four times the longest sequence times the widest vector. */
  rowLimit() {
    const longest = Math.max(this.encoderTimeSteps, this.maxOutputTokens + 1);
    const widest = Math.max(this.latentDim, this.encoderOutputDim ?? 0, this.targetVocab.tokens.length, this.inputVocab.tokens.length);
    return 4 * longest * widest;
  }

  /** Variants of `format` with both an encoder and a decoder step. */
  variants(format) {
    const order = format === 'tflite' ? ['fp32', 'fp16', 'int8'] : ['fp32', 'int8'];
    return order.filter((v) => this.find(ENCODER, format, v) && this.find(DECODER_STEP, format, v));
  }

  io(role) {
    return expectedIO(role, this.latentDim, this.encoderTimeSteps, this.targetVocab.size, this.encoderOutputDim,
      this.maxOutputTokens);
  }

  /** Token ids of one input: type, length (before any work), NFC, vocabulary, token limit. */
  encodeInput(source, { skipUnknown = false } = {}) {
    if (typeof source !== 'string') throw new TypeError(`input must be a string, not ${source === null ? 'null' : typeof source}`);
    if (source.length > this.maxInputChars && codePointLength(source) > this.maxInputChars) {
      throw new InputTextError(`input is ${codePointLength(source)} characters long; the model takes at most ${this.maxInputTokens} tokens`);
    }
    const ids = this.inputVocab.encode(normalize(source), { skipUnknown });
    if (ids.length > this.maxInputTokens) {
      throw new InputTextError(`input is ${ids.length} tokens long; the model takes at most ${this.maxInputTokens}`);
    }
    return ids;
  }
}
