"""The first load of a model file happens in an isolated, limited child process.

A model file is a program for the interpreter that runs it. tflite-runtime 2.14 (the Raspberry Pi OS Bookworm
interpreter) does not even verify the flatbuffer: a malformed file whose sha256 matches a tampered manifest reads
out of bounds and kills the process. Any interpreter can also be handed a well-formed graph that allocates or
computes without bound. So the first time this machine sees a model file (per interpreter version, threads and
delegate choice), a child process loads it and runs it at batch 1 and 2, and only then does the calling process
touch it. The child:

* is fed the exact bytes the caller checked and will load (on its standard input, never a path it re-opens);
* runs ``python -I`` (no working directory, user site or ``PYTHON*`` variables on ``sys.path``) in an empty
  temporary folder, with a scrubbed environment;
* limits itself before reading a byte: address space, CPU seconds, no file writes, no core dump; the caller also
  stops it after a wall-clock timeout.

A file that passed is remembered in ``$XDG_CACHE_HOME/seq2seq-edge/verified.json`` with what was exercised. That
file is trusted only if it is a regular file owned by the user and writable by nobody else, and only entries of
the expected form are read; anything else is treated as empty, with a warning. It is updated under a lock and
replaced atomically, so concurrent first loads keep each other's entries.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import BundleError

log = logging.getLogger(__name__)

#: Every backend is probed: the child's limits bound what any interpreter may do with a crafted graph.
PROBED_BACKENDS = ("tflite", "litert", "onnx")
#: Batch sizes the child runs each model at.
PROBE_BATCHES = (1, 2)
#: Wall-clock and CPU seconds the child may take.
PROBE_TIMEOUT_S = 60
#: Address space of the child: room for Python, numpy and an interpreter, plus a multiple of the model's size.
PROBE_BASE_MEMORY = 2 * 2**30
PROBE_MEMORY_PER_MODEL_BYTE = 8

_CACHE_FORMAT = "seq2seq-edge-verified"
_CACHE_VERSION = 2
_CACHE_MAX_BYTES = 4 * 2**20
_CACHE_MAX_ENTRIES = 5000
#: The only variables the child inherits (plus its own): what finds the interpreter's shared libraries.
_KEPT_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "SYSTEMROOT")


def cache_file() -> Path:
    """Where probed files are remembered."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seq2seq-edge" / "verified.json"


def _key(backend: str, sha256: str, threads: int, xnnpack: bool) -> str:
    from .backends import interpreter_version

    version = interpreter_version(backend) or "unknown"
    return f"{backend} {version} {sha256} threads={threads} xnnpack={xnnpack}"


def probe(backend: str, files: list[tuple[str, bytes, str, bool | str]], threads: int = 1) -> None:
    """Load and run each (label, content, sha256, xnnpack) in a child process unless it passed before; raise a
    BundleError naming the first file that the child could not load, crashed on, or ran out of limits with."""
    if backend not in PROBED_BACKENDS:
        return
    known = _read_cache()
    todo = [(label, content, _key(backend, sha, threads, xnnpack), xnnpack)
            for label, content, sha, xnnpack in files]
    todo = [t for t in todo if t[2] not in known]
    if not todo:
        return
    _run_child(backend, [(label, content, xnnpack) for label, content, _, xnnpack in todo], threads)
    checked = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _add_to_cache({key: {"batches": list(PROBE_BATCHES), "checked": checked, "python": sys.version.split()[0]}
                   for _, _, key, _ in todo})


def _run_child(backend: str, models: list[tuple[str, bytes, bool | str]], threads: int) -> None:
    """One child loads every model in turn (fed one after the other on its stdin); the error names the file."""
    limit = PROBE_BASE_MEMORY + PROBE_MEMORY_PER_MODEL_BYTE * max(len(c) for _, c, _ in models)
    modes = ",".join("1" if x else "0" for _, _, x in models)
    sizes = ",".join(str(len(c)) for _, c, _ in models)
    cmd = [sys.executable, "-I", "-m", "seq2seq_edge.probe", backend, modes, sizes, str(threads), str(limit),
           str(math.ceil(PROBE_TIMEOUT_S))]
    env = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
    # glibc fills fresh and freed heap memory with a pattern, so an out-of-bounds read of a malformed file
    # crashes the child every time instead of now and then.
    env.update(MALLOC_PERTURB_="165", LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
    with tempfile.TemporaryDirectory(prefix="s2s-probe-") as empty:
        try:
            proc = subprocess.run(cmd, input=b"".join(c for _, c, _ in models), capture_output=True,
                                  timeout=PROBE_TIMEOUT_S, cwd=empty, env=env)
            timed_out = False
        except subprocess.TimeoutExpired as e:
            proc, timed_out = e, True
    stderr = (proc.stderr or b"").decode("utf-8", "replace")
    started = [int(line[6:]) for line in stderr.splitlines() if line.startswith("start ") and line[6:].isdigit()]
    label = models[started[-1] if started else 0][0]
    if timed_out:
        raise BundleError(f"loading and running it once took longer than {PROBE_TIMEOUT_S} s in a test process; "
                          "it was not loaded here", where=label)
    if proc.returncode < 0:
        sig = -proc.returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        why = "ran out of its CPU time limit" if sig == signal.SIGXCPU else f"crashed ({name})"
        raise BundleError(f"the {backend} interpreter {why} loading and running it in a test process: the file is "
                          "malformed or hostile; it was not loaded here", where=label)
    if proc.returncode != 0:
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("start ")]
        raise BundleError(lines[-1][:500] if lines else f"the test process failed with status {proc.returncode}",
                          where=label)


