// LiteRT.js 2.5 has no call to resize a model's dynamic inputs: a tensor of shape [1, T] is refused by an input
// declared [-1, T] ("does not match expected ranked tensor type Int32[-1, 1]"). The bundle's .tflite files declare
// their batch axis -1 in each tensor's shape_signature. This pins every -1 there to 1, in place, in a copy of the
// file's bytes (after the sha256 check): the model becomes a batch-1 model, which is how the LiteRT engine runs it.
// It reads the file with the bounds-checked flatbuffer reader of ../wire/tflite.js (schema.fbs: Model.subgraphs =
// field 2, SubGraph.tensors = field 0, Tensor.shape = field 0, Tensor.shape_signature = field 7), whose work is
// bounded by the file's size.
import { BundleError } from '../errors.js';
import { Reader } from '../wire/tflite.js';

/** A copy of a .tflite file's bytes with every dynamic (-1) dimension pinned to 1. */
export function pinBatchToOne(bytes, label) {
  const copy = new Uint8Array(bytes);
  try {
    const reader = new Reader(copy); // the identifier was checked with the operators, before this copy was made
    const model = reader.table(reader.indirect(0));
    const view = reader.view;
    for (const subgraph of model.tables(2)) {
      for (const tensor of subgraph.tables(0)) {
        for (const fieldIndex of [0, 7]) {
          const span = tensor.intSpan(fieldIndex);
          if (!span) continue;
          for (let i = 0; i < span[1]; i++) if (view.getInt32(span[0] + 4 * i, true) === -1) view.setInt32(span[0] + 4 * i, 1, true);
        }
      }
    }
  } catch (e) {
    throw new BundleError(`not a well-formed TFLite file (${e.message})`, label);
  }
  return copy;
}
