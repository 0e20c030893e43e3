package dev.seq2seqedge

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files

/** The loop and its checks against fake models (a scripted engine), through the byte-array entry point. */
class DecoderTest {
    private val manifestBytes = Files.readAllBytes(Fixtures.bundle("numbers").resolve(MANIFEST_FILE))
    private val manifest = BundleManifest.fromJson(manifestBytes, "numbers")
    private val vocab = manifest.targetVocab.size
    private val latent = manifest.latentDim

    /** A fake engine: the encoder gives zeros; the step gives `probsAt(step, row)` (a full row of probabilities);
     * the greedy model gives `greedyRow(row)`. Files are the numbers bundle's own. */
    private inner class Fake(
        val probsAt: (Int, Int) -> FloatArray,
        val greedyRow: ((Int) -> Pair<IntArray, FloatArray>)? = null,
        val reportInputs: ((ModelEntry) -> List<TensorSpec>?) = { it.inputs },
        val shapeOf: ((String, Int) -> IntArray)? = null,
        /** record each encoder call's batch */
        val encoderBatches: MutableList<Int>? = null,
        /** throw this from a run of the model of this role (at a batch of 2: after the load's test run) */
        val failing: Pair<String, Exception>? = null,
        val failAtBatch: Int = 2,
    ) : Engine {
        override val name = "fake"
        override val format = "onnx"
        var lastStep = -1
        override fun createSession(bytes: ByteArray, entry: ModelEntry): EngineSession = object : EngineSession {
            override val inputs = reportInputs(entry)
            override val outputs = entry.outputs
            override fun run(feeds: Map<String, Tensor>): Map<String, Tensor> {
                val batch = feeds.values.first().dims[0]
                if (failing != null && failing.first == entry.role && batch == failAtBatch) throw failing.second
                return when (entry.role) {
                    ENCODER -> {
                        encoderBatches?.add(batch)
                        // state_h[r][0] carries row r's first input id, for the step to echo
                        val ids = feeds.getValue(Names.INPUT_IDS).ints!!
                        val t = manifest.encoderTimeSteps
                        val h = FloatArray(batch * latent).also { for (r in 0 until batch) it[r * latent] = ids[r * t].toFloat() }
                        mapOf(Names.STATE_H to Tensor.ofFloats(h, batch, latent),
                            Names.STATE_C to Tensor.ofFloats(FloatArray(batch * latent), batch, latent))
                    }
                    GREEDY -> {
                        val w = manifest.maxOutputTokens + 1
                        val ids = IntArray(batch * w); val p = FloatArray(batch * w)
                        for (r in 0 until batch) { val (i, q) = greedyRow!!(r); i.copyInto(ids, r * w); q.copyInto(p, r * w) }
                        mapOf(Names.OUTPUT_IDS to Tensor.ofInts(ids, batch, w), Names.OUTPUT_PROBS to Tensor.ofFloats(p, batch, w))
                    }
                    else -> {
                        // the step number within one decode: prev_token is the start id at the first step
                        val prev = feeds.getValue(Names.PREV_TOKEN).ints!!
                        val s = if (prev.all { it == START_ID }) 0 else lastStep + 1
                        lastStep = s
                        val probs = FloatArray(batch * vocab)
                        val h = feeds.getValue(Names.STATE_H).floats!!
                        for (r in 0 until batch) (if (probsAt === ECHO) echo(s, h[r * latent].toInt()) else probsAt(s, r)).copyInto(probs, r * vocab)
                        val dims = shapeOf?.invoke(Names.PROBS, batch) ?: intArrayOf(batch, vocab)
                        mapOf(Names.PROBS to Tensor.ofFloats(probs, *dims),
                            Names.NEXT_STATE_H to Tensor.ofFloats(h.copyOf(), batch, latent),
                            Names.NEXT_STATE_C to Tensor.ofFloats(FloatArray(batch * latent), batch, latent))
                    }
                }
            }
        }
    }

    private fun onehot(id: Int, p: Float = 0.9f): FloatArray = FloatArray(vocab).also { it[id] = p }

    /** A step that outputs the row's first input id, then the end id. */
    private val ECHO: (Int, Int) -> FloatArray = { _, _ -> FloatArray(0) }
    private fun echo(step: Int, firstId: Int) = if (step == 0) onehot(maxOf(firstId, N_SPECIAL)) else onehot(END_ID)

    private fun load(engine: Engine, oneCall: Boolean = false): Seq2SeqDecoder {
        // the numbers bundle's own files (their bytes pass the operator and loop checks); the fake engine runs them
        val d = org.json.JSONObject(String(manifestBytes, Charsets.UTF_8))
        val files = HashMap<String, ByteArray>()
        for (e in d.getJSONArray("models").objects()) {
            if (e.getString("format") == "onnx") files[e.getString("path")] = Files.readAllBytes(Fixtures.bundle("numbers").resolve(e.getString("path")))
        }
        files[MANIFEST_FILE] = manifestBytes
        return loadBundle(bytesReader(files), engine, "fp32", "fake", oneCall)
    }

