package dev.seq2seqedge

import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.assertThrows
import kotlin.math.abs
import kotlin.math.ln
import kotlin.math.max

/** Every decode and text vector of vectors.json, through this runtime. */
class VectorsTest {
    companion object {
        /** Per-token probabilities: fp32 within 1e-4 (ORT 1.29 here, the Python runtime's may be newer); int8 within
         * 0.05, as in the C tests: ONNX Runtime picks int8 kernels by the CPU's instructions. */
        fun probTolerance(variant: String) = if (variant == "int8") 5e-2 else 1e-4
        /** The fixture bundles (tests/make_vectors.py BUNDLES); embeddings: the architecture `s2s train --data` trains;
         * ensemble: attention and embeddings exported as one bundle (`s2s export --ensemble`). */
        val BUNDLES = listOf("digits", "numbers", "attention", "embeddings", "ensemble")

        /** Differences between results and expected vector items, as readable lines (empty: all equal). */
        fun differences(got: List<DecodeResult>, want: List<JSONObject>, inputs: List<String>, tolerance: Double = 1e-4): List<String> {
            val out = ArrayList<String>()
            if (got.size != want.size) return listOf("${got.size} results for ${want.size} expected")
            for (i in got.indices) {
                val g = got[i]
                val w = want[i]
                val label = "item ${i + 1} ${pyRepr(inputs[i])}"
                if (g.text != w.getString("text")) out.add("$label: text ${pyRepr(g.text)} != ${pyRepr(w.getString("text"))}")
                if (g.tokens != w.getJSONArray("tokens").strings()) out.add("$label: tokens ${g.tokens} != ${w.getJSONArray("tokens")}")
                if (g.finished != w.getBoolean("finished")) out.add("$label: finished ${g.finished} != ${w.getBoolean("finished")}")
                val wp = w.getJSONArray("token_probs").doubles()
                if (g.tokenProbs.size != wp.size) out.add("$label: ${g.tokenProbs.size} token probs != ${wp.size}")
                else g.tokenProbs.indices.forEach { k ->
                    if (!(abs(g.tokenProbs[k] - wp[k]) <= tolerance)) out.add("$label: token_probs[$k] ${g.tokenProbs[k]} != ${wp[k]}")
                }
            }
            return out
        }
    }

    @TestFactory
    fun decodeVectors(): List<DynamicTest> = BUNDLES.flatMap { name ->
        val vectors = Fixtures.decodes(name)
        assertTrue(vectors.isNotEmpty(), "no decode vectors for $name")
        vectors.map { v ->
            val variant = v.getString("variant")
            val path = v.getString("decode_path")
            dynamicTest("$name ${v.getString("format")} $variant $path") {
                assertEquals("onnx", v.getString("format"))
                val inputs = v.getJSONArray("inputs").strings()
                assertTrue(inputs.isNotEmpty())
                loadBundle(Fixtures.bundle(name), variant, oneCall = path == "one-call").use { d ->
                    assertEquals(path, d.decodePath)
                    assertEquals(variant, d.variant)
                    val batch = d.decodeBatchResults(inputs, batchSize = v.getInt("batch_size"))
                    val single = inputs.map { d.decodeResult(it) }
                    val tol = probTolerance(variant)
                    val problems = differences(batch, v.getJSONArray("batch").objects(), inputs, tol).map { "batch: $it" } +
                        differences(single, v.getJSONArray("single").objects(), inputs, tol).map { "single: $it" }
                    assertTrue(problems.isEmpty(), "${problems.size} differences from vectors.json, e.g.\n" + problems.take(10).joinToString("\n"))
                    // decodeBatch gives the texts of decodeBatchResults; score is the sum of ln(max(p, 1e-45))
                    assertEquals(batch.map { it.text }, d.decodeBatch(inputs, batchSize = v.getInt("batch_size")))
                    single.forEachIndexed { i, r ->
                        val want = v.getJSONArray("single").getJSONObject(i).getJSONArray("token_probs").doubles().sumOf { ln(max(it, 1e-45)) }
                        assertEquals(want, r.score, 1e-3 * (1 + r.tokenProbs.size))
                    }
                }
            }
        }
    }

    @Test
    fun autoLoadUsesTheOneCallModelWhenThereIsOne() {
        loadBundle(Fixtures.bundle("numbers")).use { assertEquals("one-call", it.decodePath) }
        loadBundle(Fixtures.bundle("numbers"), "int8").use { assertEquals("step-loop", it.decodePath) }
        loadBundle(Fixtures.bundle("numbers"), oneCall = false).use { assertEquals("step-loop", it.decodePath) }
    }

    @TestFactory
    fun textVectors(): List<DynamicTest> {
        val numbers = Fixtures.manifestJson("numbers")
        val policies = Fixtures.vectors.getJSONArray("text").objects()
        assertTrue(policies.size >= 4)
        return policies.flatMap { policy ->
            val d = JSONObject(numbers.toString())
            d.put("preprocessing", policy.getJSONObject("preprocessing"))
            val manifest = BundleManifest.fromObject(d, "text policy")
            val skip = policy.getBoolean("skip_unknown")
            policy.getJSONArray("cases").objects().mapIndexed { i, case ->
                val input = case.getString("input")
                dynamicTest("${policy.getString("name")} #${i + 1} ${preview(input, 12)}") {
                    if (case.has("ids")) {
                        assertArrayEquals(case.getJSONArray("ids").ints(), manifest.encodeInput(input, skip))
                    } else {
                        val e = assertThrows<InputTextError> { manifest.encodeInput(input, skip) }
                        assertEquals(case.getString("error"), e.message)
                    }
                }
            }
        }
    }

    @Test
    fun batchNamesTheItemThatCannotBeEncodedBeforeDecoding() {
        val policy = Fixtures.vectors.getJSONArray("text").objects().first { it.getString("name") == "char inputs" }
        val bad = policy.getJSONArray("cases").objects().first { it.has("error") && it.getString("input") == "z" }
        loadBundle(Fixtures.bundle("numbers")).use { d ->
            val inputs = listOf("12", "z", "3")
            val e = assertThrows<InputTextError> { d.decodeBatch(inputs) }
            assertEquals("item 2 of 3 ('z'): ${bad.getString("error")}", e.message)
            val long = "z".repeat(50)
            val e2 = assertThrows<InputTextError> { d.decodeBatch(listOf(long)) }
            assertTrue(e2.message!!.startsWith("item 1 of 1 ('${"z".repeat(40)}'... (50 characters)): input has 1 symbol(s)"), e2.message)
        }
    }
}
