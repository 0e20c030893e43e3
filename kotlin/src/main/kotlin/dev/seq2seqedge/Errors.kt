// Errors the runtime raises on purpose: each is a user error (a bundle, an input, an engine) and its message says
// what went wrong and what to do. The classes mirror the Python runtime's (runtime/errors.py) and the JavaScript
// runtime's (js/src/errors.js), messages included.
package dev.seq2seqedge

/** Base class of every error this package raises on purpose. */
open class Seq2SeqEdgeError(message: String) : RuntimeException(message)

/** Text that cannot be encoded: symbols the model never saw, too long, not valid Unicode. */
class InputTextError(message: String) : Seq2SeqEdgeError(message)

/** A bundle or manifest that is missing, malformed, tampered with, or contradicts its model files.
 * The message is `"<where>: <problem>"`, or `"<where>: N problems: a; b"` for several. */
class BundleError(problems: List<String>, where: String? = null) :
    Seq2SeqEdgeError(format(problems, where)) {
    constructor(problem: String, where: String? = null) : this(listOf(problem), where)

    val problems: List<String> = problems.toList()
    val where: String? = where

    private companion object {
        fun format(problems: List<String>, where: String?): String {
            val head = if (where.isNullOrEmpty()) "" else "$where: "
            return if (problems.size == 1) head + problems[0]
            else "$head${problems.size} problems: ${problems.joinToString("; ")}"
        }
    }
}

/** The engine cannot run here, or cannot run this model variant (the message names what does). */
class EngineError(message: String, cause: Throwable? = null) : Seq2SeqEdgeError(message) {
    init { if (cause != null) initCause(cause) }
}

/** A bad argument to the API (a batch size below 1, a maxOutputLen above the trained maximum ...). */
class OptionError(message: String) : Seq2SeqEdgeError(message)
