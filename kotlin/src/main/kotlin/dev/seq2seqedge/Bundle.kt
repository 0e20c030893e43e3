// Loading a bundle, whatever holds its files (a folder, Android assets, bytes in memory): the manifest is checked,
// then every model file's size and sha256 before any engine sees it, then each model's real inputs and outputs and
// one test run (js/src/bundle.js; runtime/loader.py).
package dev.seq2seqedge

import java.io.InputStream
import java.security.MessageDigest

/** Reads one file of a bundle by its plain name; refuses (BundleError) a file over `maxBytes` without reading it
 * all, and a missing one. */
fun interface BundleReader {
    fun read(name: String, maxBytes: Long): ByteArray
}

/** Creates a model from its checked bytes. */
interface Engine {
    val name: String
    val format: String
    fun createSession(bytes: ByteArray, entry: ModelEntry): EngineSession
}

/** A created model with the signature the engine reports (null: it does not say). */
interface EngineSession : ModelRunner {
    val inputs: List<TensorSpec>?
    val outputs: List<TensorSpec>?
}

/** Hex sha256 of bytes (java.security, on Android too). */
fun sha256Hex(bytes: ByteArray): String =
    MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it.toInt() and 0xff) }

/** At most `maxBytes` bytes of a stream, or BundleError naming `where` when it holds more (an Android asset, a
 * download). Reads at most maxBytes + 1 bytes. */
fun readBounded(stream: InputStream, maxBytes: Long, where: String): ByteArray {
    require(maxBytes in 0..Int.MAX_VALUE - 16) { "maxBytes must be between 0 and ${Int.MAX_VALUE - 16}" }
    val out = java.io.ByteArrayOutputStream(minOf(maxBytes, 1L shl 20).toInt())
    val buf = ByteArray(1 shl 16)
    var total = 0L
    while (true) {
        val want = minOf(buf.size.toLong(), maxBytes + 1 - total).toInt()
        if (want <= 0) break
        val n = stream.read(buf, 0, want)
        if (n < 0) break
        out.write(buf, 0, n)
        total += n
    }
    if (total > maxBytes) {
        throw BundleError("file is more than the $maxBytes bytes expected (replaced or corrupted: copy the bundle again)", where)
    }
    return out.toByteArray()
}

/** A reader over files held in memory (name -> bytes). */
fun bytesReader(files: Map<String, ByteArray>): BundleReader = BundleReader { name, maxBytes ->
    val bytes = files[name] ?: throw BundleError(
        if (name == MANIFEST_FILE) "no manifest.json here: is this a bundle written by `s2s export`?"
        else "file listed in the manifest is missing: copy the bundle again", name)
    if (bytes.size > maxBytes) {
        throw BundleError("file is ${bytes.size} bytes, more than the $maxBytes expected (replaced or corrupted: copy the bundle again)", name)
    }
    bytes
}

/** A model file name must be a plain name inside the bundle: no folder, no '..', no NUL (the schema's pattern
 * says more; this holds even for a reader used without it). */
internal fun checkPlainName(name: String, where: String) {
    if (name.isEmpty() || name == "." || name == ".." || name.contains('/') || name.contains('\\') || name.contains('\u0000')) {
        throw BundleError("model path ${pyRepr(name)} is not a plain file name inside the bundle folder", where)
    }
}

