// Loading a bundle folder (java.nio.file: the JVM, and Android API 26+ for files on the device's storage).
package dev.seq2seqedge

import java.io.File
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.channels.SeekableByteChannel
import java.nio.file.Files
import java.nio.file.LinkOption
import java.nio.file.NoSuchFileException
import java.nio.file.Path
import java.nio.file.StandardOpenOption
import java.nio.file.attribute.BasicFileAttributes

private const val SYMLINK = "is a symbolic link; bundle files must be regular files inside the bundle folder"

private fun kind(a: BasicFileAttributes): String = when {
    a.isDirectory -> "a folder"
    a.isSymbolicLink -> "a symbolic link"
    else -> "not a regular file (a FIFO, a device or a socket)"
}

/**
 * A BundleReader over a folder: a regular file inside `dir`, refused unread when over maxBytes. As the Python and
 * JavaScript readers: a symbolic link (to /etc/passwd, to a model outside the bundle), a FIFO (which would block
 * the load), a device or a folder is refused before a byte is read (lstat, then open with NOFOLLOW_LINKS); the size
 * is taken from the opened file, and the read stops there.
 */
fun folderReader(dir: Path): BundleReader = BundleReader { name, maxBytes ->
    checkPlainName(name, dir.toString())
    val file = dir.resolve(name)
    val where = file.toString()
    val attrs = try {
        Files.readAttributes(file, BasicFileAttributes::class.java, LinkOption.NOFOLLOW_LINKS)
    } catch (e: NoSuchFileException) {
        throw BundleError(if (name == MANIFEST_FILE) "no manifest.json here: is this a bundle written by `s2s export`?"
            else "file listed in the manifest is missing: copy the bundle again", where)
    } catch (e: IOException) {
        throw BundleError("cannot read it (${e.message ?: e})", where)
    }
    if (attrs.isSymbolicLink) throw BundleError(SYMLINK, where)
    if (!attrs.isRegularFile) throw BundleError("is ${kind(attrs)}, not a regular file", where)
    if (attrs.size() > maxBytes) {
        throw BundleError("file is ${attrs.size()} bytes, more than the $maxBytes expected (replaced or corrupted: copy the bundle again)", where)
    }
    val channel: SeekableByteChannel = try {
        Files.newByteChannel(file, setOf(StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS))
    } catch (e: IOException) {
        val msg = e.message ?: e.toString()
        throw BundleError(if (msg.contains("symbolic link", true) || msg.contains("ELOOP") || msg.contains("Too many levels")) SYMLINK else "cannot read it ($msg)", where)
    }
    channel.use { ch ->
        val size = try { ch.size() } catch (e: IOException) { throw BundleError("cannot read it (${e.message ?: e})", where) }
        if (size > maxBytes) {
            throw BundleError("file is $size bytes, more than the $maxBytes expected (replaced or corrupted: copy the bundle again)", where)
        }
        val buf = ByteBuffer.allocate(size.toInt())
        try {
            while (buf.hasRemaining()) if (ch.read(buf) < 0) break
        } catch (e: IOException) {
            throw BundleError("cannot read it (${e.message ?: e})", where)
        }
        if (buf.position() == buf.capacity() && ch.read(ByteBuffer.allocate(1)) > 0) {
            throw BundleError("file changed size while it was read (copy the bundle again)", where)
        }
        buf.array().copyOf(buf.position())
    }
}

/** Raise BundleError unless `dir` is a folder with a manifest, saying what it is instead (runtime/loader.py). */
private fun checkBundleDir(dir: Path) {
    val where = dir.toString()
    if (Files.isDirectory(dir)) return // the bundle folder itself may be a link to a folder; its files may not
    if (Files.exists(dir)) {
        if (dir.fileName?.toString() == MANIFEST_FILE) {
            throw BundleError("this is the bundle's manifest; give the folder that holds it: ${dir.toAbsolutePath().parent}", where)
        }
        throw BundleError("this is a file; a bundle is the folder s2s export wrote", where)
    }
    throw BundleError("no such bundle folder", where)
}

/**
 * Load a bundle folder on ONNX Runtime.
 * @param variant "fp32" (default) or "int8"
 * @param oneCall null (auto): the one-call greedy model when the bundle has one; true: require it; false: step loop
 * @param threads intra-op threads per session, 1 to 256 (OptionError otherwise)
 */
@JvmOverloads
fun loadBundle(dir: Path, variant: String = "fp32", oneCall: Boolean? = null, threads: Int = 1, engine: Engine? = null): Seq2SeqDecoder {
    if (threads < 1 || threads > MAX_THREADS) throw OptionError("threads must be between 1 and $MAX_THREADS, got $threads")
    checkBundleDir(dir)
    return loadBundle(folderReader(dir), engine ?: OnnxRuntimeEngine(threads), variant, dir.toString(), oneCall)
}

@JvmOverloads
fun loadBundle(dir: File, variant: String = "fp32", oneCall: Boolean? = null, threads: Int = 1, engine: Engine? = null): Seq2SeqDecoder =
    loadBundle(dir.toPath(), variant, oneCall, threads, engine)
