package dev.seq2seqedge

import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files

/** The crafted model files of tests/make_crafted.py (attacks, and every model the exporter wrote) judged from their
 * bytes as the Python runtime judges them, message for message. */
class CraftedTest {
    private val cases: List<JSONObject> by lazy {
        JSONObject(String(Files.readAllBytes(Fixtures.crafted.resolve("crafted.json")), Charsets.UTF_8)).getJSONArray("cases").objects()
    }

    @Test
    fun seededMutantsGetPythonsVerdictWordForWord() {
        // tests/mutants.py: the fixture models with changed bytes, attributes, wiring and constants (ONNX here)
        val mutants = JSONObject(String(Files.readAllBytes(Fixtures.crafted.resolve("crafted.json")), Charsets.UTF_8))
            .getJSONArray("mutants").objects().filter { it.getString("format") == "onnx" }
        assertTrue(mutants.size >= 100)
        for (m in mutants) {
            val inputs = m.getJSONArray("inputs").objects().associate { t ->
                t.getString("name") to t.getJSONArray("shape").let { s -> (0 until s.length()).map { s.getInt(it) } } }
            val got = try {
                checkModelOps(Files.readAllBytes(Fixtures.crafted.resolve(m.getString("file"))), m.getString("format"), m.getString("role"),
                    m.getJSONArray("ops").strings(), m.getString("file"), m.getInt("loop_limit"), m.getLong("row_limit"), inputs)
                null
            } catch (e: BundleError) { e.message }
            assertEquals(if (m.isNull("error")) null else m.getString("error"), got, m.getString("name"))
        }
    }

    @Test
    fun theSharedCasesHoldAttacksAndTheExportersModels() {
        assertTrue(cases.count { it.isNull("error") } >= 30)
        assertTrue(cases.count { !it.isNull("error") } >= 20)
    }

    @TestFactory
    // This library loads ONNX models only and runs the ONNX shape proof: the TFLite proof's verdicts are left out.
    fun everyCaseGetsPythonsVerdict(): List<DynamicTest> = cases.filter { !(it.has("proof") && it.getString("format") == "tflite") }.map { c ->
        dynamicTest(c.getString("name")) {
            val bytes = Files.readAllBytes(Fixtures.crafted.resolve(c.getString("file")))
            val inputs = c.getJSONArray("inputs").objects().associate { t ->
                t.getString("name") to t.getJSONArray("shape").let { s -> (0 until s.length()).map { s.getInt(it) } } }
            val check = { checkModelOps(bytes, c.getString("format"), c.getString("role"), c.getJSONArray("ops").strings(), c.getString("file"), c.getInt("loop_limit"), c.getLong("row_limit"), inputs) }
            assertEquals(c.isNull("error"), c.getString("expect") == "accepted") // the verdict stated by hand
            if (c.isNull("error")) check() else assertEquals(c.getString("error"), assertThrows<BundleError> { check() }.message)
        }
    }

    @Test
    fun aBundleWhoseLoopBoundIsDefinedTwiceIsRefusedBeforeOnnxRuntime() {
        // the digits bundle's encoder replaced by one whose loop bound is redefined (re-signed): refused at load
        val dir = Fixtures.copyBundle("digits", Files.createTempDirectory("s2s-crafted"))
        val crafted = Files.readAllBytes(Fixtures.crafted.resolve("onnx-loop-bound-defined-twice-sparse.onnx"))
        Files.write(dir.resolve("encoder.fp32.onnx"), crafted)
        val manifest = JSONObject(String(Files.readAllBytes(dir.resolve(MANIFEST_FILE)), Charsets.UTF_8))
        manifest.getJSONArray("models").objects().filter { it.getString("path") == "encoder.fp32.onnx" }.forEach {
            it.put("size_bytes", crafted.size)
            it.put("sha256", sha256Hex(crafted))
        }
        Files.write(dir.resolve(MANIFEST_FILE), manifest.toString().toByteArray())
        val e = assertThrows<BundleError> { loadBundle(dir, oneCall = false) }
        assertTrue(e.message!!.endsWith("encoder.fp32.onnx: holds a Loop whose trip count M ('while/maximum_iterations:0') is defined 2 times in the main graph (initializers, sparse initializers, inputs): refused, as the bound cannot be known"), e.message)
    }
}
