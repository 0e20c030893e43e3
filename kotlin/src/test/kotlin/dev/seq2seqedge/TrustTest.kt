package dev.seq2seqedge

import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.assertTimeoutPreemptively
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.time.Duration

/** A bundle is untrusted input: links, FIFOs, tampered or resized files and odd paths are refused before
 * ONNX Runtime sees a byte. Each test works on a copy of the digits bundle. */
class TrustTest {
    @TempDir lateinit var tmp: Path

    private fun copy(): Path = Fixtures.copyBundle("digits", tmp)
    private val model = "encoder.fp32.onnx"

    private fun manifest(dir: Path) = JSONObject(String(Files.readAllBytes(dir.resolve(MANIFEST_FILE)), Charsets.UTF_8))
    private fun writeManifest(dir: Path, d: JSONObject) = Files.write(dir.resolve(MANIFEST_FILE), d.toString(1).toByteArray())

    private fun refused(dir: Path, variant: String = "fp32", oneCall: Boolean? = null): BundleError =
        assertThrows { loadBundle(dir, variant, oneCall).close() }

    @Test
    fun theCopyLoadsAndDecodes() {
        val dir = copy()
        val want = Fixtures.decodes("digits").first { it.getString("variant") == "fp32" && it.getString("decode_path") == "one-call" }
        loadBundle(dir).use { d ->
            val input = want.getJSONArray("inputs").getString(0)
            assertEquals(want.getJSONArray("single").getJSONObject(0).getString("text"), d.decode(input))
        }
    }

    @Test
    fun aModelFileThatIsASymlinkIsRefused() {
        val dir = copy()
        Files.delete(dir.resolve(model))
        Files.createSymbolicLink(dir.resolve(model), Paths.get("/etc/passwd"))
        val e = try { refused(dir) } finally { Files.delete(dir.resolve(model)) }
        assertEquals("$dir/$model: is a symbolic link; bundle files must be regular files inside the bundle folder", e.message)
    }

    @Test
    fun aSymlinkToTheRealModelIsRefusedToo() {
        val dir = copy()
        val outside = Files.createTempFile("s2s-outside", ".onnx")
        try {
            Files.move(dir.resolve(model), outside, java.nio.file.StandardCopyOption.REPLACE_EXISTING)
            Files.createSymbolicLink(dir.resolve(model), outside)
            assertTrue(refused(dir).message!!.contains("symbolic link"))
        } finally { Files.deleteIfExists(dir.resolve(model)); Files.deleteIfExists(outside) }
    }

    @Test
    fun aManifestThatIsASymlinkIsRefused() {
        val dir = copy()
        val elsewhere = tmp.resolveSibling(tmp.fileName.toString() + "-manifest.json")
        try {
            Files.move(dir.resolve(MANIFEST_FILE), elsewhere)
            Files.createSymbolicLink(dir.resolve(MANIFEST_FILE), elsewhere)
            assertTrue(refused(dir).message!!.endsWith("$MANIFEST_FILE: is a symbolic link; bundle files must be regular files inside the bundle folder"))
        } finally { Files.deleteIfExists(dir.resolve(MANIFEST_FILE)); Files.deleteIfExists(elsewhere) }
    }

    @Test
    fun aFifoIsRefusedWithoutHanging() {
        val dir = copy()
        Files.delete(dir.resolve(model))
        val p = ProcessBuilder("mkfifo", dir.resolve(model).toString()).inheritIO().start()
        assertEquals(0, p.waitFor(), "mkfifo failed")
        val e = assertTimeoutPreemptively(Duration.ofSeconds(20), org.junit.jupiter.api.function.ThrowingSupplier { refused(dir) })
        assertTrue(e.message!!.startsWith("$dir/$model: is not a regular file"), e.message)
    }

    @Test
    fun aFolderInPlaceOfAModelIsRefused() {
        val dir = copy()
        Files.delete(dir.resolve(model))
        Files.createDirectory(dir.resolve(model))
        assertEquals("$dir/$model: is a folder, not a regular file", refused(dir).message)
    }

