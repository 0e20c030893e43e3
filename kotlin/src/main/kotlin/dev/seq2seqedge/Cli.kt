// The command-line example: decode the lines of standard input, one output per line.
//   java -jar s2s-kotlin.jar BUNDLE [--variant int8] [--step-loop] [--threads N]
@file:JvmName("CliKt")
package dev.seq2seqedge

import java.io.BufferedReader
import java.io.InputStream
import java.io.InputStreamReader
import java.io.PrintStream
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction
import java.nio.file.Paths
import kotlin.system.exitProcess

private const val USAGE = "usage: java -jar s2s-kotlin.jar BUNDLE [--variant fp32|int8] [--step-loop] [--threads N] < inputs.txt"
private const val CHUNK = 32

private class LineTooLong : Exception()

/** The next line without its "\n" or "\r\n" (null at the end), reading at most `max` characters of it. */
private fun readBoundedLine(reader: BufferedReader, max: Int): String? {
    val line = StringBuilder()
    while (true) {
        val c = reader.read()
        if (c < 0) return if (line.isEmpty()) null else line.toString()
        if (c == '\n'.code) break
        if (line.length == max) throw LineTooLong()
        line.append(c.toChar())
    }
    if (line.isNotEmpty() && line[line.length - 1] == '\r') line.setLength(line.length - 1)
    return line.toString()
}

/** Run the CLI; returns the exit status (0 ok, 1 a bad input line, 2 a bad bundle or usage). */
fun runCli(args: Array<String>, input: InputStream, out: PrintStream, err: PrintStream): Int {
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
        while (i < args.size) {
            when (val a = args[i]) {
                "-h", "--help" -> { out.println(USAGE); out.flush(); return 0 }
                "--variant" -> variant = value(a)
                "--step-loop" -> oneCall = false
                "--one-call" -> oneCall = true
                "--threads" -> threads = value(a).toIntOrNull() ?: throw OptionError("--threads takes a whole number")
                else -> if (a.startsWith("-") || bundle != null) throw OptionError("unexpected argument ${pyRepr(a)}") else bundle = a
            }
            i++
        }
        if (bundle == null) throw OptionError("no bundle folder given")
    } catch (e: OptionError) {
        err.println("s2s-kotlin: ${e.message}\n$USAGE")
        return 2
    }
    val decoder = try {
        loadBundle(Paths.get(bundle), variant, oneCall, threads)
    } catch (e: Seq2SeqEdgeError) {
        err.println("s2s-kotlin: ${e.message}")
        return 2
    }
    decoder.use {
        val decoderUtf8 = Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
        val reader = BufferedReader(InputStreamReader(input, decoderUtf8))
        // a line longer than any input the model takes is refused without holding it whole
        val maxChars = decoder.manifest.maxInputChars * 2 + 2
        var lineNo = 0
        while (true) {
            val lines = ArrayList<String>(CHUNK)
            var problem: String? = null
            try {
                while (lines.size < CHUNK) lines.add(readBoundedLine(reader, maxChars) ?: break)
            } catch (e: CharacterCodingException) {
                problem = "line ${lineNo + lines.size + 1}: not valid UTF-8"
            } catch (e: LineTooLong) {
                problem = "line ${lineNo + lines.size + 1}: longer than $maxChars characters; the model takes at most " +
                    "${decoder.manifest.maxInputTokens} tokens"
            }
            val ids = ArrayList<IntArray>(lines.size)
            for ((k, line) in lines.withIndex()) {
                try { ids.add(decoder.manifest.encodeInput(line)) } catch (e: InputTextError) {
                    problem = "line ${lineNo + k + 1} (${preview(line)}): ${e.message}"
                    break
                }
            }
            lineNo += lines.size
            try { // the lines before a bad one are decoded and printed first: nothing is lost
                for (r in decoder.decodeIds(ids, CHUNK)) out.println(r.text)
            } catch (e: Seq2SeqEdgeError) {
                err.println("s2s-kotlin: ${e.message}")
                return 2
            }
            out.flush()
            if (problem != null) {
                err.println("s2s-kotlin: $problem")
                return 1
            }
            if (lines.size < CHUNK) break
        }
    }
    out.flush()
    return 0
}

fun main(args: Array<String>) {
    val out = PrintStream(java.io.FileOutputStream(java.io.FileDescriptor.out), false, "UTF-8")
    val err = PrintStream(java.io.FileOutputStream(java.io.FileDescriptor.err), true, "UTF-8")
    val status = runCli(args, System.`in`, out, err)
    out.flush()
    exitProcess(status)
}
