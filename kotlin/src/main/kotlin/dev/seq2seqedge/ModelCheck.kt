// What a model file may be, proved from its bytes before ONNX Runtime sees them: the Python runtime's readers
// (runtime/backends/onnx_wire.py, tflite_wire.py) and checks (backends.inspect_model, loader.check_model_ops), with
// the same messages; the shared crafted files (tests/make_crafted.py) hold every runtime to the same verdicts.
// Every read is bounded by the buffer, nesting by a fixed depth and the flatbuffer work by the file's size.
package dev.seq2seqedge

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The bytes are not a well-formed model file (as far as these readers look). */
class WireError(message: String) : Exception(message)

private fun pyList(items: List<String>): String = items.joinToString(", ", "[", "]") { pyRepr(it) }

/** Python's order: by code point (Kotlin's own String order is by UTF-16 unit). */
private val BY_CODE_POINT = Comparator<String> { a, b ->
    var i = 0
    var j = 0
    while (i < a.length && j < b.length) {
        val x = a.codePointAt(i)
        val y = b.codePointAt(j)
        if (x != y) return@Comparator x.compareTo(y)
        i += Character.charCount(x)
        j += Character.charCount(y)
    }
    (if (i < a.length) 1 else 0) - (if (j < b.length) 1 else 0)
}

private fun Iterable<String>.pySorted(): List<String> = sortedWith(BY_CODE_POINT)

/** A name read as one char per byte (ONNX Runtime tells names apart by their bytes), shown as Python shows it. */
internal fun display(name: String): String = surrogateEscape(name.toByteArray(Charsets.ISO_8859_1))

/** Bytes as Python's `bytes.decode("utf-8", "surrogateescape")` gives them: valid UTF-8 decoded, every other byte as
 * the lone surrogate U+DC80..U+DCFF (one string per byte sequence, readable as text). */
internal fun surrogateEscape(bytes: ByteArray, from: Int = 0, to: Int = bytes.size): String {
    val out = StringBuilder()
    var i = from
    while (i < to) {
        val b = bytes[i].toInt() and 0xff
        if (b < 0x80) { out.append(b.toChar()); i++; continue }
        val (n, first, min) = when (b) {
            in 0xc2..0xdf -> Triple(1, b and 0x1f, 0x80)
            in 0xe0..0xef -> Triple(2, b and 0x0f, 0x800)
            in 0xf0..0xf4 -> Triple(3, b and 0x07, 0x10000)
            else -> Triple(0, 0, 0)
        }
        var cp = first
        var ok = n > 0 && i + n < to
        var k = 1
        while (ok && k <= n) {
            val c = bytes[i + k].toInt() and 0xff
            ok = c and 0xc0 == 0x80
            cp = (cp shl 6) or (c and 0x3f)
            k++
        }
        if (ok && cp >= min && cp <= 0x10ffff && cp !in 0xd800..0xdfff) { out.appendCodePoint(cp); i += n + 1 }
        else { out.append((0xdc00 + b).toChar()); i++ }
    }
    return out.toString()
}

private val CONTRACT by lazy { SCHEMA_JSON.getJSONObject("x-contract") }

/** Operators and proven loop bounds of a model file, read without an engine. */
class ModelSummary(val ops: Set<String>, val bounds: List<Long>)

/** Operators and loop bounds of a model file; BundleError (no place) for anything a bundle model may never be. */
fun inspectModel(format: String, bytes: ByteArray): ModelSummary = when (format) {
    "onnx" -> {
        val s = try { OnnxWire.summarize(bytes) } catch (e: WireError) { throw BundleError("not a valid ONNX model (${e.message})") }
        val problems = ArrayList<String>()
        if (s.externalTensors.isNotEmpty()) problems.add("refers to external data for ${pyList(s.externalTensors.take(3).map(::display))}; bundle models must embed their weights (external data is refused)")
        if (s.functions.isNotEmpty()) problems.add("defines model-local functions ${pyList(s.functions.take(3).map(::display))} (refused: the contract has none)")
        if (s.trainingInfo) problems.add("holds training graphs (training_info is refused)")
        var bounds = emptyList<Long>()
        try { bounds = OnnxWire.loopBounds(s) } catch (e: WireError) { problems.add(e.message!!) }
        problems.addAll(OnnxWire.valueSizedProblems(s))
        val foreign = s.ops.filter { it.first.isNotEmpty() }.map { "${display(it.first)}:${display(it.second)}" }.toSet().pySorted()
        if (foreign.isNotEmpty()) problems.add("uses operators outside the default ONNX domain: ${pyList(foreign.take(5))}")
        if (problems.isNotEmpty()) throw BundleError(problems)
        ModelSummary(s.ops.map { display(it.second) }.toSet(), bounds)
    }
    "tflite" -> {
        val s = try { TfliteWire.summarize(bytes) } catch (e: WireError) { throw BundleError("not a valid TFLite model (${e.message})") }
        val custom = s.opCodes.filter { it.startsWith("CUSTOM") }.pySorted()
        if (custom.isNotEmpty()) throw BundleError("uses custom operators ${pyList(custom.take(5))} (refused: bundle models use builtins only)")
        ModelSummary(s.opCodes.map { it.substringBefore(':') }.toSet(), s.loopBounds)
    }
    else -> throw BundleError("unknown model format ${pyRepr(format)}")
}