    @Test
    fun aMissingModelFileIsNamed() {
        val dir = copy()
        Files.delete(dir.resolve(model))
        assertEquals("$dir/$model: file listed in the manifest is missing: copy the bundle again", refused(dir).message)
    }

    @Test
    fun aFlippedByteFailsTheChecksum() {
        val dir = copy()
        val bytes = Files.readAllBytes(dir.resolve(model))
        bytes[bytes.size / 2] = (bytes[bytes.size / 2].toInt() xor 1).toByte()
        Files.write(dir.resolve(model), bytes)
        assertEquals("$dir/$model: model file's sha256 does not match the manifest (modified or corrupted: copy the bundle again)",
            refused(dir).message)
    }

    @Test
    fun aTruncatedFileFailsTheSizeCheck() {
        val dir = copy()
        val bytes = Files.readAllBytes(dir.resolve(model))
        Files.write(dir.resolve(model), bytes.copyOf(bytes.size - 10))
        assertEquals("$dir/$model: model file is ${bytes.size - 10} bytes, the manifest says ${bytes.size} " +
            "(truncated, replaced or corrupted: copy the bundle again)", refused(dir).message)
    }

    @Test
    fun aGrownFileIsRefusedUnread() {
        val dir = copy()
        val bytes = Files.readAllBytes(dir.resolve(model))
        Files.write(dir.resolve(model), bytes + ByteArray(1000))
        assertEquals("$dir/$model: file is ${bytes.size + 1000} bytes, more than the ${bytes.size} expected " +
            "(replaced or corrupted: copy the bundle again)", refused(dir).message)
    }

    @Test
    fun aPathOutsideTheFolderIsRefused() {
        val dir = copy()
        val index = manifest(dir).getJSONArray("models").objects().indexOfFirst { it.getString("path") == model }
        for (bad in listOf("../x", "/etc/passwd", "sub/encoder.fp32.onnx", "a\u0000b", ".hidden")) {
            val d = manifest(dir)
            d.getJSONArray("models").getJSONObject(index).put("path", bad)
            writeManifest(dir, d)
            val e = refused(dir)
            assertTrue(e.message!!.contains("/path: ${jsonQuote(bad)} does not match"), e.message)
        }
        // and the readers themselves, used without a manifest
        for (bad in listOf("../x", "a/b", "..", "a\u0000b")) {
            val e = assertThrows<BundleError> { folderReader(dir).read(bad, 100) }
            assertTrue(e.message!!.contains("is not a plain file name"), e.message)
        }
    }

    @Test
    fun onlyFilesTheManifestNamesAreOpened() {
        val dir = copy()
        val opened = ArrayList<String>()
        val reader = folderReader(dir)
        loadBundle(BundleReader { name, max -> opened.add(name); reader.read(name, max) }, OnnxRuntimeEngine(), "int8", dir.toString()).close()
        assertEquals(listOf(MANIFEST_FILE, "encoder.int8.onnx", "decoder_step.int8.onnx"), opened)
    }

    @Test
    fun version2IsRefusedWithAMessage() {
        val dir = copy()
        writeManifest(dir, manifest(dir).put("version", 2))
        assertEquals("$dir/$MANIFEST_FILE: manifest format version 2 is not supported by this runtime (it reads version 1); " +
            "upgrade the seq2seq-edge Kotlin runtime or re-export the bundle", refused(dir).message)
    }

    @Test
    fun anUnknownVariantListsTheVariants() {
        val dir = copy()
        assertEquals("$dir: the bundle has no onnx fp16 models (it holds onnx variants [\"fp32\",\"int8\"])", refused(dir, "fp16").message)
        assertEquals("$dir: the bundle has no onnx bogus models (it holds onnx variants [\"fp32\",\"int8\"])", refused(dir, "bogus").message)
    }

    @Test
    fun oneCallRequiredButMissing() {
        val dir = copy()
        assertTrue(refused(dir, "int8", oneCall = true).message!!.contains("has no one-call greedy model for onnx int8"))
    }

