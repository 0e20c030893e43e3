// Types of @seq2seq-edge/runtime (the code is plain ESM JavaScript in this folder).

export class Seq2SeqEdgeError extends Error {}
/** Text that cannot be encoded: symbols the model never saw, too long, not valid Unicode. */
export class InputTextError extends Seq2SeqEdgeError {}
/** A bundle or manifest that is missing, malformed, tampered with, or contradicts its model files. */
export class BundleError extends Seq2SeqEdgeError {
  constructor(problems: string | string[], where?: string);
  readonly problems: string[];
  readonly where: string | null;
}
/** The engine cannot run here, or cannot run this model variant. */
export class EngineError extends Seq2SeqEdgeError {}
/** A bad option (batchSize, maxOutputLen). */
export class OptionError extends Seq2SeqEdgeError {}

/** A tensor as the decoder passes it to engines: row-major data and its dimensions. */
export interface TensorData { data: Int32Array | Float32Array; dims: number[] }
export interface TensorSpec { name: string; dtype: string; shape: number[] }
/** One model file's entry in manifest.json. */
export interface ModelEntry extends Record<string, unknown> {
  role: string; format: 'tflite' | 'onnx'; variant: 'fp32' | 'fp16' | 'int8'; path: string; sha256: string;
  size_bytes: number; inputs: TensorSpec[]; outputs: TensorSpec[]; signature?: string;
}
/** A loaded model: what an engine's createSession returns. */
export interface Model {
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>>;
  /** Real inputs and outputs, when the engine reports them (checked against the manifest). */
  inputs?: Array<{ name: string; dtype?: string; shape?: number[] | null }>;
  outputs?: Array<{ name: string; dtype?: string; shape?: number[] | null }>;
  /** Rows per call the model takes (LiteRT.js: 1). */
  maxBatch?: number;
  release?(): unknown;
}
/** The injected session factory: one per engine. */
export interface Engine {
  name: string;
  format: 'onnx' | 'tflite';
  createSession(bytes: Uint8Array, entry: ModelEntry): Promise<Model>;
}

export type Variant = 'fp32' | 'fp16' | 'int8';
/** The options every decode method takes (Python's DecodeOptions in JavaScript's spelling); an unknown name, a
 * value out of bounds or a beam-search option (Python only) is an OptionError. */
export interface DecodeOptions {
  /** Inputs per model call, 1 to 4096 (default 32). */
  batchSize?: number;
  /** Stop after this many output tokens (1 to the trained maximum). */
  maxOutputLen?: number | null;
  /** Leave out input symbols the model never saw instead of throwing. */
  skipUnknown?: boolean;
}
/** @deprecated the same as DecodeOptions */
export type BatchOptions = DecodeOptions;
export const MAX_BATCH_SIZE: 4096;
/** Check decode options and fill in their defaults. */
export function decodeOptions(options?: DecodeOptions): Readonly<Required<DecodeOptions>>;
/** A model file's operators and proven loop bounds, read from its bytes; throws BundleError for anything a bundle
 * model may never be (the Python runtime's checks, with its messages). */
export function inspectModel(format: 'onnx' | 'tflite', bytes: Uint8Array): { ops: Set<string>; bounds: bigint[] };
/** Throws BundleError naming `where` unless the model's operators are its role's and the manifest entry's, each
 * loop is proved to run at most `loopLimit` times, and (with `rowLimit`, BundleManifest.rowLimit()) every tensor's
 * shape is proved from the entry's input shapes within that many elements per batch row. */
export function checkModelOps(bytes: Uint8Array, entry: { format: string; role: string; ops: string[]; inputs?: { name: string; shape: number[] }[] }, where: string, loopLimit: number, rowLimit?: number | null): void;

export class DecodeResult {
  readonly text: string;
  readonly tokens: readonly string[];
  /** One probability per token, then the end marker's when finished. */
  readonly tokenProbs: readonly number[];
  readonly finished: boolean;
  /** Sum of log(max(p, 1e-45)) over tokenProbs. */
  readonly score: number;
}

