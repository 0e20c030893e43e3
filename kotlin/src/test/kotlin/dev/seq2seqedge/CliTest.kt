package dev.seq2seqedge

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/** The command-line example run as a subprocess (java -cp <test classpath> dev.seq2seqedge.CliKt). */
class CliTest {
    @TempDir lateinit var tmp: Path

    private class Run(val status: Int, val out: List<String>, val err: String)

    private fun start(args: Array<out String>, workDir: File? = null): Process {
        val javaBin = File(System.getProperty("java.home"), "bin/java").path
        return ProcessBuilder(listOf(javaBin, "-cp", System.getProperty("java.class.path"), "dev.seq2seqedge.CliKt") + args)
            .directory(workDir).start()
    }

    private fun cli(stdin: String, vararg args: String): Run = cli(stdin.toByteArray(Charsets.UTF_8), null, *args)

    private fun cli(stdin: ByteArray, workDir: File?, vararg args: String): Run {
        val p = start(args, workDir)
        val err = StringBuilder()
        val errThread = Thread { err.append(String(p.errorStream.readBytes(), Charsets.UTF_8)) }.also { it.start() }
        val outBytes = java.io.ByteArrayOutputStream()
        val outThread = Thread { p.inputStream.copyTo(outBytes) }.also { it.start() }
        try {
            p.outputStream.use { it.write(stdin) }
        } catch (e: java.io.IOException) { // the CLI stopped reading (a refused line): what it said is checked below
        }
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the CLI did not finish")
        errThread.join(); outThread.join()
        val text = String(outBytes.toByteArray(), Charsets.UTF_8)
        return Run(p.exitValue(), if (text.isEmpty()) emptyList() else text.removeSuffix("\n").split("\n"), err.toString())
    }

    private fun vector(name: String, variant: String, path: String) =
        Fixtures.decodes(name).first { it.getString("variant") == variant && it.getString("decode_path") == path }

    @Test
    fun decodesStdinLineByLineLikeTheVectors() {
        // the CLI decodes 32 lines per call, the vectors' batch_size: its outputs are the batch vectors' texts
        for ((variant, path, flags) in listOf(Triple("fp32", "one-call", emptyList()), Triple("int8", "step-loop", listOf("--variant", "int8")),
                Triple("fp32", "step-loop", listOf("--step-loop")))) {
            val v = vector("numbers", variant, path)
            assertEquals(32, v.getInt("batch_size"))
            val inputs = v.getJSONArray("inputs").strings()
            val run = cli(inputs.joinToString("\n") + "\n", Fixtures.bundle("numbers").toString(), *flags.toTypedArray())
            assertEquals("", run.err)
            assertEquals(0, run.status)
            assertEquals(v.getJSONArray("batch").objects().map { it.getString("text") }, run.out, "$variant $path")
        }
    }

    @Test
    fun aBadLineIsOneErrorLineNamingIt() {
        val v = vector("digits", "fp32", "one-call")
        val inputs = v.getJSONArray("inputs").strings()
        val run = cli("${inputs[0]}\n${inputs[1]}\n\u00e9\u00e9zz\n", Fixtures.bundle("digits").toString())
        assertEquals(2, run.status) // as the Python runtime's `s2s run`
        val lines = run.err.trimEnd('\n').split("\n")
        assertEquals(1, lines.size, run.err)
        assertTrue(lines[0].startsWith("s2s-kotlin: line 3 ('\u00e9\u00e9zz'): input has "), lines[0])
        assertTrue(!run.err.contains("Exception") && !run.err.contains("\tat "), run.err)
        // the lines before it are decoded and printed: nothing is lost
        assertEquals(v.getJSONArray("single").objects().take(2).map { it.getString("text") }, run.out)
    }

    @Test
    fun aLineLongerThanAnyInputIsRefusedUnread() {
        val run = cli("1".repeat(200_000) + "\n", Fixtures.bundle("digits").toString())
        assertEquals(2, run.status)
        assertTrue(run.err.startsWith("s2s-kotlin: line 1: longer than "), run.err)
    }