    @Test
    fun notABundleFolder() {
        assertEquals("${tmp.resolve("nope")}: no such bundle folder", refused(tmp.resolve("nope")).message)
        val dir = copy()
        assertTrue(refused(dir.resolve(MANIFEST_FILE)).message!!.contains("this is the bundle's manifest; give the folder that holds it"))
        assertEquals("$dir/$model: this is a file; a bundle is the folder s2s export wrote", refused(dir.resolve(model)).message)
        Files.delete(dir.resolve(MANIFEST_FILE))
        assertEquals("$dir/$MANIFEST_FILE: no manifest.json here: is this a bundle written by `s2s export`?", refused(dir).message)
    }

    @Test
    fun aModelThatContradictsItsManifestEntryIsRefused() {
        // the manifest says the encoder is the decoder step (size and sha256 match the file): its bytes are refused
        // before ONNX Runtime sees them (the session's real inputs are checked after that: DecoderTest)
        val dir = copy()
        val d = manifest(dir)
        val models = d.getJSONArray("models").objects()
        val enc = models.first { it.getString("path") == model }
        val step = models.first { it.getString("path") == "decoder_step.fp32.onnx" }
        for (k in listOf("path", "sha256", "size_bytes")) step.put(k, enc.get(k))
        writeManifest(dir, d)
        val e = refused(dir, oneCall = false)
        assertTrue(e.message!!.startsWith("$dir/$model: "), e.message)
        assertTrue(e.message!!.contains("has a loop of up to ") && e.message!!.contains("uses operators a decoder_step may not have: ['And', "), e.message)
    }

    @Test
    fun optionsOutOfRange() {
        loadBundle(copy()).use { d ->
            assertEquals("maxOutputLen must be at least 1, got 0",
                assertThrows<OptionError> { d.decode("1", maxOutputLen = 0) }.message)
            assertEquals("maxOutputLen must be between 1 and the trained maximum ${d.maxOutputLen}, got ${d.maxOutputLen + 1}",
                assertThrows<OptionError> { d.decode("1", DecodeOptions(maxOutputLen = d.maxOutputLen + 1)) }.message)
            assertEquals("batchSize must be between 1 and 4096, got 0",
                assertThrows<OptionError> { d.decodeBatch(listOf("1"), batchSize = 0) }.message)
            assertThrows<OptionError> { DecodeOptions(batchSize = 4097) }
            assertThrows<OptionError> { d.decodeBatch(listOf("1"), maxOutputLen = -3) }
            // a shorter limit cuts the output: never more tokens than asked, not finished when cut
            val full = d.decodeResult("1", maxOutputLen = d.maxOutputLen)
            val cut = d.decodeResult("1", maxOutputLen = 1)
            assertTrue(cut.tokens.size <= 1)
            assertEquals(full.tokens.take(1), cut.tokens)
            if (full.tokens.size > 1) assertEquals(false, cut.finished)
        }
    }

    @Test
    fun loadingFromBytesInMemoryMatchesTheFolder() {
        val dir = copy()
        val files = Files.list(dir).use { s -> s.toList().associate { it.fileName.toString() to Files.readAllBytes(it) } }
        val v = Fixtures.decodes("digits").first { it.getString("variant") == "int8" }
        val inputs = v.getJSONArray("inputs").strings()
        loadBundle(bytesReader(files), OnnxRuntimeEngine(), "int8", "assets/digits").use { d ->
            assertEquals("step-loop", d.decodePath)
            assertEquals(v.getJSONArray("single").objects().map { it.getString("text") }, inputs.map { d.decode(it) })
        }
        // readBounded, the helper for Android's AssetManager streams, refuses a stream over the bound
        val bytes = files.getValue(model)
        assertEquals(bytes.toList(), readBounded(bytes.inputStream(), bytes.size.toLong(), model).toList())
        assertThrows<BundleError> { readBounded(bytes.inputStream(), bytes.size - 1L, model) }
        val e = assertThrows<BundleError> { loadBundle(bytesReader(files - model), OnnxRuntimeEngine(), source = "assets/digits") }
        assertEquals("$model: file listed in the manifest is missing: copy the bundle again", e.message)
        // a reader over a stream source (Android assets) whose missing file is a FileNotFoundException
        val assets = BundleReader { name, max ->
            val bytes = files[name] ?: throw java.io.FileNotFoundException("numbers/$name")
            readBounded(bytes.inputStream(), max, name)
        }
        loadBundle(assets, OnnxRuntimeEngine(), "int8", "assets/digits").close()
        val missing = files.getValue(MANIFEST_FILE)
        val e2 = assertThrows<BundleError> { loadBundle(BundleReader { n, m -> if (n == MANIFEST_FILE) missing else throw java.io.FileNotFoundException(n) }, OnnxRuntimeEngine(), source = "assets/digits/") }
        assertEquals("assets/digits/encoder.fp32.onnx: file listed in the manifest is missing: copy the bundle again", e2.message)
    }