/** The model's real operators must be ones its role allows and the manifest entry's list, each loop (proved bounded
 * from the bytes) may run at most `loopLimit` times, and with `rowLimit` (BundleManifest.rowLimit) an ONNX model's
 * every tensor is proved from `inputs` (name -> contract shape) within that many elements per batch row
 * (OnnxShapes); BundleError naming `where` otherwise. */
fun checkModelOps(bytes: ByteArray, format: String, role: String, ops: List<String>, where: String, loopLimit: Int,
                  rowLimit: Long? = null, inputs: Map<String, List<Int>> = emptyMap()) {
    val summary = try { inspectModel(format, bytes) } catch (e: BundleError) { throw BundleError(e.problems, where) }
    val problems = ArrayList<String>()
    val longest = summary.bounds.maxOrNull()
    if (longest != null && longest > loopLimit) problems.add("has a loop of up to $longest steps; a $role of this bundle may loop at most $loopLimit times")
    val allowedJson = CONTRACT.getJSONObject("allowed_ops").optJSONObject(format)?.optJSONArray(role)
    val allowed = allowedJson?.let { a -> (0 until a.length()).map { a.getString(it) }.toSet() } ?: emptySet()
    val outside = summary.ops.filter { it !in allowed }.pySorted()
    if (outside.isNotEmpty()) problems.add("uses operators a $role may not have: ${pyList(outside.take(8))} (allowed: ${pyList(allowed.pySorted())})")
    if (summary.ops != ops.toSet()) problems.add("its operators ${pyList(summary.ops.pySorted().take(20))} differ from the manifest's list ${pyList(ops.pySorted().take(20))}")
    if (problems.isNotEmpty()) throw BundleError(problems, where)
    if (rowLimit == null || format != "onnx") return // this library loads ONNX models only
    val tree = try { OnnxWire.graphTree(bytes) } catch (e: WireError) { throw BundleError("not a valid ONNX model (${e.message})", where) }
    val shapeProblems = OnnxShapes.prove(tree, inputs, rowLimit)
    if (shapeProblems.isNotEmpty()) throw BundleError(shapeProblems, where)
}

/** checkModelOps for a manifest entry, its shapes proved within `rowLimit` when given. */
fun checkModelOps(bytes: ByteArray, entry: ModelEntry, where: String, loopLimit: Int, rowLimit: Long? = null) =
    checkModelOps(bytes, entry.format, entry.role, entry.ops, where, loopLimit, rowLimit, entry.inputs.associate { it.name to it.shape })

// -- ONNX: the protobuf wire format -------------------------------------------------------------------------------
internal object OnnxWire {
    private const val MAX_DEPTH = 32
    private val VALUE_SIZED = mapOf("Expand" to listOf(1), "ConstantOfShape" to listOf(0), "Tile" to listOf(1),
        "Range" to listOf(0, 1, 2), "Resize" to listOf(2, 3), "Upsample" to listOf(1), "Pad" to listOf(1),
        "OneHot" to listOf(1), "CenterCropPad" to listOf(1))
    private val SIZE_PASSTHROUGH = setOf("Cast", "Slice", "Concat", "Gather", "Unsqueeze", "Squeeze", "Reshape", "Identity")

    class Summary {
        var irVersion: Long? = null
        val externalTensors = ArrayList<String>()
        val ops = HashSet<Pair<String, String>>()
        val functions = ArrayList<String>()
        var trainingInfo = false
        val loops = ArrayList<Triple<Int, String, Int>>()
        val mainConstants = HashMap<String, Long>()
        var strayGraphs = 0
        val mainOutputs = HashSet<String>()
        val mainDefinitions = HashMap<String, Int>()
        val mainConstantsAny = HashSet<String>()
        val mainInputs = HashSet<String>()
        val mainNodes = ArrayList<Triple<String, List<String>, List<String>>>()
        val subgraphOps = HashSet<String>()
    }

    /** One field: number, wire type, the varint value (wire 0) or the [start, end) of its bytes. */
    class Field(val number: Long, val wire: Int, val value: Long, val start: Int, val end: Int)

    private class Bytes(val buf: ByteArray, val start: Int, val end: Int) {
        fun text() = String(buf, start, end - start, Charsets.ISO_8859_1) // one char per byte: see display()
        val size get() = end - start
    }

    private fun varint(buf: ByteArray, at: Int, end: Int): Pair<Long, Int> {
        var result = 0L
        var shift = 0
        var pos = at
        while (true) {
            if (pos >= end || shift > 63) throw WireError("truncated varint")
            val b = buf[pos++].toInt() and 0xff
            result = result or ((b and 0x7f).toLong() shl shift)
            if (b and 0x80 == 0) return result to pos // 64 bits, as protobuf keeps a varint
            shift += 7
        }
    }

