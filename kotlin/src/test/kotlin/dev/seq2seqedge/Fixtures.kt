package dev.seq2seqedge

import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.fail
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths

/** The shared test vectors the Python runtime writes (tests/make_vectors.py): S2S_FIXTURES/{bundles/, vectors.json}. */
object Fixtures {
    val dir: Path by lazy {
        val env = System.getenv("S2S_FIXTURES")
        if (env.isNullOrEmpty()) {
            fail<Unit>("S2S_FIXTURES is not set: point it at a fixtures folder with bundles/ and vectors.json " +
                "(written by python tests/make_fixtures.py and tests/make_vectors.py); the Kotlin tests need them")
        }
        val p = Paths.get(env!!)
        if (!Files.isRegularFile(p.resolve("vectors.json"))) fail<Unit>("S2S_FIXTURES=$env has no vectors.json (run python tests/make_vectors.py $env)")
        p
    }

    val vectors: JSONObject by lazy { JSONObject(String(Files.readAllBytes(dir.resolve("vectors.json")), Charsets.UTF_8)) }

    fun bundle(name: String): Path = dir.resolve("bundles").resolve(name)

    /** The crafted model files and the Python runtime's verdict on each (tests/make_crafted.py). */
    val crafted: Path by lazy {
        val p = dir.resolve("crafted")
        if (!Files.isRegularFile(p.resolve("crafted.json"))) fail<Unit>("$p/crafted.json is missing (run python tests/make_crafted.py $dir)")
        p
    }

    fun manifestJson(name: String): JSONObject =
        JSONObject(String(Files.readAllBytes(bundle(name).resolve(MANIFEST_FILE)), Charsets.UTF_8))

    /** decodes[bundle]: the decode vectors of one bundle. */
    fun decodes(name: String): List<JSONObject> = vectors.getJSONObject("decodes").getJSONArray(name).objects()

    /** Copy a bundle's manifest and ONNX models to `to` (a fresh temp dir). */
    fun copyBundle(name: String, to: Path): Path {
        val src = bundle(name)
        Files.list(src).use { files ->
            files.filter { it.fileName.toString() == MANIFEST_FILE || it.fileName.toString().endsWith(".onnx") }
                .forEach { Files.copy(it, to.resolve(it.fileName.toString())) }
        }
        return to
    }
}

fun JSONArray.objects(): List<JSONObject> = (0 until length()).map { getJSONObject(it) }
fun JSONArray.strings(): List<String> = (0 until length()).map { getString(it) }
fun JSONArray.doubles(): List<Double> = (0 until length()).map { getDouble(it) }
fun JSONArray.ints(): IntArray = IntArray(length()) { getInt(it) }