    @Test
    fun argmaxTakesTheFirstMaximumAndTheFirstNaN() {
        assertEquals(1, argmax(floatArrayOf(0.1f, 0.5f, 0.5f), 0, 3))
        assertEquals(2, argmax(floatArrayOf(0.1f, 0.5f, Float.NaN, Float.NaN), 0, 4))
        assertEquals(0, argmax(floatArrayOf(Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY), 0, 2))
        assertEquals(1, argmax(floatArrayOf(9f, 0f, 1f), 1, 2))
    }

    @Test
    fun theStepLoopFeedsBackAndStopsAtTheEndId() {
        val tokens = intArrayOf(3 + 4, 3 + 5, END_ID)
        val d = load(Fake({ s, _ -> onehot(tokens[minOf(s, 2)], 0.5f + 0.1f * s) }))
        val r = d.decodeResult("12")
        assertEquals("step-loop", d.decodePath)
        assertEquals(listOf(manifest.targetVocab.tokens[7], manifest.targetVocab.tokens[8]), r.tokens)
        assertEquals(r.tokens.joinToString(" "), r.text)
        assertTrue(r.finished)
        assertEquals(3, r.tokenProbs.size)
        assertEquals(Math.log(0.5) + Math.log(0.6) + Math.log(0.7), r.score, 1e-6)
        assertEquals("", d.decode("")) // nothing to decode: the empty result, no model run
    }

    @Test
    fun anOutputWithoutTheEndIdIsCutAtTheLimit() {
        val d = load(Fake({ _, _ -> onehot(5) }))
        val r = d.decodeResult("1", maxOutputLen = 2)
        assertEquals(2, r.tokens.size)
        assertEquals(false, r.finished)
        assertEquals(2, r.tokenProbs.size)
        assertEquals(manifest.maxOutputTokens, d.decodeResult("1").tokens.size)
    }

    @Test
    fun reservedIdsAndBadProbabilitiesAreRefused() {
        val pad = load(Fake({ s, _ -> if (s == 0) onehot(5) else onehot(PAD_ID) }))
        assertEquals("fake/decoder_step.fp32.onnx: the model chose the reserved id 0 at step 2 of item 1 (only the end id 2 may end an output)",
            assertThrows<BundleError> { pad.decode("1") }.message)
        val nan = load(Fake({ _, _ -> FloatArray(vocab) { if (it == 4) Float.NaN else 0.1f } }))
        assertEquals("fake/decoder_step.fp32.onnx: the model gave a probability of nan (not a probability in [0, 1])",
            assertThrows<BundleError> { nan.decode("1") }.message)
        val big = load(Fake({ _, _ -> onehot(END_ID, 1.5f) }))
        assertEquals("fake/decoder_step.fp32.onnx: the model gave a probability of 1.5 (not a probability in [0, 1])",
            assertThrows<BundleError> { big.decode("1") }.message)
        // after the end id nothing is looked at; a softmax's rounding above 1 is allowed
        val ok = load(Fake({ s, _ -> if (s == 0) onehot(END_ID, 1.000001f) else onehot(PAD_ID, 7f) }))
        assertEquals("", ok.decode("1"))
    }

    @Test
    fun theOneCallModelIsChecked() {
        val w = manifest.maxOutputTokens + 1
        val good = load(Fake({ _, _ -> onehot(END_ID) }, { _ -> Pair(IntArray(w).also { it[0] = 9; it[1] = END_ID }, FloatArray(w) { 0.8f }) }), oneCall = true)
        assertEquals("one-call", good.decodePath)
        assertEquals(manifest.targetVocab.tokens[9], good.decode("1"))
        val outside = load(Fake({ _, _ -> onehot(END_ID) }, { _ -> Pair(IntArray(w) { vocab }, FloatArray(w) { 0.8f }) }), oneCall = true)
        assertEquals("fake/greedy.fp32.onnx: the greedy model returned ids outside the target vocabulary",
            assertThrows<BundleError> { outside.decode("1") }.message)
        val start = load(Fake({ _, _ -> onehot(END_ID) }, { _ -> Pair(IntArray(w) { START_ID }, FloatArray(w) { 0.8f }) }), oneCall = true)
        assertTrue(assertThrows<BundleError> { start.decode("1") }.message!!.startsWith("fake/greedy.fp32.onnx: the model chose the reserved id 1 at step 1"))
    }

