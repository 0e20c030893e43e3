package dev.seq2seqedge

import org.json.JSONObject
import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files
import java.nio.file.Path

/** Just enough protobuf to write a small ONNX model by hand (onnx.proto field numbers), for hostile models. */
private class Pb {
    val out = ByteArrayOutputStream()
    private fun varint(v: Long) {
        var x = v
        while (x and 0x7fL.inv() != 0L) { out.write(((x and 0x7f) or 0x80).toInt()); x = x ushr 7 }
        out.write(x.toInt())
    }
    fun int(field: Int, v: Long) { varint((field shl 3).toLong()); varint(v) }
    fun bytes(field: Int, b: ByteArray) { varint(((field shl 3) or 2).toLong()); varint(b.size.toLong()); out.write(b) }
    fun str(field: Int, s: String) = bytes(field, s.toByteArray(Charsets.UTF_8))
    fun msg(field: Int, build: Pb.() -> Unit) = bytes(field, Pb().apply(build).out.toByteArray())
}

private const val FLOAT = 1L
private const val INT32 = 6L

/** ValueInfoProto: a tensor of `type` whose dims are numbers or the batch "N". */
private fun Pb.value(field: Int, name: String, type: Long, vararg dims: Any) = msg(field) {
    str(1, name)
    msg(2) { msg(1) { int(1, type); msg(2) { for (d in dims) msg(1) { if (d is Int) int(1, d.toLong()) else str(2, d.toString()) } } } }
}

private fun Pb.node(op: String, inputs: List<String>, output: String, axis: Long? = null) = msg(1) {
    inputs.forEach { str(1, it) }
    str(2, output)
    str(4, op)
    if (axis != null) msg(5) { str(1, "axis"); int(3, axis); int(20, 2) }
}

/** TensorProto initializer; `external` stores it as external data at that location instead of in the model. */
private fun Pb.initializer(name: String, type: Long, dims: List<Long>, raw: ByteArray, external: String? = null) = msg(5) {
    dims.forEach { int(1, it) }
    int(2, type)
    str(8, name)
    if (external == null) bytes(9, raw) else {
        for ((k, v) in listOf("location" to external, "offset" to "0", "length" to raw.size.toString())) msg(13) { str(1, k); str(2, v) }
        int(14, 1)
    }
}

/** Little-endian float32 bytes. */
fun floatBytes(values: FloatArray): ByteArray =
    ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN).also { b -> values.forEach { b.putFloat(it) } }.array()

/** One row of probabilities: 0.9 at `id`. */
fun probsRow(vocab: Int, id: Int = 3) = FloatArray(vocab).also { it[id] = 0.9f }

/**
 * A decoder step of the contract (prev_token, state_h, state_c -> probs, next_state_h, next_state_c) that gives the
 * same row of probabilities at every step (0.9 at id 3: it never ends), with operators a decoder step may hold
 * (Gather, Identity, Add): `rows` holds that row once per prev_token id.
 * @param externalRow store the rows as external data at this location (ONNX Runtime would read that file)
 * @param failAfterStart a Gather on prev_token out of a one-row table: the load's test run (prev_token 0) passes,
 *   the first real step (prev_token = the start id) fails in ONNX Runtime
 */
fun stepModel(vocab: Int, latent: Int, externalRow: String? = null, failAfterStart: Boolean = false): ByteArray {
    val model = Pb()
    model.int(1, 8) // ir_version
    model.msg(8) { str(1, ""); int(2, 17) } // opset 17
    model.msg(7) {
        node("Gather", listOf("rows", "prev_token"), "probs", axis = 0)
        node("Identity", listOf("state_h"), "next_state_h")
        if (failAfterStart) {
            node("Gather", listOf("table", "prev_token"), "g", axis = 0)
            node("Add", listOf("state_c", "g"), "next_state_c")
        } else {
            node("Identity", listOf("state_c"), "next_state_c")
        }
        str(2, "hostile_step")
        initializer("rows", FLOAT, listOf(vocab.toLong(), vocab.toLong()), floatBytes(stepRows(vocab)), externalRow)
        if (failAfterStart) initializer("table", FLOAT, listOf(1, 1), floatBytes(FloatArray(1)))
        value(11, "prev_token", INT32, "N")
        value(11, "state_h", FLOAT, "N", latent)
        value(11, "state_c", FLOAT, "N", latent)
        value(12, "probs", FLOAT, "N", vocab)
        value(12, "next_state_h", FLOAT, "N", latent)
        value(12, "next_state_c", FLOAT, "N", latent)
    }
    return model.out.toByteArray()
}

/** The operators of stepModel(failAfterStart), as the manifest lists them. */
fun stepModelOps(failAfterStart: Boolean): List<String> = if (failAfterStart) listOf("Add", "Gather", "Identity") else listOf("Gather", "Identity")

/** `probsRow(vocab)` once per prev_token id: the step model's table. */
fun stepRows(vocab: Int): FloatArray = FloatArray(vocab * vocab).also { t -> for (r in 0 until vocab) probsRow(vocab).copyInto(t, r * vocab) }

/** A copy of the digits bundle in `dir` whose fp32 decoder step is `stepModel(...)`, re-signed in the manifest. */
fun digitsWithStep(dir: Path, externalRow: String? = null, failAfterStart: Boolean = false): Path {
    Fixtures.copyBundle("digits", dir)
    val m = JSONObject(String(Files.readAllBytes(dir.resolve(MANIFEST_FILE)), Charsets.UTF_8))
    val vocab = m.getJSONObject("preprocessing").getJSONObject("target").getJSONArray("vocabulary").length()
    val latent = m.getJSONObject("model").getInt("latent_dim")
    val bytes = stepModel(vocab, latent, externalRow, failAfterStart)
    val path = "decoder_step.fp32.onnx"
    Files.write(dir.resolve(path), bytes)
    for (e in m.getJSONArray("models").objects()) {
        if (e.getString("path") == path) e.put("size_bytes", bytes.size).put("sha256", sha256Hex(bytes)).put("ops", stepModelOps(failAfterStart))
    }
    Files.write(dir.resolve(MANIFEST_FILE), m.toString(1).toByteArray())
    return dir
}
