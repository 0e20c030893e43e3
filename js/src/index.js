// @seq2seq-edge/runtime: decode a seq2seq-edge bundle in node, a browser or React Native.
export { Seq2SeqEdgeError, InputTextError, BundleError, EngineError, OptionError } from './errors.js';
export { BundleManifest, manifestProblems, expectedIO, SCHEMA, NAMES, MANIFEST_VERSION } from './manifest.js';
export { Seq2SeqDecoder, DecodeResult, decodeOptions, MAX_BATCH_SIZE } from './decoder.js';
export { loadBundle, webCryptoSha256 } from './bundle.js';
export { inspectModel, checkModelOps } from './modelcheck.js';
export { onnxRuntimeEngine } from './engines/onnxruntime.js';
export { liteRtEngine } from './engines/litert.js';
export { urlReader, loadBundleFromUrl } from './browser.js';
export { Vocabulary, normalize, tokenize, detokenize } from './text.js';
