// Per-word latency of the Kotlin library, the protocol benchmarks/native.py runs for every runtime:
//   java -cp s2s-kotlin.jar dev.seq2seqedge.BenchKt BUNDLE WORDS_FILE [--step-loop] [--variant int8] [--rounds N]
// Loads the bundle once, decodes each line of WORDS_FILE alone (batch 1), one warm-up round then N timed rounds
// (the JIT compiles during the warm-up), and prints one JSON object.
@file:JvmName("BenchKt")
package dev.seq2seqedge

import java.io.File
import java.nio.file.Paths
import kotlin.system.exitProcess

fun main(args: Array<String>) {
    if (args.size < 2) {
        System.err.println("usage: BenchKt BUNDLE WORDS_FILE [--step-loop] [--variant int8] [--rounds N]")
        exitProcess(2)
    }
    var oneCall: Boolean? = null
    var variant = "fp32"
    var rounds = 5
    var i = 2
    while (i < args.size) {
        when (args[i]) {
            "--step-loop" -> oneCall = false
            "--variant" -> variant = args[++i]
            "--rounds" -> rounds = args[++i].toInt()
            else -> { System.err.println("BenchKt: unknown argument '${args[i]}'"); exitProcess(2) }
        }
        i++
    }
    val words = File(args[1]).readLines(Charsets.UTF_8).filter { it.isNotEmpty() }
    val t0 = System.nanoTime()
    loadBundle(Paths.get(args[0]), variant = variant, oneCall = oneCall).use { decoder ->
        val loadMs = (System.nanoTime() - t0) / 1e6
        val times = ArrayList<Double>(rounds * words.size)
        for (r in -1 until rounds) { // round -1: warm-up, not timed
            for (w in words) {
                val t = System.nanoTime()
                decoder.decode(w)
                if (r >= 0) times += (System.nanoTime() - t) / 1e6
            }
        }
        times.sort()
        val version = ai.onnxruntime.OrtEnvironment::class.java.`package`?.implementationVersion ?: "1.29.0"
        println("{\"runtime\": \"kotlin\", \"engine\": \"onnxruntime $version (Java API, JVM ${System.getProperty("java.version")})\", " +
            "\"decode_path\": \"${decoder.decodePath}\", \"variant\": \"$variant\", \"words\": ${words.size}, \"rounds\": $rounds, " +
            "\"ms_per_word_p50\": ${"%.5f".format(times[times.size / 2])}, \"ms_per_word_p90\": ${"%.5f".format(times[times.size * 9 / 10])}, " +
            "\"load_ms\": ${"%.2f".format(loadMs)}}")
    }
}