    @Test
    fun theSignatureAndEveryRunsShapesAreChecked() {
        val e = assertThrows<BundleError> {
            load(Fake({ _, _ -> onehot(END_ID) }, reportInputs = { entry -> entry.inputs.map { if (it.name == Names.INPUT_IDS) it.copy(dtype = "int64") else it } }))
        }
        assertEquals("fake/encoder.fp32.onnx: input 'input_ids' is int64 in the model, int32 in the manifest", e.message)
        val e2 = assertThrows<BundleError> {
            load(Fake({ _, _ -> onehot(END_ID) }, reportInputs = { entry -> entry.inputs + TensorSpec("extra", "int32", listOf(-1)) }))
        }
        assertEquals("fake/encoder.fp32.onnx: the model has inputs [\"extra\"] that the manifest does not declare", e2.message)
        // the test run at load passes; a later run at batch 2 comes back with the wrong shape
        val d = load(Fake({ _, _ -> onehot(END_ID) }, shapeOf = { _, batch -> if (batch == 2) intArrayOf(1, 2 * vocab) else intArrayOf(batch, vocab) }))
        assertEquals("", d.decode("1"))
        assertEquals("fake/decoder_step.fp32.onnx: output 'probs' came back with shape [1, ${2 * vocab}] at batch 2; the manifest gives [2, $vocab]",
            assertThrows<BundleError> { d.decodeBatch(listOf("1", "2")) }.message)
    }

    @Test
    fun batchSizeSplitsTheInputsAndKeepsTheirOrder() {
        val batches = ArrayList<Int>()
        val d = load(Fake(ECHO, encoderBatches = batches))
        val inputs = listOf("1", "2", "3", "4", "5")
        // each output is the target token whose id is the input's first id: the rows stay in input order
        val want = inputs.map { manifest.targetVocab.tokens[manifest.encodeInput(it)[0]] }
        batches.clear()
        assertEquals(want, d.decodeBatch(inputs, batchSize = 2))
        assertEquals(listOf(2, 2, 1), batches)
        batches.clear()
        assertEquals(listOf(want[0], "", want[1]), d.decodeBatch(listOf("1", "", "2"), batchSize = 32))
        assertEquals(listOf(2), batches) // the empty input is not sent
        assertEquals(want.reversed(), d.decodeIds(inputs.reversed().map { manifest.encodeInput(it) }, batchSize = 3).map { it.text })
    }

    @Test
    fun oneOptionsObjectForEveryDecodeMethod() {
        val batches = ArrayList<Int>()
        val d = load(Fake(ECHO, encoderBatches = batches))
        val inputs = listOf("1", "2", "3", "4", "5")
        val options = DecodeOptions(batchSize = 2, maxOutputLen = 1)
        batches.clear()
        val results = d.decodeBatchResults(inputs, options)
        assertEquals(listOf(2, 2, 1), batches)
        val want = results.map { it.toString() } // text, tokens, probabilities, finished
        assertEquals(want, d.decodeBatchResults(inputs, batchSize = 2, maxOutputLen = 1).map { it.toString() })
        assertEquals(results.map { it.text }, d.decodeBatch(inputs, options))
        assertEquals(want, inputs.map { d.decodeResult(it, options).toString() })
        assertEquals(results.map { it.text }, inputs.map { d.decode(it, options) })
        assertEquals(want, d.decodeIds(inputs.map { manifest.encodeInput(it) }, options).map { it.toString() })
        assertTrue(results.all { it.tokens.size <= 1 })
    }

    @Test
    fun aRunThatFailsNamesTheModelFile() {
        // whatever an engine throws from a run (ONNX Runtime's OrtException, a bug) comes out as an EngineError
        // naming the file, never as the engine's own exception
        for ((role, file) in listOf(ENCODER to "encoder.fp32.onnx", DECODER_STEP to "decoder_step.fp32.onnx")) {
            val d = load(Fake({ _, _ -> onehot(END_ID) }, failing = role to IllegalStateException("boom\nsecond line")))
            assertEquals("", d.decode("1"))
            val e = assertThrows<EngineError> { d.decodeBatch(listOf("1", "2")) }
            assertEquals("fake/$file: fake failed to run the model: boom second line", e.message)
            assertTrue(e.cause is IllegalStateException)
        }
        val ort = load(Fake({ _, _ -> onehot(END_ID) }, failing = DECODER_STEP to ai.onnxruntime.OrtException("no")))
        assertEquals("fake/decoder_step.fp32.onnx: fake failed to run the model: no",
            assertThrows<EngineError> { ort.decodeBatch(listOf("1", "2")) }.message)
        // an engine's own BundleError without a file gets the file; an EngineError gets it in front
        val bundle = load(Fake({ _, _ -> onehot(END_ID) }, failing = DECODER_STEP to BundleError("output 'probs' is int8")))
        assertEquals("fake/decoder_step.fp32.onnx: output 'probs' is int8", assertThrows<BundleError> { bundle.decodeBatch(listOf("1", "2")) }.message)
        val engine = load(Fake({ _, _ -> onehot(END_ID) }, failing = DECODER_STEP to EngineError("ONNX Runtime failed to run the model: x")))
        assertEquals("fake/decoder_step.fp32.onnx: ONNX Runtime failed to run the model: x",
            assertThrows<EngineError> { engine.decodeBatch(listOf("1", "2")) }.message)
        // at load, the test run's failure is a bad bundle
        val e = assertThrows<BundleError> { load(Fake({ _, _ -> onehot(END_ID) }, failing = ENCODER to RuntimeException("bad"), failAtBatch = 1)) }
        assertEquals("fake/encoder.fp32.onnx: the model failed a test run: fake failed to run the model: bad", e.message)
    }
}
