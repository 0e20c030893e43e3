// The ai.onnxruntime engine: the same Java API on the JVM (com.microsoft.onnxruntime:onnxruntime) and on Android
// (com.microsoft.onnxruntime:onnxruntime-android).
package dev.seq2seqedge

import ai.onnxruntime.NodeInfo
import ai.onnxruntime.OnnxJavaType
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtException
import ai.onnxruntime.OrtLoggingLevel
import ai.onnxruntime.OrtSession
import ai.onnxruntime.TensorInfo
import java.nio.FloatBuffer
import java.nio.IntBuffer

private fun typeName(info: TensorInfo): String = when (info.type) {
    OnnxJavaType.FLOAT -> "float32"
    OnnxJavaType.INT32 -> "int32"
    OnnxJavaType.INT64 -> "int64"
    OnnxJavaType.DOUBLE -> "float64"
    OnnxJavaType.FLOAT16 -> "float16"
    OnnxJavaType.INT8 -> "int8"
    OnnxJavaType.UINT8 -> "uint8"
    OnnxJavaType.INT16 -> "int16"
    OnnxJavaType.BOOL -> "bool"
    else -> info.type.name.lowercase()
}

private fun specsOf(infos: Map<String, NodeInfo>): List<TensorSpec> = infos.values.map { node ->
    val info = node.info
    if (info is TensorInfo) TensorSpec(node.name, typeName(info), info.shape.map { if (it >= 0) it.toInt() else -1 })
    else TensorSpec(node.name, "not a tensor", emptyList())
}

/** The most intra-op threads a session may be given (the CLI bounds them by the machine's cores). */
const val MAX_THREADS = 256

/** ONNX Runtime resolves a model's external-data references (an initializer stored "in secret.bin") against this
 * folder. It cannot exist (nothing can be created under /proc/self), so a bundle's model can never make ONNX Runtime
 * read a file of the machine: any external-data reference fails at load. Bundle models hold all their weights. */
const val NO_EXTERNAL_DATA_FOLDER = "/proc/self/seq2seq-edge-no-external-data"

/** An OrtException's own message, without the Java binding's "Error code - ORT_FAIL - message: " head, on one line. */
internal fun ortMessage(e: Throwable): String {
    val m = e.message ?: return e.toString()
    return m.replaceFirst(Regex("^Error code - [A-Z_]+ - message: ?"), "").trim().replace(Regex("\\s*[\\r\\n]+\\s*"), " ")
}

/** An Engine on ai.onnxruntime. `threads`: intra-op threads of each session, 1 to 256. ONNX Runtime logs only
 * fatal errors: a failure is one of this package's errors, whose message carries ONNX Runtime's. */
class OnnxRuntimeEngine @JvmOverloads constructor(
    private val threads: Int = 1,
    override val name: String = "onnxruntime-java",
) : Engine {
    override val format = "onnx"

    init {
        if (threads < 1 || threads > MAX_THREADS) throw OptionError("threads must be between 1 and $MAX_THREADS, got $threads")
    }

    private val env: OrtEnvironment = try {
        OrtEnvironment.getEnvironment(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL, "seq2seq-edge")
    } catch (e: Throwable) {
        throw EngineError("ONNX Runtime cannot start here (${e.message ?: e}); on the JVM add com.microsoft.onnxruntime:onnxruntime, " +
            "on Android com.microsoft.onnxruntime:onnxruntime-android", e)
    }

    override fun createSession(bytes: ByteArray, entry: ModelEntry): EngineSession {
        val options = OrtSession.SessionOptions()
        val session = try {
            options.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL)
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT)
            options.setIntraOpNumThreads(threads)
            options.setInterOpNumThreads(1)
            options.addConfigEntry("session.model_external_initializers_file_folder_path", NO_EXTERNAL_DATA_FOLDER)
            env.createSession(bytes, options)
        } catch (e: Throwable) {
            options.close()
            throw e
        }
        return OnnxSession(env, session, options, entry.outputs.map { it.name })
    }
}

private class OnnxSession(
    private val env: OrtEnvironment,
    private val session: OrtSession,
    private val options: OrtSession.SessionOptions,
    private val outputNames: List<String>,
) : EngineSession {
    override val inputs: List<TensorSpec> = specsOf(session.inputInfo)
    override val outputs: List<TensorSpec> = specsOf(session.outputInfo)

    /** A failure of ONNX Runtime (OrtException) or of reading its outputs is an EngineError; the loader's wrapper
     * names the model file in front of it. */
    override fun run(feeds: Map<String, Tensor>): Map<String, Tensor> = try {
        runOrThrow(feeds)
    } catch (e: Seq2SeqEdgeError) {
        throw e
    } catch (e: Exception) {
        throw EngineError("ONNX Runtime failed to run the model: ${ortMessage(e)}", e)
    }

    private fun runOrThrow(feeds: Map<String, Tensor>): Map<String, Tensor> {
        val created = ArrayList<OnnxTensor>()
        try {
            val ortFeeds = LinkedHashMap<String, OnnxTensor>()
            for ((k, v) in feeds) {
                val shape = LongArray(v.dims.size) { v.dims[it].toLong() }
                val t = if (v.ints != null) OnnxTensor.createTensor(env, IntBuffer.wrap(v.ints), shape)
                else OnnxTensor.createTensor(env, FloatBuffer.wrap(v.floats!!), shape)
                created.add(t)
                ortFeeds[k] = t
            }
            session.run(ortFeeds, outputNames.toSet()).use { result ->
                val out = LinkedHashMap<String, Tensor>()
                for (n in outputNames) {
                    val value = result.get(n).orElse(null) as? OnnxTensor ?: continue
                    val info = value.info
                    val dims = IntArray(info.shape.size) { info.shape[it].toInt() }
                    out[n] = when (info.type) {
                        OnnxJavaType.FLOAT -> value.floatBuffer.let { b -> FloatArray(b.remaining()).also { b.get(it) } }.let { Tensor.ofFloats(it, *dims) }
                        OnnxJavaType.INT32 -> value.intBuffer.let { b -> IntArray(b.remaining()).also { b.get(it) } }.let { Tensor.ofInts(it, *dims) }
                        else -> throw BundleError("output '$n' is ${typeName(info)}, not int32 or float32")
                    }
                }
                return out
            }
        } finally {
            created.forEach { it.close() }
        }
    }

    override fun close() {
        session.close()
        options.close()
    }
}
