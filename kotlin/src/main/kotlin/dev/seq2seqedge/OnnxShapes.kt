// The shape proof of an ONNX model: the Python runtime's runtime/backends/onnx_shapes.py and shapes.py, rule for rule
// and message for message (the shared crafted files hold every runtime to it). Every tensor's shape is worked out
// from the contract's input shapes with the batch B symbolic (a dimension is a polynomial in B, exact or an upper
// bound); a Loop must leave what it carries at the shape it came in with; every tensor must grow at most linearly in
// the batch, within rowLimit elements per batch row, and within max(rowLimit, the file's largest constant) without it.
package dev.seq2seqedge

import java.math.BigInteger

internal class ShapeError(message: String) : Exception(message)

internal object OnnxShapes {
    const val MAX_RANK = 16
    private const val MAX_VALUES = OnnxWire.MAX_KEPT_INTS
    private val MAX_BATCH: BigInteger = BigInteger.valueOf(4096) // the runtimes' batch limit
    private val INT32_MAX: BigInteger = BigInteger.valueOf(Int.MAX_VALUE.toLong())
    private val ZERO = BigInteger.ZERO
    private val B1 = BigInteger.ONE

    /** c[0] + c[1]·B + c[2]·B² + …; exact false when the real dimension is at most this. */
    class Dim(val c: List<BigInteger>, val exact: Boolean = true) {
        val const: BigInteger? get() = if (c.size == 1) c[0] else null
        fun sameC(o: Dim) = c == o.c
        override fun toString(): String {
            val terms = ArrayList<String>()
            c.forEachIndexed { i, k ->
                if (k.signum() == 0) return@forEachIndexed
                val power = if (i == 0) "" else if (i == 1) "B" else "B^$i"
                terms.add(if (power.isEmpty()) "$k" else if (k == B1) power else "$k·$power")
            }
            return terms.reversed().joinToString(" + ").ifEmpty { "0" }
        }
    }

    private fun dim(coefficients: List<BigInteger>, exact: Boolean): Dim {
        val c = coefficients.toMutableList()
        while (c.size > 1 && c.last().signum() == 0) c.removeAt(c.size - 1)
        return Dim(c, exact)
    }
    private fun of(n: BigInteger, exact: Boolean = true) = Dim(listOf(n), exact)
    private fun of(n: Long, exact: Boolean = true) = of(BigInteger.valueOf(n), exact)
    private val BATCH = Dim(listOf(ZERO, B1))
    private val ONE = of(B1)

    private fun mul(x: Dim, y: Dim): Dim {
        val out = MutableList(x.c.size + y.c.size - 1) { ZERO }
        x.c.forEachIndexed { i, a -> y.c.forEachIndexed { j, b -> out[i + j] = out[i + j].add(a.multiply(b)) } }
        return dim(out, x.exact && y.exact)
    }
    private fun add(x: Dim, y: Dim): Dim =
        dim((0 until maxOf(x.c.size, y.c.size)).map { (x.c.getOrNull(it) ?: ZERO).add(y.c.getOrNull(it) ?: ZERO) }, x.exact && y.exact)
    /** An upper bound of both; an exact constant other than 1 is what a broadcast or concatenation gives (or fails). */
    private fun atMost(x: Dim, y: Dim): Dim {
        if (x.exact && x.const != null && x.const != B1) return x
        if (y.exact && y.const != null && y.const != B1) return y
        if (x.sameC(y)) return Dim(x.c, x.exact && y.exact)
        return dim((0 until maxOf(x.c.size, y.c.size)).map { (x.c.getOrNull(it) ?: ZERO).max(y.c.getOrNull(it) ?: ZERO) }, false)
    }
    private fun largest(d: Dim): BigInteger = d.c.foldIndexed(ZERO) { i, s, k -> s.add(k.multiply(MAX_BATCH.pow(i))) }
    private fun count(shape: List<Dim>): Dim = shape.fold(ONE) { n, d -> mul(n, d) }
    private fun nonneg(d: Dim) = if (d.const != null && d.const!!.signum() < 0) of(ZERO, d.exact) else d
    private fun floorDiv(a: BigInteger, b: BigInteger): BigInteger {
        val qr = a.divideAndRemainder(b)
        return if (qr[1].signum() != 0 && (a.signum() < 0) != (b.signum() < 0)) qr[0].subtract(B1) else qr[0]
    }
    private fun ceilDiv(a: BigInteger, b: BigInteger) = floorDiv(a.negate(), b).negate()