    @Test
    fun threadsAreBounded() {
        val dir = copy()
        for (bad in listOf(0, -1, MAX_THREADS + 1, 100000)) {
            assertEquals("threads must be between 1 and $MAX_THREADS, got $bad", assertThrows<OptionError> { loadBundle(dir, threads = bad) }.message)
            assertThrows<OptionError> { OnnxRuntimeEngine(bad) }
        }
    }

    @Test
    fun aModelWithExternalDataIsRefusedAtLoad() {
        // the model's weights "in secret.bin": next to the model, in the working folder, or at an absolute path,
        // ONNX Runtime must read none of them
        for (location in listOf("secret.bin", "../secret.bin", tmp.resolve("secret.bin").toString())) {
            val dir = tmp.resolve("b" + location.hashCode()).also { Files.createDirectory(it) }
            digitsWithStep(dir, externalRow = location)
            Files.write(dir.resolve("secret.bin"), floatBytes(stepRows(17)))
            Files.write(tmp.resolve("secret.bin"), floatBytes(stepRows(17)))
            val e = refused(dir, oneCall = false)
            assertEquals("$dir/decoder_step.fp32.onnx: refers to external data for ['rows']; bundle models must embed their weights (external data is refused)", e.message)
            // the second line: ONNX Runtime itself is told external data lives in a folder that cannot exist
            val entry = BundleManifest.fromJson(Files.readAllBytes(dir.resolve(MANIFEST_FILE)), "m").find(DECODER_STEP, "onnx", "fp32")!!
            assertThrows<Exception> { OnnxRuntimeEngine(1).createSession(Files.readAllBytes(dir.resolve("decoder_step.fp32.onnx")), entry).close() }
        }
    }

    @Test
    fun aModelFailingAtRunTimeIsAnEngineErrorNamingTheFile() {
        val dir = digitsWithStep(tmp, failAfterStart = true)
        loadBundle(dir, oneCall = false).use { d -> // the load's test run (prev_token 0) passes
            val e = assertThrows<EngineError> { d.decode(Fixtures.decodes("digits")[0].getJSONArray("inputs").getString(0)) }
            assertTrue(e.message!!.startsWith("$dir/decoder_step.fp32.onnx: ONNX Runtime failed to run the model: "), e.message)
            assertTrue(!e.message!!.contains("Error code -") && !e.message!!.contains("\n"), e.message)
            assertTrue(e.cause is ai.onnxruntime.OrtException)
        }
        // the hand-written model without the failing Gather decodes: the test above fails for the right reason
        val ok = tmp.resolve("ok").also { Files.createDirectory(it) }
        loadBundle(digitsWithStep(ok), oneCall = false).use { d ->
            val input = Fixtures.decodes("digits")[0].getJSONArray("inputs").getString(0)
            val vocab = d.manifest.targetVocab
            assertEquals(detokenize(List(d.maxOutputLen) { vocab.tokens[3] }, vocab.tokenization), d.decode(input))
        }
    }
}
