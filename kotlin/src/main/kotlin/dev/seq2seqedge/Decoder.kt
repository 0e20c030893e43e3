// The greedy decode loop, written once against an injected model interface (ModelRunner), so one decoder serves
// ONNX Runtime on the JVM and on Android (onnxruntime-android has the same ai.onnxruntime API), or any other engine.
package dev.seq2seqedge

import kotlin.math.ln
import kotlin.math.min

private const val TINY = 1e-45

/** A probability may exceed 1 by float32 rounding of a softmax, never by more (the Python runtime's PROB_SLACK). */
const val PROB_SLACK = 1e-5

/** A tensor of the contract: int32 or float32 data, row-major, with its dims. */
class Tensor private constructor(val ints: IntArray?, val floats: FloatArray?, val dims: IntArray) {
    val size: Int get() = ints?.size ?: floats!!.size
    val dtype: String get() = if (ints != null) "int32" else "float32"

    override fun toString() = "Tensor($dtype[${dims.joinToString(", ")}])"

    companion object {
        @JvmStatic fun ofInts(data: IntArray, vararg dims: Int) = Tensor(data, null, dims.copyOf())
        @JvmStatic fun ofFloats(data: FloatArray, vararg dims: Int) = Tensor(null, data, dims.copyOf())
    }
}

/** A loaded model: `run(feeds)` -> outputs, both keyed by the manifest's tensor names. */
interface ModelRunner : AutoCloseable {
    /** Rows it takes per call, or null for any. */
    val maxBatch: Int? get() = null
    /** A name for messages (the model file). */
    val label: String? get() = null
    fun run(feeds: Map<String, Tensor>): Map<String, Tensor>
    override fun close() {}
}

/** One decoded output. `tokenProbs` has one entry more than `tokens` when `finished` (the end marker's). */
class DecodeResult(val text: String, tokens: List<String>, tokenProbs: List<Double>, val finished: Boolean) {
    val tokens: List<String> = java.util.Collections.unmodifiableList(ArrayList(tokens))
    val tokenProbs: List<Double> = java.util.Collections.unmodifiableList(ArrayList(tokenProbs))

    /** Sequence log-probability: the sum of ln(max(p, 1e-45)) over tokenProbs. */
    val score: Double get() = tokenProbs.sumOf { p -> if (p > TINY) ln(p) else ln(TINY) }

    override fun toString() = "DecodeResult(text=${pyRepr(text)}, tokens=$tokens, tokenProbs=$tokenProbs, finished=$finished)"
}

private val EMPTY = DecodeResult("", emptyList(), emptyList(), true)

private fun probText(p: Double): String = when {
    p.isNaN() -> "nan"
    p == Double.POSITIVE_INFINITY -> "inf"
    p == Double.NEGATIVE_INFINITY -> "-inf"
    else -> p.toString()
}

/** Refuse what no honest model emits, as the Python and JavaScript runtimes do: a reserved id other than the end
 * marker (pad, start) among a row's tokens, or a chosen token's probability that is not finite or outside [0, 1].
 * A row's outputs after its end id are not looked at. */
fun checkOutputs(ids: List<IntArray>, probs: List<DoubleArray>, where: String?) {
    ids.forEachIndexed { r, row ->
        val e = row.indexOf(END_ID)
        val end = if (e >= 0) e else row.size
        for (i in 0 until end) {
            if (row[i] == PAD_ID || row[i] == START_ID) {
                throw BundleError("the model chose the reserved id ${row[i]} at step ${i + 1} of item ${r + 1} (only the end id $END_ID may end an output)", where)
            }
        }
        for (i in 0..min(end, row.size - 1)) {
            val p = probs[r][i]
            if (!p.isFinite() || p < 0 || p > 1 + PROB_SLACK) {
                throw BundleError("the model gave a probability of ${probText(p)} (not a probability in [0, 1])", where)
            }
        }
    }
}