private fun checkIO(model: EngineSession, entry: ModelEntry, where: String) {
    val problems = ArrayList<String>()
    for ((kind, real, declaredSpecs) in listOf(Triple("inputs", model.inputs, entry.inputs), Triple("outputs", model.outputs, entry.outputs))) {
        if (real == null) continue // the engine does not report them: the per-run shape check still applies
        val one = kind.dropLast(1)
        val byName = LinkedHashMap<String, TensorSpec>().also { m -> real.forEach { m[it.name] = it } }
        val declared = declaredSpecs.map { it.name }.toSet()
        for (want in declaredSpecs) {
            val got = byName[want.name]
            if (got == null) {
                problems.add("$one '${want.name}' is declared in the manifest but the model has none (it has ${byName.keys.sorted().take(8).joinToString(",", "[", "]") { jsonQuote(it) }})")
                continue
            }
            if (got.dtype != want.dtype) problems.add("$one '${want.name}' is ${got.dtype} in the model, ${want.dtype} in the manifest")
            if (got.shape != want.shape) {
                problems.add("$one '${want.name}' has shape [${got.shape.joinToString(", ")}] in the model, [${want.shape.joinToString(", ")}] in the manifest")
            }
        }
        val extra = byName.keys.filter { it !in declared }.sorted()
        if (extra.isNotEmpty()) problems.add("the model has $kind ${extra.take(8).joinToString(",", "[", "]") { jsonQuote(it) }} that the manifest does not declare")
    }
    if (problems.isNotEmpty()) throw BundleError(problems, where)
}

/** Wrap a model so that a failed run names the model file (an EngineError "<bundle>/<file>: ONNX Runtime failed to
 * run the model: ..."; never an engine's own exception), and every run's outputs must have the shapes the contract
 * gives them at that batch. */
private class Checked(private val model: ModelRunner, entry: ModelEntry, private val where: String, private val engineName: String) : ModelRunner {
    private val declared = entry.outputs.map { it.name to it.shape }
    private val dtypes = entry.outputs.associate { it.name to it.dtype }
    override val maxBatch get() = model.maxBatch
    override val label get() = where

    override fun run(feeds: Map<String, Tensor>): Map<String, Tensor> =
        checked(feeds, runOrFail(feeds) { problem, cause -> throw EngineError("$where: $problem", cause) })

    /** The run at load: a model that cannot run is a bad bundle (BundleError naming the file). */
    fun testRun(feeds: Map<String, Tensor>): Map<String, Tensor> =
        checked(feeds, runOrFail(feeds) { problem, cause ->
            throw BundleError("the model failed a test run: $problem", where).also { it.initCause(cause) }
        })

    private inline fun runOrFail(feeds: Map<String, Tensor>, fail: (String, Throwable) -> Nothing): Map<String, Tensor> = try {
        model.run(feeds)
    } catch (e: BundleError) {
        throw if (e.where == null) BundleError(e.problems, where).also { it.initCause(e) } else e
    } catch (e: EngineError) { // the engine's own message (ONNX Runtime's), to which the file's name is added
        fail(e.message ?: e.toString(), e.cause ?: e)
    } catch (e: Seq2SeqEdgeError) {
        throw e
    } catch (e: Exception) { // whatever a custom engine throws
        fail("$engineName failed to run the model: ${ortMessage(e)}", e)
    }

    private fun checked(feeds: Map<String, Tensor>, out: Map<String, Tensor>): Map<String, Tensor> {
        val batch = feeds.values.first().dims[0]
        for ((name, shape) in declared) {
            val want = shape.map { if (it == -1) batch else it }
            val got = out[name]
            val n = want.fold(1L) { a, b -> a * b }
            if (got == null || got.dims.size != want.size || got.dims.indices.any { got.dims[it] != want[it] } || got.size.toLong() != n) {
                throw BundleError("output '$name' came back with shape ${got?.dims?.joinToString(", ", "[", "]") ?: "none"} at batch $batch; the manifest gives [${want.joinToString(", ")}]", where)
            }
            if (got.dtype != dtypes[name]) throw BundleError("output '$name' came back as ${got.dtype}; the manifest gives ${dtypes[name]}", where)
        }
        return out
    }

    override fun close() = model.close()
}

private fun zeroFeeds(entry: ModelEntry): Map<String, Tensor> {
    val feeds = LinkedHashMap<String, Tensor>()
    for (t in entry.inputs) {
        val dims = t.shape.map { if (it == -1) 1 else it }.toIntArray()
        val n = dims.fold(1) { a, b -> a * b }
        feeds[t.name] = if (t.dtype == "int32") Tensor.ofInts(IntArray(n), *dims) else Tensor.ofFloats(FloatArray(n), *dims)
    }
    return feeds
}

