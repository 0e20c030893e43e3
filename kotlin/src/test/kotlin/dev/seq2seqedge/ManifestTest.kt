package dev.seq2seqedge

import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files
import java.nio.file.Paths

class ManifestTest {
    private fun numbers() = Fixtures.manifestJson("numbers")
    private fun problems(d: JSONObject): String = assertThrows<BundleError> { BundleManifest.fromObject(d, "m.json") }.message!!

    @Test
    fun errorMessagesHaveTheJavaScriptForm() {
        assertEquals("w: one", BundleError("one", "w").message)
        assertEquals("w: 2 problems: a; b", BundleError(listOf("a", "b"), "w").message)
        assertEquals("a", BundleError("a").message)
        assertEquals(listOf("a", "b"), BundleError(listOf("a", "b"), "w").problems)
        assertEquals("w", BundleError("a", "w").where)
        for (e in listOf(InputTextError("x"), BundleError("x"), EngineError("x"), OptionError("x"))) assertTrue(e is Seq2SeqEdgeError)
    }

    @Test
    fun theRealManifestsParse() {
        for (name in VectorsTest.BUNDLES) {
            val bytes = Files.readAllBytes(Fixtures.bundle(name).resolve(MANIFEST_FILE))
            val m = BundleManifest.fromJson(bytes, name)
            assertEquals(listOf("fp32", "int8"), m.variants("onnx"))
            assertEquals(m.maxInputTokens * 64 + 1024, m.maxInputChars)
            val attention = name != "digits" && name != "numbers"
            assertEquals(attention, m.encoderOutputDim != null)
            assertEquals(if (attention) ATTENTION_ARCHITECTURE else SEED_ARCHITECTURE, m.architecture)
            for (e in m.models) {
                val want = m.io(e.role)
                assertEquals(formatSpecs(want.inputs), formatSpecs(e.inputs))
                assertEquals(formatSpecs(want.outputs), formatSpecs(e.outputs))
            }
        }
    }

    @Test
    fun theSchemaIsTheJavaScriptRuntimesCopy() {
        // src/main/resources holds a copy of js/src/manifest.schema.json (written by python -m seq2seq_edge.schema)
        val js = Paths.get("..", "js", "src", "manifest.schema.json")
        assertTrue(Files.isRegularFile(js), "no $js next to kotlin/")
        val ours = javaClass.getResourceAsStream("/dev/seq2seqedge/manifest.schema.json")!!.use { it.readBytes() }
        assertArrayEquals(Files.readAllBytes(js), ours, "kotlin/src/main/resources/dev/seq2seqedge/manifest.schema.json is stale: copy it again")
    }

    @Test
    fun versionAndFormat() {
        assertEquals("m.json: manifest format version \"2\" is not supported by this runtime (it reads version 1); " +
            "upgrade the seq2seq-edge Kotlin runtime or re-export the bundle", problems(numbers().put("version", "2")))
        assertEquals("m.json: /format: must be \"seq2seq-edge-bundle\", got \"other\"", problems(numbers().put("format", "other")))
        assertEquals("m.json: manifest must be a JSON object", assertThrows<BundleError> { BundleManifest.fromJson("[1]", "m.json") }.message)
    }

