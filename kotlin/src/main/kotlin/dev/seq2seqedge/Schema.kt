// A small JSON Schema (draft 2020-12) checker for the keywords manifest.schema.json uses: a port of
// js/src/schema.js, with the same messages. The schema is written by the Python side
// (`python -m seq2seq_edge.schema`) and copied here as a resource, so every runtime refuses the same manifests.
// Returns every problem at once, each as "<JSON pointer>: <what is wrong>".
package dev.seq2seqedge

import org.json.JSONArray
import org.json.JSONObject

internal class SchemaChecker(private val root: JSONObject) {
    private val patterns = HashMap<String, Regex>()

    init { walk(root) }

    private fun walk(node: Any?) {
        when (node) {
            is JSONArray -> for (i in 0 until node.length()) walk(node.opt(i))
            is JSONObject -> for (k in node.keys()) {
                if (k.startsWith("x-")) continue
                if (k !in KNOWN) throw IllegalStateException("schema keyword $k is not supported")
                val v = node.opt(k)
                // JavaScript's $ (no m flag) is the end of the text; Java's would also match before a final line break
                if (k == "pattern") patterns[v as String] = Regex(if (v.endsWith("$") && !v.endsWith("\\$")) v.dropLast(1) + "\\z" else v)
                if (k == "properties" || k == "\$defs") (v as JSONObject).keys().forEach { walk(v.opt(it)) }
                else if (k != "const" && k != "enum") walk(v)
            }
        }
    }

    private fun resolve(ref: String): JSONObject {
        if (!ref.startsWith("#/")) throw IllegalStateException("schema \$ref $ref is not local")
        var n: Any = root
        for (key in ref.substring(2).split('/')) n = (n as JSONObject).get(key)
        return n as JSONObject
    }

    fun check(value: Any?): List<String> = check(root, value, "", ArrayList())

    private fun short(v: Any?): String {
        val s = jsonText(v)
        return if (s.length <= 60) s else s.substring(0, 57) + "..."
    }

    private fun codePoints(s: String) = codePointLength(s)

    private fun num(schema: JSONObject, key: String): Number? = schema.opt(key) as? Number

    private fun check(schema: JSONObject, value: Any?, path: String, out: MutableList<String>): MutableList<String> {
        if (schema.has("\$ref")) return check(resolve(schema.getString("\$ref")), value, path, out)
        val at = path.ifEmpty { "/" }
        val before = out.size
        val t = jsonType(value)
        if (schema.has("type")) {
            val type = schema.getString("type")
            val ok = type == t || (type == "number" && t == "integer")
            if (!ok) {
                out.add("$at: must be ${if (type[0] in "aeiou") "an" else "a"} $type, got ${short(value)}")
                return out
            }
        }
        if (schema.has("const") && !deepEqual(schema.opt("const"), value)) {
            out.add("$at: must be ${short(schema.opt("const"))}, got ${short(value)}")
        }
        val enum = schema.optJSONArray("enum")
        if (enum != null && (0 until enum.length()).none { deepEqual(enum.opt(it), value) }) {
            out.add("$at: must be one of ${short(enum)}, got ${short(value)}")
        }
        if (t == "integer" || t == "number") {
            val d = (value as Number).toDouble()
            num(schema, "minimum")?.let { if (d < it.toDouble()) out.add("$at: must be at least ${numberText(it)}, got ${numberText(value)}") }
            num(schema, "maximum")?.let { if (d > it.toDouble()) out.add("$at: must be at most ${numberText(it)}, got ${numberText(value)}") }
        }
        if (t == "string") {
            val s = value as String
            val n = codePoints(s)
            num(schema, "minLength")?.let { if (n < it.toInt()) out.add("$at: must have at least $it characters") }
            num(schema, "maxLength")?.let { if (n > it.toInt()) out.add("$at: must have at most $it characters") }
            if (schema.has("pattern")) {
                val p = schema.getString("pattern")
                if (!patterns.getValue(p).containsMatchIn(s)) out.add("$at: ${short(s)} does not match $p")
            }
        }
        if (t == "array") {
            val a = value as JSONArray
            num(schema, "minItems")?.let { if (a.length() < it.toInt()) out.add("$at: must have at least $it entries, has ${a.length()}") }
            num(schema, "maxItems")?.let {
                if (a.length() > it.toInt()) { out.add("$at: must have at most $it entries, has ${a.length()}"); return out }
            }
            val prefix = schema.optJSONArray("prefixItems") ?: JSONArray()
            for (i in 0 until prefix.length()) if (i < a.length()) check(prefix.getJSONObject(i), a.opt(i), "$path/$i", out)
            val items = schema.optJSONObject("items")
            if (items != null) {
                var i = prefix.length()
                while (i < a.length() && out.size - before < 20) { check(items, a.opt(i), "$path/$i", out); i++ }
            }
        }
        if (t == "object") {
            val o = value as JSONObject
            val required = schema.optJSONArray("required")
            if (required != null) for (i in 0 until required.length()) {
                val key = required.getString(i)
                if (!o.has(key)) out.add("$at: missing key '$key'")
            }
            val props = schema.optJSONObject("properties") ?: JSONObject()
            val additional = schema.opt("additionalProperties")
            for (key in o.keys()) {
                val v = o.opt(key)
                when {
                    props.has(key) -> check(props.getJSONObject(key), v, "$path/$key", out)
                    additional == false -> out.add("$at: unexpected key '$key'")
                    additional is JSONObject -> check(additional, v, "$path/$key", out)
                }
            }
        }
        val not = schema.optJSONObject("not")
        if (not != null && check(not, value, path, ArrayList()).isEmpty()) {
            val req = not.optJSONArray("required")
            out.add(
                if (req != null) "$at: must not have ${(0 until req.length()).joinToString(", ") { "'${req.getString(it)}'" }}"
                else "$at: must not be ${if (not.has("enum")) "one of ${short(not.opt("enum"))}" else short(not.opt("const"))}, got ${short(value)}"
            )
        }
        val allOf = schema.optJSONArray("allOf")
        if (allOf != null) for (i in 0 until allOf.length()) check(allOf.getJSONObject(i), value, path, out)
        val cond = schema.optJSONObject("if")
        if (cond != null) {
            val branch = if (check(cond, value, path, ArrayList()).isEmpty()) schema.optJSONObject("then") else schema.optJSONObject("else")
            if (branch != null) check(branch, value, path, out)
        }
        return out
    }

    companion object {
        private val KNOWN = setOf("\$schema", "\$id", "\$defs", "\$ref", "title", "description", "type", "enum", "const",
            "required", "properties", "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "minimum",
            "maximum", "minLength", "maxLength", "pattern", "not", "allOf", "if", "then", "else")
    }
}