    class Tensor(val shape: List<Dim>?, val values: List<Dim>? = null)

    private fun name60(name: String): String = pyRepr(display(name).codePoints().limit(60).toArray().let { String(it, 0, it.size) })

    private fun axisOf(axis: BigInteger, rank: Int, op: String): Int {
        val r = BigInteger.valueOf(rank.toLong())
        if (!(axis >= r.negate() && axis < r)) throw ShapeError("a $op with axis $axis of a rank-$rank tensor")
        return axis.mod(r).toInt()
    }

    private fun broadcast(vararg shapes: List<Dim>): List<Dim> {
        val rank = shapes.maxOf { it.size }
        return (0 until rank).map { i ->
            var d: Dim? = null
            for (s in shapes) {
                val j = s.size - rank + i
                if (j < 0) continue
                val x = s[j]
                if (x.c == ONE.c && x.exact) continue
                d = if (d == null) x else atMost(d, x)
            }
            d ?: ONE
        }
    }

    private fun clamp(v: BigInteger, lo: BigInteger, hi: BigInteger) = if (v < lo) lo else if (v > hi) hi else v

    private fun sliceLength(length: BigInteger, start0: BigInteger, end0: BigInteger, step: BigInteger): BigInteger {
        if (step.signum() == 0) throw ShapeError("a Slice with step 0")
        var start = if (start0.signum() < 0) start0.add(length) else start0
        var end = if (end0.signum() < 0) end0.add(length) else end0
        if (step.signum() > 0) {
            start = clamp(start, ZERO, length); end = clamp(end, ZERO, length)
            return ceilDiv(end.subtract(start), step).max(ZERO)
        }
        start = clamp(start, ZERO, length.subtract(B1)); end = clamp(end, B1.negate(), length.subtract(B1))
        return ceilDiv(start.subtract(end), step.negate()).max(ZERO)
    }

    private fun sliceIndices(length: BigInteger, start0: BigInteger, end: BigInteger, step: BigInteger): List<BigInteger> {
        val n = sliceLength(length, start0, end, step)
        val start = if (start0.signum() < 0) start0.add(length) else start0
        val first = if (step.signum() > 0) clamp(start, ZERO, length) else clamp(start, ZERO, length.subtract(B1))
        return (0 until n.toInt()).map { first.add(BigInteger.valueOf(it.toLong()).multiply(step)) }
    }

    private fun divide(total: Dim, by: Dim): Dim {
        if (total.exact && by.exact) {
            val k = by.c.indexOfFirst { it.signum() != 0 }
            if (k >= 0 && by.c.drop(k + 1).all { it.signum() == 0 } && total.c.take(k).all { it.signum() == 0 } &&
                total.c.drop(k).all { it.mod(by.c[k]).signum() == 0 }) {
                return dim(total.c.drop(k).map { it.divide(by.c[k]) }, true)
            }
        }
        return Dim(total.c, false)
    }

    private fun keepsShape(first: List<Dim>?, after: List<Dim>?) = first != null && after != null && first.size == after.size &&
        first.indices.all { first[it].sameC(after[it]) && first[it].exact && after[it].exact }

    // -- attributes
    private fun intAttr(a: Map<String, Any?>, name: String, default: Long): BigInteger {
        val v = if (name in a) a[name] else default
        if (v !is Long) throw ShapeError("an attribute ${pyRepr(name)} that is not an integer")
        return BigInteger.valueOf(v)
    }
    private fun intsAttr(a: Map<String, Any?>, name: String, default: List<BigInteger>?): List<BigInteger>? {
        if (name !in a) return default
        val v = a[name]
        if (v !is List<*> || v.any { it !is Long }) throw ShapeError("an attribute ${pyRepr(name)} that is not a list of integers")
        return v.map { BigInteger.valueOf(it as Long) }
    }

    private class Prover(rowLimit: Long) {
        val rowLimit: BigInteger = BigInteger.valueOf(rowLimit)
        var largestConstant: BigInteger = ZERO
        val checked = ArrayList<Pair<String, List<Dim>>>()