    @Test
    fun schemaProblemsAreAllListed() {
        val d = numbers()
        d.remove("models")
        d.getJSONObject("model").put("latent_dim", 0)
        val msg = problems(d)
        assertTrue(msg.startsWith("m.json: 2 problems: "), msg)
        assertTrue(msg.contains("/: missing key 'models'"), msg)
        assertTrue(msg.contains("/model/latent_dim: must be at least 1, got 0"), msg)
        val d2 = numbers()
        d2.getJSONObject("preprocessing").getJSONObject("input").put("max_tokens", "3")
        assertEquals("m.json: /preprocessing/input/max_tokens: must be an integer, got \"3\"", problems(d2))
        val d3 = numbers()
        d3.getJSONObject("preprocessing").getJSONObject("target").put("tokenization", "bytes")
        assertEquals("m.json: /preprocessing/target/tokenization: must be one of [\"char\",\"space\"], got \"bytes\"", problems(d3))
        val d4 = numbers()
        d4.getJSONArray("models").getJSONObject(0).put("sha256", "ABC")
        assertTrue(problems(d4).contains("/models/0/sha256: \"ABC\" does not match ^[0-9a-f]{64}$"))
        val d5 = numbers()
        d5.getJSONArray("models").getJSONObject(0).put("path", "encoder.onnx\n")
        assertTrue(problems(d5).contains("/models/0/path: \"encoder.onnx\\n\" does not match"), "a line break after the name")
        val d6 = numbers()
        d6.getJSONObject("preprocessing").getJSONObject("input").getJSONArray("vocabulary").put(0, "x")
        assertTrue(problems(d6).contains("/preprocessing/input/vocabulary/0: must be \"<s2s pad>\", got \"x\""))
    }

    @Test
    fun rulesBetweenFields() {
        val d = numbers()
        d.getJSONObject("preprocessing").getJSONObject("input").getJSONArray("vocabulary").put("1").put("1")
        assertEquals("m.json: input.vocabulary has duplicate entries: '1'", problems(d))
        val d2 = numbers()
        d2.getJSONObject("preprocessing").getJSONObject("input").put("unknown_token", "?")
        assertEquals("m.json: input.unknown_token '?' is not an entry of input.vocabulary", problems(d2))
        val d3 = numbers()
        d3.getJSONObject("preprocessing").getJSONObject("input").put("max_tokens", 4)
        val msg3 = problems(d3)
        assertTrue(msg3.contains("model.encoder_time_steps (3) is below input.max_tokens (4)"), msg3)
        val d4 = numbers()
        val models = d4.getJSONArray("models")
        models.put(JSONObject(models.getJSONObject(models.length() - 1).toString()))
        assertTrue(problems(d4).contains("models[${models.length() - 1}] ('decoder_step.int8.onnx'): a second decoder_step/onnx/int8 model"))
        val d5 = numbers()
        d5.getJSONObject("preprocessing").getJSONObject("target").getJSONArray("vocabulary").put("extra")
        val msg5 = problems(d5)
        assertTrue(msg5.contains("outputs [next_state_c:float32[-1, 24], next_state_h:float32[-1, 24], probs:float32[-1, 105]] " +
            "contradict the contract [next_state_c:float32[-1, 24], next_state_h:float32[-1, 24], probs:float32[-1, 106]]"), msg5)
        val d6 = numbers()
        d6.getJSONArray("models").put(JSONObject(d6.getJSONArray("models").getJSONObject(0).toString()).put("role", "beam").put("variant", "fp32"))
        BundleManifest.fromObject(d6, "m.json") // a role this runtime does not use is ignored
    }

    @Test
    fun badBytes() {
        assertEquals("m.json: manifest is not valid UTF-8", assertThrows<BundleError> { BundleManifest.fromJson(byteArrayOf(0x7b, 0xff.toByte(), 0x7d), "m.json") }.message)
        assertTrue(assertThrows<BundleError> { BundleManifest.fromJson("{\"a\": ", "m.json") }.message!!.startsWith("m.json: manifest is not valid JSON ("))
        assertTrue(assertThrows<BundleError> { BundleManifest.fromJson("{} x", "m.json") }.message!!.startsWith("m.json: manifest is not valid JSON ("))
        val deep = "[".repeat(100000) + "]".repeat(100000)
        assertTrue(assertThrows<BundleError> { BundleManifest.fromJson(deep, "m.json") }.message!!.contains("nested"))
        val big = ByteArray(MAX_MANIFEST_BYTES + 1) { ' '.code.toByte() }
        assertEquals("m.json: manifest is ${big.size} bytes, more than the $MAX_MANIFEST_BYTES allowed",
            assertThrows<BundleError> { BundleManifest.fromJson(big, "m.json") }.message)
    }

