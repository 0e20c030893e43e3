// manifest.json: checked against the JSON Schema the Python side writes (manifest.schema.json), then against the
// rules that relate its fields (the same as runtime/manifest.py and js/src/manifest.js), then parsed into an
// immutable, typed object.
package dev.seq2seqedge

import org.json.JSONArray
import org.json.JSONObject
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

const val MANIFEST_FILE = "manifest.json"
const val MANIFEST_FORMAT = "seq2seq-edge-bundle"
const val MANIFEST_VERSION = 1
const val ENCODER = "encoder"
const val DECODER_STEP = "decoder_step"
/** Optional: the encoder and the whole greedy loop in one model (input_ids -> output_ids, output_probs). */
const val GREEDY = "greedy"
const val ATTENTION_ARCHITECTURE = "lstm-attention"
const val SEED_ARCHITECTURE = "lstm-encoder-decoder"
/** The manifest is read only up to this size (runtime/manifest.py MAX_MANIFEST_BYTES). */
const val MAX_MANIFEST_BYTES = 16 * 1024 * 1024

/** The bundle contract's tensor names. */
object Names {
    const val INPUT_IDS = "input_ids"
    const val STATE_H = "state_h"
    const val STATE_C = "state_c"
    const val ENCODER_OUTPUTS = "encoder_outputs"
    const val ENCODER_MASK = "encoder_mask"
    const val PREV_TOKEN = "prev_token"
    const val PROBS = "probs"
    const val NEXT_STATE_H = "next_state_h"
    const val NEXT_STATE_C = "next_state_c"
    const val OUTPUT_IDS = "output_ids"
    const val OUTPUT_PROBS = "output_probs"
}

/** Recurrent pairs: a step's output fed back as the next step's input. */
val RECURRENT: List<Pair<String, String>> = listOf(Names.NEXT_STATE_H to Names.STATE_H, Names.NEXT_STATE_C to Names.STATE_C)

/** One tensor of a model's signature; -1 is a dynamic dimension. */
data class TensorSpec(val name: String, val dtype: String, val shape: List<Int>) {
    override fun toString() = "$name:$dtype[${shape.joinToString(", ")}]"
}

data class ModelIO(val inputs: List<TensorSpec>, val outputs: List<TensorSpec>)

/** One entry of the manifest's `models`. */
data class ModelEntry(
    val role: String, val format: String, val variant: String, val path: String, val sha256: String,
    val sizeBytes: Long, val inputs: List<TensorSpec>, val outputs: List<TensorSpec>,
    /** The operators the manifest lists for this file (the model's bytes must hold exactly these). */
    val ops: List<String> = emptyList(),
)

/** The inputs and outputs every model of `role` must have (runtime/manifest.py expected_io). */
fun expectedIO(role: String, latent: Int, steps: Int, targetVocab: Int, encoderOutputDim: Int? = null, maxOutputTokens: Int = 1): ModelIO {
    val state = listOf(-1, latent)
    if (role == GREEDY) {
        return ModelIO(listOf(TensorSpec(Names.INPUT_IDS, "int32", listOf(-1, steps))),
            listOf(TensorSpec(Names.OUTPUT_IDS, "int32", listOf(-1, maxOutputTokens + 1)),
                TensorSpec(Names.OUTPUT_PROBS, "float32", listOf(-1, maxOutputTokens + 1))))
    }
    val attention = if (encoderOutputDim == null) emptyList() else listOf(
        TensorSpec(Names.ENCODER_OUTPUTS, "float32", listOf(-1, steps, encoderOutputDim)),
        TensorSpec(Names.ENCODER_MASK, "float32", listOf(-1, steps)))
    if (role == ENCODER) {
        return ModelIO(listOf(TensorSpec(Names.INPUT_IDS, "int32", listOf(-1, steps))),
            listOf(TensorSpec(Names.STATE_H, "float32", state), TensorSpec(Names.STATE_C, "float32", state)) + attention)
    }
    return ModelIO(
        listOf(TensorSpec(Names.PREV_TOKEN, "int32", listOf(-1)), TensorSpec(Names.STATE_H, "float32", state),
            TensorSpec(Names.STATE_C, "float32", state)) + attention,
        listOf(TensorSpec(Names.PROBS, "float32", listOf(-1, targetVocab)), TensorSpec(Names.NEXT_STATE_H, "float32", state),
            TensorSpec(Names.NEXT_STATE_C, "float32", state)))
}

/** Specs sorted by name, as "[name:dtype[d, d], ...]" (the messages of every runtime). For messages only: two
 * different lists can format alike (a name may hold ", " and ":"), so compare them with [sameSpecs]. */
fun formatSpecs(specs: List<TensorSpec>): String = specs.sortedBy { it.name }.joinToString(", ", "[", "]")

/** Whether `got` declares exactly the tensors of `want`, in any order: the same names (each once, each exactly a
 * name of `want`), each with the same dtype and shape. */
