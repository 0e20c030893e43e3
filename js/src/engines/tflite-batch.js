// LiteRT.js 2.5 has no call to resize a model's dynamic inputs: a tensor of shape [1, T] is refused by an input
// declared [-1, T] ("does not match expected ranked tensor type Int32[-1, 1]"). The bundle's .tflite files declare
// their batch axis -1 in each tensor's shape_signature. This pins every -1 there to 1, in place, in a copy of the
// file's bytes (after the sha256 check): the model becomes a batch-1 model, which is how the LiteRT engine runs it.
// A bounds-checked reader of the few flatbuffer fields it touches (schema.fbs: Model.subgraphs = field 2,
// SubGraph.tensors = field 0, Tensor.shape = field 0, Tensor.shape_signature = field 7).
import { BundleError } from '../errors.js';

class Reader {
  constructor(bytes) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.size = bytes.byteLength;
    // The work a well-formed file can ask for: each table and each vector item takes at least 4 bytes, so a file
    // visits at most size / 4 of them. A crafted one whose vectors share tables and shapes (cubic work) runs out.
    // (The Python runtime's reader holds the same budget: runtime/backends/tflite_wire.py.)
    this.budget = this.size / 4 + 16;
  }

  spend(n) {
    this.budget -= n;
    if (this.budget < 0) throw new RangeError('tables are shared or nested beyond what the file\'s size allows');
  }

  check(pos, n) { if (pos < 0 || pos + n > this.size) throw new RangeError(`offset ${pos} outside the file`); }
  u32(pos) { this.check(pos, 4); return this.view.getUint32(pos, true); }
  i32(pos) { this.check(pos, 4); return this.view.getInt32(pos, true); }
  u16(pos) { this.check(pos, 2); return this.view.getUint16(pos, true); }

  /** Position of a table's field, or null when absent. */
  field(table, index) {
    const vtable = table - this.i32(table);
    const vsize = this.u16(vtable);
    if (4 + 2 * index >= vsize) return null;
    const off = this.u16(vtable + 4 + 2 * index);
    return off ? table + off : null;
  }

  /** [start, length] of the vector a field points to, or null. */
  vector(table, index) {
    const f = this.field(table, index);
    if (f === null) return null;
    const start = f + this.u32(f);
    const length = this.u32(start);
    this.check(start + 4, length * 4);
    this.spend(1 + length);
    return [start + 4, length];
  }

  /** Table positions of a vector of tables. */
  tables(table, index) {
    const v = this.vector(table, index);
    if (!v) return [];
    return Array.from({ length: v[1] }, (_, i) => v[0] + 4 * i + this.u32(v[0] + 4 * i));
  }
}

/** A copy of a .tflite file's bytes with every dynamic (-1) dimension pinned to 1. */
export function pinBatchToOne(bytes, label) {
  const copy = new Uint8Array(bytes);
  try {
    const r = new Reader(copy);
    const model = r.u32(0);
    for (const subgraph of r.tables(model, 2)) {
      for (const tensor of r.tables(subgraph, 0)) {
        for (const fieldIndex of [0, 7]) {
          const v = r.vector(tensor, fieldIndex);
          if (!v) continue;
          for (let i = 0; i < v[1]; i++) if (r.i32(v[0] + 4 * i) === -1) r.view.setInt32(v[0] + 4 * i, 1, true);
        }
      }
    }
  } catch (e) {
    throw new BundleError(`not a well-formed TFLite file (${e.message})`, label);
  }
  return copy;
}