    private fun fields(m: Bytes): Sequence<Field> = sequence {
        var pos = m.start
        while (pos < m.end) {
            val (key, p1) = varint(m.buf, pos, m.end)
            pos = p1
            val number = key ushr 3
            val wire = (key and 7L).toInt()
            if (number == 0L) throw WireError("field number 0")
            // protobuf reads a key as 32 bits: a longer one would name another field there
            if (java.lang.Long.compareUnsigned(key, 0xFFFFFFFFL) > 0) throw WireError("field key wider than 32 bits")
            var value = 0L
            var start = pos
            when (wire) {
                0 -> { val (v, p) = varint(m.buf, pos, m.end); value = v; start = pos; pos = p }
                1 -> pos += 8
                2 -> {
                    val (length, p) = varint(m.buf, pos, m.end)
                    if (length < 0 || length > m.end - p) throw WireError("length-delimited field runs past the end")
                    start = p
                    pos = p + length.toInt()
                }
                5 -> pos += 4
                else -> throw WireError("unsupported wire type $wire")
            }
            if (pos > m.end) throw WireError("truncated field")
            yield(Field(number, wire, value, start, pos))
        }
    }

    private fun sub(m: Bytes, f: Field) = Bytes(m.buf, f.start, f.end)
    private fun count(map: HashMap<String, Int>, name: String) { map[name] = (map[name] ?: 0) + 1 }

    private fun tensor(m: Bytes, out: Summary, main: Boolean = false) {
        var name = ""
        var external = false
        var dataType: Long? = null
        var raw: Bytes? = null
        val dimsOk = ArrayList<Boolean>()
        val values = ArrayList<Long?>()
        for (f in fields(m)) {
            when {
                f.number == 8L && f.wire == 2 -> name = sub(m, f).text()
                f.number == 13L && f.wire == 2 -> external = true
                f.number == 14L && f.wire == 0 && f.value == 1L -> external = true
                f.number == 1L -> dimsOk.add(if (f.wire == 0) f.value == 1L else sub(m, f).let { d -> d.size == 0 || (d.size == 1 && m.buf[d.start] == 1.toByte()) })
                f.number == 2L && f.wire == 0 -> dataType = f.value
                (f.number == 5L || f.number == 7L) && values.size < 2 ->
                    if (f.wire == 0) values.add(f.value) else { // packed: every varint in it (two say it is not a scalar)
                        var p = f.start
                        while (p < f.end && values.size < 2) { val (v, next) = varint(m.buf, p, f.end); values.add(v); p = next }
                    }
                f.number == 9L && f.wire == 2 -> raw = sub(m, f) // the last one counts, as protobuf keeps it
            }
        }
        if (main) { count(out.mainDefinitions, name); out.mainConstantsAny.add(name) }
        if (external) { out.externalTensors.add(name.ifEmpty { "<unnamed>" }); return }
        if (!main || (dataType != 6L && dataType != 7L) || !dimsOk.all { it }) return
        val width = if (dataType == 6L) 4 else 8
        val r = raw
        if (r != null && r.size == width) {
            val bb = ByteBuffer.wrap(m.buf, r.start, width).order(ByteOrder.LITTLE_ENDIAN)
            out.mainConstants[name] = if (width == 4) bb.int.toLong() else bb.long
        } else if (r == null && values.size == 1) {
            out.mainConstants[name] = values[0]!!
        }
    }

    /** A message's name field: the last one, as protobuf keeps a singular field given twice. */
    private fun lastName(m: Bytes, number: Long): String = fields(m).lastOrNull { it.number == number && it.wire == 2 }?.let { sub(m, it).text() } ?: ""

    private fun sparse(m: Bytes, out: Summary, main: Boolean = false) {
        for (f in fields(m)) {
            if ((f.number == 1L || f.number == 2L) && f.wire == 2) {
                tensor(sub(m, f), out)
                if (main && f.number == 1L) { // a sparse initializer is named by its values tensor
                    count(out.mainDefinitions, lastName(sub(m, f), 8L))
                }
            }
        }
    }

    private fun attribute(m: Bytes, out: Summary, depth: Int): Int {
        var graphs = 0
        for (f in fields(m)) {
            if (f.wire != 2) continue
            when (f.number) {
                5L, 10L -> tensor(sub(m, f), out)
                22L, 23L -> sparse(sub(m, f), out)
                6L, 11L -> { graphs++; graph(sub(m, f), out, depth + 1) }
            }
        }
        return graphs
    }

