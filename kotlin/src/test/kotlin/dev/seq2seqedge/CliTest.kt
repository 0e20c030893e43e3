package dev.seq2seqedge

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import java.util.concurrent.TimeUnit

/** The command-line example run as a subprocess (java -cp <test classpath> dev.seq2seqedge.CliKt). */
class CliTest {
    private class Run(val status: Int, val out: List<String>, val err: String)

    private fun cli(stdin: String, vararg args: String): Run {
        val javaBin = File(System.getProperty("java.home"), "bin/java").path
        val p = ProcessBuilder(listOf(javaBin, "-cp", System.getProperty("java.class.path"), "dev.seq2seqedge.CliKt") + args).start()
        val err = StringBuilder()
        val errThread = Thread { err.append(String(p.errorStream.readBytes(), Charsets.UTF_8)) }.also { it.start() }
        val outBytes = java.io.ByteArrayOutputStream()
        val outThread = Thread { p.inputStream.copyTo(outBytes) }.also { it.start() }
        try {
            p.outputStream.use { it.write(stdin.toByteArray(Charsets.UTF_8)) }
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
        assertEquals(1, run.status)
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
        assertEquals(1, run.status)
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
}