        fun constTensor(c: OnnxWire.Const): Tensor {
            val dims = c.dims
            if (dims == null || dims.any { it < 0 } || dims.size > MAX_RANK) return Tensor(null)
            var n = B1
            for (d in dims) n = n.multiply(BigInteger.valueOf(d))
            largestConstant = largestConstant.max(n)
            return Tensor(dims.map { of(it) }, c.ints?.map { of(it) })
        }

        fun known(t: Tensor?, what: String, node: OnnxWire.Node): List<Dim> =
            t?.values ?: throw ShapeError("a ${display(node.op)} whose $what the proof cannot compute from constants and input shapes")

        fun ints(t: Tensor?, what: String, node: OnnxWire.Node): List<BigInteger> {
            val values = known(t, what, node)
            if (values.any { it.const == null }) throw ShapeError("a ${display(node.op)} whose $what depends on the batch")
            if (!values.all { it.exact }) throw ShapeError("a ${display(node.op)} whose $what the proof knows only as a bound")
            return values.map { it.const!! }
        }

        fun graph(g: OnnxWire.Graph, scope: Map<String, Tensor>, where: String): Map<String, Tensor> {
            val env = HashMap(scope)
            for ((name, c) in g.initializers) env[name] = constTensor(c)
            for (node in g.nodes) {
                val outs = try {
                    node(node, node.inputs.map { if (it.isEmpty()) null else env[it] }, env)
                } catch (e: ShapeError) { throw ShapeError("$where: ${e.message}") }
                node.outputs.forEachIndexed { i, name ->
                    val t = outs.getOrNull(i) ?: return@forEachIndexed
                    if (t.shape != null && t.shape.size > MAX_RANK) {
                        throw ShapeError("$where: a ${display(node.op)} whose output has ${t.shape.size} dimensions (at most $MAX_RANK)")
                    }
                    if (name.isNotEmpty()) {
                        env[name] = t
                        if (t.shape != null) checked.add(name to t.shape)
                    }
                }
            }
            return env
        }

        fun node(node: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
            val op = node.op
            ins.forEachIndexed { i, t ->
                if (node.inputs[i].isNotEmpty() && (t == null || t.shape == null)) {
                    throw ShapeError("a ${display(op)} reads ${name60(node.inputs[i])}, whose shape the proof does not know")
                }
            }
            val rule = RULES[op] ?: throw ShapeError("no shape rule for ${display(op)}")
            val needed = INPUTS_NEEDED[op] ?: 1
            if (ins.size < needed || ins.take(needed).any { it == null } || node.outputs.isEmpty()) {
                throw ShapeError("a ${display(op)} without the inputs and outputs it needs")
            }
            return try { rule(this, node, ins, env) } catch (e: ShapeError) { throw e } catch (e: StackOverflowError) { throw e } catch (e: RuntimeException) {
                throw ShapeError("a malformed ${display(op)}")
            }
        }

        fun problems(limit: Int = 3): List<String> {
            val constLimit = rowLimit.max(largestConstant)
            val out = ArrayList<String>()
            for ((name, shape) in checked) {
                val n = count(shape)
                if (n.c.size > 2) {
                    out.add("holds a tensor (${name60(name)}) of $n elements: it grows with a power of the batch (the contract's tensors grow linearly; refused)")
                } else if ((n.c.size == 2 && n.c[1] > rowLimit) || n.c[0] > constLimit) {
                    out.add("holds a tensor (${name60(name)}) of $n elements, more than the bundle's shapes allow ($rowLimit per batch row, $constLimit in all without the batch; refused)")
                }
                if (out.size >= limit) break
            }
            return out
        }
    }

    // -- the rules: (prover, node, input tensors, environment) -> output tensors
    private typealias Rule = (Prover, OnnxWire.Node, List<Tensor?>, Map<String, Tensor>) -> List<Tensor>

    private fun same(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>) = listOf(Tensor(ins[0]!!.shape))