    private fun node(m: Bytes, out: Summary, depth: Int) {
        var opType = ""
        var domain = ""
        var graphs = 0
        val inputs = ArrayList<String>()
        val outputs = ArrayList<String>()
        for (f in fields(m)) {
            if (f.wire != 2) continue
            when (f.number) {
                4L -> opType = sub(m, f).text()
                7L -> domain = sub(m, f).text()
                1L -> inputs.add(sub(m, f).text())
                2L -> { outputs.add(sub(m, f).text()); if (depth == 0) out.mainOutputs.add(outputs.last()) }
                5L -> graphs += attribute(sub(m, f), out, depth)
            }
        }
        if (domain == "ai.onnx") domain = "" // (ASCII: the same as bytes)
        out.ops.add(domain to opType)
        val qualified = if (domain.isEmpty()) opType else "$domain:$opType"
        if (depth == 0) out.mainNodes.add(Triple(qualified, inputs, outputs)) else out.subgraphOps.add(qualified)
        if (opType == "Loop" && domain.isEmpty()) out.loops.add(Triple(depth, inputs.firstOrNull() ?: "", graphs))
        else if (graphs > 0) out.strayGraphs += graphs
    }

    private fun graph(m: Bytes, out: Summary, depth: Int = 0) {
        if (depth > MAX_DEPTH) throw WireError("subgraphs nested too deeply")
        for (f in fields(m)) {
            if (f.wire != 2) continue
            when {
                f.number == 5L -> tensor(sub(m, f), out, depth == 0)
                f.number == 15L -> sparse(sub(m, f), out, depth == 0)
                f.number == 11L && depth == 0 -> {
                    val name = lastName(sub(m, f), 1L)
                    count(out.mainDefinitions, name)
                    out.mainInputs.add(name)
                }
                f.number == 1L -> node(sub(m, f), out, depth)
            }
        }
    }

    private fun function(m: Bytes, out: Summary) {
        var name = "<unnamed>"
        for (f in fields(m)) {
            if (f.wire != 2) continue
            when (f.number) {
                1L -> name = sub(m, f).text()
                7L -> node(sub(m, f), out, 1)
                11L -> out.strayGraphs += attribute(sub(m, f), out, 1) // an attribute's default value
            }
        }
        out.functions.add(name)
    }

    fun summarize(bytes: ByteArray): Summary {
        val out = Summary()
        val m = Bytes(bytes, 0, bytes.size)
        var graphSeen = false
        for (f in fields(m)) {
            when {
                f.number == 1L && f.wire == 0 -> out.irVersion = f.value
                f.number == 7L && f.wire == 2 -> { graphSeen = true; graph(sub(m, f), out) }
                f.number == 25L && f.wire == 2 -> function(sub(m, f), out)
                f.number == 20L -> out.trainingInfo = true
                f.number == 8L && f.wire == 2 -> fields(sub(m, f)).count() // opsets: read only to be well-formed
            }
        }
        if (!graphSeen || out.irVersion == null) throw WireError("no graph or IR version: not an ONNX model")
        return out
    }

    // -- the graphs as trees, for the shape proof (OnnxShapes; Python: onnx_wire.graph_tree) --------------------
    /** Integer tensors up to this many elements keep their values (shape vectors, axes, indices, slice bounds). */
    const val MAX_KEPT_INTS = 1024

    /** A tensor of the file: dims (null: not known, a sparse or twice-defined initializer), type, small int values. */
    class Const(val dims: List<Long>?, val dataType: Long?, val ints: List<Long>?)
    /** An attribute's value: Long (i), List<Long> (ints), Const (t), Graph (g), or null for any other kind. */
    class Node(val op: String, val inputs: List<String>, val outputs: List<String>, val attrs: Map<String, Any?>)
    class Graph(val nodes: MutableList<Node> = ArrayList(), val initializers: MutableMap<String, Const> = LinkedHashMap(),
                val inputs: MutableList<String> = ArrayList(), val outputs: MutableList<String> = ArrayList())
    private val UNKNOWN = Const(null, null, null)

    private fun packed(buf: ByteArray, start: Int, end: Int, into: MutableList<Long>, limit: Int = Int.MAX_VALUE) {
        var p = start
        while (p < end && into.size < limit) { val (v, next) = varint(buf, p, end); into.add(v); p = next }
    }

    private fun const(m: Bytes): Pair<String, Const> {
        var name = ""
        var dataType: Long? = null
        var raw: Bytes? = null
        val dims = ArrayList<Long>()
        val values = ArrayList<Long>()
        for (f in fields(m)) {
            when {
                f.number == 8L && f.wire == 2 -> name = sub(m, f).text()
                f.number == 1L && f.wire == 0 -> dims.add(f.value)
                f.number == 1L && f.wire == 2 -> packed(m.buf, f.start, f.end, dims)
                f.number == 2L && f.wire == 0 -> dataType = f.value
                (f.number == 5L || f.number == 7L) && values.size <= MAX_KEPT_INTS ->
                    if (f.wire == 0) values.add(f.value) else if (f.wire == 2) packed(m.buf, f.start, f.end, values, MAX_KEPT_INTS + 1)
                f.number == 9L && f.wire == 2 -> raw = sub(m, f)
            }
        }
        var n = java.math.BigInteger.ONE
        for (d in dims) n = n.multiply(java.math.BigInteger.valueOf(maxOf(d, 0L)))
        var ints: List<Long>? = null
        if ((dataType == 6L || dataType == 7L) && n <= java.math.BigInteger.valueOf(MAX_KEPT_INTS.toLong())) {
            val width = if (dataType == 6L) 4 else 8
            val r = raw
            if (r != null && r.size.toLong() == n.toLong() * width) {
                val bb = ByteBuffer.wrap(m.buf, r.start, r.size).order(ByteOrder.LITTLE_ENDIAN)
                ints = (0 until n.toInt()).map { if (width == 4) bb.int.toLong() else bb.long }
            } else if (r == null && values.size.toLong() == n.toLong()) {
                ints = values.map { if (dataType == 7L) it else it.toInt().toLong() }
            }
        }
        return name to Const(dims, dataType, ints)
    }

