// JSON through org.json (built into Android; org.json:json on the JVM), using only the API Android's copy has:
// JSONTokener.nextValue, JSONObject.keys/opt/has, JSONArray.length/opt, JSONObject.NULL.
package dev.seq2seqedge

import org.json.JSONArray
import org.json.JSONObject
import org.json.JSONTokener

/** The JSON type name of a parsed value, as the JavaScript checker sees it (a whole number is an integer). */
internal fun jsonType(v: Any?): String = when {
    v == null || v == JSONObject.NULL -> "null"
    v is JSONArray -> "array"
    v is JSONObject -> "object"
    v is Boolean -> "boolean"
    v is String -> "string"
    v is Number -> if (isWhole(v)) "integer" else "number"
    else -> "unknown"
}

internal fun isWhole(v: Number): Boolean = when (v) {
    is Int, is Long, is Short, is Byte, is java.math.BigInteger -> true
    is java.math.BigDecimal -> try { v.stripTrailingZeros().scale() <= 0 } catch (e: ArithmeticException) { false }
    else -> { val d = v.toDouble(); d.isFinite() && d == Math.floor(d) }
}

/** JSON.stringify's text of a value (objects keep org.json's key order, which is not the file's). */
internal fun jsonText(v: Any?): String = when {
    v == null || v == JSONObject.NULL -> "null"
    v is String -> jsonQuote(v)
    v is Boolean -> v.toString()
    v is Number -> numberText(v)
    v is JSONArray -> (0 until v.length()).joinToString(",", "[", "]") { jsonText(v.opt(it)) }
    v is JSONObject -> v.keys().asSequence().toList().joinToString(",", "{", "}") { jsonQuote(it) + ":" + jsonText(v.opt(it)) }
    else -> v.toString()
}

internal fun numberText(v: Number): String {
    if (v is Int || v is Long || v is java.math.BigInteger) return v.toString()
    val d = v.toDouble()
    if (d.isFinite() && d == Math.floor(d) && Math.abs(d) < 1e21) return java.math.BigDecimal(d).toPlainString()
    return d.toString()
}

internal fun jsonQuote(s: String): String {
    val out = StringBuilder("\"")
    for (c in s) {
        when {
            c == '"' -> out.append("\\\"")
            c == '\\' -> out.append("\\\\")
            c == '\n' -> out.append("\\n")
            c == '\r' -> out.append("\\r")
            c == '\t' -> out.append("\\t")
            c == '\b' -> out.append("\\b")
            c == '\u000c' -> out.append("\\f")
            c < ' ' -> out.append("\\u").append(Integer.toHexString(c.code).padStart(4, '0'))
            else -> out.append(c)
        }
    }
    return out.append('"').toString()
}

/** Deepest nesting of arrays and objects in JSON text (strings skipped), to refuse a nesting bomb before parsing. */
internal fun jsonDepth(text: String): Int {
    var depth = 0
    var max = 0
    var inString = false
    var i = 0
    while (i < text.length) {
        val c = text[i]
        if (inString) {
            if (c == '\\') i++ else if (c == '"') inString = false
        } else when (c) {
            '"' -> inString = true
            '[', '{' -> { depth++; if (depth > max) max = depth }
            ']', '}' -> depth--
        }
        i++
    }
    return max
}

internal const val MAX_JSON_DEPTH = 256

/** Parse one JSON value of a whole text; throws IllegalArgumentException with the parser's message. */
internal fun parseJson(text: String): Any? {
    if (jsonDepth(text) > MAX_JSON_DEPTH) throw IllegalArgumentException("nested more than $MAX_JSON_DEPTH levels deep")
    val tokener = JSONTokener(text)
    val value = try { tokener.nextValue() } catch (e: Exception) {
        throw IllegalArgumentException(e.message ?: e.toString())
    } catch (e: StackOverflowError) {
        throw IllegalArgumentException("nested too deeply")
    }
    if (tokener.more() && tokener.nextClean() != 0.toChar()) throw IllegalArgumentException("text after the JSON value")
    return value
}

internal fun deepEqual(a: Any?, b: Any?): Boolean {
    val ta = jsonType(a)
    if (ta != jsonType(b)) return false
    return when (ta) {
        "null" -> true
        "integer", "number" -> (a as Number).toDouble() == (b as Number).toDouble()
        "array" -> {
            val x = a as JSONArray; val y = b as JSONArray
            x.length() == y.length() && (0 until x.length()).all { deepEqual(x.opt(it), y.opt(it)) }
        }
        "object" -> {
            val x = a as JSONObject; val y = b as JSONObject
            x.length() == y.length() && x.keys().asSequence().all { y.has(it) && deepEqual(x.opt(it), y.opt(it)) }
        }
        else -> a == b
    }
}