    private fun cast(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val t = ins[0]!!
        val to = intAttr(n.attrs, "to", 0)
        val keep = (to == BigInteger.valueOf(6) || to == BigInteger.valueOf(7)) && t.values != null &&
            t.values.all { largest(it) <= INT32_MAX && (it.const == null || INT32_MAX.negate() <= it.const!!) }
        return listOf(Tensor(t.shape, if (keep) t.values else null))
    }

    private fun elementwise(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>) =
        listOf(Tensor(broadcast(*ins.filterNotNull().map { it.shape!! }.toTypedArray())))

    private fun matmul(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val x = ins[0]!!.shape!!
        val y = ins[1]!!.shape!!
        if (x.isEmpty() || y.isEmpty()) throw ShapeError("a ${display(n.op)} of a scalar")
        val x2 = if (x.size == 1) listOf(ONE) + x else x
        val y2 = if (y.size == 1) y + listOf(ONE) else y
        var out = broadcast(x2.dropLast(2), y2.dropLast(2)) + listOf(x2[x2.size - 2], y2.last())
        if (x.size == 1) out = out.dropLast(2) + out.takeLast(1)
        if (y.size == 1) out = out.dropLast(1)
        return listOf(Tensor(out))
    }

    private fun gemm(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val x = ins[0]!!.shape!!
        val y = ins[1]!!.shape!!
        if (x.size != 2 || y.size != 2) throw ShapeError("a Gemm of a tensor that is not a matrix")
        val m = if (intAttr(n.attrs, "transA", 0).signum() != 0) x[1] else x[0]
        val k = if (intAttr(n.attrs, "transB", 0).signum() != 0) y[0] else y[1]
        return listOf(Tensor(listOf(m, k)))
    }

    private fun gather(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val data = ins[0]!!
        val idx = ins[1]!!
        val ds = data.shape!!
        if (ds.isEmpty()) throw ShapeError("a Gather from a scalar")
        val axis = axisOf(intAttr(n.attrs, "axis", 0), ds.size, "Gather")
        val shape = ds.take(axis) + idx.shape!! + ds.drop(axis + 1)
        var values: List<Dim>? = null
        if (ds.size == 1 && data.values != null && idx.values != null) {
            val size = BigInteger.valueOf(data.values.size.toLong())
            val picks = idx.values.map { if (it.exact) it.const else null }
            if (picks.all { it != null && it >= size.negate() && it < size }) {
                values = picks.map { data.values[(if (it!!.signum() < 0) it.add(size) else it).toInt()] }
            }
        }
        return listOf(Tensor(shape, values))
    }

    private fun split(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val shape = ins[0]!!.shape!!
        val axis = axisOf(intAttr(n.attrs, "axis", 0), shape.size, "Split")
        val count = n.outputs.size
        val sizes: List<BigInteger>? = if (ins.size > 1 && ins[1] != null) p.ints(ins[1], "split sizes", n)
            else if ("split" in n.attrs) intsAttr(n.attrs, "split", null) else null
        val d = shape[axis]
        val k = BigInteger.valueOf(count.toLong())
        val part = dim(d.c.map { ceilDiv(it, k) }, d.exact && d.c.all { it.mod(k).signum() == 0 })
        if (sizes != null && sizes.size != count) throw ShapeError("a Split into $count outputs with ${sizes.size} sizes")
        return (0 until count).map { i -> Tensor(shape.take(axis) + listOf(if (sizes != null) of(sizes[i].max(ZERO)) else part) + shape.drop(axis + 1)) }
    }

    private fun concat(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val parts = ins.filterNotNull()
        val rank = parts[0].shape!!.size
        if (parts.any { it.shape!!.size != rank }) throw ShapeError("a Concat of tensors of different ranks")
        val axis = axisOf(intAttr(n.attrs, "axis", 0), rank, "Concat")
        val dims = (0 until rank).map { i ->
            var d = parts[0].shape!![i]
            for (t in parts.drop(1)) d = if (i == axis) add(d, t.shape!![i]) else atMost(d, t.shape!![i])
            d
        }
        val values = if (rank == 1 && parts.all { it.values != null } && parts.sumOf { it.values!!.size } <= MAX_VALUES) parts.flatMap { it.values!! } else null
        return listOf(Tensor(dims, values))
    }