    private fun treeAttribute(m: Bytes, depth: Int): Pair<String, Any?> {
        var name = ""
        var kind: String? = null
        var value: Any? = null
        val ints = ArrayList<Long>()
        for (f in fields(m)) {
            when {
                f.number == 1L && f.wire == 2 -> name = sub(m, f).text()
                f.number == 3L && f.wire == 0 -> { value = f.value; kind = "i" }
                f.number == 8L -> { kind = "ints"; if (f.wire == 0) ints.add(f.value) else if (f.wire == 2) packed(m.buf, f.start, f.end, ints) }
                f.number == 5L && f.wire == 2 -> { value = const(sub(m, f)).second; kind = "t" }
                f.number == 6L && f.wire == 2 -> { value = tree(sub(m, f), depth + 1); kind = "g" }
            }
        }
        return name to (if (kind == "ints") ints else value)
    }

    private fun treeNode(m: Bytes, depth: Int): Node {
        var op = ""
        var domain = ""
        val inputs = ArrayList<String>()
        val outputs = ArrayList<String>()
        val attrs = LinkedHashMap<String, Any?>()
        for (f in fields(m)) {
            if (f.wire != 2) continue
            when (f.number) {
                4L -> op = sub(m, f).text()
                7L -> domain = sub(m, f).text()
                1L -> inputs.add(sub(m, f).text())
                2L -> outputs.add(sub(m, f).text())
                5L -> { val (name, v) = treeAttribute(sub(m, f), depth); attrs[name] = v }
            }
        }
        if (domain == "ai.onnx") domain = ""
        return Node(if (domain.isEmpty()) op else "$domain:$op", inputs, outputs, attrs)
    }

    private fun tree(m: Bytes, depth: Int = 0): Graph {
        if (depth > MAX_DEPTH) throw WireError("subgraphs nested too deeply")
        val g = Graph()
        for (f in fields(m)) {
            if (f.wire != 2) continue
            when (f.number) {
                1L -> g.nodes.add(treeNode(sub(m, f), depth))
                5L -> { val (name, c) = const(sub(m, f)); g.initializers[name] = if (name in g.initializers) UNKNOWN else c }
                15L -> for (s in fields(sub(m, f))) if (s.number == 1L && s.wire == 2) g.initializers[lastName(sub(sub(m, f), s), 8L)] = UNKNOWN
                11L -> g.inputs.add(lastName(sub(m, f), 1L))
                12L -> g.outputs.add(lastName(sub(m, f), 1L))
            }
        }
        return g
    }

    /** The main graph as a tree (read after summarize() accepted the file); a graph field given twice is merged. */
    fun graphTree(bytes: ByteArray): Graph {
        val merged = Graph()
        val m = Bytes(bytes, 0, bytes.size)
        for (f in fields(m)) {
            if (f.number != 7L || f.wire != 2) continue
            val g = tree(sub(m, f))
            merged.nodes.addAll(g.nodes); merged.inputs.addAll(g.inputs); merged.outputs.addAll(g.outputs)
            for ((name, c) in g.initializers) merged.initializers[name] = if (name in merged.initializers) UNKNOWN else c
        }
        return merged
    }

    fun loopBounds(s: Summary): List<Long> {
        if (s.strayGraphs > 0) throw WireError("holds ${s.strayGraphs} subgraph(s) outside a Loop (control flow is refused)")
        return s.loops.map { (depth, m, graphs) ->
            if (depth > 0) throw WireError("holds a Loop inside a loop body (nested loops are refused)")
            if (graphs != 1) throw WireError("holds a Loop with $graphs body graphs")
            if (m !in s.mainConstants || m in s.mainOutputs) {
                throw WireError("holds a Loop whose trip count M is not a constant of the main graph (the runtime accepts only loops with a constant maximum trip count)")
            }
            if ((s.mainDefinitions[m] ?: 0) != 1) {
                val shown = display(m).codePoints().limit(60).toArray().let { String(it, 0, it.size) }
                throw WireError("holds a Loop whose trip count M (${pyRepr(shown)}) is defined ${s.mainDefinitions[m]} times in the main graph (initializers, sparse initializers, inputs): refused, as the bound cannot be known")
            }
            maxOf(0L, s.mainConstants[m]!!)
        }
    }

