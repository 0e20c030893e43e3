// The text policy, as in the Python runtime (runtime/text.py, runtime/preprocessing.py) and js/src/text.js: NFC,
// `char` or `space` tokenization, ids 0/1/2 reserved for pad/start/end, limits checked before any work, unknown
// symbols an error naming them (or mapped to the manifest's `input.unknown_token` when it has one).
// Only java.text.Normalizer and java.lang.Character: the same on Android.
package dev.seq2seqedge

import java.text.Normalizer

const val NORMALIZATION = "NFC"
val TOKENIZATIONS: List<String> = listOf("char", "space")
const val PAD_ID = 0
const val START_ID = 1
const val END_ID = 2
const val N_SPECIAL = 3

/** Python's str.isspace() characters (what str.split() splits on). */
fun isPyWhitespace(cp: Int): Boolean = when (cp) {
    in 0x09..0x0d, in 0x1c..0x20, 0x85, 0xa0, 0x1680, in 0x2000..0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000 -> true
    else -> false
}

/** Python's str.isprintable() is false for these categories (Cc Cf Cs Co Cn Zl Zp Zs), true for the ASCII space. */
internal fun notPrintable(cp: Int): Boolean = when (Character.getType(cp).toByte()) {
    Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE, Character.UNASSIGNED,
    Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR, Character.SPACE_SEPARATOR -> true
    else -> false
}

/** Number of code points (Python's len) of a string; a lone surrogate counts as one. */
fun codePointLength(s: String): Int = s.codePointCount(0, s.length)

/** The code points of a string as strings (JavaScript's Array.from, Python's list). */
fun codePointStrings(s: String): List<String> {
    val out = ArrayList<String>(s.length)
    var i = 0
    while (i < s.length) {
        val n = Character.charCount(s.codePointAt(i))
        out.add(s.substring(i, i + n))
        i += n
    }
    return out
}

/** Index (in chars) of the first lone surrogate, or -1. */
internal fun loneSurrogateIndex(s: String): Int {
    var i = 0
    while (i < s.length) {
        val c = s[i]
        if (Character.isHighSurrogate(c)) {
            if (i + 1 < s.length && Character.isLowSurrogate(s[i + 1])) { i += 2; continue }
            return i
        }
        if (Character.isLowSurrogate(c)) return i
        i++
    }
    return -1
}

private fun hex(cp: Int, width: Int, upper: Boolean): String {
    val h = Integer.toHexString(cp).padStart(width, '0')
    return if (upper) h.uppercase() else h
}

/** Throw InputTextError if `text` holds a lone surrogate (it is not Unicode text). */
fun checkUnicode(text: String) {
    val i = loneSurrogateIndex(text)
    if (i >= 0) {
        val col = codePointLength(text.substring(0, i)) + 1
        throw InputTextError("not valid Unicode: lone surrogate U+${hex(text[i].code, 4, true)} at column $col")
    }
}

/** NFC, after checking that the text is valid Unicode. */
fun normalize(text: String): String {
    checkUnicode(text)
    return Normalizer.normalize(text, Normalizer.Form.NFC)
}

fun tokenize(text: String, tokenization: String): List<String> = when (tokenization) {
    "char" -> codePointStrings(text)
    "space" -> {
        val out = ArrayList<String>()
        val cur = StringBuilder()
        var i = 0
        while (i < text.length) {
            val cp = text.codePointAt(i)
            if (isPyWhitespace(cp)) {
                if (cur.isNotEmpty()) { out.add(cur.toString()); cur.setLength(0) }
            } else cur.appendCodePoint(cp)
            i += Character.charCount(cp)
        }
        if (cur.isNotEmpty()) out.add(cur.toString())
        out
    }
    else -> throw IllegalArgumentException("unknown tokenization \"$tokenization\"; expected one of char, space")
}

fun detokenize(tokens: List<String>, tokenization: String): String =
    tokens.joinToString(if (tokenization == "char") "" else " ")

/** Python's repr() of a string, for messages that read the same in every runtime. */
fun pyRepr(s: String): String {
    val quote = if (s.contains('\'') && !s.contains('"')) '"' else '\''
    val out = StringBuilder().append(quote)
    var i = 0
    while (i < s.length) {
        val cp = s.codePointAt(i)
        i += Character.charCount(cp)
        when {
            cp == '\\'.code || cp == quote.code -> out.append('\\').appendCodePoint(cp)
            cp == '\n'.code -> out.append("\\n")
            cp == '\r'.code -> out.append("\\r")
            cp == '\t'.code -> out.append("\\t")
            cp != ' '.code && notPrintable(cp) -> out.append(
                when {
                    cp < 0x100 -> "\\x" + hex(cp, 2, false)
                    cp < 0x10000 -> "\\u" + hex(cp, 4, false)
                    else -> "\\U" + hex(cp, 8, false)
                }
            )
            else -> out.appendCodePoint(cp)
        }
    }
    return out.append(quote).toString()
}

/** A symbol for an error message: 'é', or U+0000 for a single character that does not print. */
fun describe(symbol: String): String {
    if (codePointLength(symbol) == 1 && symbol != " " && notPrintable(symbol.codePointAt(0))) {
        return "U+" + hex(symbol.codePointAt(0), 4, true)
    }
    return pyRepr(symbol)
}

private fun stripSpacesAndTabs(s: String): String {
    var a = 0
    var b = s.length
    while (a < b && (s[a] == ' ' || s[a] == '\t')) a++
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--
    return s.substring(a, b)
}

/** One side's vocabulary: tokens[i] is the string of id i. */
class Vocabulary(tokens: List<String>, val tokenization: String, unknownToken: String? = null) {
    val tokens: List<String> = java.util.Collections.unmodifiableList(ArrayList(tokens))
    private val index: Map<String, Int> = HashMap<String, Int>().also { m -> this.tokens.forEachIndexed { i, t -> m[t] = i } }
    val unknownId: Int? = unknownToken?.let { index[it] }
    val size: Int get() = tokens.size

    init {
        require(tokenization in TOKENIZATIONS) { "unknown tokenization \"$tokenization\"; expected one of char, space" }
    }

    /** Ids of normalized text (no start or end marker). */
    fun encode(text: String, skipUnknown: Boolean = false): IntArray {
        checkUnicode(text)
        val ids = ArrayList<Int>()
        val unknown = LinkedHashSet<String>()
        for (token in tokenize(text, tokenization)) {
            val i = index[token]
            if (i == null || i < N_SPECIAL) {
                if (unknownId != null) { ids.add(unknownId); continue }
                unknown.add(token)
                continue
            }
            ids.add(i)
        }
        if (unknown.isNotEmpty() && !skipUnknown) {
            val list = unknown.toList()
            val shown = list.take(10).joinToString(", ") { describe(it) } + if (list.size > 10) " ..." else ""
            val inner = stripSpacesAndTabs(text)
            val hint = if (list.all { (it == " " || it == "\t") && !inner.contains(it) })
                "; it is whitespace around the text, which the model's inputs never had: strip it" else ""
            throw InputTextError("input has ${list.size} symbol(s) the model never saw: $shown$hint")
        }
        return ids.toIntArray()
    }

    /** Text of ids, stopping at the end id and leaving out pad and start. */
    fun decode(ids: IntArray): String {
        val out = ArrayList<String>()
        for (i in ids) {
            if (i == END_ID) break
            if (i >= N_SPECIAL) out.add(tokens[i])
        }
        return detokenize(out, tokenization)
    }
}