/**
 * Load a bundle through an injected reader and engine (Android: assets; tests: bytes in memory).
 * @param variant fp32 (default) or int8
 * @param source the bundle's folder or name, for messages
 * @param oneCall null (auto): use the bundle's one-call greedy model when it has one for this format and variant;
 *   true to require it; false for the step loop
 */
fun loadBundle(reader: BundleReader, engine: Engine, variant: String = "fp32", source: String = "bundle", oneCall: Boolean? = null): Seq2SeqDecoder {
    val base = source.trimEnd('/')
    fun where(name: String) = "$base/$name"
    // a reader's own I/O errors (an Android asset that is missing) become BundleErrors naming the file
    fun read(name: String, maxBytes: Long): ByteArray = try { reader.read(name, maxBytes) } catch (e: java.io.FileNotFoundException) {
        throw BundleError(if (name == MANIFEST_FILE) "no manifest.json here: is this a bundle written by `s2s export`?"
            else "file listed in the manifest is missing: copy the bundle again", where(name))
    } catch (e: java.io.IOException) {
        throw BundleError("cannot read it (${e.message ?: e})", where(name))
    }
    val manifest = BundleManifest.fromJson(read(MANIFEST_FILE, MAX_MANIFEST_BYTES.toLong()), where(MANIFEST_FILE))
    val entries = mutableListOf(ENCODER, DECODER_STEP).map { manifest.find(it, engine.format, variant) }
    if (entries.any { it == null }) {
        throw BundleError("the bundle has no ${engine.format} $variant models (it holds ${engine.format} variants ${manifest.variants(engine.format).joinToString(",", "[", "]") { jsonQuote(it) }})", source)
    }
    val chosen = entries.filterNotNull().toMutableList()
    val greedy = if (oneCall == false) null else manifest.find(GREEDY, engine.format, variant)
    if (oneCall == true && greedy == null) {
        throw BundleError("the bundle has no one-call greedy model for ${engine.format} $variant (re-export it with a seq2seq-edge that writes one, or load with oneCall = false)", source)
    }
    if (greedy != null) chosen.add(greedy)
    val contents = ArrayList<ByteArray>()
    for (entry in chosen) { // every size and checksum before any engine sees a byte
        checkPlainName(entry.path, where(MANIFEST_FILE))
        val bytes = read(entry.path, entry.sizeBytes)
        if (bytes.size.toLong() != entry.sizeBytes) {
            throw BundleError("model file is ${bytes.size} bytes, the manifest says ${entry.sizeBytes} (truncated, replaced or corrupted: copy the bundle again)", where(entry.path))
        }
        if (sha256Hex(bytes) != entry.sha256) {
            throw BundleError("model file's sha256 does not match the manifest (modified or corrupted: copy the bundle again)", where(entry.path))
        }
        contents.add(bytes)
    }
    // what each model can do, proved from its bytes (operators, loops, allocations) before any engine sees them
    chosen.forEachIndexed { i, entry -> checkModelOps(contents[i], entry, where(entry.path), manifest.loopLimit(entry.role), manifest.rowLimit()) }
    val models = ArrayList<ModelRunner>()
    try {
        chosen.forEachIndexed { i, entry ->
            val model = try { engine.createSession(contents[i], entry) } catch (e: Seq2SeqEdgeError) { throw e } catch (e: Exception) {
                // an external-data reference lands here too: ONNX Runtime may read no file but the model's bytes
                throw BundleError("${engine.name} cannot load this model: ${ortMessage(e)}", where(entry.path)).also { it.initCause(e) }
            }
            val wrapped = Checked(model, entry, where(entry.path), engine.name)
            models.add(wrapped)
            checkIO(model, entry, where(entry.path))
            wrapped.testRun(zeroFeeds(entry))
        }
    } catch (e: Throwable) {
        models.forEach { runCatching { it.close() } }
        throw e
    }
    return Seq2SeqDecoder(manifest, models[0], models[1], models.getOrNull(2), engine.name, engine.format, variant, source)
}