    fun valueSizedProblems(s: Summary): List<String> {
        val problems = s.subgraphOps.filter { it in VALUE_SIZED }.pySorted()
            .map { "holds a $it inside a loop (its size would be read from a loop variable; refused)" }.toMutableList()
        val producer = HashMap<String, Pair<String, List<String>>>()
        for ((op, ins, outs) in s.mainNodes) for (o in outs) producer[o] = op to ins
        val memo = HashMap<String, Boolean>()
        fun derived(name: String, depth: Int = 0): Boolean {
            memo[name]?.let { return it }
            memo[name] = false // a cycle proves nothing
            if (depth > 32) return false
            val p = producer[name]
            val ok = if (p != null) {
                // a Shape only of an input of the main graph, whose shape the contract fixes (a computed tensor's shape
                // may come from values: a Slice whose end is max(ids))
                p.first == "Constant" || (p.first == "Shape" && p.second.isNotEmpty() && p.second[0] in s.mainInputs && s.mainDefinitions[p.second[0]] == 1 && p.second[0] !in s.mainOutputs) ||
                    (p.first in SIZE_PASSTHROUGH && p.second.all { it.isEmpty() || derived(it, depth + 1) })
            } else name in s.mainConstantsAny && s.mainDefinitions[name] == 1
            memo[name] = ok
            return ok
        }
        for ((op, ins, _) in s.mainNodes) {
            if (VALUE_SIZED[op].orEmpty().any { it < ins.size && ins[it].isNotEmpty() && !derived(ins[it]) }) {
                problems.add("holds a $op whose size is computed from tensor values, not from shapes and constants (it could allocate without bound; refused)")
            }
        }
        return problems
    }
}

// -- TFLite: the flatbuffer ---------------------------------------------------------------------------------------
internal object TfliteWire {
    private const val WHILE_OPTIONS = 93
    private const val INT32 = 2
    private val VALUE_SIZED = mapOf("FILL" to 0)
    private val SIZE_PASSTHROUGH = setOf("STRIDED_SLICE", "SLICE", "PACK", "CONCATENATION", "RESHAPE", "CAST", "GATHER", "SQUEEZE", "EXPAND_DIMS")
    private val BUILTIN_NAMES: Map<Int, String> by lazy {
        val names = CONTRACT.getJSONObject("tflite_builtin_names")
        names.keySet().associate { it.toInt() to names.getString(it) }
    }

    class Summary(val opCodes: List<String>, val loopBounds: List<Long>)

    class Reader(val bytes: ByteArray) {
        val bb: ByteBuffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
        val size = bytes.size
        var budget = size.toLong() / 4 + 16

        private fun check(pos: Long, n: Int) { if (pos < 0 || pos + n > size) throw WireError("offset $pos runs past the end of the file") }
        fun u8(pos: Long): Int { check(pos, 1); return bytes[pos.toInt()].toInt() and 0xff }
        fun i8(pos: Long): Int { check(pos, 1); return bytes[pos.toInt()].toInt() }
        fun u16(pos: Long): Int { check(pos, 2); return bb.getShort(pos.toInt()).toInt() and 0xffff }
        fun i32(pos: Long): Int { check(pos, 4); return bb.getInt(pos.toInt()) }
        fun u32(pos: Long): Long { check(pos, 4); return bb.getInt(pos.toInt()).toLong() and 0xffffffffL }
        fun indirect(pos: Long): Long = pos + u32(pos)

        fun table(pos: Long): Table {
            budget -= 1
            if (budget < 0) throw WireError("tables are shared or nested beyond what the file's size allows")
            val vtable = pos - i32(pos)
            val vsize = u16(vtable)
            if (vsize < 4 || vsize % 2 != 0 || vtable + vsize > size) throw WireError("malformed vtable")
            return Table(this, pos, vtable, vsize)
        }

        fun vector(pos: Long, itemSize: Int): Pair<Long, Long> {
            val start = indirect(pos)
            val length = u32(start)
            if (start + 4 + length * itemSize > size) throw WireError("vector runs past the end of the file")
            return (start + 4) to length
        }
    }

    class Table(val buf: Reader, val pos: Long, val vtable: Long, val vsize: Int) {
        private fun field(index: Int): Long? {
            val slot = 4 + 2 * index
            if (slot + 2 > vsize) return null
            val offset = buf.u16(vtable + slot)
            return if (offset != 0) pos + offset else null
        }

        fun byte(index: Int, default: Int): Int = field(index)?.let { buf.i8(it) } ?: default
        fun ubyte(index: Int, default: Int): Int = field(index)?.let { buf.u8(it) } ?: default
        fun int(index: Int, default: Int): Int = field(index)?.let { buf.i32(it) } ?: default
        fun uint(index: Int, default: Long): Long = field(index)?.let { buf.u32(it) } ?: default

