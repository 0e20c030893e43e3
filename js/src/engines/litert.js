// LiteRT.js (@litertjs/core) for the bundle's .tflite files in a browser. Pass the imported module after
// `await litert.loadLiteRt(wasmDirUrl)`. Models run on the 'wasm' accelerator (XNNPACK CPU kernels), one row per
// call (maxBatch 1: LiteRT.js cannot resize inputs, see tflite-batch.js): the decoder splits batches into rows.
import { EngineError } from '../errors.js';
import { pinBatchToOne } from './tflite-batch.js';
import { TFLITE_SIGNATURE } from '../modelcheck.js';

function details(list) {
  return list.map((t) => ({ name: t.name, dtype: t.dtype, shape: null }));
}

/** An engine for loadBundle() on LiteRT.js. */
export function liteRtEngine(litert, { accelerator = 'wasm', threads = 1 } = {}) {
  return {
    name: 'litert.js',
    format: 'tflite',
    async createSession(bytes, entry) {
      let model;
      try {
        model = await litert.loadAndCompile(pinBatchToOne(bytes, entry.path), { accelerator, cpuOptions: { numThreads: threads } });
      } catch (e) {
        throw new EngineError(`LiteRT.js cannot compile ${entry.path} (${entry.variant}): ${e?.message ?? e}; `
          + 'use the onnx engine for this bundle, or another variant');
      }
      const key = TFLITE_SIGNATURE; // the one the shape proof bound the contract through, as Python's backend
      const runner = model.signatures?.[key];
      if (!runner) {
        throw new EngineError(`LiteRT.js finds no signature '${key}' in ${entry.path} (it has ${JSON.stringify(Object.keys(model.signatures ?? {}))})`);
      }
      const outputNames = entry.outputs.map((t) => t.name);
      return {
        inputs: details(runner.getInputDetails()),
        outputs: details(runner.getOutputDetails()),
        maxBatch: 1,
        async run(feeds) {
          const inputs = {};
          for (const [k, v] of Object.entries(feeds)) inputs[k] = new litert.Tensor(v.data, v.dims);
          let out;
          try {
            out = await runner.run(inputs);
          } catch (e) {
            throw new EngineError(`LiteRT.js failed to run ${entry.path} (${entry.variant}): ${e?.message ?? e}`);
          } finally {
            for (const t of Object.values(inputs)) t.delete();
          }
          const result = {};
          for (const [name, tensor] of Object.entries(out)) {
            if (outputNames.includes(name)) {
              result[name] = { data: tensor.toTypedArray().slice(), dims: Array.from(tensor.type.layout.dimensions) };
            }
            tensor.delete();
          }
          return result;
        },
        release: () => model.delete(),
      };
    },
  };
}