/** An input for a message: its repr, cut at 40 characters. */
fun preview(source: String, limit: Int = 40): String {
    val n = codePointLength(source)
    return if (n <= limit) pyRepr(source)
    else "${pyRepr(codePointStrings(source).take(limit).joinToString(""))}... ($n characters)"
}

/** Index of the first maximum of `probs[base until base + n]`; a NaN wins at once (numpy's argmax). */
fun argmax(probs: FloatArray, base: Int, n: Int): Int {
    var best = 0
    var bestP = Float.NEGATIVE_INFINITY
    for (v in 0 until n) {
        val p = probs[base + v]
        if (p.isNaN()) return v
        if (p > bestP) { bestP = p; best = v }
    }
    return best
}

/**
 * Decodes with a bundle's models: the encoder and decoder step (the step loop), or the one-call `greedy` model
 * when given. Thread-safe as far as the models are (ONNX Runtime sessions are).
 */
/**
 * How inputs are decoded: the options of Python's DecodeOptions that the native libraries have (greedy decoding
 * only; beam search is in Python). Checked when made: an OptionError names the option.
 * - batchSize: inputs per model call, 1 to MAX_BATCH_SIZE.
 * - maxOutputLen: stop after this many tokens, 1 to the bundle's trained maximum (null: that maximum).
 * - skipUnknown: drop input symbols the model never saw instead of refusing the input.
 */
data class DecodeOptions @JvmOverloads constructor(
    val batchSize: Int = 32,
    val maxOutputLen: Int? = null,
    val skipUnknown: Boolean = false,
) {
    init {
        if (batchSize !in 1..MAX_BATCH_SIZE) throw OptionError("batchSize must be between 1 and $MAX_BATCH_SIZE, got $batchSize")
        if (maxOutputLen != null && maxOutputLen < 1) throw OptionError("maxOutputLen must be at least 1, got $maxOutputLen")
    }

    companion object {
        /** The largest batch size, as in the Python runtime. */
        const val MAX_BATCH_SIZE = 4096
    }
}