        fun string(index: Int): String? = field(index)?.let {
            val (start, length) = buf.vector(it, 1)
            surrogateEscape(buf.bytes, start.toInt(), (start + length).toInt())
        }

        fun ints(index: Int): List<Int> {
            val f = field(index) ?: return emptyList()
            val (start, length) = buf.vector(f, 4)
            buf.budget -= length / 64 // long vectors count against the work budget too
            return List(length.toInt()) { buf.bb.getInt((start + 4 * it).toInt()) }
        }

        fun bytesField(index: Int, limit: Int): ByteArray? {
            val f = field(index) ?: return null
            val (start, length) = buf.vector(f, 1)
            return if (length > limit) null else buf.bytes.copyOfRange(start.toInt(), (start + length).toInt())
        }

        fun tableField(index: Int): Table? = field(index)?.let { buf.table(buf.indirect(it)) }

        fun tables(index: Int): List<Table> {
            val f = field(index) ?: return emptyList()
            val (start, length) = buf.vector(f, 4)
            return List(length.toInt()) { buf.table(buf.indirect(start + 4 * it)) }
        }
    }

    class Op(val table: Table, opCodes: List<String>) {
        val name: String
        val inputs: List<Int>
        val outputs: List<Int>
        init {
            val index = table.uint(0, 0)
            if (index >= opCodes.size) throw WireError("an operator uses opcode $index, but the model has ${opCodes.size}")
            name = opCodes[index.toInt()].substringBefore(':')
            inputs = table.ints(1)
            outputs = table.ints(2)
        }
    }

    class Subgraph(table: Table, opCodes: List<String>) {
        val tensors = table.tables(0)
        val inputs = table.ints(1)
        val inputSet = inputs.toHashSet()
        val outputs = table.ints(2)
        val ops = table.tables(3).map { Op(it, opCodes) }
        val producer = HashMap<Int, Op>().also { m -> for (op in ops) for (o in op.outputs) m[o] = op }

        fun isInt32(t: Int) = t >= 0 && t < tensors.size && tensors[t].byte(1, 0) == INT32

        fun isConstant(t: Int, buffers: List<Table>): Boolean {
            if (t < 0 || t >= tensors.size || t in producer || t in inputSet) return false
            val b = tensors[t].uint(2, 0)
            return tensors[t].byte(5, 0) == 0 && b > 0 && b < buffers.size
        }