    private fun slice(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val data = ins[0]!!
        val shape = data.shape!!
        val rank = shape.size
        val params = ins.drop(1).filterNotNull()
        if (!params.all { t -> t.values != null && t.values.all { it.const != null && it.exact } }) {
            return listOf(Tensor(shape.map { Dim(it.c, false) })) // bounds read from values: never larger
        }
        val a = n.attrs
        val starts = if (ins.size > 1) p.ints(ins[1], "starts", n) else intsAttr(a, "starts", emptyList())!!
        val ends = if (ins.size > 2) p.ints(ins[2], "ends", n) else intsAttr(a, "ends", emptyList())!!
        val axes = if (ins.size > 3 && ins[3] != null) p.ints(ins[3], "axes", n)
            else intsAttr(a, "axes", starts.indices.map { BigInteger.valueOf(it.toLong()) })!!
        val steps = if (ins.size > 4 && ins[4] != null) p.ints(ins[4], "steps", n) else starts.map { B1 }
        if (!(starts.size == ends.size && ends.size == axes.size && axes.size == steps.size)) {
            throw ShapeError("a Slice whose starts, ends, axes and steps differ in length")
        }
        val dims = shape.toMutableList()
        var values = data.values
        for (i in starts.indices) {
            val start = starts[i]; val end = ends[i]; val step = steps[i]
            val axis = axisOf(axes[i], rank, "Slice")
            val d = dims[axis]
            val c = d.const
            if (c != null) {
                dims[axis] = of(sliceLength(c, start, end, step), d.exact)
                val v = values
                values = if (rank == 1 && v != null && d.exact && BigInteger.valueOf(v.size.toLong()) == c) sliceIndices(c, start, end, step).map { v[it.toInt()] } else null
            } else if (step == B1 && start.signum() == 0 && end >= largest(d)) {
                // the whole axis, at any batch the runtime runs
            } else if (step == B1 && start.signum() >= 0 && start < end) {
                dims[axis] = of(end.subtract(start), false)
            } else if (step == B1 && start.signum() < 0 && end >= largest(d)) {
                dims[axis] = of(start.negate(), false)
            } else dims[axis] = Dim(d.c, false)
        }
        if (rank != 1 || dims.any { !it.exact }) values = null
        return listOf(Tensor(dims, values))
    }

    private fun axes(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>): List<BigInteger>? =
        if (ins.size > 1 && ins[1] != null) p.ints(ins[1], "axes", n) else intsAttr(n.attrs, "axes", null)

    private fun squeeze(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val shape = ins[0]!!.shape!!
        val ax = axes(p, n, ins)
        val keep = if (ax == null) {
            if (shape.any { it.const == null || !it.exact }) throw ShapeError("a Squeeze without axes of a tensor whose dimensions depend on the batch")
            shape.indices.filter { shape[it].const != B1 }
        } else {
            val drop = ax.map { axisOf(it, shape.size, "Squeeze") }.toSet()
            shape.indices.filter { it !in drop }
        }
        val v = ins[0]!!.values
        return listOf(Tensor(keep.map { shape[it] }, if (shape.size <= 1 && v != null && v.size == 1) v else null))
    }

    private fun unsqueeze(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val shape = ins[0]!!.shape!!
        val ax = axes(p, n, ins) ?: throw ShapeError("an Unsqueeze without axes")
        val rank = shape.size + ax.size
        val at = ax.map { axisOf(it, rank, "Unsqueeze") }.toSet()
        if (at.size != ax.size) throw ShapeError("an Unsqueeze with an axis given twice")
        val rest = shape.iterator()
        val out = (0 until rank).map { if (it in at) ONE else rest.next() }
        return listOf(Tensor(out, if (rank <= 1) ins[0]!!.values else null))
    }

    private fun transpose(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val shape = ins[0]!!.shape!!
        val given = intsAttr(n.attrs, "perm", null)
        val perm = if (given.isNullOrEmpty()) shape.indices.reversed().map { BigInteger.valueOf(it.toLong()) } else given
        if (perm.sorted() != shape.indices.map { BigInteger.valueOf(it.toLong()) }) throw ShapeError("a Transpose whose perm is not a permutation of the axes")
        return listOf(Tensor(perm.map { shape[it.toInt()] }))
    }