    @Test
    fun userErrorsAreOneLineWithoutAStackTrace() {
        val missing = cli("", "/nonexistent/bundle")
        assertEquals(2, missing.status)
        assertEquals("s2s-kotlin: /nonexistent/bundle: no such bundle folder\n", missing.err)
        val variant = cli("1\n", Fixtures.bundle("digits").toString(), "--variant", "fp16")
        assertEquals(2, variant.status)
        assertTrue(variant.err.contains("the bundle has no onnx fp16 models") && !variant.err.contains("Exception"), variant.err)
        val usage = cli("")
        assertEquals(2, usage.status)
        assertTrue(usage.err.startsWith("s2s-kotlin: no bundle folder given\nusage: "), usage.err)
        val empty = cli("", Fixtures.bundle("digits").toString())
        assertEquals(0, empty.status)
        assertEquals(emptyList<String>(), empty.out)
    }

    private fun digitsTexts(): List<String> = vector("digits", "fp32", "one-call").getJSONArray("single").objects().map { it.getString("text") }
    private fun digitsInputs(): List<String> = vector("digits", "fp32", "one-call").getJSONArray("inputs").strings()

    @Test
    fun invalidUtf8IsReportedOnItsLineAfterTheLinesBefore() {
        val inputs = digitsInputs()
        val bytes = "${inputs[0]}\n".toByteArray() + byteArrayOf('4'.code.toByte(), 0xff.toByte(), '\n'.code.toByte()) + "${inputs[1]}\n".toByteArray()
        val run = cli(bytes, null, Fixtures.bundle("digits").toString())
        assertEquals(2, run.status)
        assertEquals("s2s-kotlin: line 2: not valid UTF-8: byte 0xFF at column 2\n", run.err)
        assertEquals(digitsTexts().take(1), run.out)
        // a lone continuation byte, a truncated sequence, an encoded surrogate: each refused on its own line
        for (bad in listOf(byteArrayOf(0x80.toByte()), byteArrayOf(0xe2.toByte(), 0x82.toByte()), byteArrayOf(0xed.toByte(), 0xa0.toByte(), 0x80.toByte()))) {
            val r = cli("${inputs[0]}\n${inputs[1]}\n".toByteArray() + bad + "\n".toByteArray(), null, Fixtures.bundle("digits").toString())
            assertEquals(2, r.status)
            assertTrue(r.err.startsWith("s2s-kotlin: line 3: not valid UTF-8: byte 0x") && r.err.count { it == '\n' } == 1, r.err)
            assertEquals(digitsTexts().take(2), r.out)
        }
    }

    @Test
    fun aByteOrderMarkAtTheStartIsDropped() {
        val inputs = digitsInputs()
        val run = cli("\uFEFF${inputs[0]}\r\n${inputs[1]}\n", Fixtures.bundle("digits").toString())
        assertEquals("", run.err)
        assertEquals(0, run.status)
        assertEquals(digitsTexts().take(2), run.out)
        // only at the very start: on a later line it is a symbol the model never saw
        val later = cli("${inputs[0]}\n\uFEFF${inputs[1]}\n", Fixtures.bundle("digits").toString())
        assertEquals(2, later.status)
        assertTrue(later.err.startsWith("s2s-kotlin: line 2 ("), later.err)
        assertEquals(digitsTexts().take(1), later.out)
    }