        fun constantInt(t: Int, buffers: List<Table>): Int? {
            if (t < 0 || t >= tensors.size || t in producer || t in inputSet) return null
            val tensor = tensors[t]
            if (tensor.byte(1, 0) != INT32 || tensor.byte(5, 0) != 0) return null
            val b = tensor.uint(2, 0)
            if (b <= 0 || b >= buffers.size) return null
            val data = buffers[b.toInt()].bytesField(0, 4) ?: return null
            return if (data.size == 4) ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).int else null
        }
    }

    fun summarize(bytes: ByteArray): Summary {
        if (bytes.size < 8 || String(bytes, 4, 4, Charsets.ISO_8859_1) != "TFL3") throw WireError("no TFL3 identifier")
        val buf = Reader(bytes)
        val model = buf.table(buf.indirect(0))
        val opCodes = model.tables(1).map { code ->
            val builtin = maxOf(code.byte(0, 0), code.int(3, 0))
            code.int(2, 1) // version: read (bounds-checked) as the Python reader reads it
            val name = BUILTIN_NAMES[builtin] ?: "BUILTIN_$builtin"
            if (name == "CUSTOM") "CUSTOM:${code.string(1) ?: ""}" else name
        }
        val tables = model.tables(2)
        if (tables.isEmpty()) throw WireError("no subgraph")
        val graphs = tables.map { Subgraph(it, opCodes) }
        for (g in graphs.drop(1)) {
            if (g.ops.any { it.name in setOf("WHILE", "IF", "CALL", "CALL_ONCE") || it.name.startsWith("STABLEHLO") }) {
                throw WireError("a loop's condition or body holds control flow (nested loops are refused)")
            }
        }
        val buffers = model.tables(4)
        val claimed = HashSet<Int>()
        val bounds = ArrayList<Long>()
        for (op in graphs[0].ops) {
            if (op.name != "WHILE") continue
            val (cond, body) = whileSubgraphs(op, graphs.size)
            if (cond in claimed || body in claimed || cond == body) throw WireError("two loops share a condition or body subgraph")
            claimed.add(cond); claimed.add(body)
            bounds.add(proveBound(graphs[0], op, graphs[cond], graphs[body], buffers))
        }
        checkValueSized(graphs, buffers)
        val unclaimed = (1 until graphs.size).filter { it !in claimed }
        if (unclaimed.isNotEmpty()) {
            throw WireError("has ${graphs.size} subgraphs, of which ${unclaimed.joinToString(", ", "[", "]")} are not the condition or body of a loop in the main graph")
        }
        return Summary(opCodes, bounds)
    }

    private fun checkValueSized(graphs: List<Subgraph>, buffers: List<Table>) {
        graphs.forEachIndexed { i, g ->
            val memo = HashMap<Int, Boolean>() // one per graph: each tensor worked out once, however many operators ask
            for (op in g.ops) {
                val index = VALUE_SIZED[op.name] ?: continue
                if (i > 0) throw WireError("a ${op.name} inside a loop (its size would be read from a loop variable; refused)")
                if (index >= op.inputs.size || !shapeDerived(g, op.inputs[index], buffers, memo)) {
                    throw WireError("a ${op.name} whose size is computed from tensor values, not from shapes and constants (it could allocate without bound; refused)")
                }
            }
        }
    }

    private fun shapeDerived(g: Subgraph, tensor: Int, buffers: List<Table>, memo: HashMap<Int, Boolean>, depth: Int = 0): Boolean {
        memo[tensor]?.let { return it }
        memo[tensor] = false // a cycle proves nothing
        val producer = g.producer[tensor]
        val ok = when {
            depth > 32 -> false
            producer == null -> g.isConstant(tensor, buffers)
            // a SHAPE only of an input of the graph, whose shape the contract fixes (a computed tensor's may come from values)
            producer.name == "SHAPE" -> producer.inputs.isNotEmpty() && producer.inputs[0] in g.inputSet && producer.inputs[0] !in g.producer
            else -> producer.name in SIZE_PASSTHROUGH && producer.inputs.all { it < 0 || shapeDerived(g, it, buffers, memo, depth + 1) }
        }
        memo[tensor] = ok
        return ok
    }

    private fun whileSubgraphs(op: Op, count: Int): Pair<Int, Int> {
        val options = op.table.tableField(4)
        if (op.table.ubyte(3, 0) != WHILE_OPTIONS || options == null) throw WireError("a WHILE operator without WhileOptions")
        val cond = options.int(0, -1)
        val body = options.int(1, -1)
        if (!(cond in 1 until count && body in 1 until count)) throw WireError("a WHILE operator names subgraphs $cond and $body of $count")
        return cond to body
    }

    /** The most times this WHILE can run its body: LESS(counter, C) in the condition, counter + 1 in the body, a
     * constant start; WireError otherwise. */
    private fun proveBound(main: Subgraph, op: Op, cond: Subgraph, body: Subgraph, buffers: List<Table>): Long {
        val n = op.inputs.size
        if (!(op.outputs.size == n && cond.inputs.size == n && body.inputs.size == n && body.outputs.size == n && cond.outputs.size == 1)) {
            throw WireError("a WHILE operator whose condition and body do not match its inputs")
        }
        for ((label, tensors) in listOf("outputs" to op.outputs, "condition's inputs" to cond.inputs, "body's inputs" to body.inputs, "body's outputs" to body.outputs)) {
            if (tensors.toSet().size != tensors.size) throw WireError("a WHILE loop whose $label list a tensor twice (refused: the loop variables must be distinct tensors)")
        }
        for ((label, g) in listOf("condition" to cond, "body" to body)) {
            val written = g.inputs.filter { it in g.producer }.sorted()
            if (written.isNotEmpty()) throw WireError("an operator in a WHILE loop's $label writes its input tensor ${written[0]} (refused)")
        }
        val candidates = ArrayList<Pair<Int, Int>>()
        val pending = ArrayList<Int>().apply { add(cond.outputs[0]) }
        val seen = HashSet<Int>()
        while (pending.isNotEmpty() && seen.size < 64) {
            val tensor = pending.removeAt(pending.size - 1)
            val producer = cond.producer[tensor]
            if (producer == null || tensor in seen) continue
            seen.add(tensor)
            if (producer.name == "LOGICAL_AND") pending.addAll(producer.inputs.take(2))
            else if (producer.name == "LESS" && producer.inputs.size == 2) {
                val (left, right) = producer.inputs
                val limit = cond.constantInt(right, buffers)
                if (left in cond.inputs && limit != null) candidates.add(cond.inputs.indexOf(left) to limit)
            }
        }
        for ((k, limit) in candidates) {
            if (!(cond.isInt32(cond.inputs[k]) && body.isInt32(body.inputs[k]))) continue
            val step = body.producer[body.outputs[k]]
            if (step == null || step.name != "ADD" || step.inputs.size != 2 || body.inputs[k] !in step.inputs) continue
            val other = if (step.inputs[0] == body.inputs[k]) step.inputs[1] else step.inputs[0]
            if (body.constantInt(other, buffers) != 1 || (step.table.ubyte(3, 0) != 0 && fused(step))) continue
            val start = main.constantInt(op.inputs[k], buffers) ?: continue
            return maxOf(0L, limit.toLong() - start.toLong())
        }
        throw WireError("a WHILE loop whose trip count has no provable bound (the runtime accepts only loops that count a constant up to a constant limit)")
    }

    private fun fused(op: Op): Boolean {
        val options = op.table.tableField(4)
        return options != null && options.byte(0, 0) != 0
    }
}
