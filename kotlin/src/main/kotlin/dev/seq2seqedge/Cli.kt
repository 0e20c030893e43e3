// The command-line example: decode the lines of standard input, one output per line.
//   java -jar s2s-kotlin.jar BUNDLE [--variant int8] [--step-loop] [--threads N]
@file:JvmName("CliKt")
package dev.seq2seqedge

import java.io.IOException
import java.io.InputStream
import java.io.PrintStream
import java.nio.ByteBuffer
import java.nio.CharBuffer
import java.nio.charset.CodingErrorAction
import java.nio.file.Paths
import kotlin.system.exitProcess

private const val USAGE = "usage: java -jar s2s-kotlin.jar BUNDLE [--variant fp32|int8] [--step-loop] [--threads N] < inputs.txt"
private const val CHUNK = 32
private val UTF8_BOM = byteArrayOf(0xef.toByte(), 0xbb.toByte(), 0xbf.toByte())

/** A line of input that stops the run: its message names the line. */
private class BadLine(message: String) : Exception(message)

/**
 * The lines of a byte stream, read through one buffer: each line's bytes without its "\n" or "\r\n", a UTF-8
 * byte-order mark at the very start dropped. A line longer than `limit` bytes is refused (BadLine) as soon as that
 * many bytes of it have arrived, without holding it whole.
 */
private class ByteLines(private val input: InputStream, private val limit: Int, private val tooLong: (Long) -> String) {
    private val buf = ByteArray(1 shl 16)
    private var pos = 0
    private var end = 0
    private var eof = false
    /** Lines returned so far. */
    var count = 0L
        private set

    /** Whether the next read returns without blocking: bytes are buffered, or the stream has some ready (or an
     * error to report). A stream that cannot tell says 0: what is pending is answered first. */
    fun ready(): Boolean {
        if (pos < end || eof) return true
        return try { input.available() > 0 } catch (e: IOException) { false }
    }

    private fun fill(): Boolean {
        while (!eof) {
            val n = try { input.read(buf, 0, buf.size) } catch (e: IOException) {
                throw BadLine("line ${count + 1}: cannot read standard input (${e.message ?: e})")
            }
            if (n < 0) eof = true
            if (n > 0) { pos = 0; end = n; return true }
        }
        return false
    }

    /** The next line's bytes, or null at the end of the input. */
    fun next(): ByteArray? {
        var line = ByteArray(0)
        var size = 0
        var any = false
        while (true) {
            if (pos == end && !fill()) {
                if (!any) return null
                break
            }
            any = true
            var i = pos
            while (i < end && buf[i] != '\n'.code.toByte()) i++
            val n = i - pos
            if (size + n > limit) throw BadLine(tooLong(count + 1))
            if (size + n > line.size) line = line.copyOf(maxOf(size + n, minOf(limit, line.size * 2 + 64)))
            System.arraycopy(buf, pos, line, size, n)
            size += n
            pos = i
            if (i < end) { pos = i + 1; break }
        }
        count++
        var from = 0
        if (count == 1L && size >= 3 && line[0] == UTF8_BOM[0] && line[1] == UTF8_BOM[1] && line[2] == UTF8_BOM[2]) from = 3
        if (size > from && line[size - 1] == '\r'.code.toByte()) size--
        return line.copyOfRange(from, size)
    }
}

/** A line's text (strict UTF-8), or BadLine naming the first byte that is not valid UTF-8. */
private fun utf8Line(bytes: ByteArray, lineNo: Long): String {
    val decoder = Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT)
    val input = ByteBuffer.wrap(bytes)
    val out = CharBuffer.allocate(bytes.size + 1)
    val r = decoder.decode(input, out, true).let { if (it.isError) it else decoder.flush(out) }
    if (r.isError) {
        val at = input.position()
        // as the C library words it: the column counts characters (code points) before the byte, from 1
        val column = (0 until at).count { (bytes[it].toInt() and 0xC0) != 0x80 } + 1
        throw BadLine("line $lineNo: not valid UTF-8: byte 0x${"%02X".format(bytes[at].toInt() and 0xff)} at column $column")
    }
    out.flip()
    return out.toString()
}

/** Run the CLI; returns the exit status: 0 ok, 2 a bad bundle, argument or input line, or a model failing at run
 * time. Every error is one line on `err`, never a stack trace. */