fun sameSpecs(got: List<TensorSpec>, want: List<TensorSpec>): Boolean {
    if (got.size != want.size) return false
    val byName = want.associateBy { it.name }
    val seen = HashSet<String>()
    return got.all { g -> seen.add(g.name) && byName[g.name] == g }
}

/** The manifest schema the Python runtime writes (a copy of js/src/manifest.schema.json). */
internal val SCHEMA_JSON: JSONObject by lazy {
    val stream = BundleManifest::class.java.getResourceAsStream("manifest.schema.json")
        ?: throw IllegalStateException("manifest.schema.json is missing from the seq2seq-edge library's resources")
    stream.use { JSONObject(String(it.readBytes(), Charsets.UTF_8)) }
}

private val SCHEMA: SchemaChecker by lazy { SchemaChecker(SCHEMA_JSON) }

private fun JSONObject.obj(key: String): JSONObject = getJSONObject(key)
private fun JSONArray.strings(): List<String> = (0 until length()).map { getString(it) }
private fun specs(a: JSONArray): List<TensorSpec> = (0 until a.length()).map {
    val t = a.getJSONObject(it)
    val shape = t.getJSONArray("shape")
    TensorSpec(t.getString("name"), t.getString("dtype"), (0 until shape.length()).map { i -> (shape.get(i) as Number).toInt() })
}

/** Every problem of a parsed manifest.json (an empty list when it is valid). Never throws. */
fun manifestProblems(d: Any?): List<String> {
    if (d !is JSONObject) return listOf("manifest must be a JSON object")
    if (d.has("version") && !deepEqual(d.opt("version"), MANIFEST_VERSION) && d.opt("format") == MANIFEST_FORMAT) {
        return listOf("manifest format version ${jsonText(d.opt("version"))} is not supported by this runtime (it reads version " +
            "$MANIFEST_VERSION); upgrade the seq2seq-edge Kotlin runtime or re-export the bundle")
    }
    val problems = SCHEMA.check(d).toMutableList()
    if (problems.isNotEmpty()) return problems
    val prep = d.obj("preprocessing")
    for (side in listOf("input", "target")) {
        val vocab = prep.obj(side).getJSONArray("vocabulary").strings()
        val seen = HashSet<String>()
        val dupes = java.util.TreeSet<String>()
        for (t in vocab) if (!seen.add(t)) dupes.add(t)
        if (dupes.isNotEmpty()) problems.add("$side.vocabulary has duplicate entries: ${dupes.take(5).joinToString(", ") { pyRepr(it) }}")
        val bad = vocab.count { loneSurrogateIndex(it) >= 0 }
        if (bad > 0) problems.add("$side.vocabulary has $bad entries that are not valid Unicode (lone surrogates)")
    }
    val input = prep.obj("input")
    if (input.has("unknown_token")) {
        val unknown = input.getString("unknown_token")
        if (unknown !in input.getJSONArray("vocabulary").strings()) {
            problems.add("input.unknown_token ${pyRepr(unknown)} is not an entry of input.vocabulary")
        }
    }
    val m = d.obj("model")
    val steps = (m.get("encoder_time_steps") as Number).toInt()
    val maxIn = (input.get("max_tokens") as Number).toInt()
    if (steps < maxIn) problems.add("model.encoder_time_steps ($steps) is below input.max_tokens ($maxIn)")
    val attention = m.opt("architecture") == ATTENTION_ARCHITECTURE
    val target = prep.obj("target")
    val contract = listOf(ENCODER, DECODER_STEP, GREEDY).associateWith {
        expectedIO(it, (m.get("latent_dim") as Number).toInt(), steps, target.getJSONArray("vocabulary").length(),
            if (attention) (m.get("encoder_output_dim") as Number).toInt() else null, (target.get("max_tokens") as Number).toInt())
    }
    val seen = HashSet<String>()
    val models = d.getJSONArray("models")
    for (i in 0 until models.length()) {
        val e = models.getJSONObject(i)
        val where = "models[$i] ('${e.getString("path")}')"
        val key = "${e.getString("role")}/${e.getString("format")}/${e.getString("variant")}"
        if (!seen.add(key)) problems.add("$where: a second $key model")
        val want = contract[e.getString("role")] ?: continue // a role this runtime does not use: ignored, not refused
        for ((kind, wanted) in listOf("inputs" to want.inputs, "outputs" to want.outputs)) {
            val got = specs(e.getJSONArray(kind))
            if (!sameSpecs(got, wanted)) problems.add("$where: $kind ${formatSpecs(got)} contradict the contract ${formatSpecs(wanted)}")
        }
    }
    return problems
}

