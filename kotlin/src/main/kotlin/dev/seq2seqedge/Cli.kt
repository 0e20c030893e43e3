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
        var lineNo = 0
        while (true) {
            val lines = ArrayList<String>(CHUNK)
            try {
                while (lines.size < CHUNK) lines.add(reader.readLine() ?: break)
            } catch (e: CharacterCodingException) {
                err.println("s2s-kotlin: line ${lineNo + lines.size + 1}: not valid UTF-8")
                return 1
            }
            if (lines.isEmpty()) break
            val ids = lines.mapIndexed { k, line ->
                try { decoder.manifest.encodeInput(line) } catch (e: InputTextError) {
                    err.println("s2s-kotlin: line ${lineNo + k + 1} (${preview(line)}): ${e.message}")
                    return 1
                }
            }
            lineNo += lines.size
            try {
                for (r in decoder.decodeIds(ids, CHUNK)) out.println(r.text)
            } catch (e: Seq2SeqEdgeError) {
                err.println("s2s-kotlin: ${e.message}")
                return 2
            }
            out.flush()
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