fun runCli(args: Array<String>, input: InputStream, out: PrintStream, err: PrintStream): Int = try {
    runCliOrThrow(args, input, out, err)
} catch (e: Seq2SeqEdgeError) {
    out.flush()
    err.println("s2s-kotlin: ${oneLine(e.message ?: e.toString())}")
    2
} catch (e: Exception) { // a last resort: whatever went wrong, one line
    out.flush()
    err.println("s2s-kotlin: unexpected error: ${oneLine(e.toString())}")
    2
}

private fun oneLine(s: String): String = s.trim().replace(Regex("\\s*[\\r\\n]+\\s*"), " ")

private fun runCliOrThrow(args: Array<String>, input: InputStream, out: PrintStream, err: PrintStream): Int {
    var bundle: String? = null
    var variant = "fp32"
    var oneCall: Boolean? = null
    var threads = 1
    var i = 0
    fun value(flag: String): String {
        if (i + 1 >= args.size) throw OptionError("$flag needs a value")
        return args[++i]
    }
    try {
        val cores = Runtime.getRuntime().availableProcessors().coerceIn(1, MAX_THREADS)
        while (i < args.size) {
            when (val a = args[i]) {
                "-h", "--help" -> { out.println(USAGE); out.flush(); return 0 }
                "--variant" -> variant = value(a)
                "--step-loop" -> oneCall = false
                "--one-call" -> oneCall = true
                "--threads" -> {
                    threads = value(a).toIntOrNull() ?: throw OptionError("--threads takes a whole number")
                    if (threads < 1 || threads > cores) {
                        throw OptionError("--threads must be between 1 and this machine's $cores cores, got $threads")
                    }
                }
                else -> if (a.startsWith("-") || bundle != null) throw OptionError("unexpected argument ${pyRepr(a)}") else bundle = a
            }
            i++
        }
        if (bundle == null) throw OptionError("no bundle folder given")
    } catch (e: OptionError) {
        err.println("s2s-kotlin: ${e.message}\n$USAGE")
        return 2
    }
    loadBundle(Paths.get(bundle), variant, oneCall, threads).use { decoder ->
        val manifest = decoder.manifest
        // the longest line that can hold an input the model takes: its characters at 4 UTF-8 bytes each, a
        // byte-order mark and a CR (the Python runtime's limit)
        val limit = manifest.maxInputChars * 4 + UTF8_BOM.size + 1
        val lines = ByteLines(input, limit) { n ->
            "line $n: longer than $limit bytes; the model takes at most ${manifest.maxInputTokens} tokens"
        }
        val pending = ArrayList<IntArray>(CHUNK)
        fun answer() { // decode what has been read: the lines before a bad one are printed first, nothing is lost
            if (pending.isEmpty()) return
            for (r in decoder.decodeIds(pending, CHUNK)) out.println(r.text)
            out.flush()
            pending.clear()
        }
        while (true) {
            // a full batch, or nothing more to read without waiting: answer before blocking (a caller that writes
            // one line and waits for its answer gets it); input piped in bulk is still decoded 32 lines a call
            if (pending.size == CHUNK || (pending.isNotEmpty() && !lines.ready())) answer()
            val problem = try {
                val bytes = lines.next() ?: break
                val text = utf8Line(bytes, lines.count)
                try { pending.add(manifest.encodeInput(text)); null } catch (e: InputTextError) {
                    "line ${lines.count} (${preview(text)}): ${e.message}"
                }
            } catch (e: BadLine) {
                e.message
            }
            if (problem != null) {
                answer()
                err.println("s2s-kotlin: $problem")
                return 2
            }
        }
        answer()
    }
    out.flush()
    return 0
}

fun main(args: Array<String>) {
    val out = PrintStream(java.io.FileOutputStream(java.io.FileDescriptor.out), false, "UTF-8")
    val err = PrintStream(java.io.FileOutputStream(java.io.FileDescriptor.err), true, "UTF-8")
    val status = try {
        runCli(args, System.`in`, out, err)
    } catch (e: Throwable) { // an Error (out of memory ...): still one line, no stack trace
        runCatching { out.flush() }
        err.println("s2s-kotlin: ${oneLine(e.toString())}")
        2
    }
    out.flush()
    exitProcess(status)
}