# ---- the cache of probed files -----------------------------------------------------------------------------------
def _read_cache() -> dict:
    """The entries of the cache file, or {} (with a warning) when it is absent, foreign or malformed."""
    path = cache_file()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return {}
    except OSError as e:
        log.warning("ignoring %s (%s); model files will be probed again", path, e.strerror)
        return {}
    try:
        st = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(st.st_mode):
            problem = "not a regular file"
        elif hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
            problem = "owned by another user or writable by others"
        elif st.st_size > _CACHE_MAX_BYTES:
            problem = f"larger than {_CACHE_MAX_BYTES} bytes"
        if problem is None:
            data = _parse_cache(os.read(fd, _CACHE_MAX_BYTES + 1))
            if data is not None:
                return data
            problem = "not a file this runtime wrote"
    finally:
        os.close(fd)
    log.warning("ignoring %s (%s); model files will be probed again", path, problem)
    return {}


def _parse_cache(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not (isinstance(data, dict) and data.get("format") == _CACHE_FORMAT and data.get("version") == _CACHE_VERSION
            and isinstance(data.get("entries"), dict)):
        return None
    entries = data["entries"]
    if not all(isinstance(k, str) and isinstance(v, dict) for k, v in entries.items()):
        return None
    return entries


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path``'s lock file, where the platform has fcntl (it does wherever probing runs)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


#: False in a process that must write no file (the sandboxed decoder's child): probed files are not remembered.
CACHE_WRITES = True


def _add_to_cache(new: dict) -> None:
    if not CACHE_WRITES:
        return
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(path):
            entries = {**_read_cache(), **new}
            if len(entries) > _CACHE_MAX_ENTRIES:  # oldest first out (dicts keep insertion order)
                entries = dict(list(entries.items())[-_CACHE_MAX_ENTRIES:])
            fd, tmp = tempfile.mkstemp(prefix=".verified.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": _CACHE_FORMAT, "version": _CACHE_VERSION, "entries": entries}, f)
            os.replace(tmp, path)
    except OSError as e:  # a read-only home only costs the probe again next time
        log.debug("cannot write %s: %s", path, e)


# ---- the child -----------------------------------------------------------------------------------------------------
def limit_self(memory: int, cpu_seconds: int) -> None:
    """Lower this process's limits (never above what it inherited): address space, CPU time, no file writes, no
    core dump."""
    import resource

    for name, value in (("RLIMIT_AS", memory), ("RLIMIT_CPU", cpu_seconds), ("RLIMIT_FSIZE", 0),
                        ("RLIMIT_CORE", 0)):
        if hasattr(resource, name):
            which = getattr(resource, name)
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))


def _read_stdin(size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sys.stdin.buffer.read(min(size - got, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _main(argv: list[str]) -> int:
    """Child side: limit itself, then for each model read from stdin: load it and run it at PROBE_BATCHES on
    zeros. Exit 0, or 2 with the error on stderr; "start I" lines say which model it was on."""
    backend, modes, sizes = argv[0], argv[1].split(","), [int(x) for x in argv[2].split(",")]
    threads, memory, cpu = int(argv[3]), int(argv[4]), int(argv[5])
    limit_self(memory, cpu)
    try:
        from . import backends

        for index, (mode, size) in enumerate(zip(modes, sizes)):
            print(f"start {index}", file=sys.stderr, flush=True)
            content = _read_stdin(size)
            if len(content) != size:
                raise BundleError(f"the test process received {len(content)} of {size} bytes")
            if mode not in ("0", "1"):
                raise BundleError(f"the test process was given delegate mode {mode!r}")
            model = backends.open_model(backend, content, threads, xnnpack=mode == "1")
            for batch in PROBE_BATCHES:  # batch 2 also builds a second interpreter (one per batch size)
                model.run(backends.zero_feeds(model, batch))
            del model, content
    except MemoryError:
        print("the model needs more memory than the test process allows "
              f"({memory // 2**20} MiB of address space)", file=sys.stderr)
        return 2
    except BundleError as e:  # the parent names the file
        print(" ".join("; ".join(e.problems).split()), file=sys.stderr)
        return 2
    except Exception as e:  # reported to the parent as a clean error
        print(" ".join(str(e).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