class Seq2SeqDecoder @JvmOverloads constructor(
    val manifest: BundleManifest,
    private val encoder: ModelRunner,
    private val step: ModelRunner,
    private val greedy: ModelRunner? = null,
    val engine: String = "custom",
    val format: String? = null,
    val variant: String? = null,
    val source: String? = null,
) : AutoCloseable {
    private val stepInputs = manifest.io(DECODER_STEP).inputs.map { it.name }
    private val maxBatch: Int = listOfNotNull(encoder.maxBatch, step.maxBatch, greedy?.maxBatch).minOrNull() ?: Int.MAX_VALUE

    /** How decode() runs: "one-call" (the greedy model) or "step-loop" (the encoder, then one step per token). */
    val decodePath: String get() = if (greedy != null) "one-call" else "step-loop"

    /** The longest output, in tokens, the model was trained to produce. */
    val maxOutputLen: Int get() = manifest.maxOutputTokens

    override fun toString() = "Seq2SeqDecoder(${source ?: "bundle"}, engine=$engine, $format $variant, $decodePath)"

    // Every decode method takes one DecodeOptions; the named-argument forms build one (decode(x, maxOutputLen = 2)).
    /** Decode one text to the output string. */
    fun decode(source: String, options: DecodeOptions): String = decodeResult(source, options).text

    @JvmOverloads
    fun decode(source: String, maxOutputLen: Int? = null, skipUnknown: Boolean = false): String =
        decode(source, DecodeOptions(maxOutputLen = maxOutputLen, skipUnknown = skipUnknown))

    /** Decode one text, with per-token probabilities and the score. */
    fun decodeResult(source: String, options: DecodeOptions): DecodeResult {
        val limit = limit(options)
        return decodeEncoded(listOf(manifest.encodeInput(source, options.skipUnknown)), 1, limit)[0]
    }

    @JvmOverloads
    fun decodeResult(source: String, maxOutputLen: Int? = null, skipUnknown: Boolean = false): DecodeResult =
        decodeResult(source, DecodeOptions(maxOutputLen = maxOutputLen, skipUnknown = skipUnknown))

    /** decodeBatchResults, the texts only. */
    fun decodeBatch(sources: List<String>, options: DecodeOptions): List<String> =
        decodeBatchResults(sources, options).map { it.text }

    @JvmOverloads
    fun decodeBatch(sources: List<String>, batchSize: Int = 32, maxOutputLen: Int? = null, skipUnknown: Boolean = false): List<String> =
        decodeBatch(sources, DecodeOptions(batchSize, maxOutputLen, skipUnknown))

    /** Decode many texts, `options.batchSize` rows at a time through the models: a DecodeResult per input, in
     * input order. An input that cannot be encoded throws before any decoding, naming its position (from 1) and text. */
    fun decodeBatchResults(sources: List<String>, options: DecodeOptions): List<DecodeResult> {
        val limit = limit(options)
        val texts = sources.toList()
        val encoded = texts.mapIndexed { i, s ->
            try { manifest.encodeInput(s, options.skipUnknown) } catch (e: InputTextError) {
                // counted from 1, as the CLI counts lines
                throw InputTextError("item ${i + 1} of ${texts.size} (${preview(s)}): ${e.message}")
            }
        }
        return decodeEncoded(encoded, options.batchSize, limit)
    }

    @JvmOverloads
    fun decodeBatchResults(sources: List<String>, batchSize: Int = 32, maxOutputLen: Int? = null, skipUnknown: Boolean = false): List<DecodeResult> =
        decodeBatchResults(sources, DecodeOptions(batchSize, maxOutputLen, skipUnknown))

    /** Decode inputs that are already token ids (manifest.encodeInput): decodeBatchResults without the text. */
    fun decodeIds(idLists: List<IntArray>, options: DecodeOptions): List<DecodeResult> {
        val limit = limit(options)
        val n = manifest.maxInputTokens
        val vocab = manifest.inputVocab.size
        idLists.forEachIndexed { i, ids ->
            if (ids.size > n) throw OptionError("item ${i + 1} has ${ids.size} ids; the model takes at most $n")
            if (ids.any { it < N_SPECIAL || it >= vocab }) throw OptionError("item ${i + 1} has ids outside the input vocabulary")
        }
        return decodeEncoded(idLists.map { it.copyOf() }, options.batchSize, limit)
    }

    @JvmOverloads
    fun decodeIds(idLists: List<IntArray>, batchSize: Int = 32, maxOutputLen: Int? = null): List<DecodeResult> =
        decodeIds(idLists, DecodeOptions(batchSize, maxOutputLen))

    /** Release the engines' sessions. */
    override fun close() {
        encoder.close()
        step.close()
        greedy?.close()
    }

    // -- the loop ------------------------------------------------------------------------------------------------
    private fun limit(options: DecodeOptions): Int {
        val max = options.maxOutputLen ?: return maxOutputLen
        if (max > maxOutputLen) throw OptionError("maxOutputLen must be between 1 and the trained maximum $maxOutputLen, got $max")
        return max
    }

    private fun pad(idLists: List<IntArray>): Tensor {
        val t = manifest.encoderTimeSteps
        val data = IntArray(idLists.size * t) // PAD_ID is 0
        idLists.forEachIndexed { r, ids -> System.arraycopy(ids, 0, data, r * t, ids.size) }
        return Tensor.ofInts(data, idLists.size, t)
    }

    private fun decodeEncoded(encoded: List<IntArray>, batchSize: Int, limit: Int): List<DecodeResult> {
        val results = MutableList(encoded.size) { EMPTY }
        val pending = encoded.indices.filter { encoded[it].isNotEmpty() }
        val rows = min(batchSize, maxBatch)
        var start = 0
        while (start < pending.size) {
            val chunk = pending.subList(start, min(start + rows, pending.size))
            val inputIds = pad(chunk.map { encoded[it] })
            val found = if (greedy != null) oneCallResults(greedy, inputIds, chunk.size, limit) else stepResults(inputIds, chunk.size, limit)
            chunk.forEachIndexed { k, i -> results[i] = found[k] }
            start += rows
        }
        return results
    }

    /** The greedy loop, one step at a time: at most limit + 1 steps, until every row chose the end id. */
    private fun stepResults(inputIds: Tensor, batch: Int, limit: Int): List<DecodeResult> {
        val encoded = encoder.run(mapOf(Names.INPUT_IDS to inputIds))
        val feeds = LinkedHashMap<String, Tensor>()
        for (name in stepInputs) encoded[name]?.let { feeds[name] = it }
        feeds[Names.PREV_TOKEN] = Tensor.ofInts(IntArray(batch) { START_ID }, batch)
        val vocab = manifest.targetVocab.size
        val ended = BooleanArray(batch)
        val ids = List(batch) { IntArray(limit + 1) }
        val probs = List(batch) { DoubleArray(limit + 1) }
        var steps = 0
        for (s in 0..limit) {
            val out = step.run(feeds)
            val p = out.getValue(Names.PROBS).floats!!
            val chosen = IntArray(batch)
            var allEnded = true
            for (r in 0 until batch) {
                val best = argmax(p, r * vocab, vocab)
                chosen[r] = best
                ids[r][s] = best
                probs[r][s] = p[r * vocab + best].toDouble()
                if (best == END_ID) ended[r] = true
                if (!ended[r]) allEnded = false
            }
            steps = s + 1
            if (allEnded) break
            feeds[Names.PREV_TOKEN] = Tensor.ofInts(chosen, batch)
            for ((from, to) in RECURRENT) feeds[to] = out.getValue(from)
        }
        val idRows = ids.map { it.copyOf(steps) }
        val probRows = probs.map { it.copyOf(steps) }
        checkOutputs(idRows, probRows, step.label ?: "decoder step")
        return rows(idRows, probRows, limit)
    }

    /** The greedy model: every row's ids and probabilities in one call, [batch, maxOutputTokens + 1]. */
    private fun oneCallResults(greedy: ModelRunner, inputIds: Tensor, batch: Int, limit: Int): List<DecodeResult> {
        val out = greedy.run(mapOf(Names.INPUT_IDS to inputIds))
        val width = maxOutputLen + 1
        val allIds = out.getValue(Names.OUTPUT_IDS).ints!!
        val allProbs = out.getValue(Names.OUTPUT_PROBS).floats!!
        val vocabSize = manifest.targetVocab.size
        val ids = ArrayList<IntArray>()
        val probs = ArrayList<DoubleArray>()
        for (r in 0 until batch) {
            val row = allIds.copyOfRange(r * width, r * width + limit + 1)
            if (row.any { it < 0 || it >= vocabSize }) throw BundleError("the greedy model returned ids outside the target vocabulary", greedy.label ?: "greedy model")
            ids.add(row)
            probs.add(DoubleArray(limit + 1) { allProbs[r * width + it].toDouble() })
        }
        checkOutputs(ids, probs, greedy.label ?: "greedy model")
        return rows(ids, probs, limit)
    }

    /** Results from the ids chosen at each step and their probabilities, per row: a row ends at its first end id;
     * without one it was cut at `limit` tokens. */
    private fun rows(ids: List<IntArray>, probs: List<DoubleArray>, limit: Int): List<DecodeResult> {
        val vocab = manifest.targetVocab
        return ids.mapIndexed { r, row ->
            val n = row.indexOf(END_ID)
            val finished = n >= 0
            val count = if (finished) n else limit
            val tokens = (0 until count).map { vocab.tokens[row[it]] }
            DecodeResult(detokenize(tokens, vocab.tokenization), tokens, probs[r].copyOf(if (finished) n + 1 else count).toList(), finished)
        }
    }
}