    private fun reshape(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val data = ins[0]!!
        val shape = data.shape!!
        val target = p.known(ins[1], "target shape", n)
        val total = count(shape)
        val dims = ArrayList<Dim?>()
        var infer: Int? = null
        target.forEachIndexed { i, v ->
            val c = v.const
            if (c == B1.negate()) {
                if (infer != null) throw ShapeError("a Reshape with two -1s")
                infer = i
                dims.add(null)
            } else if (c != null && c.signum() == 0 && intAttr(n.attrs, "allowzero", 0).signum() == 0) {
                if (i >= shape.size) throw ShapeError("a Reshape that copies an axis its input does not have")
                dims.add(shape[i])
            } else if (c != null && c.signum() < 0) throw ShapeError("a Reshape to a negative dimension $c")
            else dims.add(v)
        }
        infer?.let { dims[it] = divide(total, count(dims.filterNotNull())) }
        return listOf(Tensor(dims.map { it!! }, if (dims.size <= 1) data.values else null))
    }

    private fun shapeOp(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val dims = ins[0]!!.shape!!
        val size = BigInteger.valueOf(dims.size.toLong())
        fun norm(v: BigInteger): Int = clamp(if (v.signum() < 0) v.add(size) else v, ZERO, size).toInt()
        val start = norm(intAttr(n.attrs, "start", 0))
        val end = norm(intAttr(n.attrs, "end", dims.size.toLong()))
        val picked = if (start < end) dims.subList(start, end).toList() else emptyList()
        return listOf(Tensor(listOf(of(picked.size.toLong())), picked))
    }

    private fun constantOfShape(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>) =
        listOf(Tensor(p.known(ins[0], "size", n).map(::nonneg)))

    private fun expand(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>) =
        listOf(Tensor(broadcast(ins[0]!!.shape!!, p.known(ins[1], "size", n).map(::nonneg))))

    private fun reduce(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val shape = ins[0]!!.shape!!
        var ax = axes(p, n, ins)
        val keep = intAttr(n.attrs, "keepdims", 1).signum() != 0
        if (ax.isNullOrEmpty()) {
            // no axes, given empty or not given: the input as it is
            if (intAttr(n.attrs, "noop_with_empty_axes", 0).signum() != 0) return listOf(Tensor(shape))
            ax = shape.indices.map { BigInteger.valueOf(it.toLong()) }
        }
        val drop = ax.map { axisOf(it, shape.size, display(n.op)) }.toSet()
        return listOf(Tensor(shape.indices.filter { keep || it !in drop }.map { if (it in drop) ONE else shape[it] }))
    }

    private fun argmax(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val shape = ins[0]!!.shape!!
        val axis = axisOf(intAttr(n.attrs, "axis", 0), shape.size, display(n.op))
        val keep = intAttr(n.attrs, "keepdims", 1).signum() != 0
        return listOf(Tensor(shape.indices.filter { keep || it != axis }.map { if (it == axis) ONE else shape[it] }))
    }

    private fun dynamicQuantize(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>) =
        listOf(Tensor(ins[0]!!.shape), Tensor(emptyList()), Tensor(emptyList()))

    private fun constant(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val v = n.attrs["value"]
        if (v is OnnxWire.Const) return listOf(p.constTensor(v))
        if ("value_int" in n.attrs) return listOf(Tensor(emptyList(), listOf(of(intAttr(n.attrs, "value_int", 0)))))
        if ("value_ints" in n.attrs) {
            val values = intsAttr(n.attrs, "value_ints", null)!!
            return listOf(Tensor(listOf(of(values.size.toLong())), if (values.size <= MAX_VALUES) values.map { of(it) } else null))
        }
        throw ShapeError("a Constant of a kind the proof does not read (value, value_int, value_ints)")
    }