export class BundleManifest {
  static fromObject(d: unknown, where?: string): BundleManifest;
  static fromJSON(bytesOrText: Uint8Array | string, where?: string): BundleManifest;
  readonly architecture: string;
  readonly latentDim: number;
  readonly encoderTimeSteps: number;
  readonly encoderOutputDim: number | null;
  readonly maxInputTokens: number;
  readonly maxOutputTokens: number;
  readonly models: readonly ModelEntry[];
  readonly raw: Record<string, unknown>;
  find(role: string, format: string, variant: string): ModelEntry | null;
  variants(format: 'onnx' | 'tflite'): Variant[];
  encodeInput(source: string, options?: { skipUnknown?: boolean }): number[];
}

export class Seq2SeqDecoder {
  constructor(manifest: BundleManifest, encoder: Model, step: Model,
    info?: { engine?: string; format?: string; variant?: string; source?: string; greedy?: Model | null });
  /** "one-call" when the bundle's greedy model decodes (all but stream()), else "step-loop". */
  readonly decodePath: 'one-call' | 'step-loop';
  readonly manifest: BundleManifest;
  readonly engine: string;
  readonly format: string | null;
  readonly variant: string | null;
  readonly maxOutputLen: number;
  decode(source: string, options?: DecodeOptions): Promise<string>;
  decodeResult(source: string, options?: DecodeOptions): Promise<DecodeResult>;
  decodeBatch(sources: Iterable<string>, options?: DecodeOptions): Promise<string[]>;
  decodeBatchResults(sources: Iterable<string>, options?: DecodeOptions): Promise<DecodeResult[]>;
  decodeIds(idLists: number[][], options?: DecodeOptions): Promise<DecodeResult[]>;
  /** The output piece by piece: each token with the separator before it; the pieces join to decode()'s text. */
  stream(source: string, options?: DecodeOptions): AsyncGenerator<string, void, void>;
  release(): Promise<void>;
}

export function loadBundle(options: {
  readFile: (name: string, maxBytes: number) => Promise<Uint8Array>;
  sha256?: (bytes: Uint8Array) => Promise<string>;
  engine: Engine;
  variant?: Variant;
  source?: string;
  /** 'auto' (default): the one-call greedy model when the bundle has one; true: require it; false: the step loop. */
  oneCall?: boolean | 'auto';
}): Promise<Seq2SeqDecoder>;
export function loadBundleFromUrl(base: string | URL, options: { engine: Engine; variant?: Variant; oneCall?: boolean | 'auto' }): Promise<Seq2SeqDecoder>;
export function urlReader(base: string | URL, fetchImpl?: typeof fetch): (name: string, maxBytes: number) => Promise<Uint8Array>;
export function webCryptoSha256(bytes: Uint8Array): Promise<string>;
/** Any onnxruntime-* module (node, web, react-native): they share onnxruntime-common's API. */
export function onnxRuntimeEngine(ort: unknown, options?: { name?: string; threads?: number; executionProviders?: unknown[] }): Engine;
/** @litertjs/core, after `await loadLiteRt(wasmDirUrl)`. */
export function liteRtEngine(litert: unknown, options?: { accelerator?: 'wasm' | 'webgpu'; threads?: number }): Engine;
/** Every problem of a parsed manifest.json, checked against the schema the Python side writes. */
export function manifestProblems(d: unknown): string[];
export function expectedIO(role: string, latent: number, steps: number, targetVocab: number, encoderOutputDim?: number | null, maxOutputTokens?: number): { inputs: TensorSpec[]; outputs: TensorSpec[] };
export const SCHEMA: Record<string, unknown>;
export const NAMES: Readonly<Record<string, string>>;
export const MANIFEST_VERSION: number;
export class Vocabulary {
  constructor(tokens: string[], tokenization: 'char' | 'space', unknownToken?: string | null);
  readonly tokens: readonly string[];
  readonly size: number;
  encode(text: string, options?: { skipUnknown?: boolean }): number[];
  decode(ids: Iterable<number>): string;
}
export function normalize(text: string): string;
export function tokenize(text: string, tokenization: 'char' | 'space'): string[];
export function detokenize(tokens: string[], tokenization: 'char' | 'space'): string;