/** A checked manifest: the fields a decode loop needs. */
class BundleManifest private constructor(d: JSONObject) {
    private val prep = d.getJSONObject("preprocessing")
    private val model = d.getJSONObject("model")
    val architecture: String = model.optString("architecture", SEED_ARCHITECTURE)
    val latentDim: Int = (model.get("latent_dim") as Number).toInt()
    val encoderTimeSteps: Int = (model.get("encoder_time_steps") as Number).toInt()
    val encoderOutputDim: Int? = (model.opt("encoder_output_dim") as? Number)?.toInt()
    val inputVocab: Vocabulary = prep.getJSONObject("input").let {
        Vocabulary(it.getJSONArray("vocabulary").strings(), it.getString("tokenization"),
            if (it.has("unknown_token")) it.getString("unknown_token") else null)
    }
    val targetVocab: Vocabulary = prep.getJSONObject("target").let {
        Vocabulary(it.getJSONArray("vocabulary").strings(), it.getString("tokenization"))
    }
    val maxInputTokens: Int = (prep.getJSONObject("input").get("max_tokens") as Number).toInt()
    val maxOutputTokens: Int = (prep.getJSONObject("target").get("max_tokens") as Number).toInt()
    val models: List<ModelEntry> = d.getJSONArray("models").let { a ->
        (0 until a.length()).map {
            val e = a.getJSONObject(it)
            ModelEntry(e.getString("role"), e.getString("format"), e.getString("variant"), e.getString("path"),
                e.getString("sha256"), (e.get("size_bytes") as Number).toLong(), specs(e.getJSONArray("inputs")),
                specs(e.getJSONArray("outputs")), e.optJSONArray("ops")?.strings() ?: emptyList())
        }
    }
    val runtimesTested: Map<String, String> = d.optJSONObject("runtimes_tested")?.let { o ->
        o.keys().asSequence().associateWith { o.getString(it) }
    } ?: emptyMap()

    /** Characters an input may have before it is refused unread (preprocessing.py max_input_chars). */
    val maxInputChars: Int get() = maxInputTokens * 64 + 1024

    fun find(role: String, format: String, variant: String): ModelEntry? =
        models.firstOrNull { it.role == role && it.format == format && it.variant == variant }

    /** The most times any one loop of a `role` model may run (Python's BundleManifest.loop_limit): the encoder's
     * loops run over input positions, the greedy model's over output steps; the decoder step has no loop. */
    /** The most elements any tensor of this bundle's models may hold per batch row (Python's
     * BundleManifest.row_limit, the shape proof's bound): four times the longest sequence times the widest vector. */
    fun rowLimit(): Long = 4L * maxOf(encoderTimeSteps, maxOutputTokens + 1) *
        maxOf(latentDim, encoderOutputDim ?: 0, targetVocab.size, inputVocab.size)

    fun loopLimit(role: String): Int = when (role) {
        ENCODER -> encoderTimeSteps
        GREEDY -> maxOf(encoderTimeSteps, maxOutputTokens + 1)
        else -> 0
    }

    /** Variants of `format` with both an encoder and a decoder step. */
    fun variants(format: String): List<String> {
        val order = if (format == "tflite") listOf("fp32", "fp16", "int8") else listOf("fp32", "int8")
        return order.filter { find(ENCODER, format, it) != null && find(DECODER_STEP, format, it) != null }
    }

    fun io(role: String): ModelIO =
        expectedIO(role, latentDim, encoderTimeSteps, targetVocab.size, encoderOutputDim, maxOutputTokens)

    /** Token ids of one input: length (before any work), NFC, vocabulary, token limit. */
    fun encodeInput(source: String, skipUnknown: Boolean = false): IntArray {
        if (source.length > maxInputChars && codePointLength(source) > maxInputChars) {
            throw InputTextError("input is ${codePointLength(source)} characters long; the model takes at most $maxInputTokens tokens")
        }
        val ids = inputVocab.encode(normalize(source), skipUnknown)
        if (ids.size > maxInputTokens) {
            throw InputTextError("input is ${ids.size} tokens long; the model takes at most $maxInputTokens")
        }
        return ids
    }

    companion object {
        /** Check a parsed manifest; throws BundleError listing every problem. */
        @JvmStatic
        fun fromObject(d: Any?, where: String? = null): BundleManifest {
            val problems = manifestProblems(d)
            if (problems.isNotEmpty()) throw BundleError(problems, where)
            return BundleManifest(d as JSONObject)
        }

        /** Parse manifest.json's text. */
        @JvmStatic
        fun fromJson(text: String, where: String? = null): BundleManifest {
            if (text.length > MAX_MANIFEST_BYTES) {
                throw BundleError("manifest is ${text.length} bytes, more than the $MAX_MANIFEST_BYTES allowed", where)
            }
            val d = try { parseJson(text) } catch (e: IllegalArgumentException) {
                throw BundleError("manifest is not valid JSON (${e.message})", where)
            }
            return fromObject(d, where)
        }

        /** Parse manifest.json's bytes (strict UTF-8). */
        @JvmStatic
        fun fromJson(bytes: ByteArray, where: String? = null): BundleManifest {
            if (bytes.size > MAX_MANIFEST_BYTES) {
                throw BundleError("manifest is ${bytes.size} bytes, more than the $MAX_MANIFEST_BYTES allowed", where)
            }
            val text = try {
                Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString()
            } catch (e: CharacterCodingException) {
                throw BundleError("manifest is not valid UTF-8", where)
            }
            return fromJson(text, where)
        }
    }
}