    private fun loop(p: Prover, n: OnnxWire.Node, ins: List<Tensor?>, env: Map<String, Tensor>): List<Tensor> {
        val body = n.attrs["body"] as? OnnxWire.Graph ?: throw ShapeError("a Loop without a body graph")
        val carried = ins.drop(2)
        if (body.inputs.size != 2 + carried.size || body.outputs.size < 1 + carried.size) {
            throw ShapeError("a Loop whose body's inputs and outputs do not match its carried tensors")
        }
        val scope = HashMap(env)
        scope[body.inputs[0]] = Tensor(emptyList()) // the iteration number
        scope[body.inputs[1]] = Tensor(emptyList()) // the condition
        body.inputs.drop(2).forEachIndexed { i, name -> scope[name] = Tensor(carried[i]!!.shape) } // values change per step
        val inner = p.graph(body, scope, "its Loop body")
        body.inputs.drop(2).forEachIndexed { i, name ->
            if (!keepsShape(carried[i]!!.shape, inner[body.outputs[1 + i]]?.shape)) {
                throw ShapeError("a Loop whose body changes the shape of the tensor it carries as ${name60(name)} (a loop may not grow what it carries)")
            }
        }
        val trips = ins.getOrNull(0)?.values?.firstOrNull()
        val outs = carried.map { Tensor(it!!.shape) }.toMutableList()
        for (outName in body.outputs.drop(1 + carried.size)) { // scan outputs: one slice per iteration
            val step = inner[outName]
            if (trips == null || trips.const == null || step == null || step.shape == null) {
                throw ShapeError("a Loop with a scan output whose size the proof cannot bound")
            }
            outs.add(Tensor(listOf(of(trips.const!!.max(ZERO), false)) + step.shape))
        }
        return outs
    }

    private val INPUTS_NEEDED = mapOf("Add" to 2, "Sub" to 2, "Mul" to 2, "Equal" to 2, "Less" to 2, "Greater" to 2, "And" to 2,
        "Or" to 2, "Where" to 3, "MatMul" to 2, "MatMulInteger" to 2, "Gemm" to 2, "Gather" to 2, "Reshape" to 2, "Expand" to 2,
        "Constant" to 0, "Loop" to 0)

    private val RULES: Map<String, Rule> = mapOf(
        "Identity" to ::same, "Sigmoid" to ::same, "Tanh" to ::same, "Not" to ::same, "Softmax" to ::same,
        "QuantizeLinear" to ::same, "DequantizeLinear" to ::same, "Cast" to ::cast,
        "Add" to ::elementwise, "Sub" to ::elementwise, "Mul" to ::elementwise, "Equal" to ::elementwise, "Less" to ::elementwise,
        "Greater" to ::elementwise, "And" to ::elementwise, "Or" to ::elementwise, "Where" to ::elementwise,
        "MatMul" to ::matmul, "MatMulInteger" to ::matmul, "Gemm" to ::gemm, "Gather" to ::gather, "Split" to ::split,
        "Concat" to ::concat, "Slice" to ::slice, "Squeeze" to ::squeeze, "Unsqueeze" to ::unsqueeze, "Transpose" to ::transpose,
        "Reshape" to ::reshape, "Shape" to ::shapeOp, "ConstantOfShape" to ::constantOfShape, "Expand" to ::expand,
        "ReduceSum" to ::reduce, "ReduceMax" to ::reduce, "ArgMax" to ::argmax, "DynamicQuantizeLinear" to ::dynamicQuantize,
        "Constant" to ::constant, "Loop" to ::loop,
    )

    /** Problems with a graph tree's shapes (empty: every tensor proved within bounds); `inputs` maps each contract
     * input's name to its shape (-1: the batch); `rowLimit` bounds any tensor's elements per batch row. */
    fun prove(g: OnnxWire.Graph, inputs: Map<String, List<Int>>, rowLimit: Long): List<String> {
        val p = Prover(rowLimit)
        val scope = HashMap<String, Tensor>()
        for (name in g.inputs) {
            if (name in g.initializers && name in inputs) {
                return listOf("has an initializer ${name60(name)} of the name of a contract input (ONNX Runtime would take the caller's value in its place: its shape cannot be proved)")
            }
            if (name in g.initializers) continue // an input with a default value the runtime never feeds: the initializer
            val shape = inputs[name] ?: return listOf("has an input ${name60(name)} the contract does not name (its shape cannot be proved)")
            scope[name] = Tensor(shape.map { if (it == -1) BATCH else of(it.toLong()) })
        }
        try { p.graph(g, scope, "the main graph") } catch (e: ShapeError) {
            return listOf("cannot prove its shapes: ${e.message} (refused: the runtime runs what it can bound)")
        }
        return p.problems()
    }
}
