// ONNX Runtime's JavaScript API (onnxruntime-common), the same behind onnxruntime-node, onnxruntime-web and
// onnxruntime-react-native: pass the imported module. `threads` is intra-op threads (node, React Native); in a
// browser set ort.env.wasm.numThreads before the first session instead.
const DTYPES = { int32: 'int32', float32: 'float32' };
/** No file can be created under /proc/self (the C and Kotlin libraries use the same folder). */
export const NO_EXTERNAL_DATA_FOLDER = '/proc/self/seq2seq-edge-no-external-data';

function typeName(t) { return t === 'float' ? 'float32' : t; }

/** An engine for loadBundle() on any onnxruntime-* package. */
export function onnxRuntimeEngine(ort, { name = 'onnxruntime', threads = 1, executionProviders } = {}) {
  return {
    name,
    format: 'onnx',
    async createSession(bytes, entry) {
      // A model made from bytes resolves external-data file names against this folder (else the working
      // directory, in node): one that cannot exist, so a model that refers to any file outside itself fails to load.
      const options = { graphOptimizationLevel: 'all',
        extra: { session: { model_external_initializers_file_folder_path: NO_EXTERNAL_DATA_FOLDER } } };
      if (threads) { options.intraOpNumThreads = threads; options.interOpNumThreads = 1; }
      if (executionProviders) options.executionProviders = executionProviders;
      const session = await ort.InferenceSession.create(bytes, options);
      const meta = (list, names) => (list && list.length === names.length
        ? list.map((m) => ({ name: m.name, dtype: m.isTensor ? typeName(m.type) : 'not a tensor',
          shape: m.isTensor ? m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) : undefined }))
        : names.map((n) => ({ name: n })));
      const outputNames = entry.outputs.map((t) => t.name);
      return {
        inputs: meta(session.inputMetadata, session.inputNames),
        outputs: meta(session.outputMetadata, session.outputNames),
        async run(feeds) {
          const ortFeeds = {};
          for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(DTYPES[v.data instanceof Int32Array ? 'int32' : 'float32'], v.data, v.dims);
          const out = await session.run(ortFeeds, outputNames);
          const result = {};
          for (const n of outputNames) {
            result[n] = { data: out[n].data, dims: Array.from(out[n].dims) };
          }
          return result;
        },
        release: () => session.release(),
      };
    },
  };
}