    @Test
    fun oneLineIsAnsweredWithoutWaitingForMore() {
        // a caller that writes one line and waits for its answer before writing the next one
        val p = start(arrayOf(Fixtures.bundle("digits").toString()))
        val lines = LinkedBlockingQueue<String>()
        val reader = Thread { p.inputStream.bufferedReader(Charsets.UTF_8).forEachLine { lines.put(it) } }.also { it.start() }
        val err = StringBuilder()
        val errThread = Thread { err.append(String(p.errorStream.readBytes(), Charsets.UTF_8)) }.also { it.start() }
        try {
            val inputs = digitsInputs()
            for (k in 0 until 3) {
                p.outputStream.write("${inputs[k]}\n".toByteArray())
                p.outputStream.flush()
                assertEquals(digitsTexts()[k], lines.poll(60, TimeUnit.SECONDS), "no answer to line ${k + 1} while stdin stays open ($err)")
            }
            p.outputStream.close()
            assertTrue(p.waitFor(60, TimeUnit.SECONDS))
            reader.join(); errThread.join()
            assertEquals(0, p.exitValue(), err.toString())
            assertEquals("", err.toString())
        } finally {
            p.destroyForcibly()
        }
    }

    @Test
    fun threadsAreBoundedByTheCores() {
        val cores = Runtime.getRuntime().availableProcessors()
        for (bad in listOf("0", "${cores + 1}", "100000", "-1")) {
            val run = cli("1\n", Fixtures.bundle("digits").toString(), "--threads", bad)
            assertEquals(2, run.status, bad)
            assertTrue(run.err.startsWith("s2s-kotlin: --threads must be between 1 and this machine's $cores cores, got $bad\nusage: "), run.err)
        }
        val ok = cli("${digitsInputs()[0]}\n", Fixtures.bundle("digits").toString(), "--threads", "$cores")
        assertEquals(0, ok.status, ok.err)
        assertEquals(digitsTexts().take(1), ok.out)
    }

    @Test
    fun aModelFailingAtRunTimeIsOneLineAndStatus2() {
        val dir = digitsWithStep(tmp.resolve("bundle").also { Files.createDirectory(it) }, failAfterStart = true)
        val inputs = digitsInputs()
        val run = cli("${inputs[0]}\n".toByteArray(), null, dir.toString(), "--step-loop")
        assertEquals(2, run.status)
        // one line: no stack trace, no log line of ONNX Runtime's own
        assertEquals(1, run.err.count { it == '\n' }, run.err)
        assertTrue(run.err.startsWith("s2s-kotlin: $dir/decoder_step.fp32.onnx: ONNX Runtime failed to run the model: "), run.err)
        assertTrue(!run.err.contains("Exception") && !run.err.contains("onnxruntime:"), run.err)
        assertEquals(emptyList<String>(), run.out)
    }

    @Test
    fun externalDataInTheWorkingFolderIsNeverRead() {
        // a signed model whose row of probabilities is "external data" in secret.bin: ONNX Runtime would read it
        // from the process's working folder; the load must refuse it instead
        val dir = digitsWithStep(tmp.resolve("bundle").also { Files.createDirectory(it) }, externalRow = "secret.bin")
        val cwd = tmp.resolve("cwd").also { Files.createDirectory(it) }
        val vocab = Fixtures.manifestJson("digits").getJSONObject("preprocessing").getJSONObject("target").getJSONArray("vocabulary").length()
        Files.write(cwd.resolve("secret.bin"), floatBytes(stepRows(vocab)))
        Files.write(dir.resolve("secret.bin"), floatBytes(stepRows(vocab))) // next to the model, too
        val run = cli("${digitsInputs()[0]}\n".toByteArray(), cwd.toFile(), dir.toString(), "--step-loop")
        assertEquals(emptyList<String>(), run.out)
        assertEquals(2, run.status)
        assertEquals(1, run.err.count { it == '\n' }, run.err)
        // refused from its bytes, before ONNX Runtime sees it (TrustTest checks the engine's own refusal too)
        assertEquals("s2s-kotlin: $dir/decoder_step.fp32.onnx: refers to external data for ['rows']; bundle models must embed their weights (external data is refused)\n", run.err)
    }

    @Test
    fun theExitStatusesOfTheReadme() {
        // 0 ok; 2 a bad bundle, argument or input line, or a model failing at run time (the other tests)
        assertEquals(2, cli("", "--threads").status)
        assertEquals(2, cli("", "--bogus", Fixtures.bundle("digits").toString()).status)
        assertEquals(0, cli("", "--help").status)
    }
}