    @Test
    fun textHelpers() {
        assertEquals("'a'", pyRepr("a"))
        assertEquals("\"'\"", pyRepr("'"))
        assertEquals("'\\x00\\u200b\\U000e0001 \\n'", pyRepr("\u0000\u200b\uDB40\uDC01 \n"))
        assertEquals("U+00A0", describe("\u00a0"))
        assertEquals("' '", describe(" "))
        assertEquals(listOf("1", "2", "3"), tokenize("1\u00a02\u30003 ", "space"))
        assertEquals(listOf("a", "\uD83D\uDE00"), tokenize("a\uD83D\uDE00", "char"))
        val m = BundleManifest.fromObject(numbers(), "m")
        assertEquals("not valid Unicode: lone surrogate U+D800 at column 2", assertThrows<InputTextError> { m.encodeInput("1\uD800") }.message)
        // the length limit is checked before any work, in code points
        val long = "1".repeat(m.maxInputChars + 1)
        assertEquals("input is ${m.maxInputChars + 1} characters long; the model takes at most ${m.maxInputTokens} tokens",
            assertThrows<InputTextError> { m.encodeInput(long) }.message)
        assertEquals("input has 1 symbol(s) the model never saw: ' '; it is whitespace around the text, which the model's inputs never had: strip it",
            assertThrows<InputTextError> { m.encodeInput(" 1") }.message)
        assertEquals("input has 1 symbol(s) the model never saw: ' '", assertThrows<InputTextError> { m.encodeInput("1 1") }.message)
        assertEquals(JSONArray().put(4).toString(), JSONArray(m.encodeInput("1").toList()).toString())
    }

    @Test
    fun theContractIsComparedNameByNameNotAsText() {
        // a name holding ", " and ":" formats like two tensors: refused all the same
        val forged = "next_state_c:float32[-1, 24], next_state_h"
        val d = numbers()
        val step = d.getJSONArray("models").objects().first { it.getString("role") == DECODER_STEP }
        val outputs = step.getJSONArray("outputs")
        val probs = outputs.objects().first { it.getString("name") == Names.PROBS }
        step.put("outputs", JSONArray().put(probs).put(JSONObject().put("name", forged).put("dtype", "float32").put("shape", JSONArray(listOf(-1, 24)))))
        val msg = problems(d)
        assertTrue(msg.contains("('${step.getString("path")}'): outputs ") && msg.contains(" contradict the contract [next_state_c:float32[-1, 24], "), msg)
        // a name twice, in place of another
        val d2 = numbers()
        val step2 = d2.getJSONArray("models").objects().first { it.getString("role") == DECODER_STEP }
        val outs2 = step2.getJSONArray("outputs").objects()
        val h = outs2.first { it.getString("name") == Names.NEXT_STATE_H }
        step2.put("outputs", JSONArray(outs2.map { if (it.getString("name") == Names.NEXT_STATE_C) JSONObject(h.toString()) else it }))
        assertTrue(problems(d2).contains("contradict the contract"))
        // sameSpecs itself
        val want = listOf(TensorSpec("a", "int32", listOf(-1)), TensorSpec("b", "float32", listOf(-1, 2)))
        assertTrue(sameSpecs(want.reversed(), want))
        assertTrue(!sameSpecs(listOf(want[0], want[0]), want))
        assertTrue(!sameSpecs(listOf(want[0]), want))
        assertTrue(!sameSpecs(listOf(want[0], want[1].copy(shape = listOf(-1, 3))), want))
        assertTrue(!sameSpecs(listOf(want[0], want[1].copy(dtype = "int32")), want))
        val lookalike = listOf(TensorSpec("a:int32[-1], b", "float32", listOf(-1, 2)))
        assertEquals(formatSpecs(want), formatSpecs(lookalike)) // why the text is not compared
        assertTrue(!sameSpecs(lookalike, want))
    }
}
